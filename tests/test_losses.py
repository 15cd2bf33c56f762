"clip_loss and siglip_loss equal open_clip's losses, values and gradients, to 1e-6."
import pytest, torch, torch.nn.functional as F
import open_clip.loss as ocl
from clipkit.losses import clip_loss, siglip_loss

def _grads(fn, x, y, *args):
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    l = fn(a, b, *args); l.backward(); return l.item(), a.grad, b.grad

@pytest.mark.parametrize('B,D', [(2, 4), (33, 16), (256, 64)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_against_open_clip(B, D, dtype):
    g = torch.Generator().manual_seed(B)
    x, y = F.normalize(torch.randn(B, D, generator=g, dtype=dtype), dim=-1), F.normalize(torch.randn(B, D, generator=g, dtype=dtype), dim=-1)
    for ours, ref, args in [(clip_loss, ocl.ClipLoss(), (torch.tensor(1/0.07, dtype=dtype),)),
                            (siglip_loss, ocl.SigLipLoss(), (torch.tensor(10., dtype=dtype), torch.tensor(-10., dtype=dtype)))]:
        lo, gx, gy = _grads(ours, x, y, *args); lr, rx, ry = _grads(ref, x, y, *args)
        assert abs(lo - lr) < 1e-6 and (gx - rx).abs().max() < 1e-6 and (gy - ry).abs().max() < 1e-6

def test_hand_checked_clip():
    "Two orthogonal pairs at scale 1: each row is softmax over [1, 0]."
    x = torch.eye(2); l = clip_loss(x, x, torch.tensor(1.0))
    assert abs(l.item() - (-torch.log(torch.tensor(torch.e/(torch.e + 1)))).item()) < 1e-6
