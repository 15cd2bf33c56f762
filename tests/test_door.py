"""Bad input stopped at the door: every case of issue 23, run through `clipkit.cli.main` as a user types it.

Each refused case exits 2 and prints one line naming the flag, parameter, file or field; the accepted ones
exit 0. The resume, bad-row and small-batch cases train a tiny model for a few steps on a CSV of the world's
images.
"""

import contextlib, io, json
import pandas as pd
import pytest
from clipkit.cli import main
from clipkit.data.world import WorldConfig, export_csv, make_pairs


def run(argv):
    "(exit status, stderr, stdout) of `clipkit ARGV`."
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
    return status, err.getvalue().strip(), out.getvalue()


def refused(argv, *said):
    "Assert `argv` exits 2 with one stderr line that contains every text of `said`."
    status, err, _ = run(argv)
    assert status == 2, f'{argv} exits 2, got {status}: {err}'
    assert len(err.splitlines()) == 1, f'{argv} prints one line, got:\n{err}'
    for text in said:
        assert text in err, f'{argv}: {text!r} not in {err!r}'
    return err


TRAIN = ['train', '--out', 'unused', '--no-progress']
REFUSED = [  # (arguments, what the one line must say)
    (['--steps', '0'], 'argument --steps: got 0; must be int > 0'),
    (['--steps', '-5'], 'argument --steps: got -5; must be int > 0'),
    (['--batch-size', '0'], 'argument --batch-size: got 0; must be int > 0'),
    (['--threads', '-3'], 'argument --threads: got -3; must be int in [0, 1024]'),
    (['--workers', '-1'], 'argument --workers: got -1; must be int >= 0'),
    (['--lr', '-1'], 'argument --lr: got -1.0; must be float > 0'),
    (['--lr', '0'], 'argument --lr: got 0.0; must be float > 0'),
    (['--lr', 'inf'], 'argument --lr: got inf; must be a finite float > 0'),
    (['--epochs', 'inf'], 'argument --epochs: got inf; must be a finite float > 0'),
    (['--seed', '99999999999'], 'argument --seed: got 99999999999; must be int in [0, 4294967295]'),
    (['--threads', '100000'], 'argument --threads: got 100000; must be int in [0, 1024]'),
    (['--crop-scale', '0.5'], 'argument --crop-scale: expected 2 arguments'),
    (['--crop-scale', '1.0', '0.5'], 'TrainConfig.crop_scale: got (1.0, 0.5); the low share comes first'),
    (
        ['--lock-text-unlocked-layers', '1'],
        'TrainConfig.lock_text_unlocked_layers: the part of a locked tower',
    ),
    (['--compile'], "TrainConfig.compile: torch.compile cannot read SparseAdam's sparse gradients"),
    (['--patch-dropout', '1.0'], 'argument --patch-dropout: got 1.0'),
    (['--loss-kw', '{chunk: 3}'], "argument --loss-kw: expected JSON such as '{\"chunk\": 1024}'"),
    (['--loss-kw', '[1, 2]'], 'argument --loss-kw: expected a JSON dict'),
    (
        ['--loss', 'siglip', '--loss-kw', '{"chunk": -5}'],
        "loss 'siglip' keyword chunk: got -5; must be int > 0",
    ),
    (['--terms', '[["simclr", "x"]]'], "term 'simclr' has weight 'x'; a weight is a finite number"),
    (['--positives', 'caption'], "positives='caption' is used by loss 'multi_positive' only, not 'clip'"),
    (['--loss', 'multi_positive', '--positives', 'nosuchcol'], "positives='nosuchcol' names no column"),
    (['--n-pairs', '64', '--batch-size', '256'], 'batch_size 256 is more than the 64 pairs to train on'),
    (['--train-data', 'World'], "--train-data 'World': no such file; give 'world'", 'did you mean world?'),
    (
        ['--val-data', 'world:retrieval'],
        '--val-data world:retrieval: a retrieval set, not a classification task',
    ),
    (['--pretrained', '/nope/w.pt'], '--pretrained /nope/w.pt: no such weights file'),
    (['--out', ''], '--out: an empty path'),
    (['--model', '/nope/ckpt'], "model '/nope/ckpt': no such checkpoint folder"),
    (
        ['--ckpt-dir', 'no-such-ckpt', '--resume', '--allow-changed', 'stpes'],
        "allow_changed names no field: 'stpes'",
    ),
    (['--seed', '-1'], 'argument --seed: got -1; must be int in [0, 4294967295]'),
    (['--n-pairs', '0'], 'argument --n-pairs: got 0; must be int > 0'),
    (['--epochs', '0'], 'argument --epochs: got 0.0; must be float > 0'),
    (['--grad-accum', '0'], 'argument --grad-accum: got 0; must be int > 0'),
    (['--warmup', '-1'], 'argument --warmup: got -1; must be int >= 0'),
    (['--ckpt-keep', '0'], 'argument --ckpt-keep: got 0; must be int > 0'),
    (['--max-bad-fraction', '1.5'], 'argument --max-bad-fraction: got 1.5; must be float in [0, 1]'),
    (['--crop-scale', '0.5', '1.5'], 'argument --crop-scale: got 1.5'),
    (['--precision', 'fp61'], "must be one of 'fp32', 'bf16', 'fp16'"),
    (['--model', 'nosuchmodel'], "argument --model: unknown model 'nosuchmodel'"),
    (['--model', 'tiny-vt'], 'did you mean tiny-vit'),
    (['--loss', 'sigmiod'], "unknown loss 'sigmiod'; did you mean siglip"),
    (['--stesp', '10'], 'clipkit train: error: unrecognized arguments: --stesp 10; did you mean --steps'),
    (['--steps', 'ten'], "argument --steps: got 'ten'; must be int > 0"),
    (['--augment'], "--augment: the world's images are tensors", '--crop-scale'),
    (['--workers', '2'], "--workers: the world's images are in memory"),
    (['--resume'], '--resume: there is no --ckpt-dir'),
    (['--allow-changed', 'steps'], '--allow-changed: it applies to a resumed run'),
    (['--ckpt-every', '5'], '--ckpt-every: there is no --ckpt-dir'),
    (['--eval-every', '5'], '--eval-every: there is no --val-data'),
    (['--report-to', 'tensorboard'], '--report-to: nothing is logged without --log-every'),
    (['--epochs', '1', '--steps', '10'], '--steps: --epochs sets the steps'),
    (['--csv-img-key', 'path'], '--csv-img-key applies to csv data; --train-data world is world'),
    (['--train-data', 'pairs.csv', '--n-pairs', '100'], '--n-pairs applies to world data'),
    (['--train-data', 'pairs.csv', '--shuffle-buffer', '10'], '--shuffle-buffer applies to shards data'),
    (['--train-data', 'no-such.csv'], 'read_csv_pairs: no such file no-such.csv'),
    (['--val-data', 'world:colour'], "unknown world task 'colour'; did you mean color"),
    (['--terms', '[["simclr_typo", 1.0]]'], "unknown loss 'simclr_typo'; did you mean simclr"),
]


@pytest.mark.parametrize('argv,said', [(a, s) for a, *s in REFUSED], ids=[' '.join(a) for a, *_ in REFUSED])
def test_train_refuses_at_the_door(argv, said):
    refused(TRAIN + argv, *said)


def test_a_batch_too_small_to_train_is_refused_before_training():
    refused(
        TRAIN + ['--n-pairs', '64', '--batch-size', '1', '--steps', '1'],
        'batch_size 1 over 1 processes x grad_accum 1 leaves fewer than 2 samples per micro-batch',
    )


def test_settings_refusals_reach_the_command_line(tmp_path, monkeypatch):
    argv = TRAIN + ['--n-pairs', '64', '--batch-size', '32', '--steps', '1']
    monkeypatch.setenv('CLIPKIT_THRAEDS', '2')
    refused(argv, 'environment variable CLIPKIT_THRAEDS names no setting; did you mean CLIPKIT_THREADS')
    monkeypatch.delenv('CLIPKIT_THRAEDS')
    (tmp_path / 'settings.ini').write_text('[clipkt]\nseed = 1\n')
    monkeypatch.chdir(tmp_path)
    refused(argv, 'has no [clipkit] section', 'did you mean [clipkit] for [clipkt]')


def test_debug_shows_the_traceback_and_internal_errors_keep_theirs(monkeypatch):
    from clipkit.config import UsageError
    import clipkit.cli as cli

    with pytest.raises(UsageError, match='--augment'):
        main(TRAIN + ['--augment', '--debug'])

    def broken(args):
        raise RuntimeError('an internal fault')

    monkeypatch.setattr(cli, 'train_cmd', broken)
    with pytest.raises(RuntimeError, match='an internal fault'):
        main(TRAIN)  # not a user's error: the traceback is shown


EVAL = ['eval', '--model', 'tiny-rn']


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "Image folders: two colour classes with one unreadable image, and a folder of one class."
    from PIL import Image

    root = tmp_path_factory.mktemp('folders')
    for name, color in (('red', (200, 0, 0)), ('blue', (0, 0, 200))):
        (root / 'two' / name).mkdir(parents=True)
        for k in range(3):
            Image.new('RGB', (32, 32), color).save(root / 'two' / name / f'{k}.png')
    (root / 'two' / 'red' / 'broken.png').write_bytes(b'not a png')
    (root / 'one' / 'red').mkdir(parents=True)
    for k in range(3):
        Image.new('RGB', (32, 32), (200, 0, 0)).save(root / 'one' / 'red' / f'{k}.png')
    return root


def test_eval_refusals(folders):
    refused(EVAL + ['--task', 'imagenet'], "task 'imagenet': expected world:NAME, folder:PATH or wds:PATH")
    refused(EVAL + ['--task', 'world:nosuchtask'], "unknown world task 'nosuchtask'; known: color, count")
    refused(EVAL + ['--task', 'folder:/no/such/folder'], 'no such folder /no/such/folder')
    refused(EVAL + ['--task', 'wds:/no/such/folder'], 'no such folder /no/such/folder')
    refused(
        EVAL + ['--task', f'folder:{folders / "one"}'], "has 1 classes ['red']; accuracy needs two or more"
    )
    refused(EVAL + ['--task', 'world:shape', '--batch-size', '0'], 'argument --batch-size: got 0')
    refused(EVAL + ['--task', 'world:shape', '--workers', '-1'], 'argument --workers: got -1')
    refused(
        EVAL + ['--task', 'world:shape', '--skip-bad'], "--skip-bad: the world's images are drawn in memory"
    )
    refused(EVAL + ['--task', 'world:shape', '--device', 'cdua'], "device 'cdua' is not a device torch knows")
    refused(EVAL + ['--task', f'folder:{folders / "two"}'], 'broken.png: unreadable image', '--skip-bad')


def test_eval_skip_bad_counts_and_reports(folders):
    status, err, out = run(EVAL + ['--task', f'folder:{folders / "two"}', '--skip-bad', '--workers', '0'])
    assert status == 0, err
    assert 'clipkit eval: skipped 1 unreadable images' in err, 'the count is reported'
    result = json.loads(out)
    assert result['skipped'] == {'unreadable image': 1}, 'and written with the result'
    assert result['task'] == 'zeroshot_classification'


def test_study_parameters_are_checked_before_the_kernel(tmp_path):
    study = ['study', 'run', 'quickstart', '--out', str(tmp_path / 'out')]
    refused(study + ['-p', 'steps=-5'], "study 'quickstart': parameter steps: got -5; must be int > 0")
    refused(study + ['-p', 'steps=abc'], "parameter steps: got 'abc'; must be int > 0")
    refused(study + ['-p', 'model=nosuchmodel'], "parameter model: unknown model 'nosuchmodel'")
    refused(study + ['-p', 'caption_noise=1.5'], 'parameter caption_noise: got 1.5; must be float in [0, 1]')
    refused(study + ['-p', 'stesp=5'], "study 'quickstart' has no parameter 'stesp'; did you mean steps?")
    refused(study + ['-p', 'steps', '10', 'extra'], '-p expects NAME=VALUE or NAME VALUE')
    refused(['study', 'run', 'nosuchstudy'], "no study 'nosuchstudy'")
    assert not (tmp_path / 'out').exists(), 'nothing is written for a refused run'


@pytest.fixture()
def csv_pairs(tmp_path):
    "An open_clip CSV of 96 of the world's images, and the rows' image files."
    path = export_csv(make_pairs(WorldConfig(), 96, seed=0), tmp_path / 'data')
    table = pd.read_csv(path, sep='\t')
    return path, [path.parent / f for f in table.filepath]


def csv_run(path, tmp_path, *extra):
    return [
        'train',
        '--train-data',
        str(path),
        '--batch-size',
        '16',
        '--no-progress',
        '--threads',
        '1',
        *extra,
    ]


@pytest.mark.parametrize(
    'change,field',
    [(['--threads', '2'], 'threads'), (['--augment'], 'transform'), (['--model', 'tiny-vit'], 'model')],
    ids=['threads', 'augmentation', 'model config'],
)
def test_resume_refuses_another_run(csv_pairs, tmp_path, change, field):
    path, _ = csv_pairs
    ckpt = tmp_path / 'ckpt'
    first = csv_run(path, tmp_path, '--steps', '2', '--ckpt-dir', str(ckpt), '--out', str(tmp_path / 'a'))
    assert run(first)[0] == 0
    again = csv_run(path, tmp_path, '--steps', '4', '--ckpt-dir', str(ckpt), '--out', str(tmp_path / 'b'))
    again += ['--resume', '--allow-changed', 'steps']
    if field == 'model':
        refused(again + change, f'{ckpt}/step-00000002 is a checkpoint of another model', 'vision_cfg.layers')
        return
    said = refused(
        again + change, f'{ckpt}/step-00000002 is a checkpoint of another run', f'{field}: checkpoint'
    )
    if field == 'threads':
        assert 'threads: checkpoint 1, this run 2' in said, 'both values are named'
    allowed = again[:-1] + [f'steps,{field}'] + change
    status, err, _ = run(allowed)
    assert status == 0, err
    assert f"continuing {ckpt}/step-00000002 with changed ['steps', '{field}']" in err, 'and said'


def test_too_many_bad_rows_stop_the_run_early(csv_pairs, tmp_path):
    path, images = csv_pairs
    for image in images[::3]:  # a third of the rows unreadable
        image.write_bytes(b'not a png')
    argv = csv_run(path, tmp_path, '--steps', '50', '--out', str(tmp_path / 'model'))
    said = refused(argv, 'error: stopped at step', 'samples drawn were dropped', 'past max_bad_fraction=0.1')
    step = int(said.split('stopped at step ')[1].split(':')[0])
    assert step < 10, f'stopped early, at step {step} of 50'
    assert not (tmp_path / 'model').exists(), 'and wrote no model'


def test_dropped_rows_are_reported_as_they_happen(csv_pairs, tmp_path):
    path, images = csv_pairs
    for image in images[::3]:
        image.write_bytes(b'not a png')
    argv = csv_run(path, tmp_path, '--steps', '4', '--log-every', '2', '--max-bad-fraction', '0.5')
    status, err, out = run(argv + ['--out', str(tmp_path / 'model')])
    assert status == 0, err
    assert 'clipkit train: warning: train: step 1: dropped' in err, 'the first drop is reported at once'
    log_lines = [line for line in out.splitlines() if line.startswith('step ')]
    assert len(log_lines) == 2 and all('dropped' in line for line in log_lines), 'and in every log line'
    history = pd.read_csv(tmp_path / 'model' / 'history.csv')
    assert history.dropped.is_monotonic_increasing and history.dropped.iloc[-1] > 0, 'and in the history'


def test_a_batch_that_shrinks_below_two_is_skipped_and_counted(csv_pairs, tmp_path):
    "Found: a CSV batch left with one readable image failed inside BatchNorm, naming no file."
    path, images = csv_pairs
    for k, image in enumerate(images):
        if k % 3 != 2:  # two rows in three unreadable: many batches of 4 keep fewer than 2
            image.write_bytes(b'not a png')
    argv = ['train', '--train-data', str(path), '--batch-size', '4', '--steps', '6', '--no-progress']
    argv += ['--threads', '1', '--max-bad-fraction', '1', '--out', str(tmp_path / 'model')]
    status, err, _ = run(argv)
    assert status == 0, err
    history = pd.read_csv(tmp_path / 'model' / 'history.csv')
    assert len(history) == 6, 'every step trained'
    assert history.dropped.iloc[-1] > 0, 'the dropped samples are counted'
    assert 'batch too small' in err, 'the skipped batches are counted by reason'


def test_a_resumed_run_skips_what_the_uninterrupted_one_skipped(csv_pairs, tmp_path):
    "The checkpoint carries the dropped counts and the batches skipped, so the stream resumes where it was."
    import torch
    from dataclasses import replace
    from clipkit.data.sources import read_csv_pairs
    from clipkit.models import create
    from clipkit.train import TrainConfig, train

    path, images = csv_pairs
    for k, image in enumerate(images):
        if k % 3 != 2:
            image.write_bytes(b'not a png')
    pairs = read_csv_pairs(path, check_images=False)
    cfg = TrainConfig(
        steps=6, batch_size=4, warmup=1, progress=False, threads=1, seed=0, max_bad_fraction=1.0
    )

    def fit(ckpt=None, until=None):
        torch.manual_seed(0)
        model, tok, pre = create('tiny-rn')
        run = cfg if ckpt is None else replace(cfg, ckpt_dir=str(ckpt), ckpt_every=3)
        with pytest.warns(UserWarning, match='dropped'):
            return train(model, tok, pairs, run, preprocess=pre, until=until)

    whole = fit()
    fit(tmp_path / 'ckpt', until=3)
    resumed = fit(tmp_path / 'ckpt')
    assert whole.dropped.iloc[2] < whole.dropped.iloc[-1], 'batches were dropped after the checkpoint too'
    assert list(resumed.dropped) == list(whole.dropped), 'the counts carry over'
    assert list(resumed.loss) == list(whole.loss), 'and the resumed run trains on the same batches'


def test_outputs_that_would_destroy_something_are_refused(csv_pairs, tmp_path):
    "Found: --out replaced a data folder, the training CSV or the checkpoints, and exited 0."
    path, _ = csv_pairs
    base = ['train', '--train-data', str(path), '--steps', '1', '--batch-size', '16', '--no-progress']
    refused(base + ['--out', str(path.parent)], 'holds files that are not a checkpoint')
    refused(base + ['--out', str(path)], 'is a file; the final checkpoint is a folder')
    (tmp_path / 'ckpt').mkdir()
    refused(base + ['--out', str(tmp_path / 'ckpt'), '--ckpt-dir', str(tmp_path / 'ckpt')], 'overlap')
    refused(
        base + ['--out', str(tmp_path / 'm'), '--ckpt-dir', str(path)],
        '--ckpt-dir ' + str(path) + ': is a file',
    )
    refused(
        ['eval', '--model', 'tiny-rn', '--task', 'world:shape', '--out', str(tmp_path)],
        'name the result JSON',
    )
    assert path.is_file(), 'the data is still there'


def test_settings_files_that_cannot_be_read_are_refused(tmp_path, monkeypatch):
    argv = TRAIN + ['--n-pairs', '64', '--batch-size', '32', '--steps', '1']
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'settings.ini').write_text('[clipkit]\nseed = 1\nseed = 2\n')
    refused(argv, 'settings.ini is not a valid settings file')
    (tmp_path / 'settings.ini').write_text('[CLIPKIT]\nseed = 1\n')
    refused(argv, 'did you mean [clipkit] for [CLIPKIT]?')
    (tmp_path / 'settings.ini').write_text('[clipkit]\nthreads = 100000\n')
    refused(argv, 'at most 1024 threads')


def test_study_values_read_as_study_list_prints_them(monkeypatch):
    import clipkit.cli as cli

    seen = []
    monkeypatch.setattr(cli, 'run_study', lambda name, params, out, kernel: seen.append(params) or 'x')
    assert run(['study', 'run', 'compositionality', '-p', "losses=['clip']"])[0] == 0
    assert seen == [{'losses': ['clip']}], 'a Python literal is read as one'
    refused(['study', 'run', 'quickstart', '-p', 'out_dir=elsewhere'], '-p out_dir: a study')
