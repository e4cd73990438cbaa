"""The training losses (mocohd_cli/losses.py, after MoCoGAN-HD, ICLR 2021): relativistic LSGAN,
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
    expected = sum(((x[-1] - y[-1].mean() - 1) ** 2).mean() for x, y in zip(a, b, strict=True))
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
    fake = (
        torch.sin(2 * math.pi * t / 10)[None, :, None, None, None].expand(2, 16, 3, 4, 4).clone().requires_grad_(True)
    )
    real.requires_grad_(True)
    loss = losses.spectrum_matching(fake, real)
    assert float(loss.detach()) > 1.0  # one period where the real clips have another: far apart in log power
    loss.backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None  # the real spectrum is a fixed target


def _two_rhythms(n: int, periods: tuple[float, float], gen: torch.Generator, same_phase: bool = False) -> torch.Tensor:
    """n clips of 16 frames [n, 16, 3, 4, 4]: the top half of the frame moves at periods[0],
    the bottom half at periods[1], each with a random phase per clip, plus a little noise."""
    t = torch.arange(16, dtype=torch.float64)
    phase = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 * math.pi
    if same_phase:
        phase[:, 1] = phase[:, 0]
    top, bottom = torch.zeros(3, 4, 4, dtype=torch.float64), torch.zeros(3, 4, 4, dtype=torch.float64)
    top[:, :2], bottom[:, 2:] = 1, 1
    s = [torch.sin(2 * math.pi * t / periods[i] + phase[:, i : i + 1])[..., None, None, None] for i in (0, 1)]
    return (s[0] * top + s[1] * bottom + 0.05 * torch.randn(n, 16, 3, 4, 4, generator=gen, dtype=torch.float64)).float()


def _cross_spectrum_by_hand(fake: torch.Tensor, real: torch.Tensor) -> float:
    """The same quantity from explicit D x D matrices in float64: at each frequency, the U-statistic
    of ||S||^2 for each set, the plain product for the cross term."""

    def coefficients(c):
        x = c.double().flatten(2)
        x = x - x.mean(dim=1, keepdim=True)
        x = x * torch.hann_window(x.shape[1], periodic=False, dtype=torch.float64)[None, :, None]
        return torch.fft.rfft(x, dim=1)[:, 1:]  # [B, F, D]

    xf, xr = coefficients(fake), coefficients(real)
    total = 0.0
    for f in range(xf.shape[1]):

        def gram_u(x):
            n = x.shape[0]
            s = sum(torch.outer(x[i], x[i].conj()) for i in range(n))
            return float(
                (s.abs().square().sum() - sum(float(x[i].abs().square().sum()) ** 2 for i in range(n))) / (n * (n - 1))
            )

        s_f = sum(torch.outer(v, v.conj()) for v in xf[:, f]) / xf.shape[0]
        s_r = sum(torch.outer(v, v.conj()) for v in xr[:, f]) / xr.shape[0]
        cross = float((s_f * s_r.conj()).sum().real)
        rr = gram_u(xr[:, f])
        total += (gram_u(xf[:, f]) - 2 * cross + rr) / rr
    return total / xf.shape[1]


def test_cross_spectrum_matching_equals_its_formula_and_pulls_only_the_fakes():
    gen = torch.Generator().manual_seed(0)
    real, fake = _two_rhythms(5, (4, 8), gen), _two_rhythms(3, (6, 6), gen).requires_grad_(True)
    real.requires_grad_(True)
    loss = losses.cross_spectrum_matching(fake, real)
    assert float(loss.detach()) == pytest.approx(_cross_spectrum_by_hand(fake.detach(), real.detach()), rel=1e-4)
    loss.backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None  # the real clips are a fixed target
    one = losses.cross_spectrum_matching(fake[:1].detach(), real.detach())  # a batch of one: its own pair
    assert math.isfinite(float(one))


def test_cross_spectrum_matching_sees_what_moves_at_which_rhythm():
    """Real clips: the top half at period 4, the bottom at 8, independent phases. Fakes with
    the two rhythms swapped have the same pixel-averaged spectrum (spectrum_matching cannot
    tell) but another cross-spectral density; one shared period is wrong for both terms."""
    gen = torch.Generator().manual_seed(1)
    real = _two_rhythms(256, (4, 8), gen)
    alike = losses.cross_spectrum_matching(_two_rhythms(256, (4, 8), gen), real)
    swapped_clips = _two_rhythms(256, (8, 4), gen)
    swapped = losses.cross_spectrum_matching(swapped_clips, real)
    locked = losses.cross_spectrum_matching(_two_rhythms(256, (6, 6), gen, same_phase=True), real)
    assert abs(float(alike)) < 0.05
    assert float(swapped) > 1.0 and float(locked) > 1.0
    assert float(losses.spectrum_matching(swapped_clips, real)) < 0.01  # blind to the swap


def test_cross_spectrum_matching_is_nearly_unbiased():
    """Batches of 8 from one distribution average to about 0: the distances are U-statistics
    (the noise has no sign); only the division by the real batch's own ||S||^2 leaves a small
    bias. The plain batch estimate, own pairs included, sits far above (about 0.6 here)."""
    gen = torch.Generator().manual_seed(2)
    plain, values = [], []
    for _ in range(200):
        fake, real = _two_rhythms(8, (4, 8), gen), _two_rhythms(8, (4, 8), gen)
        values.append(float(losses.cross_spectrum_matching(fake, real)))
        xf, xr = losses._temporal_fourier(fake), losses._temporal_fourier(real)
        ff, fr, rr = (losses._pair_power(a, b, same=False) for a, b in ((xf, xf), (xf, xr), (xr, xr)))
        plain.append(float(((ff - 2 * fr + rr) / rr).mean()))
    assert abs(sum(values) / len(values)) < 0.05
    assert sum(plain) / len(plain) > 0.3


def _looks_and_rhythms(n: int, gen: torch.Generator, swapped: bool = False) -> torch.Tensor:
    """n clips [n, 16, 3, 4, 4] of two looks (the left or the right half of the frame bright,
    fixed over the clip): with the first look the top half moves, with the second the bottom
    half, both at period 6 with a random phase (``swapped``: the other way round)."""
    t = torch.arange(16, dtype=torch.float64)
    look = torch.randint(0, 2, (n,), generator=gen)
    left, top = torch.zeros(3, 4, 4, dtype=torch.float64), torch.zeros(3, 4, 4, dtype=torch.float64)
    left[..., :2], top[:, :2] = 1, 1
    content = torch.where(look[:, None, None, None] == 0, 3 * left, 3 * (1 - left))
    moving = torch.where((look == 0) != swapped, 1, 0)[:, None, None, None] * top
    moving = moving + (1 - moving.amax(dim=(1, 2, 3), keepdim=True)) * (1 - top)  # the other half
    s = torch.sin(2 * math.pi * t / 6 + torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 * math.pi)
    x = content[:, None] + s[..., None, None, None] * moving[:, None]
    return (x + 0.05 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).float()


def test_cross_spectrum_given_the_first_frame_sees_what_pooling_hides():
    """Real clips move the top half in one look and the bottom half in the other; the fakes do
    the reverse. Pooled over clips, both sets move each half equally often: the plain term is
    blind. Compared given the first frame, the swap is plain."""
    gen = torch.Generator().manual_seed(3)
    real = _looks_and_rhythms(256, gen)
    alike, swapped = _looks_and_rhythms(256, gen), _looks_and_rhythms(256, gen, swapped=True).requires_grad_(True)
    assert abs(float(losses.cross_spectrum_matching(swapped.detach(), real))) < 0.1
    given = losses.cross_spectrum_matching(swapped, real, content=0.3)
    assert float(given.detach()) > 0.5
    assert abs(float(losses.cross_spectrum_matching(alike, real, content=0.3))) < 0.1
    given.backward()
    assert swapped.grad.abs().sum() > 0


def test_cross_spectrum_given_the_first_frame_widens_to_the_pooled_term():
    gen = torch.Generator().manual_seed(4)
    real, fake = _two_rhythms(6, (4, 8), gen), _two_rhythms(5, (6, 6), gen)
    pooled = float(losses.cross_spectrum_matching(fake, real))
    assert float(losses.cross_spectrum_matching(fake, real, content=1e4)) == pytest.approx(pooled, rel=1e-4)
    assert math.isfinite(float(losses.cross_spectrum_matching(fake, real[:1], content=0.5)))  # one real clip
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            losses.cross_spectrum_matching(fake, real, content=bad)
