"""The training losses (mocohd_cli/losses.py, SPEC section 5): relativistic LSGAN,
the gradient penalty, hinge, the motion-diversity term and temporal-spectrum matching."""

import math

import pytest
import torch
import torch.nn as nn

from mocohd_cli import losses
from mocohd_cli.discriminators import MultiscaleVideoDiscriminator


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


def test_temporal_spectrum_finds_the_rhythm_of_a_flickering_clip():
    t = torch.arange(16, dtype=torch.float32)
    for period in (4.0, 8.0):
        clips = torch.sin(2 * math.pi * t / period)[None, :, None, None, None].expand(2, 16, 3, 4, 4)
        spec = losses.temporal_spectrum(clips)
        assert spec.shape == (9,) and int(spec.argmax()) == round(16 / period)
    assert float(losses.temporal_spectrum(torch.zeros(2, 16, 3, 4, 4)).max()) == pytest.approx(1e-8)


def test_spectrum_matching_is_zero_for_the_same_rhythm_and_pulls_only_the_fakes():
    t = torch.arange(16, dtype=torch.float32)
    real = torch.sin(2 * math.pi * t / 5)[None, :, None, None, None].expand(2, 16, 3, 4, 4).clone()
    assert float(losses.spectrum_matching(real, real)) == pytest.approx(0.0, abs=1e-10)
    fake = torch.sin(2 * math.pi * t / 10)[None, :, None, None, None].expand(2, 16, 3, 4, 4).clone().requires_grad_(True)
    real.requires_grad_(True)
    loss = losses.spectrum_matching(fake, real)
    assert float(loss.detach()) > 1.0  # one period where the real clips have another: far apart in log power
    loss.backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None  # the real spectrum is a fixed target
