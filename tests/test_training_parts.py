"""Video discriminator and training losses (SPEC section 5)."""

import pytest
import torch
import torch.nn as nn

from mocohd_cli import losses
from mocohd_cli.discriminators import MultiscaleVideoDiscriminator


def test_video_discriminator_shapes_and_scales():
    torch.manual_seed(0)
    D = MultiscaleVideoDiscriminator(in_channels=3, n_frames=16)
    x = torch.randn(2, 3, 16, 32, 32)
    feats = D(x)
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert [f.shape[1] for f in feats[0]] == [64, 128, 256, 512, 1]
    # kernel 4, padding 2: stride-2 layers give T: 16 -> 9 -> 5 -> 3, then stride 1: 4 -> 5
    assert feats[0][-1].shape == (2, 1, 5, 7, 7)
    # the second scale sees the clip pooled in space only (16 frames): T stays 16 -> same time extent
    assert feats[1][-1].shape[2] == 5 and feats[1][-1].shape[3] < 7
    long = MultiscaleVideoDiscriminator(in_channels=3, n_frames=32)(torch.randn(1, 3, 32, 32, 32))
    assert long[1][-1].shape[2] < long[0][-1].shape[2]  # long clips are pooled in time too
    convs = [m for m in D.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 10 and all(abs(float(c.weight.detach().std()) - 0.02) < 0.004 for c in convs[:-1])
    norms = [m for m in D.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms and all(n.track_running_stats and not n.affine for n in norms)


def test_in_domain_input_is_channel_pairs():
    D = MultiscaleVideoDiscriminator(in_channels=6, n_frames=15)
    assert D(torch.randn(1, 6, 15, 32, 32))[0][-1].shape[1] == 1


def test_ralsgan_matches_its_formula():
    a = [[torch.randn(2, 1, 3, 3, 3)], [torch.randn(2, 1, 2, 2, 2)]]
    b = [[torch.randn(2, 1, 3, 3, 3)], [torch.randn(2, 1, 2, 2, 2)]]
    expected = sum(((x[-1] - y[-1].mean() - 1) ** 2).mean() for x, y in zip(a, b))
    torch.testing.assert_close(losses.ralsgan(a, b, 1.0), expected)
    zero = [[b[0][-1].mean() + torch.zeros(2, 1, 3, 3, 3)]]
    assert float(losses.ralsgan(zero, [b[0]], 0.0)) == pytest.approx(0.0, abs=1e-12)


class _Linear(nn.Module):
    """D(x) = sum_c w_c x_c at every position: dD/dx = w, so ||grad||_channels = ||w||."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        s = (x * self.w.reshape(1, -1, 1, 1, 1)).sum(1, keepdim=True)
        return [[s], [s * 2]]


def test_gradient_penalty_is_exact_on_a_linear_discriminator():
    w = torch.tensor([0.6, 0.8, 1.2])
    real, fake = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    gp = losses.gradient_penalty(_Linear(w), real, fake, weight=10.0)
    norm = float(w.norm())
    expected = ((norm - 1) ** 2 + (2 * norm - 1) ** 2) / 2 * 10
    assert float(gp) == pytest.approx(expected, rel=1e-5)
    # it is differentiable with respect to the discriminator
    w2 = w.clone().requires_grad_(True)
    losses.gradient_penalty(_Linear(w2), real, fake).backward()
    assert w2.grad is not None and w2.grad.abs().sum() > 0


def test_gradient_penalty_on_the_video_discriminator_is_finite():
    D = MultiscaleVideoDiscriminator(in_channels=3, n_frames=16)
    gp = losses.gradient_penalty(D, torch.randn(2, 3, 16, 16, 16), torch.randn(2, 3, 16, 16, 16))
    gp.backward()
    assert torch.isfinite(gp) and all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


def test_hinge_and_motion_diversity():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    lr, lf = losses.hinge_discriminator(fake, real)
    assert float(lr) == pytest.approx(0.25) and float(lf) == pytest.approx(0.75)
    assert float(losses.hinge_generator(fake)) == pytest.approx(0.75)
    eps = torch.randn(3, 5, 8)
    assert float(losses.motion_diversity(eps * 2, eps)) == pytest.approx(-1.0)
    assert float(losses.motion_diversity(-eps, eps)) == pytest.approx(1.0)


def test_in_domain_image_discriminator():
    from mocohd_cli.discriminators import MultiscaleImageDiscriminator

    D = MultiscaleImageDiscriminator(in_channels=6)
    feats = D(torch.randn(3, 6, 64, 64))
    assert len(feats) == 2 and [f.shape[1] for f in feats[0]] == [64, 128, 256, 512, 1]
    # 64 -> 33 -> 17 -> 9 (stride 2, padding 2) -> 10 -> 11 (stride 1); the pooled scale: 32 -> ... -> 7
    assert feats[0][-1].shape == (3, 1, 11, 11) and feats[1][-1].shape == (3, 1, 7, 7)
    norms = [m for m in D.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(n.track_running_stats and not n.affine for n in norms)
