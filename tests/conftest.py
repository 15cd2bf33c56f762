import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session', autouse=True)
def _offline():
    "No network in tests: the hub fails at once instead of trying."
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    yield
