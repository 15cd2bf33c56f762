"""The run context: one device per torchrun process, and models that stay where the run put them."""

import os
from unittest import mock

import pytest
import torch
import clipkit.cli
from clipkit.config import run_context
from clipkit.train import distributed_model


class _RecordedDDP:
    "Stands in for DistributedDataParallel: records what it was handed."

    def __init__(self, module, **kwargs):
        self.module, self.kwargs = module, kwargs


def _two_gpus():
    "CUDA reported present with two devices."
    return (
        mock.patch('torch.cuda.is_available', return_value=True),
        mock.patch('torch.cuda.device_count', return_value=2),
    )


def test_second_rank_trains_on_its_own_gpu():
    available, count = _two_gpus()
    torchrun = {'LOCAL_RANK': '1', 'RANK': '1', 'WORLD_SIZE': '2', 'CLIPKIT_DEVICE': 'auto'}
    with available, count, mock.patch.dict(os.environ, torchrun):
        ctx = run_context()
        with mock.patch('torch.nn.parallel.DistributedDataParallel', _RecordedDDP):
            wrapped = distributed_model(torch.nn.Linear(2, 2), ctx.device)
    assert ctx.device == torch.device('cuda', 1)
    assert (ctx.rank, ctx.world, ctx.local_rank) == (1, 2, 1)
    assert wrapped.kwargs['device_ids'] == [1]
    assert wrapped.kwargs['output_device'] == 1


def test_a_cpu_run_never_moves_its_model_while_evaluating(tmp_path):
    """`--device cpu` while the settings name another device. On a GPU machine that device is what 'auto'
    resolves to; here it is torch's 'meta' device, which every machine has. The evaluation callback, like
    every function that takes a model, follows the model: nothing is moved off the CPU."""
    moves = []
    plain_to = torch.nn.Module.to

    def recording_to(module, *args, **kwargs):
        moves.append(torch._C._nn._parse_to(*args, **kwargs)[0])
        return plain_to(module, *args, **kwargs)

    with mock.patch.dict(os.environ, {'CLIPKIT_DEVICE': 'meta'}):
        with mock.patch.object(torch.nn.Module, 'to', recording_to):
            code = clipkit.cli.main(
                ['train', '--device', 'cpu', '--train-data', 'world', '--n-pairs', '64', '--steps', '2']
                + ['--batch-size', '32', '--val-data', 'world:shape', '--eval-every', '1']
                + ['--out', str(tmp_path / 'out'), '--no-progress']
            )
    assert code == 0
    assert moves, 'the trainer places its model once'
    assert {str(d) for d in moves if d is not None} == {'cpu'}, moves


def test_a_study_context_reaches_the_trainer(tmp_path):
    "A study builds its context once and reseeds it per model: the same run as a config that names the seed."
    from clipkit.train import TrainConfig, world_model

    cfg = TrainConfig(steps=3, batch_size=16, progress=False)
    study = run_context('cpu', seed=0, threads=1)
    _, _, _, by_context = world_model(
        'tiny-rn', cfg=cfg, n_pairs=64, cache_dir=tmp_path / 'a', context=study.reseeded(4)
    )
    named = TrainConfig(steps=3, batch_size=16, progress=False, seed=4, threads=1, device='cpu')
    _, _, _, by_config = world_model('tiny-rn', cfg=named, n_pairs=64, cache_dir=tmp_path / 'b')
    assert by_context.loss.tolist() == by_config.loss.tolist()
    assert [p.name for p in (tmp_path / 'a' / 'models').iterdir()] == [
        p.name for p in (tmp_path / 'b' / 'models').iterdir()
    ], 'one cache entry: the context changes where the seed comes from, not the key'
    with pytest.raises(ValueError, match='cfg.seed is 5'):  # a config that contradicts the context
        world_model('tiny-rn', cfg=TrainConfig(steps=3, seed=5), context=study.reseeded(4), cache=False)
