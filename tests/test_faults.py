"""Fault injection: kills during checkpoint writes, torn and stale files, bad input, crashed studies and
mistyped settings. Each test names the fault it covers; none may end in a silently wrong number."""

import contextlib
import json
import os
import shutil
import tarfile
import warnings
from dataclasses import replace
from pathlib import Path
import nbformat
import pytest
import safetensors.torch
import torch
from clipkit.config import get_settings
from clipkit.util import TMP_PREFIX
from clipkit.data.sources import BadInput, image_folder_task, read_csv_pairs, read_wds_pairs
from clipkit.data.world import WorldConfig, export_csv, export_wds, make_pairs, to_pil, world_tasks
from clipkit.eval import classification_metrics
from clipkit.features import extract, zero_shot_weights
from clipkit.models import create
from clipkit.studies import ResultLog, run_study
from clipkit.cli import main
from clipkit.train import TrainConfig, train

WORLD = WorldConfig()
CFG = TrainConfig(steps=12, batch_size=64, warmup=3, progress=False, ckpt_every=4)


@pytest.fixture(scope='module')
def pool():
    "A small training pool."
    return make_pairs(WORLD, 256, seed=0)


@pytest.fixture(scope='module')
def straight(pool):
    "Weights after 12 steps with no checkpoint: what every interrupted and resumed run must end with."
    torch.manual_seed(0)
    model, tok, _ = create('tiny-rn')
    train(model, tok, pool, replace(CFG, ckpt_every=0))
    return model.state_dict()


def fresh():
    "A tiny-rn model with the initial weights every run here starts from."
    torch.manual_seed(0)
    return create('tiny-rn')[:2]


def assert_same_weights(state, reference):
    for name, value in state.items():
        assert torch.allclose(value, reference[name], atol=1e-6), f'{name} differs from the straight run'


class Killed(BaseException):
    "The process dies here (a BaseException, so no `except Exception` in the code under test catches it)."


@contextlib.contextmanager
def kill_at(k, folder, snapshot, torn):
    """Count every write the code makes; at the k-th, copy `folder` as it is on disk to `snapshot` and raise
    Killed. With torn=True the k-th write runs, its file is cut to half, and then the copy is taken."""
    originals = {
        'write_text': Path.write_text,
        'write_bytes': Path.write_bytes,
        'save_file': safetensors.torch.save_file,
        'torch_save': torch.save,
        'replace': os.replace,
        'rmtree': shutil.rmtree,
    }
    calls = []

    def wrap(name, target_of):
        def patched(*args, **kw):
            calls.append(name)
            if len(calls) != k:
                return originals[name](*args, **kw)
            target = target_of(args)
            if torn and target is not None:
                originals[name](*args, **kw)
                Path(target).write_bytes(Path(target).read_bytes()[: Path(target).stat().st_size // 2])
            shutil.copytree(folder, snapshot)
            raise Killed(f'killed at write {k} ({name})')

        return patched

    first = lambda args: args[0]
    second = lambda args: args[1]
    with (
        pytest.MonkeyPatch.context() as mp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter('ignore')
        mp.setattr(Path, 'write_text', wrap('write_text', first))
        mp.setattr(Path, 'write_bytes', wrap('write_bytes', first))
        mp.setattr(safetensors.torch, 'save_file', wrap('save_file', second))
        mp.setattr(torch, 'save', wrap('torch_save', second))
        mp.setattr(os, 'replace', wrap('replace', lambda args: None))
        mp.setattr(shutil, 'rmtree', wrap('rmtree', lambda args: None))
        yield calls


@pytest.mark.slow  # about 24 kill points, each a killed and a resumed run
def test_kill_at_every_checkpoint_write_resumes_exactly(pool, straight, tmp_path):
    """Found: a kill between the weights and trainer.pt resumed weights of one step with the optimizer of
    another. Now a kill before, or in the middle of, any write of the step-8 checkpoint (with step 4 on disk)
    resumes to the straight run's weights, with no step lost or doubled and no temporary left."""
    base = tmp_path / 'base'
    model, tok = fresh()
    train(model, tok, pool, replace(CFG, ckpt_dir=str(base)), until=4)
    boundaries = 0
    for torn in (False, True):
        k = 1
        while True:
            work, snapshot = tmp_path / f'work-{torn}-{k}', tmp_path / f'snap-{torn}-{k}'
            shutil.copytree(base, work)
            model, tok = fresh()
            try:
                with kill_at(k, work, snapshot, torn):
                    train(model, tok, pool, replace(CFG, ckpt_dir=str(work)), until=8)
            except Killed:
                pass
            else:
                break  # the k-th write never came: every boundary of this save was covered
            model, tok = fresh()
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                history = train(model, tok, pool, replace(CFG, ckpt_dir=str(snapshot)))
            assert history.step.tolist() == list(range(1, 13)), f'write {k} (torn={torn}): history has gaps'
            assert_same_weights(model.state_dict(), straight)
            assert not list(snapshot.glob(TMP_PREFIX + '*')), f'write {k}: temporaries left'
            boundaries += 1
            k += 1
    print(f'{boundaries} kill points exercised')
    assert boundaries >= 10, f'only {boundaries} write boundaries were exercised'


@pytest.mark.parametrize(
    'damaged',
    [
        'trainer.pt',
        pytest.param('open_clip_model.safetensors', marks=pytest.mark.slow),
        pytest.param('manifest.json', marks=pytest.mark.slow),
    ],
)
def test_damaged_newest_checkpoint_falls_back_with_its_name(pool, straight, tmp_path, damaged):
    """Found: a torn trainer.pt raised `EOFError: ''` naming no file, with no fallback. Now any damaged file
    of the newest checkpoint is named in a warning, and training resumes from the one before."""
    model, tok = fresh()
    train(model, tok, pool, replace(CFG, ckpt_dir=str(tmp_path)), until=8)
    target = tmp_path / 'step-00000008' / damaged
    target.write_bytes(target.read_bytes()[:50])
    model, tok = fresh()
    with pytest.warns(UserWarning, match=damaged):
        history = train(model, tok, pool, replace(CFG, ckpt_dir=str(tmp_path)))
    assert history.step.tolist() == list(range(1, 13)), 'resumed from step 4 without a gap'
    assert_same_weights(model.state_dict(), straight)


def test_resume_refuses_another_run(pool, tmp_path):
    """Found: a run with other steps, batch size, lr, seed and data resumed another run's checkpoint. Now it
    is refused with every differing field listed, and allow_changed continues a longer schedule."""
    model, tok = fresh()
    train(model, tok, pool, replace(CFG, ckpt_dir=str(tmp_path)), until=4)
    other = replace(CFG, ckpt_dir=str(tmp_path), steps=20, batch_size=32, lr=1e-3, seed=5)
    with pytest.raises(ValueError) as refused:
        train(*fresh(), make_pairs(WORLD, 256, seed=1), other)
    for field in ('steps', 'batch_size', 'lr', 'seed', 'data'):
        assert f'{field}: checkpoint' in str(refused.value), f'{field} is listed'
    with pytest.warns(UserWarning, match='continuing'):
        longer = train(
            *fresh(), pool, replace(CFG, ckpt_dir=str(tmp_path), steps=16), allow_changed=('steps',)
        )
    assert longer.step.max() == 16, 'allow_changed continues with the longer schedule'


def test_resume_false_refuses_a_folder_with_checkpoints(pool, tmp_path):
    "A fresh run (resume=False) does not mix its checkpoints with another run's."
    train(*fresh(), pool, replace(CFG, ckpt_dir=str(tmp_path)), until=4)
    with pytest.raises(ValueError, match='already holds checkpoints'):
        train(*fresh(), pool, replace(CFG, ckpt_dir=str(tmp_path)), resume=False)


def test_cli_train_checkpoints_and_resume(tmp_path):
    "Found: `clipkit train` had no checkpoint or resume flags. Now --ckpt-dir, --ckpt-every, --resume work."
    common = [
        'train',
        '--n-pairs',
        '128',
        '--batch-size',
        '32',
        '--warmup',
        '1',
        '--ckpt-dir',
        str(tmp_path / 'c'),
    ]
    assert main([*common, '--steps', '4', '--ckpt-every', '2', '--out', str(tmp_path / 'a')]) == 0
    assert sorted(p.name for p in (tmp_path / 'c').iterdir()) == ['last', 'step-00000002', 'step-00000004']
    assert main([*common, '--steps', '4', '--out', str(tmp_path / 'b')]) == 2, (
        'a run over checkpoints is refused'
    )
    resumed = [*common, '--steps', '6', '--resume', '--allow-changed', 'steps', '--out', str(tmp_path / 'b')]
    assert main(resumed) == 0
    steps = (tmp_path / 'b' / 'history.csv').read_text().splitlines()[1:]
    assert [int(line.split(',')[0]) for line in steps] == list(range(1, 7)), 'the resumed history is whole'


@pytest.fixture(scope='module')
def task():
    "A 9-way colour task of tensors, and a model to embed it."
    torch.manual_seed(0)
    model, tok, pre = create('tiny-rn')
    return model, tok, pre, world_tasks(WORLD, n_per_class=2, names=['color'])['color']


def test_weights_written_through_data_miss_the_cache(task, tmp_path):
    "Found: after `w.data.mul_(0.5)` the cache returned the old features (max diff 0.072)."
    model, _, _, colors = task
    before = extract(model, colors, cache_dir=tmp_path, progress=False)
    weight = model.visual.attnpool.c_proj.weight
    weight.data.mul_(0.5)
    try:
        after = extract(model, colors, cache_dir=tmp_path, progress=False)
    finally:
        weight.data.mul_(2.0)
    assert not torch.equal(after.image, before.image), 'a write through .data is a cache miss'


def image_folder(colors, root):
    "Write a Task's images as PNG files, one folder per class."
    for i in range(len(colors)):
        folder = root / colors.classnames[int(colors.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        to_pil(colors.images[i]).save(folder / f'{i}.png')
    return root


def test_image_file_rewritten_with_old_mtime_misses_the_cache(task, tmp_path):
    "Found: an image rewritten with the same size and mtime (`cp -p`, `rsync -t`) hit a stale entry."
    model, _, pre, colors = task
    files = image_folder_task(image_folder(colors, tmp_path / 'images'))
    first = extract(model, files, pre, cache_dir=tmp_path, progress=False)
    target = Path(files.images.items[0])
    stamp = target.stat()
    data = bytearray(target.read_bytes())
    to_pil(colors.images[-1]).save(tmp_path / 'other.png')
    shutil.copyfile(tmp_path / 'other.png', target)
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    again = extract(model, files, pre, cache_dir=tmp_path, progress=False)
    assert data != bytearray(target.read_bytes()), 'the file content changed'
    assert not torch.equal(again.image[0], first.image[0]), 'content keys see the rewrite'


def test_torn_cache_entry_is_recomputed_with_its_name(task, tmp_path):
    "A cache entry cut short (a full disk, a foreign tool) is named in a warning and recomputed."
    model, _, _, colors = task
    first = extract(model, colors, cache_dir=tmp_path, progress=False)
    (entry,) = (tmp_path / 'features').iterdir()
    entry.write_bytes(entry.read_bytes()[:40])
    with pytest.warns(UserWarning, match=entry.name):
        again = extract(model, colors, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.image, first.image), 'the recomputed features are the true ones'


@pytest.fixture
def shard(tmp_path):
    "One WebDataset shard of 4 samples, and its members."
    (path,) = export_wds(make_pairs(WORLD, 4, seed=0), tmp_path, shard_size=4)
    with tarfile.open(path) as tar:
        return path, tar.getmembers()


def test_shard_cut_at_a_member_boundary_is_reported(shard):
    "Found: a shard truncated at a member boundary returned 1 of 4 pairs with `skipped=[]`."
    path, members = shard
    path.write_bytes(path.read_bytes()[: members[1].offset_data + 512])
    with pytest.raises(BadInput, match='truncated shard'):
        read_wds_pairs(path)
    with pytest.warns(UserWarning):
        pairs = read_wds_pairs(path, skip_bad=True)
    assert pairs.meta.attrs['report']['skipped'] == {'truncated shard': 1}, 'the cut is counted'


def test_shard_cut_inside_a_member_is_reported(shard):
    "Found: cut mid-archive, the samples after the cut vanished unreported."
    path, members = shard
    path.write_bytes(path.read_bytes()[: members[4].offset_data + 100])
    with pytest.warns(UserWarning):
        pairs = read_wds_pairs(path, skip_bad=True)
    assert len(pairs) == 2, 'the two whole samples are kept'
    assert pairs.meta.attrs['report']['skipped'] == {'cut inside member 000000002.jpg': 1}, 'the cut is named'


def test_short_shard_is_reported(shard):
    "A shard with fewer samples than its img2dataset stats record is reported as short."
    path, _ = shard
    path.with_name('shard-000000_stats.json').write_text(json.dumps({'successes': 6}))
    with pytest.raises(BadInput, match=r'short shard \(4 of 6 samples\)'):
        read_wds_pairs(path)


def test_image_folder_reads_every_format_and_nested_folders(task, tmp_path):
    """Found: .bmp, .tif, .gif and nested folders were ignored (torchvision's ImageFolder found 2,003 images
    where clipkit found 2,000), with nothing reported."""
    _, _, _, colors = task
    root = image_folder(colors, tmp_path)
    first = root / colors.classnames[0]
    for ext in ('bmp', 'tif', 'gif'):
        to_pil(colors.images[0]).save(first / f'extra.{ext}')
    (first / 'nested').mkdir()
    to_pil(colors.images[0]).save(first / 'nested' / 'deep.png')
    (first / 'labels.csv').write_text('a,b\n')
    read = image_folder_task(root)
    assert len(read) == len(colors) + 4, 'the three formats and the nested image are read'
    assert read.meta.attrs['report']['ignored'] == {'not an image (.csv)': 1}, 'the non-image file is counted'


def test_empty_class_is_dropped_with_a_report(task, tmp_path):
    "Found: with skip_bad=True an empty class was kept with 0 images, and zero-shot quietly changed its task."
    _, _, _, colors = task
    root = image_folder(colors, tmp_path)
    (root / 'zz_empty').mkdir()
    with pytest.warns(UserWarning, match='zz_empty'):
        read = image_folder_task(root, skip_bad=True)
    assert read.classnames == sorted(colors.classnames), 'the empty class is dropped'
    assert read.meta.attrs['report']['dropped_classes'] == ['zz_empty'], 'and reported'
    kept = image_folder_task(root, keep_empty=True)
    assert kept.classnames[-1] == 'zz empty', 'keep_empty keeps it, on request'


def test_empty_and_header_only_csv_raise(tmp_path):
    "Found: an empty or header-only CSV returned 0 pairs without a word."
    (tmp_path / 'empty.csv').write_text('')
    (tmp_path / 'header.csv').write_text('filepath\ttitle\n')
    with pytest.raises(BadInput, match='empty.csv is empty'):
        read_csv_pairs(tmp_path / 'empty.csv')
    with pytest.raises(BadInput, match='header.csv has a header and no rows'):
        read_csv_pairs(tmp_path / 'header.csv')


def test_csv_row_with_an_extra_field_is_named(tmp_path):
    "Found: a row with an extra field was read with the wrong column."
    path = export_csv(make_pairs(WORLD, 3, seed=0), tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('\t', '\tshifted\t', 1)
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(BadInput, match=r'pairs.csv:3 .*3 fields where the header has 2'):
        read_csv_pairs(path)


@pytest.mark.parametrize('templates', [['a photo'], ['a photo of a {name}'], 'a photo of a {}'])
def test_malformed_templates_raise(task, templates):
    "Found: no placeholder, '{name}', or a plain string (read a character at a time) all gave weights."
    model, tok, _, colors = task
    with pytest.raises(ValueError, match='template'):
        zero_shot_weights(model, tok, colors.classnames, templates)


def test_classification_metrics_refuses_labels_outside_the_classes():
    "Found: classification_metrics accepted labels outside the class range."
    with pytest.raises(ValueError, match=r'outside \[0, 3\)'):
        classification_metrics(torch.zeros(2, 3), torch.tensor([0, 3]))


STUDY = [
    "seeds = [0, 1, 2]\ncrash_at = -1\nrun = 1\nout_dir = 'out'",
    "from clipkit.studies import ResultLog\nlog = ResultLog(out_dir, context={'kind': 'demo'})",
    "for seed in seeds:\n"
    "    if seed == crash_at:\n"
    "        raise RuntimeError('crash')\n"
    "    log.cell(lambda: {'run': run}, seed=seed)",
]


@pytest.fixture
def study(tmp_path):
    "A three-cell study notebook whose grid can be made to crash."
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in STUDY]
    nb.cells[0].metadata['tags'] = ['parameters']
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    path = tmp_path / 'grid.ipynb'
    nbformat.write(nb, path)
    return path


def test_crashed_study_keeps_finished_cells_and_rerun_skips_them(study, tmp_path):
    "Found: a crash mid-grid lost every finished run; results were written only after the whole grid."
    out = tmp_path / 'results'
    with pytest.raises(Exception, match='crash'):
        run_study(study, {'crash_at': 2, 'run': 1}, out, progress=False)
    assert len((out / 'results.cells.jsonl').read_text().splitlines()) == 2, 'two finished cells were kept'
    run_study(study, {'run': 2}, out, progress=False)
    log = ResultLog(out, context={'kind': 'demo'})
    assert [log.get(seed=s)['run'] for s in (0, 1, 2)] == [1, 1, 2], 'the rerun computed only the lost cell'


def test_mistyped_study_parameter_fails_before_the_kernel(study, tmp_path):
    "Found: `-p steps=abc` was accepted and failed 39 s later in a cell with a TypeError."
    with pytest.raises(ValueError, match="run = 'abc' is a str"):
        run_study(study, {'run': 'abc'}, tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists(), 'nothing was started'


def test_unknown_study_parameter_leaves_no_folder(study, tmp_path):
    "Found: an unknown parameter left an empty output folder."
    with pytest.raises(ValueError, match="has no parameter 'stpes'"):
        run_study(study, {'stpes': 3}, tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists(), 'no folder is made'


@pytest.mark.parametrize(
    'line, message',
    [
        ('cahce_dir = mycache', "unknown keys ['cahce_dir']"),
        ('threads = -3', 'threads must be 0 or more'),
        ('seed = -1', 'seed must be 0 or more'),
        ('device = gpu', "device 'gpu'"),
    ],
)
def test_settings_typos_and_bad_values_raise_with_file_and_key(tmp_path, monkeypatch, line, message):
    "Found: `cahce_dir`, `threads = -3` and `seed = -1` were accepted silently."
    monkeypatch.delenv('CLIPKIT_SETTINGS', raising=False)
    (tmp_path / 'settings.ini').write_text(f'[clipkit]\n{line}\n')
    with pytest.raises(ValueError, match='settings.ini') as raised:
        get_settings(tmp_path)
    assert message in str(raised.value), 'the message names the key'
