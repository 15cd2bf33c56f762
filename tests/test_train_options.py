"""The trainer's speed options change no result beyond float rounding, and its draws come from derive_seed."""

import copy
from unittest import mock

import pytest
import torch
from clipkit.config import derive_seed
from clipkit.data.world import WorldConfig, make_pairs
from clipkit.models import create
from clipkit.studies import ResultLog
from clipkit.train import TrainConfig, batch_order, train


def _losses(**options):
    "The loss of each of 4 steps of a tiny CLIP trained with `options`."
    torch.manual_seed(0)
    model, tokenizer, _ = create('tiny-rn')
    pool = make_pairs(WorldConfig(), 64, seed=0)
    config = TrainConfig(steps=4, batch_size=16, warmup=1, seed=0, threads=1, progress=False, **options)
    return model, train(model, tokenizer, pool, config).loss.to_numpy()


def test_the_fused_kernel_trains_the_same_model():
    model, fused = _losses()  # the defaults: channels-last weights, fused AdamW
    assert TrainConfig().channels_last and TrainConfig().fused_adamw
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last), 'the conv weights are channels-last'
    _, plain = _losses(fused_adamw=False)
    assert fused == pytest.approx(plain, abs=1e-4), 'the same losses, to float rounding'


def test_channels_last_computes_the_same_gradients():
    "Channels-last is the same math: the same loss and gradients to rounding (Adam then amplifies rounding)."
    torch.manual_seed(0)
    plain, _, _ = create('tiny-rn')
    reordered = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    images = torch.rand(8, 3, 32, 32)
    grads = []
    for model in (plain, reordered):
        model.encode_image(images).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.visual.parameters() if p.grad is not None]))
    relative = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    assert relative < 2e-5, (
        f'gradients {relative:.1e} apart: float32 rounding is about 3e-6 (against float64)'
    )
    _, trained_plain = _losses(channels_last=False)
    _, trained_reordered = _losses()
    assert trained_plain[0] == pytest.approx(trained_reordered[0], abs=1e-5), 'the first step sees one loss'


def test_the_batch_order_is_drawn_from_derive_seed():
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(derive_seed(5, 'batch order', 1)))
    assert batch_order(10, 4, step=2, seed=5).tolist() == expected[:4].tolist(), 'step 2 opens epoch 1'


def test_cells_of_another_trainer_draw_are_set_aside(tmp_path):
    log = ResultLog(tmp_path, context={'steps': 10})
    log.cell(lambda: {'top1': 0.5}, seed=0)
    assert len(ResultLog(tmp_path, context={'steps': 10}).results) == 1
    with mock.patch('clipkit.train.TRAINER_DRAWS', 999):
        again = ResultLog(tmp_path, context={'steps': 10})
    assert len(again.results) == 0 and again.other_context == 1, 'a cell trained the old way is not reused'
