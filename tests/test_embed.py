"""`clipkit embed` on world shards: two processes (RANK / WORLD_SIZE, as torchrun sets them) write the same
embeddings as one, a rerun skips the shards done, and the CLIP-score filter reading the embeddings keeps the
same pairs as the filter that runs the model."""

import os
import subprocess
import sys
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from clipkit.curation import pair_scores, score_filter
from clipkit.data.sources import read_wds_pairs
from clipkit.data.world import WorldConfig, export_wds, make_pairs
from clipkit.features import embedding_scores, read_embeddings
from clipkit.models import create, save
from clipkit.train import TrainConfig, world_model

CLI = 'from clipkit.cli import main; raise SystemExit(main())'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('embed')
    export_wds(make_pairs(WorldConfig(), 120, seed=3), root / 'shards', shard_size=24, fmt='png')
    model, _, _, _ = world_model(
        'tiny-rn', WorldConfig(), TrainConfig(steps=10, batch_size=32, progress=False)
    )
    save(model, root / 'checkpoint')
    return root


def _embed(root, out, rank=None, world=None):
    argv = ['embed', '--data', str(root / 'shards' / 'shard-{000000..000004}.tar'), '--out', str(out)]
    argv += ['--model', str(root / 'checkpoint'), '--device', 'cpu']
    env = dict(os.environ)
    if rank is not None:
        env |= {'RANK': str(rank), 'LOCAL_RANK': str(rank), 'WORLD_SIZE': str(world)}
    return subprocess.Popen([sys.executable, '-c', CLI, *argv], env=env, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # three fresh processes, each loading torch: about 30 s
def test_two_processes_write_what_one_writes(setup):
    one = _embed(setup, setup / 'one')
    assert one.wait() == 0, one.stderr.read()
    two = [_embed(setup, setup / 'two', rank, 2) for rank in (0, 1)]
    assert all(p.wait() == 0 for p in two), [p.stderr.read() for p in two]
    files = sorted(f.name for f in (setup / 'one').glob('*.parquet'))
    assert files == sorted(f.name for f in (setup / 'two').glob('*.parquet')) and len(files) == 5
    a, b = read_embeddings(setup / 'one'), read_embeddings(setup / 'two')
    assert a['key'] == b['key'] and a['caption'] == b['caption'] and len(a['key']) == 120
    assert torch.allclose(a['image'], b['image'], atol=1e-6) and torch.allclose(
        a['text'], b['text'], atol=1e-6
    )
    stamps = [os.stat(f).st_mtime_ns for f in sorted((setup / 'one').glob('*.parquet'))]
    again = _embed(setup, setup / 'one')
    assert again.wait() == 0
    assert stamps == [os.stat(f).st_mtime_ns for f in sorted((setup / 'one').glob('*.parquet'))], (
        'done: skipped'
    )


def test_the_score_filter_reads_the_embeddings(setup):
    if not (setup / 'one').is_dir():
        assert _embed(setup, setup / 'one').wait() == 0
    model, tokenizer, preprocess = create(str(setup / 'checkpoint'))
    shards = sorted(str(p) for p in (setup / 'shards').glob('*.tar'))
    pairs = read_wds_pairs(shards)
    in_memory = pair_scores(model, tokenizer, pairs, cache=False, preprocess=preprocess)
    stored = embedding_scores(read_embeddings(setup / 'one'))
    assert torch.allclose(in_memory, stored, atol=1e-5)
    for fraction in (0.3, 0.5, 0.8):
        keep = score_filter(stored, top_fraction=fraction)
        assert np.array_equal(keep, score_filter(in_memory, top_fraction=fraction)), 'the same pairs kept'
    meta = pq.read_schema(setup / 'one' / 'shard-000000.parquet').metadata[b'clipkit']
    assert b'model_fp' in meta and b'shard-000000.tar' in meta
