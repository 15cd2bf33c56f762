"""The one API: every registered adaptation method through the same fit(support, val) and logits(query), the
loss resolved once by the trainer with its keywords checked, and the entry points at the package's top."""

import dataclasses
from pathlib import Path
import importlib
import inspect
import pytest
import torch
from fastcore.docments import docments
import clipkit
import clipkit.losses
from clipkit import ADAPTERS, TEST_TIME, CannotTransfer, TrainConfig, WorldConfig, adapter, create, extract
from clipkit import stream_eval
from clipkit.data.sources import few_shot
from clipkit.data.world import make_pairs, world_tasks
from clipkit.train import train

ROOT = Path(__file__).resolve().parents[1]
WORLD = WorldConfig(shapes=('circle', 'square', 'star'), colors=('red', 'blue'), holdout=())


@pytest.fixture(scope='module')
def splits():
    "A tiny ViT (untrained: this checks shapes, not accuracy) and Features of a 6-way task."
    torch.manual_seed(0)
    model, tok, pre = create('tiny-vit')
    pool = world_tasks(WORLD, n_per_class=3, seed=1, names=['shape_color'])['shape_color']
    test = world_tasks(WORLD, n_per_class=2, seed=2, names=['shape_color'])['shape_color']
    support, val = few_shot(pool, 1, seed=0, val_k=1)
    feats = [extract(model, t, tokenizer=tok, cache=False, progress=False) for t in (support, val, test)]
    return model, tok, pre, *feats


@pytest.mark.parametrize('name', sorted(ADAPTERS))
def test_every_adapter_has_one_shape(name, splits, monkeypatch):
    model, tok, pre, support, val, test = splits
    quick = {'epochs': 1} if 'epochs' in ADAPTERS[name].defaults else {}
    quick = {'n_iters': 1} if 'n_iters' in ADAPTERS[name].defaults else quick
    if 'depth_text' in ADAPTERS[name].defaults:  # the official depth 9 is deeper than the tiny ViT's towers
        quick.update(depth_text=2, depth_vision=3)
    if 'depth' in ADAPTERS[name].defaults:
        quick.update(depth=2)
    method = adapter(name, model, tok, pre, seed=0, **quick)

    def no_fork(*args, **kwargs):
        raise AssertionError(f'{name}: forks the global generator instead of drawing from its own')

    monkeypatch.setattr(torch.random, 'fork_rng', no_fork)
    global_state = torch.random.get_rng_state()
    assert method.fit(support, val) is method, 'fit returns the fitted method'
    logits = method.logits(test)
    assert torch.equal(torch.random.get_rng_state(), global_state), f'{name} drew from the global generator'
    assert logits.shape == (len(test), len(test.classnames)), 'one logit per query image and class'
    assert torch.isfinite(logits).all(), 'the logits are finite'
    novel = test.select_classes([4, 5, 0])
    if method.transfers:
        assert method.logits(novel).shape == (len(novel), 3), 'a method that transfers scores new classes'
    else:
        with pytest.raises(CannotTransfer):
            method.logits(novel)


@pytest.mark.parametrize('name', sorted(TEST_TIME))
def test_every_test_time_method_has_the_second_shape(name, splits, monkeypatch):
    model, tok, pre, support, val, test = splits
    method = adapter(name, model, tok, pre, seed=0)
    monkeypatch.setattr(torch.random, 'fork_rng', lambda *a, **k: pytest.fail(f'{name} forks the global RNG'))
    global_state = torch.random.get_rng_state()
    one = stream_eval(method, test, order_seed=4)
    assert torch.equal(torch.random.get_rng_state(), global_state), f'{name} drew from the global generator'
    assert one['logits'].shape == (len(test), len(test.classnames)), 'one logit per test image and class'
    assert torch.isfinite(one['logits']).all(), 'the logits are finite'
    again = stream_eval(method, test, order_seed=4)
    assert torch.equal(again['logits'], one['logits']), (
        'reset() forgets the stream: the same order, the same logits'
    )
    if method.per_sample:
        batched = stream_eval(method, test, order_seed=4, batch_size=5)
        assert torch.equal(batched['logits'], one['logits']), (
            'a per-sample method does not depend on batching'
        )
    assert set(ADAPTERS).isdisjoint(TEST_TIME), 'a name belongs to one shape'


def test_the_registry_covers_every_family():
    families = {'zero_shot', 'tip_adapter_f', 'coop', 'cocoop', 'kgcoop', 'prograd'}
    families |= {'maple', 'ivlp', 'promptsrc', 'ft', 'lp_ft', 'clip_lora'}
    assert families <= set(ADAPTERS), 'feature-level methods, prompt learners, deep prompts and fine-tuning'


def test_a_seed_reaches_the_method(splits):
    model, tok, pre, support, val, test = splits
    same = [adapter('clip_adapter', seed=5, epochs=2).fit(support).logits(test) for _ in range(2)]
    other = adapter('clip_adapter', seed=6, epochs=2).fit(support).logits(test)
    assert torch.equal(same[0], same[1]), 'the same seed gives the same fit'
    assert not torch.equal(same[0], other), 'another seed gives another fit'


def _train_siglip(loss_kw):
    torch.manual_seed(0)
    model, tok, _ = create('tiny-rn', loss='siglip')
    cfg = TrainConfig(steps=1, batch_size=128, warmup=1, loss='siglip', loss_kw=loss_kw, progress=False)
    return train(model, tok, make_pairs(WORLD, 128, seed=0), cfg)


def test_loss_keywords_reach_the_chunked_path(monkeypatch):
    chunks = []
    chunked = clipkit.losses._SigLipChunked.apply

    def spy(*args):
        chunks.append(args[-1])
        return chunked(*args)

    monkeypatch.setattr(clipkit.losses._SigLipChunked, 'apply', spy)
    _train_siglip({'chunk': 64})
    assert chunks == [64], 'the trainer ran the chunked SigLIP with chunk=64'
    chunks.clear()
    _train_siglip({})
    assert chunks == [], 'without the keyword it runs the plain SigLIP'


def test_a_wrong_loss_keyword_raises():
    with pytest.raises(ValueError, match='chunk_size'):
        _train_siglip({'chunk_size': 64})


def test_the_top_level_names_the_common_entry_points():
    names = ('create', 'load', 'save', 'extract', 'adapter', 'get_loss', 'TrainConfig', 'Task', 'Features')
    missing = [name for name in names if not hasattr(clipkit, name)]
    assert missing == [], 'the common entry points are at the top level'
    assert clipkit.train.train is train, 'clipkit.train stays the trainer module'


MODULES = [
    'types', 'util', 'config', 'losses', 'models', 'features', 'train', 'eval', 'data.world', 'data.sources',
    'data.stream',
    'curation', 'curation_scale', 'adapt.base', 'adapt.feature', 'adapt.prompt', 'adapt.weights',
    'analysis.geometry', 'analysis.reliability', 'analysis.probes', 'studies', 'cli', 'api',
]  # fmt: skip


def _public(module):
    "(name, documented object, parameter names) of each public function and class of a module."
    for name in module.__all__:
        obj = getattr(module, name)
        if getattr(obj, '__module__', None) != module.__name__:
            continue
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            yield name, obj, [f.name for f in dataclasses.fields(obj)]
            continue
        if inspect.isclass(obj):
            init = obj.__dict__.get('__init__')
            if not inspect.isfunction(init):
                continue
            obj = init
        if not inspect.isfunction(obj):
            continue
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        params = inspect.signature(obj).parameters.values()
        yield name, obj, [p.name for p in params if p.name not in ('self', 'cls') and p.kind not in kinds]


@pytest.mark.parametrize('module_name', MODULES)
def test_every_public_parameter_has_a_note(module_name):
    module = importlib.import_module(f'clipkit.{module_name}')
    undocumented = []
    for name, obj, params in _public(module):
        notes = docments(obj)
        undocumented += [f'{name}({p})' for p in params if not notes.get(p)]
    assert undocumented == [], 'help() and show_doc show a note for every parameter'


@pytest.mark.parametrize('module_name', MODULES)
def test_every_public_function_has_a_docstring(module_name):
    module = importlib.import_module(f'clipkit.{module_name}')
    bare = [
        name
        for name in module.__all__
        if callable(getattr(module, name)) and not getattr(module, name).__doc__
    ]
    assert bare == [], 'every public function and class says what it does'


@pytest.mark.parametrize('name', ['infoloob', 'cloob', 'dcl', 'dclw'])
def test_losses_without_the_positive_keep_the_paper_scale(name):
    spec = clipkit.LOSSES[name]
    torch.manual_seed(0)
    model, tok, _ = create('tiny-rn', loss=name)
    cfg = TrainConfig(steps=6, batch_size=64, warmup=1, lr=1e-2, loss=name, progress=False)
    history = train(model, tok, make_pairs(WORLD, 256, seed=0), cfg)
    assert not spec.learn_scale, 'the registry records the scale as fixed'
    assert history.logit_scale.sub(spec.init_scale).abs().max() < 1e-3, 'training keeps it at the paper value'


def test_a_learned_scale_moves():
    torch.manual_seed(0)
    model, tok, _ = create('tiny-rn', loss='clip')
    cfg = TrainConfig(steps=6, batch_size=64, warmup=1, lr=1e-2, loss='clip', progress=False)
    history = train(model, tok, make_pairs(WORLD, 256, seed=0), cfg)
    assert history.logit_scale.sub(1 / 0.07).abs().max() > 1e-3, 'the control: CLIP learns its scale'


def test_every_subpackage_is_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']['packages'])
    found = {'.'.join(p.parent.relative_to(ROOT).parts) for p in (ROOT / 'clipkit').rglob('__init__.py')}
    assert found <= listed, f'pyproject.toml lists every clipkit package: {sorted(found - listed)} missing'
    assert 'clipkit.study_notebooks' in listed, 'and the study notebooks, as package data'
