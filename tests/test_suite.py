"""`clipkit bench` over fixture benchmarks with a world checkpoint, then `clipkit bench build`: one
CLIP_benchmark-style file per (benchmark, task), cells already done skipped, the few-shot tasks served from
the one extraction, and the table and heat map."""

import contextlib
import io
import json
import pandas as pd
import pytest
import torch
from clipkit.cli import main
from clipkit.data.world import WorldConfig
from clipkit.data.zoo import load_benchmark, write_fixture
from clipkit.features import extract
from clipkit.models import create, save
from clipkit.suite import benchmark_features, run_suite, shot_rows
from clipkit.train import TrainConfig, world_model

BENCHMARKS = ['oxford_pets', 'dtd', 'eurosat']


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    for name in BENCHMARKS + ['flickr30k']:
        write_fixture(name, root / 'data', per_class=(6, 4, 5))
    model, _, _, _ = world_model(
        'tiny-rn', WorldConfig(), TrainConfig(steps=10, batch_size=32, progress=False)
    )
    save(model, root / 'checkpoint')
    return root


def _run(argv):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def test_bench_then_build(setup):
    runs = setup / 'runs'
    argv = [
        'bench',
        '--model',
        str(setup / 'checkpoint'),
        '--data-root',
        str(setup / 'data'),
        '--out',
        str(runs),
    ]
    argv += ['--benchmarks', ','.join(BENCHMARKS), '--tasks', 'zeroshot,linear_probe']
    status, _, err = _run(argv)
    assert status == 0, err
    files = sorted(p.name for p in runs.glob('*.json'))
    assert files == sorted(f'{b}_{t}.json' for b in BENCHMARKS for t in ('zeroshot', 'linear_probe'))
    result = json.loads((runs / 'dtd_zeroshot.json').read_text())
    assert {'dataset', 'model', 'pretrained', 'task', 'metrics', 'language'} <= set(result), (
        "CLIP_benchmark's keys"
    )
    assert result['task'] == 'zeroshot_classification' and set(result['metrics']) == {
        'acc1',
        'acc5',
        'mean_per_class_recall',
    }
    stamps = {p.name: p.stat().st_mtime_ns for p in runs.glob('*.json')}
    assert _run(argv)[0] == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in runs.glob('*.json')}, 'done cells are skipped'
    status, out, err = _run(['bench', 'build', str(runs)])
    assert status == 0, err
    table = pd.read_csv(runs / 'benchmark.csv')
    assert len(table) == 3 * (3 + 3), 'three benchmarks, two tasks, three metrics each'
    summary = pd.read_csv(runs / 'benchmark_summary.csv', index_col=0)
    assert 'coop11 mean (3 of 11)' in summary.index and list(summary.columns) == ['linear_probe', 'zeroshot']
    assert (runs / 'benchmark.png').stat().st_size > 0


def test_few_shot_cells_are_rows_of_the_one_extraction(setup):
    model, tokenizer, preprocess = create(str(setup / 'checkpoint'))
    root = setup / 'data'
    features = benchmark_features(model, tokenizer, preprocess, 'eurosat', root)
    rows = shot_rows('eurosat', root, shots=2, seed=3)
    direct = load_benchmark('eurosat', root, shots=2, seed=3)['train']
    embedded = extract(model, direct, preprocess, tokenizer, cache=False, progress=False)
    assert torch.allclose(features['train'].subset(rows['train']).image, embedded.image, atol=1e-5)
    assert torch.equal(features['train'].subset(rows['train']).labels, embedded.labels)


def test_bench_refuses_what_cannot_run(setup, tmp_path):
    base = ['bench', '--model', str(setup / 'checkpoint'), '--data-root', str(tmp_path)]
    status, _, err = _run(base + ['--benchmarks', 'dtd'])
    assert status == 2 and 'dtd: expected' in err and 'split_zhou' in err, (
        'a missing dataset: its path and layout'
    )
    status, _, err = _run(base + ['--benchmarks', 'dtd', '--method', 'tip'])
    assert status == 2 and "--method: unknown 'tip'" in err
    status, _, err = _run(['bench', '--data-root', str(tmp_path)])
    assert status == 2 and '--model' in err


def test_retrieval_runs_where_it_applies(setup):
    model, tokenizer, preprocess = create(str(setup / 'checkpoint'))
    out = setup / 'retrieval'
    table = run_suite(
        model,
        tokenizer,
        preprocess,
        ['dtd', 'flickr30k'],
        setup / 'data',
        out,
        tasks=('zeroshot', 'retrieval'),
    )
    assert sorted(p.name for p in out.glob('*_*.json')) == ['dtd_zeroshot.json', 'flickr30k_retrieval.json']
    result = json.loads((out / 'flickr30k_retrieval.json').read_text())
    assert result['task'] == 'zeroshot_retrieval'
    assert set(result['metrics']) == {
        f'{d}_retrieval_recall@{k}' for d in ('image', 'text') for k in (1, 5, 10)
    }
    assert set(table.task) == {'zeroshot', 'retrieval'}


def test_own_sets_by_their_layout(setup, tmp_path):
    from clipkit.data.world import WorldConfig, export_clip_benchmark, to_pil, world_tasks

    world = WorldConfig(shapes=('circle', 'square', 'star'), holdout=())
    for split, seed in (('train', 1), ('test', 2)):
        task = world_tasks(world, n_per_class=4, seed=seed, names=['shape'])['shape']
        export_clip_benchmark(task, tmp_path / 'shapes', split=split)
        for i, (image, label) in enumerate(zip(task.images, task.labels.tolist())):
            folder = tmp_path / 'pictures' / split / task.classnames[label]
            folder.mkdir(parents=True, exist_ok=True)
            to_pil(image).save(folder / f'{i}.png')
    model, tokenizer, preprocess = create(str(setup / 'checkpoint'))
    out = tmp_path / 'runs'
    table = run_suite(
        model,
        tokenizer,
        preprocess,
        ['wds:shapes', 'folder:pictures'],
        tmp_path,
        out,
        tasks=('zeroshot', 'linear_probe', 'fewshot'),
    )
    files = sorted(p.name for p in out.glob('*_*.json'))
    assert files == [
        f'{n}_{t}.json' for n in ('folder-pictures', 'wds-shapes') for t in ('linear_probe', 'zeroshot')
    ]
    by = table[table.metric == 'acc1'].set_index(['benchmark', 'task']).value
    assert by['wds:shapes', 'zeroshot'] == pytest.approx(by['folder:pictures', 'zeroshot'], abs=0.1), (
        'same images'
    )


def test_one_extraction_of_the_splits_the_tasks_read(setup, tmp_path, monkeypatch):
    import clipkit.suite

    model, tokenizer, preprocess = create(str(setup / 'checkpoint'))
    embedded = []
    embed_split = clipkit.suite._embed_split

    def counting(model, tokenizer, preprocess, task, batch_size, workers):
        embedded.append((len(task), workers))
        return embed_split(model, tokenizer, preprocess, task, batch_size, workers)

    monkeypatch.setattr(clipkit.suite, '_embed_split', counting)
    run = dict(model=model, tokenizer=tokenizer, preprocess=preprocess, root=setup / 'data', progress=False)
    zero_shot = run_suite(benchmarks=['dtd'], out=tmp_path / 'a', tasks=('zeroshot',), workers=2, **run)
    n_test = len(load_benchmark('dtd', setup / 'data')['test'])
    assert embedded == [(n_test, 2)], 'zero-shot alone embeds the test split only, decoded in 2 workers'
    embedded.clear()
    both = run_suite(benchmarks=['dtd'], out=tmp_path / 'b', tasks=('zeroshot', 'linear_probe'), **run)
    assert len(embedded) == 3, 'the probe and zero-shot share one extraction of train, val and test'
    score = lambda table: table.query("task == 'zeroshot'").set_index('metric').value
    pd.testing.assert_series_equal(score(zero_shot), score(both), atol=1e-6)
