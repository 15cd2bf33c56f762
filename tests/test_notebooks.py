"Every module notebook runs top to bottom under nbdev's test runner; the longest ones in the slow group."

import json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'nbs').glob('*.ipynb'))
# The longest module notebooks on a clean clone (world models trained from a cold cache, the prompt learners'
# and test-time methods' multi-step transcriptions): CI runs them once in the slow group, after make test.
SLOW_NOTEBOOKS = {'09_adapt.prompt', '09_adapt.testtime', '09_adapt.weights', '10_analysis.probes'}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8, 'the module notebooks are found'
    assert SLOW_NOTEBOOKS <= {nb.stem for nb in NOTEBOOKS}, 'every slow notebook exists'


def _run_notebooks(notebooks: list, folder: Path) -> tuple:
    """The notebooks run as nbdev-test runs them (cells flagged notest or slow skipped), one after another
    in one process, so that torch, open_clip and clipkit are imported once, not once per notebook."""
    out = folder / 'results.json'
    runner = [sys.executable, str(ROOT / 'tests' / '_notebook_runner.py'), str(out)]
    r = subprocess.run(runner + [str(nb) for nb in notebooks], cwd=ROOT, capture_output=True, text=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    return results, r


@pytest.fixture(scope='module')
def notebook_results(tmp_path_factory):
    quick = [nb for nb in NOTEBOOKS if nb.stem not in SLOW_NOTEBOOKS]
    return _run_notebooks(quick, tmp_path_factory.mktemp('notebooks'))


@pytest.fixture(scope='module')
def slow_notebook_results(tmp_path_factory):
    slow = [nb for nb in NOTEBOOKS if nb.stem in SLOW_NOTEBOOKS]
    return _run_notebooks(slow, tmp_path_factory.mktemp('slow_notebooks'))


def _check(nb: Path, results: dict, run):
    assert nb.stem in results, (
        f'the runner stopped before {nb.name}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}'
    )
    result = results[nb.stem]
    assert result['passed'], f"{nb.name} failed:\n{result['errors'][-6000:]}"


@pytest.mark.parametrize(
    'nb', [nb for nb in NOTEBOOKS if nb.stem not in SLOW_NOTEBOOKS], ids=lambda p: p.stem
)
def test_notebook(nb, notebook_results):
    _check(nb, *notebook_results)


@pytest.mark.slow
@pytest.mark.parametrize('nb', [nb for nb in NOTEBOOKS if nb.stem in SLOW_NOTEBOOKS], ids=lambda p: p.stem)
def test_slow_notebook(nb, slow_notebook_results):
    _check(nb, *slow_notebook_results)


def _outputs(nb: Path) -> list:
    return [o for cell in json.loads(nb.read_text())['cells'] for o in cell.get('outputs', [])]


def _text(output: dict) -> str:
    return ''.join(output.get('text', '')) + json.dumps(output.get('data', {}))


STUDIES = sorted((ROOT / 'nbs' / 'studies').glob('*.ipynb'))


@pytest.mark.parametrize('nb', NOTEBOOKS + STUDIES, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(nb):
    outputs = _outputs(nb)
    assert outputs, f'{nb.name} is committed executed (`make notebooks` or `make study-notebooks`)'
    assert not [o for o in outputs if o['output_type'] == 'error'], f'{nb.name} holds no error'
    stderr = [_text(o) for o in outputs if o.get('name') == 'stderr']
    assert not [t for t in stderr if 'it/s' in t or 'Warning' in t], (
        f'{nb.name}: no progress bars or warnings'
    )
    machine_paths = re.findall(r'(?:/work|/tmp|/root|/home)/[\w.-]+', ' '.join(map(_text, outputs)))
    assert not machine_paths, f'{nb.name} shows no path of the machine that ran it: {machine_paths[:3]}'


def test_notebooks_stay_small():
    every = sorted((ROOT / 'nbs').rglob('*.ipynb'))
    total = sum(p.stat().st_size for p in every)
    assert total < 15e6, f'the committed notebooks hold {total / 1e6:.1f} MB, over the 15 MB bound'
    for nb in every:
        for o in _outputs(nb):
            png = o.get('data', {}).get('image/png', '')
            assert len(png) < 400_000, (
                f'{nb.name}: a figure of {len(png) / 1e3:.0f} kB (base64): make it smaller'
            )
