import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session', autouse=True)
def _offline():
    "No network in tests: the hub fails at once instead of trying."
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    yield


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the environment as it found it. Found: Dask's LocalCluster sets OMP_NUM_THREADS=1 in
    the process that starts it and leaves it there, so every subprocess that later tests started (the notebook
    runner, the studies' kernels, the README jobs) ran on one thread."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)
