"""A new loss with a new per-batch input, registered from this file alone, trains with its term logged."""

import pytest
import torch
import torch.nn.functional as F
from clipkit.data.world import WorldConfig, make_pairs
from clipkit.losses import INPUTS, LOSSES, LossSpec, register_input, register_loss
from clipkit.models import create
from clipkit.train import TrainConfig, train


def caption_length(step):
    "A new per-batch input: the number of tokens in each caption of the batch."
    return (step.tokens != 0).sum(1).float()


def length_alignment(img, txt, caption_length, target: float = 0.5):
    """A new added term: the cosine of each pair pulled towards a target, weighted by its caption's length
    (longer captions say more, so they count more)."""
    weights = caption_length / caption_length.mean()
    return (weights * ((img * txt).sum(-1) - target) ** 2).mean()


@pytest.fixture
def registered():
    register_input('caption_length', caption_length, doc='tokens per caption')
    register_loss(
        LossSpec('length_alignment', length_alignment, None, needs=('img', 'txt', 'caption_length'))
    )
    yield
    del LOSSES['length_alignment'], INPUTS['caption_length']


def test_a_new_term_with_a_new_input_trains_and_is_logged(registered):
    pairs = make_pairs(WorldConfig(), 96, seed=0)
    torch.manual_seed(0)
    model, tokenizer, _ = create('tiny-rn')
    cfg = TrainConfig(steps=3, batch_size=32, progress=False, seed=0, terms=(('length_alignment', 0.5),))
    history = train(model, tokenizer, pairs, cfg)
    assert list(history.columns[:4]) == ['step', 'loss', 'loss.clip', 'loss.length_alignment']
    expected = history['loss.clip'] + 0.5 * history['loss.length_alignment']
    torch.testing.assert_close(torch.tensor(history.loss.values), torch.tensor(expected.values))
    assert (history['loss.length_alignment'] > 0).all()


def test_the_term_reaches_the_weights(registered):
    "The same run with the term's weight at 0 ends with other weights: the term's gradient is used."
    pairs = make_pairs(WorldConfig(), 96, seed=0)
    weights = []
    for weight in (0.0, 5.0):
        torch.manual_seed(0)
        model, tokenizer, _ = create('tiny-rn')
        cfg = TrainConfig(
            steps=2, batch_size=32, progress=False, seed=0, terms=(('length_alignment', weight),)
        )
        train(model, tokenizer, pairs, cfg)
        weights.append(model.text_projection.detach().clone())
    assert not torch.allclose(weights[0], weights[1])


def test_an_unregistered_input_is_refused_before_training():
    def needs_missing(img, txt, nowhere):
        return F.mse_loss(img, txt)

    register_loss(LossSpec('needs_missing', needs_missing, None, needs=('img', 'txt', 'nowhere')))
    try:
        model, tokenizer, _ = create('tiny-rn')
        cfg = TrainConfig(steps=1, batch_size=8, progress=False, terms=(('needs_missing', 1.0),))
        with pytest.raises(ValueError, match=r"needs \['nowhere'\], which no registered input makes"):
            train(model, tokenizer, make_pairs(WorldConfig(), 16, seed=0), cfg)
    finally:
        del LOSSES['needs_missing']
