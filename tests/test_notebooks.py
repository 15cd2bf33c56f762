"Every module notebook runs top to bottom under nbdev's test runner, each in its own process."

import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'nbs').glob('*.ipynb'))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8, 'the module notebooks are found'


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook(nb):
    exe = Path(sys.executable).parent / 'nbdev-test'
    r = subprocess.run([str(exe), str(nb)], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f'{nb.name} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}'
