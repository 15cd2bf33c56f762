"""clip_loss, siglip_loss (plain and chunked) and distill_loss equal open_clip's losses, values and gradients,
to 1e-6. Loss values are compared relative to their magnitude (a float32 loss near 12 has an ulp of about
1e-6)."""

import pytest, torch, torch.nn.functional as F
import open_clip.loss as ocl
from clipkit.losses import clip_loss, siglip_loss, distill_loss


def _grads(fn, x, y, *args):
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    l = fn(a, b, *args)
    l.backward()
    return l.item(), a.grad, b.grad


@pytest.mark.parametrize('B,D', [(2, 4), (33, 16), (256, 64)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_against_open_clip(B, D, dtype):
    g = torch.Generator().manual_seed(B)
    x, y = (
        F.normalize(torch.randn(B, D, generator=g, dtype=dtype), dim=-1),
        F.normalize(torch.randn(B, D, generator=g, dtype=dtype), dim=-1),
    )
    s, b = torch.tensor(1 / 0.07, dtype=dtype), torch.tensor(-10.0, dtype=dtype)
    for ours, ref, args in [
        (clip_loss, ocl.ClipLoss(), (s,)),
        (lambda i, t, s: clip_loss(i, t, s, chunk=7), ocl.ClipLoss(), (s,)),
        (siglip_loss, ocl.SigLipLoss(), (torch.tensor(10.0, dtype=dtype), b)),
        (
            lambda i, t, s, b: siglip_loss(i, t, s, b, chunk=7),
            ocl.SigLipLoss(),
            (torch.tensor(10.0, dtype=dtype), b),
        ),
    ]:
        lo, gx, gy = _grads(ours, x, y, *args)
        lr, rx, ry = _grads(ref, x, y, *args)
        assert abs(lo - lr) <= 1e-6 * max(1, abs(lr)), 'the loss equals open_clip\'s'
        assert (gx - rx).abs().max() < 1e-6, 'so does the gradient of the image features'
        assert (gy - ry).abs().max() < 1e-6, 'and of the text features'


def test_hand_checked_clip():
    "Two orthogonal pairs at scale 1: each row is softmax over [1, 0]."
    x = torch.eye(2)
    l = clip_loss(x, x, torch.tensor(1.0))
    by_hand = -torch.log(torch.tensor(torch.e / (torch.e + 1))).item()
    assert abs(l.item() - by_hand) < 1e-6, 'each row is the cross-entropy of softmax([1, 0])'


@pytest.mark.parametrize('B', [3, 64])
def test_distill_against_open_clip(B):
    g = torch.Generator().manual_seed(B)
    f = lambda: F.normalize(torch.randn(B, 16, generator=g), dim=-1)
    x, y, tx, ty = f(), f(), f(), f()
    ours = lambda a, c: distill_loss(a, c, torch.tensor(14.0), tx, ty, torch.tensor(50.0))
    ref = lambda a, c: sum(ocl.DistillClipLoss()(a, c, torch.tensor(14.0), tx, ty, torch.tensor(50.0)))
    lo, gx, gy = _grads(ours, x, y)
    lr, rx, ry = _grads(ref, x, y)
    assert abs(lo - lr) < 1e-6, "the distillation loss equals open_clip's DistillClipLoss summed"
    assert (gx - rx).abs().max() < 1e-6, 'so does the gradient of the image features'
    assert (gy - ry).abs().max() < 1e-6, 'and of the text features'


def test_chunked_scale_and_bias_gradients():
    "The chunked SigLIP also returns the scale and bias gradients of the plain one."
    g = torch.Generator().manual_seed(1)
    x, y = (
        F.normalize(torch.randn(50, 8, generator=g), dim=-1),
        F.normalize(torch.randn(50, 8, generator=g), dim=-1),
    )
    out = []
    for chunk in (None, 8):
        s, b = torch.tensor(10.0, requires_grad=True), torch.tensor(-10.0, requires_grad=True)
        siglip_loss(x, y, s, b, chunk=chunk).backward()
        out.append((s.grad, b.grad))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-6), 'the chunked scale gradient equals the plain one'
    assert torch.allclose(out[0][1], out[1][1], atol=1e-6), 'so does the bias gradient'
