"""Motion statistics (mocohd_cli.motion.stats) on trajectories with known answers."""

import math

import pytest
import torch

from mocohd_cli.motion.stats import (
    coherence,
    dominant_frequencies,
    motion_stats,
    pixel_stats,
    rhythms,
    step_shares,
)


def _basis(dim=12, k=3, seed=0):
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.T[:k]  # orthonormal rows


def _sinusoids(V, periods, amplitudes, videos=256, frames=48, locked=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float64)
    phase = torch.rand(videos, len(periods), generator=g, dtype=torch.float64) * 2 * math.pi
    if locked:  # every direction at the same phase as the first: one movement driving all
        phase = phase[:, :1].expand(-1, len(periods))
    coef = torch.tensor(amplitudes) * torch.sin(2 * math.pi * t[None, :, None] / torch.tensor(periods) + phase[:, None])
    w1 = torch.randn(videos, V.shape[1], generator=g, dtype=torch.float64)
    return w1[:, None] + coef @ V


def test_periods_shares_and_independence_of_known_sinusoids():
    V = _basis()
    periods, amps = [5.0, 8.0, 12.0], [0.5, 1.0, 2.0]
    s = motion_stats(_sinusoids(V, periods, amps), V)
    assert s.on_span == pytest.approx(1.0, abs=1e-9)  # all motion is in the span
    # per-step energy of A sin(2 pi t / P): proportional to (A sin(pi / P))^2
    want = torch.tensor(
        [(a * math.sin(math.pi / p)) ** 2 for a, p in zip(amps, periods, strict=True)], dtype=torch.float64
    )
    assert torch.allclose(s.shares, want / want.sum(), atol=0.02)
    assert torch.allclose(s.periods, torch.tensor(periods, dtype=torch.float64), rtol=0.03)
    off = s.coherence[~torch.eye(3, dtype=torch.bool)]
    assert off.max() < 0.15  # independent phases
    assert torch.allclose(s.coherence.diagonal(), torch.ones(3, dtype=torch.float64))
    assert s.to_dict()["max_coherence"] < 0.15 and len(s.to_dict()["periods"]) == 3


def test_locked_movements_are_coherent_and_one_period_is_found():
    V = _basis()
    ws = _sinusoids(V[:2], [8.0, 8.0], [1.0, 1.0], locked=True)
    c = coherence((ws - ws[:, :1]) @ V[:2].T)
    assert c[0, 1] > 0.95
    # and the same movement unlocked (random phase per direction) is not
    ws = _sinusoids(V[:2], [8.0, 8.0], [1.0, 1.0])
    assert coherence((ws - ws[:, :1]) @ V[:2].T)[0, 1] < 0.2


def test_energy_outside_the_span_and_a_random_walk():
    V = _basis(dim=16, k=4)
    steps = torch.randn(512, 31, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ws = torch.cat([torch.zeros(512, 1, 16, dtype=torch.float64), steps.cumsum(1)], dim=1)
    s = motion_stats(ws, V)
    assert s.on_span == pytest.approx(4 / 16, abs=0.02)  # isotropic: K / dim
    assert s.step == pytest.approx(4.0, rel=0.02)  # rms of a 16-d standard normal step
    # a random walk's spectrum peaks at the lowest frequencies: long periods
    assert (s.periods > 10).all()
    # motion entirely orthogonal to V: no energy there
    other = _basis(dim=16, k=5)[4:]  # orthogonal to V
    assert step_shares(_sinusoids(other, [6.0], [1.0], frames=16), V).sum() < 1e-20


def test_dominant_frequency_of_a_short_clip():
    t = torch.arange(16, dtype=torch.float64)
    x = torch.sin(2 * math.pi * t / 6 + torch.rand(64, 1, dtype=torch.float64) * 6)[..., None]  # [64, 16, 1]
    assert float(dominant_frequencies(x)[0]) == pytest.approx(1 / 6, rel=0.05)


def test_pixel_stats():
    clips = torch.zeros(2, 4, 3, 8, 8)
    assert pixel_stats(clips) == {"change": 0.0, "drift": 0.0}
    clips[:, 1:] += 0.1  # a jump after the first frame, then still
    clips[:, 3] += 0.2
    p = pixel_stats(clips)
    assert p["drift"] == pytest.approx(0.3) and p["change"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)


def test_bad_shapes():
    with pytest.raises(ValueError, match="trajectories"):
        motion_stats(torch.zeros(2, 1, 4), torch.eye(4)[:2])
    with pytest.raises(ValueError, match="directions"):
        motion_stats(torch.zeros(2, 3, 4), torch.eye(5)[:2])
    with pytest.raises(ValueError, match="clips"):
        pixel_stats(torch.zeros(2, 1, 3, 4, 4))


def _rhythm_coords(videos, frames, movements, noise=0.0, k=8, seed=0):
    """[videos, frames, k] coordinates: one sinusoid per (direction [k], period, amplitude), each video
    with its own random phases, plus white noise of that stdev."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float64)
    out = noise * torch.randn(videos, frames, k, generator=g, dtype=torch.float64)
    for direction, period, amplitude in movements:
        phase = torch.rand(videos, 1, generator=g, dtype=torch.float64) * 2 * math.pi
        wave = amplitude * torch.sin(2 * math.pi * t / period + phase)
        out += wave[..., None] * torch.as_tensor(direction, dtype=torch.float64)
    return out


def test_rhythms_finds_each_movement_its_period_direction_and_amplitude():
    # three movements, one along a direction mixing two coordinates (a rotated movement)
    turned = torch.zeros(8, dtype=torch.float64)
    turned[2], turned[6] = 0.6, 0.8
    axis = torch.eye(8, dtype=torch.float64)
    movements = [(axis[0], 5.0, 0.4), (turned, 8.0, 0.8), (axis[4], 12.0, 1.3)]
    for noise in (0.0, 0.1):
        found = rhythms(_rhythm_coords(512, 32, movements, noise), 5)
        torch.testing.assert_close(found.directions @ found.directions.T, torch.eye(5, dtype=torch.float64))
        for i, (direction, period, amplitude) in enumerate(reversed(movements)):  # strongest first
            assert abs(float(found.directions[i] @ direction)) > 0.99, (i, found.directions[i])
            assert 1 / float(found.frequencies[i]) == pytest.approx(period, rel=0.04)
            assert float(found.amplitudes[i]) == pytest.approx(amplitude, rel=0.1)
        assert float(found.amplitudes[3:].max()) < 0.1 * (noise > 0) + 1e-6  # the rest: the floor at most


def test_rhythms_refuses_what_it_cannot_answer():
    coords = torch.zeros(4, 16, 3)
    for count, message in ((0, "count must be in 1..3"), (4, "count must be in 1..3")):
        with pytest.raises(ValueError, match=message):
            rhythms(coords, count)
    with pytest.raises(ValueError, match="at least 4 frames"):
        rhythms(torch.zeros(4, 3, 3), 1)
