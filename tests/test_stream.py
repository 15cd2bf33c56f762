"""Real data through the same trainer: a CSV of image files and WebDataset shards, decoded in 2 DataLoader
workers, give the in-memory path's losses on the same samples in the same order; a corrupt sample is counted,
never fatal."""

import io
import json
import tarfile
import warnings
from dataclasses import replace
import numpy as np
import pytest
import torch
from clipkit.data.sources import BadInput, read_csv_pairs
from clipkit.data.stream import ShardPairs
from clipkit.data.world import WorldConfig, export_csv, export_wds, make_pairs
from clipkit.models import create
from clipkit.train import TrainConfig, train

CFG = TrainConfig(steps=4, batch_size=16, warmup=1, progress=False, seed=3)


class InOrder:
    "A per-epoch sampler that takes the rows in their order (what unshuffled shards give)."

    def __init__(self, n):
        self.n = n

    def set_epoch(self, epoch):
        pass

    def indices(self):
        return np.arange(self.n)


@pytest.fixture(scope='module')
def pairs():
    "64 world pairs; PNG files keep their pixels exactly."
    return make_pairs(WorldConfig(), 64, seed=0)


def losses(source, cfg, sampler=None):
    "The losses of 4 steps from the same initial tiny-rn."
    torch.manual_seed(0)
    model, tok, pre = create('tiny-rn')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        history = train(model, tok, source, cfg, preprocess=pre, sampler=sampler)
    return history


def test_csv_with_two_workers_matches_the_in_memory_path(pairs, tmp_path):
    "The same seeded batches, decoded in 2 workers from PNG files, give the in-memory losses."
    memory = losses(pairs, CFG)
    files = read_csv_pairs(export_csv(pairs, tmp_path), check_images=False)
    streamed = losses(files, replace(CFG, workers=2))
    np.testing.assert_allclose(streamed.loss, memory.loss, rtol=0, atol=1e-6)


def test_shards_with_two_workers_match_the_in_memory_path(pairs, tmp_path):
    """Unshuffled shards of one batch each, read by 2 workers in turn, give the in-memory losses of the rows
    in their order."""
    memory = losses(pairs, CFG, sampler=InOrder(len(pairs)))
    shards = export_wds(pairs, tmp_path, shard_size=CFG.batch_size, fmt='png')
    streamed = losses(ShardPairs(shards, shuffle_buffer=0), replace(CFG, workers=2))
    np.testing.assert_allclose(streamed.loss, memory.loss, rtol=0, atol=1e-6)


AUGMENT = replace(CFG, crop_scale=(0.5, 1.0), color_jitter=0.4, hflip=0.5)


def test_augmented_csv_with_two_workers_matches_the_in_memory_path(pairs, tmp_path):
    """Crops, colour jitter and flips drawn in 2 loader workers from each sample's own seed give the losses of
    the in-memory augmented path."""
    memory = losses(pairs, AUGMENT)
    files = read_csv_pairs(export_csv(pairs, tmp_path), check_images=False)
    streamed = losses(files, replace(AUGMENT, workers=2))
    plain = losses(pairs, CFG)
    np.testing.assert_allclose(streamed.loss, memory.loss, rtol=0, atol=1e-6)
    assert np.abs(memory.loss.to_numpy() - plain.loss.to_numpy()).max() > 1e-3, 'the augmentations act'


def test_augmented_shards_with_ssl_views_match_the_in_memory_path(pairs, tmp_path):
    """Shards read by 2 workers in turn, augmented there with SimCLR's two extra views for the SSL loss, give
    the in-memory losses of the rows in their order."""
    cfg = replace(AUGMENT, terms=(('simclr', 1.0),))
    memory = losses(pairs, cfg, sampler=InOrder(len(pairs)))
    shards = export_wds(pairs, tmp_path, shard_size=CFG.batch_size, fmt='png')
    streamed = losses(ShardPairs(shards, shuffle_buffer=0), replace(cfg, workers=2))
    np.testing.assert_allclose(streamed.loss, memory.loss, rtol=0, atol=1e-6)


def test_a_corrupt_file_is_counted_not_fatal(pairs, tmp_path):
    "A corrupt image among the CSV's files is dropped from its batch, counted, and training goes on."
    csv = export_csv(pairs, tmp_path)
    (tmp_path / 'images' / '0000005.png').write_bytes(b'not an image')
    history = losses(read_csv_pairs(csv, check_images=False), replace(CFG, workers=2, steps=8))
    assert len(history) == 8, 'every step ran'
    assert history.attrs['skipped'] == {'unreadable image': 2}, 'seen twice in two epochs, counted each time'


def test_a_corrupt_sample_in_a_shard_is_counted_not_fatal(pairs, tmp_path):
    "A corrupt image inside a shard is dropped from its batch, counted, and training goes on."
    shards = export_wds(pairs, tmp_path, shard_size=16, fmt='png')
    with tarfile.open(shards[1]) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shards[1], 'w') as tar:
        for member, data in members:
            data = b'not an image' if member.name == '000000020.png' else data
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    history = losses(ShardPairs(shards, shuffle_buffer=0), replace(CFG, workers=2))
    assert len(history) == 4, 'every step ran'
    assert history.attrs['skipped'] == {'unreadable sample': 1}, 'the corrupt sample is counted'


def test_cli_trains_on_shards_and_evaluates_clip_benchmark_shards(pairs, tmp_path, monkeypatch):
    """`clipkit train --train-data` takes a shard pattern, and `clipkit eval` writes CLIP_benchmark's result
    JSON for a task in its WebDataset layout."""
    from clipkit.data.world import export_clip_benchmark, world_tasks
    from clipkit.cli import main

    export_wds(pairs, tmp_path / 'shards', shard_size=16, fmt='jpg')
    pattern = str(tmp_path / 'shards' / 'shard-{000000..000003}.tar')
    argv = ['train', '--train-data', pattern, '--steps', '3', '--batch-size', '16', '--warmup', '1']
    assert main([*argv, '--workers', '2', '--no-progress', '--out', str(tmp_path / 'model')]) == 0
    task = world_tasks(WorldConfig(), n_per_class=2, names=['color'])['color']
    root = export_clip_benchmark(task, tmp_path / 'bench', shard_size=8)
    out = tmp_path / 'result.json'
    assert main(['eval', '--model', str(tmp_path / 'model'), '--task', f'wds:{root}', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['task'] == 'zeroshot_classification', "CLIP_benchmark's task name"
    assert set(result['metrics']) == {'acc1', 'acc5', 'mean_per_class_recall'}, "and its metric names"


def test_study_parameters_papermill_style(monkeypatch):
    "`-p name value` (papermill's form) and `-p name=value` give the same parameters."
    import clipkit.cli as cli

    seen = []
    monkeypatch.setattr(cli, 'run_study', lambda name, params, out, kernel: seen.append(params) or 'x')
    cli.main(['study', 'run', 'quickstart', '-p', 'steps', '40', '-p', 'model=tiny-vit'])
    assert seen == [{'steps': 40, 'model': 'tiny-vit'}], 'both forms are read, values as JSON'


def test_streamed_evaluation_leaves_the_workers_their_cores(tmp_path, monkeypatch):
    """With 2 decoding workers on a CPU, the model runs on the cores they leave free during the pass (at least
    one), gets the in-memory path's metrics, and torch's thread count comes back, also after a bad sample."""
    from clipkit.config import usable_cores
    from clipkit.data.stream import clip_benchmark_task
    from clipkit.data.world import export_clip_benchmark, world_tasks
    from clipkit.eval import zero_shot_eval

    task = world_tasks(WorldConfig(), n_per_class=4, names=['color'])['color']
    root = export_clip_benchmark(task, tmp_path / 'bench', shard_size=8, fmt='png')
    torch.manual_seed(0)
    model, tok, pre = create('tiny-rn')
    threads_seen = []
    encode_image = model.encode_image
    monkeypatch.setattr(
        model,
        'encode_image',
        lambda *a, **k: threads_seen.append(torch.get_num_threads()) or encode_image(*a, **k),
    )
    threads_before = torch.get_num_threads()
    streamed = zero_shot_eval(
        model, tok, clip_benchmark_task(root), pre, device='cpu', workers=2, batch_size=8
    )
    threads_in_pass = set(threads_seen)
    in_memory = zero_shot_eval(model, tok, task, pre, device='cpu', batch_size=8)
    assert threads_in_pass == {max(1, min(threads_before, usable_cores() - 2))}, 'capped during the pass'
    assert streamed == pytest.approx(in_memory), 'the same metrics as in memory'
    assert torch.get_num_threads() == threads_before, 'the thread count comes back after the pass'
    (root / 'test' / '1.tar').write_bytes(b'not a tar file')
    with pytest.raises(BadInput, match='1.tar: broken shard'):
        zero_shot_eval(model, tok, clip_benchmark_task(root), pre, device='cpu', workers=2, batch_size=8)
    assert torch.get_num_threads() == threads_before, 'and after a pass that a bad shard stopped'
