"Every study in nbs/studies runs through papermill with tiny parameters, and the runner and CLI behave."

import fcntl, json, os, pty, struct, subprocess, sys, termios
from pathlib import Path
import pytest
from clipkit.studies import run_study, list_studies

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted((ROOT / 'nbs' / 'studies').glob('*.ipynb'))
# tiny parameters per study; a new study must add its entry here
TINY = {
    'quickstart': dict(steps=12, n_pairs=1024, batch_size=128, n_per_class=2, n_retrieval=40),
    'losses': dict(
        losses=['clip', 'siglip', 'cyclip'], batch_sizes=[16, 32], steps=3, n_pairs=256, n_per_class=1
    ),
    'few_shot': dict(
        shots=[1, 2],
        seeds=[0],
        pretrain_steps=5,
        pretrain_pairs=512,
        n_test_per_class=2,
        methods=['zero_shot', 'zpe', 'linear_probe', 'tip_adapter', 'clip_adapter', 'coop', 'ft'],
        hyperparameters={
            'coop': {'epochs': 1},
            'ft': {'epochs': 1},
            'promptsrc': {'epochs': 1, 'depth_text': 2, 'depth_vision': 3},
        },
        protocol_shots=2,
        vit_methods=['zero_shot', 'promptsrc'],
        vit_pretrain_steps=5,
    ),
    'modality_gap': dict(
        temperatures=[0.1], steps=4, n_pairs=256, batch_size=32, n_retrieval=20, n_per_class=1
    ),
    'robustness': dict(
        steps=[3, 5], seeds=[0], n_pairs=256, batch_size=32, n_train_per_class=2, n_per_class=1, cnn_epochs=1
    ),
    'compositionality': dict(losses=['clip'], steps=3, n_pairs=256, batch_size=32, n_items=20),
    'curation': dict(
        n_pool=600, thresholds=[20], steps=3, batch_size=32, seeds=[0], n_per_class=2, n_retrieval=20
    ),
    'spurious_backgrounds': dict(
        correlations=[0.0, 0.9],
        seeds=[0],
        steps=3,
        n_pairs=256,
        batch_size=32,
        n_probe=64,
        n_per_class=2,
        cnn_epochs=1,
    ),
    'noise_vs_scale': dict(
        noisy_pools=[256, 512], clean_pool=256, steps=3, batch_size=32, seeds=[0], n_per_class=1
    ),
    'neglected_tails': dict(seeds=[0], steps=3, batch_size=32, n_pairs=256, n_per_class=2, n_retrieved=4),
    'vlp_recipes': dict(seeds=[0], steps=3, batch_size=32, n_pairs=256, eda_variants=1, n_per_class=1),
    'structure_negatives': dict(seeds=[0], steps=3, batch_size=32, n_pairs=256, n_items=20, n_per_class=1),
    'test_time': dict(
        seeds=[0], pretrain_steps=5, pretrain_pairs=512, styles=['noise'], n_per_class=2, n_views=10, shots=1
    ),
    'compositional_prompts': dict(
        seeds=[0],
        steps=3,
        batch_size=32,
        n_pairs=256,
        n_train_per_class=1,
        n_test_per_class=1,
        csp_epochs=1,
        coop_epochs=1,
    ),
    'data_sources': dict(
        arms={'studio': {'studio': 1}, 'crawl': {'crawl': 1}, 'studio+crawl': {'studio': 1, 'crawl': 1}},
        seeds=[0],
        steps=3,
        batch_size=32,
        n_pairs=256,
        n_per_class=1,
        n_labelled_per_class=2,
        baseline_epochs=[1, 2],
    ),
}


def test_studies_are_excluded_from_nbdev_test():
    assert (ROOT / 'nbs' / 'studies' / '.notest').exists(), 'nbdev-test skips the studies folder'


@pytest.mark.parametrize('nb', STUDIES, ids=lambda p: p.stem)
def test_study_runs(nb, tmp_path):
    assert nb.stem in TINY, f'add tiny parameters for {nb.stem} to tests/test_studies.py'
    dest = run_study(nb, TINY[nb.stem], tmp_path, progress=False)
    assert dest.is_file(), 'the executed notebook is written'
    assert (tmp_path / 'index.html').is_file(), 'and the page linking its outputs'
    assert (tmp_path / 'verdicts.csv').is_file(), 'every study ends with its verdict table, saved'
    if (tmp_path / 'metrics.json').exists():
        json.loads((tmp_path / 'metrics.json').read_text())  # strict JSON: loads without error


@pytest.mark.slow  # a second quickstart run, through plain papermill
def test_quickstart_metrics(tmp_path):
    """Plain papermill with -p: the parameters tag survived nbdev-clean, and metrics.json has every promised
    key."""
    exe = Path(sys.executable).parent / 'papermill'
    args = [
        str(exe),
        str(ROOT / 'nbs/studies/quickstart.ipynb'),
        str(tmp_path / 'out.ipynb'),
        '-k',
        'python3',
        '--no-progress-bar',
    ]
    for k, v in {**TINY['quickstart'], 'steps': 7, 'out_dir': str(tmp_path)}.items():
        args += ['-p', k, str(v)]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f'plain papermill runs the quickstart:\n{r.stderr[-4000:]}'
    m = json.loads(
        (tmp_path / 'metrics.json').read_text(), parse_constant=lambda c: pytest.fail(f'non-strict JSON: {c}')
    )
    assert m['steps'] == 7, 'the parameter given with -p reached the notebook'
    assert m['train_seconds'] > 0, 'the training time is recorded'
    for task in ('shape', 'color', 'shape_color', 'count', 'relation', 'ood_style', 'novel_combos'):
        assert 0 <= m['zero_shot'][task]['top1'] <= 1, f'{task}: a top-1 accuracy for every task'
    assert m['zero_shot']['count']['top5'] is None, '3 classes have no top-5'
    for d in ('image_to_text', 'text_to_image'):
        for k in (1, 5, 10):
            assert 0 <= m['retrieval'][f'{d}_R@{k}'] <= 1, f'{d} R@{k}: a recall for both directions'
    for f in ('loss.png', 'similarity.png', 'per_class.png', 'results.csv', 'results.json'):
        assert (tmp_path / f).is_file(), f'{f} is written'


def test_cli_list_and_failure(tmp_path):
    exe = Path(sys.executable).parent / 'clipkit'
    r = subprocess.run([str(exe), 'study', 'list'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, 'study list succeeds'
    assert 'quickstart' in r.stdout, 'it names the quickstart study'
    assert 'steps = 600' in r.stdout, 'and shows its parameters'
    assert 'quickstart' in list_studies(), 'the Python function lists it too'
    r = subprocess.run(
        [
            str(exe),
            'study',
            'run',
            'quickstart',
            '-p',
            'n_pairs=30',  # allowed at the door (a positive count), refused in the kernel: fewer than a batch
            '--out',
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 1, 'a failing study exits non-zero'
    assert 'batch_size 256 is more than the 30 pairs' in r.stderr, 'and says what failed'
    assert (tmp_path / 'quickstart.ipynb').is_file(), 'the failed run keeps its output notebook'
    r = subprocess.run(
        [str(exe), 'study', 'run', 'quickstart', '-p', 'stepz=3'], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 2, 'an unknown parameter is refused as a user error'
    assert r.stderr.strip().splitlines() == [
        "clipkit study run: error: study 'quickstart' has no parameter 'stepz'; did you mean steps?"
    ], 'in one line that names it'


def test_study_list_with_no_studies_is_an_error(tmp_path):
    exe = Path(sys.executable).parent / 'clipkit'
    env = {**os.environ, 'CLIPKIT_STUDIES_DIR': str(tmp_path)}
    r = subprocess.run([str(exe), 'study', 'list'], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 2, 'an empty studies folder fails instead of printing nothing'
    assert f'no study notebooks in {tmp_path}' in r.stderr, 'and the message names the folder'


def _run_in_terminal(args, cwd, env, width=150):
    "Run a command on a pseudo-terminal of the given width; return everything it drew, as text."
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, width, 0, 0))
    p = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    drawn = b''
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the command closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert p.wait(timeout=600) == 0, drawn.decode(errors='replace')[-3000:]
    return drawn.decode(errors='replace')


@pytest.mark.slow
def test_terminal_shows_grid_cells_and_loss(tmp_path):
    exe = Path(sys.executable).parent / 'clipkit'
    tiny = dict(
        TINY['modality_gap'], temperatures='[0.1,0.05]', steps=11, seeds='[0]'
    )  # 3 cells: 2 fixed, 1 learned
    args = [str(exe), 'study', 'run', 'modality_gap', '--out', str(tmp_path / 'out')]
    for k, v in tiny.items():
        args += ['-p', k, str(v)]
    env = {**os.environ, 'CLIPKIT_CACHE_DIR': str(tmp_path / 'cache')}  # an empty cache: the models train
    drawn = _run_in_terminal(args, ROOT, env)
    frames = drawn.split('\r')
    assert any('modality_gap (results): 3/3 cells' in f for f in frames), 'the bar counts the grid cells'
    assert any('train step 11/11  loss' in f for f in frames), "and shows the trainer's step and loss"
    assert (tmp_path / 'out' / 'index.html').is_file(), 'the run is browsable from index.html'
    executed = json.loads((tmp_path / 'out' / 'modality_gap.ipynb').read_text())
    streams = [o for c in executed['cells'] for o in c.get('outputs', []) if o.get('name') == 'stderr']
    assert not any('it/s' in ''.join(o['text']) for o in streams), (
        'the notebook itself holds no progress bars'
    )


@pytest.mark.slow
def test_studies_run_from_a_plain_install_in_an_empty_folder(tmp_path):
    "A non-editable install (the wheel pip builds from the checkout) runs a study from any folder."
    site = tmp_path / 'site'
    pip = [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation']
    r = subprocess.run(pip + ['--target', str(site), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    shipped = sorted(p.name for p in (site / 'clipkit' / 'study_notebooks').glob('*.ipynb'))
    assert shipped == sorted(p.name for p in STUDIES), 'every study notebook ships as package data'
    empty = tmp_path / 'anywhere'
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith('CLIPKIT_')}
    env['PYTHONPATH'] = str(site)  # the installed copy, ahead of the checkout's editable one
    cli = [sys.executable, '-c', 'import sys; from clipkit.cli import main; sys.exit(main())']
    r = subprocess.run(cli + ['study', 'list'], cwd=empty, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and 'quickstart' in r.stdout, f'the installed studies are listed\n{r.stderr}'
    run = [
        'study',
        'run',
        'quickstart',
        '-p',
        'steps',
        '20',
        '-p',
        'n_pairs',
        '512',
        '-p',
        'n_per_class',
        '2',
    ]
    r = subprocess.run(cli + run, cwd=empty, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f'the study runs from the installed package\n{r.stderr[-3000:]}'
    results = empty / 'results' / 'quickstart'
    assert json.loads((results / 'metrics.json').read_text())['steps'] == 20, 'its results are in ./results/'
    assert (results / 'index.html').is_file(), 'with the page that links them'
    executed = json.loads((results / 'quickstart.ipynb').read_text())
    source = executed['metadata']['papermill']['input_path']
    assert source.startswith(str(site)), 'the notebook run is the installed copy, not the checkout\'s'
    streams = [o for c in executed['cells'] for o in c.get('outputs', []) if o.get('name') == 'stderr']
    assert not any('TqdmWarning' in ''.join(o['text']) for o in streams), 'and it holds no widget warnings'
