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


@pytest.mark.slow  # inductor compiles forward and backward graphs twice: about two minutes on 2 cores
def test_a_compiled_model_computes_the_eager_gradients():
    """torch.compile (open_clip's --torchcompile) changes kernels, not the math: the same first loss and the
    same gradients to float32 rounding (over several steps Adam amplifies rounding, as for channels-last)."""
    _, eager = _losses(sparse_embedding=False)
    model, compiled = _losses(sparse_embedding=False, compile=True)
    assert compiled[0] == pytest.approx(eager[0], abs=1e-5), 'the first step sees one loss'
    assert not any(name.startswith('_orig_mod') for name in model.state_dict()), 'the model itself is kept'
    torch.manual_seed(0)
    plain, tokenizer, _ = create('tiny-rn')
    fused = torch.compile(copy.deepcopy(plain))
    images, tokens = torch.rand(16, 3, 32, 32), tokenizer(['a red circle'] * 8 + ['two blue stars'] * 8)
    grads = []
    for net, params in ((plain, plain.parameters()), (fused, fused._orig_mod.parameters())):
        image, text, _ = net(images, tokens)[:3]
        (image @ text.T).square().sum().backward()
        grads.append(
            torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in params])
        )
    relative = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    assert relative < 1e-4, f'gradients {relative:.1e} apart'


def test_options_outside_a_cache_key_at_their_defaults(tmp_path):
    "An option added later, left at its default, keeps the key of the models cached before it existed."
    from dataclasses import asdict
    from clipkit.train import LATER_FIELDS, RUN_ONLY_FIELDS, TRAINER_DRAWS, world_model
    from clipkit.util import fingerprint

    cfg = TrainConfig(steps=2, batch_size=16, seed=0, progress=False)
    world_model('tiny-rn', cfg=cfg, n_pairs=32, cache_dir=tmp_path)
    before = {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY_FIELDS + ('workers', 'threads')}
    before = {k: v for k, v in before.items() if k not in LATER_FIELDS}  # the fields a config had then
    old_key = fingerprint(TRAINER_DRAWS, 'tiny-rn', asdict(WorldConfig()), before, 32)
    assert [d.name for d in (tmp_path / 'models').iterdir()] == [old_key]
    clipped = TrainConfig(steps=2, batch_size=16, seed=0, grad_clip_norm=1.0, progress=False)
    world_model('tiny-rn', cfg=clipped, n_pairs=32, cache_dir=tmp_path)
    assert len(list((tmp_path / 'models').iterdir())) == 2, 'a clipped run is another model'


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


def test_the_moving_average_is_timms_formula_after_each_step():
    "ema_decay: after step 1 the average is the weights; after step n, d * average + (1 - d) * weights."
    from timm.utils import ModelEmaV3

    seen, timm_update = [], ModelEmaV3.update

    def recorded(self, model, step=None):
        seen.append((step, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return timm_update(self, model, step=step)

    with mock.patch.object(ModelEmaV3, 'update', recorded):
        model, _ = _losses(ema_decay=0.6)
    assert [step for step, _ in seen] == [1, 2, 3, 4], 'one update per optimizer step, counted from 1'
    expected = seen[0][1]
    for _, weights in seen[1:]:
        expected = {
            k: 0.6 * expected[k] + 0.4 * w if w.is_floating_point() else w for k, w in weights.items()
        }
    for k, average in model.ema.module.state_dict().items():
        assert torch.allclose(average, expected[k], atol=1e-6), k
    assert not any(k.startswith('ema.') for k in model.state_dict()), 'the average is not saved as weights'


def test_a_resumed_run_continues_the_average(tmp_path):
    def run(until, resume):
        torch.manual_seed(0)
        model, tokenizer, _ = create('tiny-rn')
        config = TrainConfig(
            steps=4, batch_size=16, warmup=1, seed=0, threads=1, progress=False, ema_decay=0.7,
            ckpt_dir=str(tmp_path / ('c' if resume is not None else 'straight')), ckpt_every=2,
        )  # fmt: skip
        train(
            model, tokenizer, make_pairs(WorldConfig(), 64, seed=0), config, until=until, resume=bool(resume)
        )
        return model.ema.module.state_dict()

    straight = run(None, None)
    run(2, False)
    resumed = run(None, True)
    assert all(torch.allclose(straight[k].float(), resumed[k].float(), atol=1e-6) for k in straight)


def test_the_cli_writes_the_average_beside_the_weights(tmp_path):
    from clipkit.cli import main
    from clipkit.models import load

    flags = ['train', '--n-pairs', '64', '--batch-size', '16', '--steps', '2', '--warmup', '1']
    assert main([*flags, '--ema-decay', '0.9', '--out', str(tmp_path / 'run')]) == 0
    averaged, _, _ = load(tmp_path / 'run' / 'ema')
    raw, _, _ = load(tmp_path / 'run')
    assert any(
        not torch.equal(a, b) for a, b in zip(averaged.state_dict().values(), raw.state_dict().values())
    )


def test_a_cached_world_model_keeps_its_average(tmp_path):
    from clipkit.train import world_model

    cfg = TrainConfig(steps=2, batch_size=16, seed=0, progress=False, ema_decay=0.9)
    trained, *_ = world_model('tiny-rn', cfg=cfg, n_pairs=32, cache_dir=tmp_path)
    cached, *_ = world_model('tiny-rn', cfg=cfg, n_pairs=32, cache_dir=tmp_path)
    first, again = trained.ema.module.state_dict(), cached.ema.module.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first), 'read back from the cache, not lost'


def test_training_starts_from_a_checkpoint_at_its_own_scale(tmp_path):
    """`clipkit train --model FOLDER` fine-tunes the checkpoint's weights at its own logit scale, with its
    own preprocess, as open_clip_train starts from --pretrained; no loss's initial scale replaces it."""
    import json, math
    from clipkit.cli import main
    from clipkit.models import load, save

    start, _, _ = create('tiny-vit')
    with torch.no_grad():
        start.logit_scale.fill_(math.log(42.0))
    folder = save(start, tmp_path / 'start')
    flags = ['train', '--model', str(folder), '--n-pairs', '64', '--batch-size', '16', '--steps', '1']
    assert main([*flags, '--warmup', '1', '--lr', '1e-9', '--out', str(tmp_path / 'run')]) == 0
    tuned, _, _ = load(tmp_path / 'run')
    assert abs(tuned.logit_scale.exp().item() - 42.0) < 1e-3, 'its own scale, not the loss default 1/0.07'
    weights = start.state_dict()
    assert all(
        torch.allclose(v.float(), weights[k].float(), atol=1e-6) for k, v in tuned.state_dict().items()
    )
    config = lambda f: json.loads((f / 'open_clip_config.json').read_text())['preprocess_cfg']
    assert config(tmp_path / 'run') == config(folder), 'the preprocess travels with the weights'


def test_the_sparse_token_table_gets_its_layer_rate():
    "With layer_decay, SparseAdam's token table trains at its layer's multiplier, like every dense parameter."
    from clipkit.train import layer_scales, make_optimizers

    model, _, _ = create('tiny-vit')
    dense, sparse = make_optimizers(model, TrainConfig(layer_decay=0.5))
    scales = layer_scales(model, 0.5)
    assert sparse.param_groups[0]['lr_scale'] == scales['token_embedding.weight'] == 0.5**3
    names = {id(p): n for n, p in model.named_parameters()}
    for group in dense.param_groups:
        assert all(scales.get(names[id(p)], 1.0) == group['lr_scale'] for p in group['params'])
