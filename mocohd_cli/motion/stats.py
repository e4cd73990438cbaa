"""Statistics of latent motion: what a trajectory does along given directions.

    s = motion_stats(ws, V)        # ws: trajectories [B, T, w_dim], V: orthonormal directions [K, w_dim]
    s.shares                       # [K] each direction's share of the per-step displacement energy
    s.on_span                      # their sum: the share inside the span of V
    s.frequencies, s.periods       # [K] dominant temporal frequency (cycles/frame) and period (frames)
    s.coherence                    # [K, K] phase locking between directions (0: independent, 1: locked)

Used by the motion-recovery benchmark (learned motion against known true
motion) and by training's motion monitor (generated motion against the real
clips'). All sums are over videos and steps, in float64.

energy     d_t = w_{t+1} - w_t; share_k = sum (d . V_k)^2 / sum |d|^2. An
           isotropic random walk puts about K / w_dim there.
frequency  of the coordinates c_k(t) = (w_t - w_1) . V_k, mean removed, Hann
           window, zero-padded FFT; the peak of the power averaged over
           videos, refined by a parabola through the log-power of its bins.
           A pure sinusoid of period P measures 1/P to a few percent when the
           clip holds at least a cycle and a half.
coherence  |sum_b,f X_j X_k*| / sqrt(sum |X_j|^2 sum |X_k|^2) over videos b
           and frequencies f of the windowed spectra X. Movements with
           independent random phases average out (about 1/sqrt(B) remains);
           movements locked together (one drives the other, at a fixed phase)
           keep the cross-spectrum's phase and give a value near 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PAD = 512  # FFT length: frequency bins of 1/512 cycles/frame before the parabolic refinement


@dataclass
class MotionStats:
    shares: torch.Tensor  # [K] float64
    on_span: float
    frequencies: torch.Tensor  # [K] cycles per frame
    coherence: torch.Tensor  # [K, K], 1 on the diagonal
    step: float  # root-mean-square per-step displacement |d| (w units)

    @property
    def periods(self) -> torch.Tensor:
        return 1.0 / self.frequencies.clamp(min=1e-12)

    def to_dict(self) -> dict:
        """Plain numbers (JSON): shares, on_span, periods, step and the largest off-diagonal coherence."""
        k = len(self.shares)
        off = self.coherence[~torch.eye(k, dtype=torch.bool)] if k > 1 else torch.zeros(1)
        return {
            "shares": [round(float(x), 6) for x in self.shares],
            "on_span": round(self.on_span, 6),
            "periods": [round(float(x), 4) for x in self.periods],
            "step": round(self.step, 6),
            "max_coherence": round(float(off.max()), 6),
        }


def _spectra(coords: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Windowed, zero-padded spectra of [B, T, K] signals (mean over time removed): [B, F, K] complex."""
    x = coords.double() - coords.double().mean(dim=1, keepdim=True)
    win = torch.hann_window(x.shape[1], periodic=False, dtype=x.dtype)
    return torch.fft.rfft(x * win[None, :, None], n=pad, dim=1)


def _peak(power: torch.Tensor, pad: int) -> float:
    """Frequency (cycles/frame) of the largest bin of a power spectrum [F] (the DC bin excluded)."""
    p = power.clone()
    p[0] = 0
    k = int(p.argmax())
    if 0 < k < len(p) - 1 and bool((p[k - 1 : k + 2] > 0).all()):
        a, b, c = p[k - 1].log(), p[k].log(), p[k + 1].log()
        den = float(a - 2 * b + c)
        if den != 0.0 and math.isfinite(den):
            k = k + 0.5 * float(a - c) / den
    return k / pad


def dominant_frequencies(coords: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """[K] cycles/frame of the strongest component of each of the K signals of [B, T, K]
    (power averaged over the B videos)."""
    power = _spectra(coords, pad).abs().square().mean(dim=0)  # [F, K]
    return torch.tensor([_peak(power[:, k], pad) for k in range(power.shape[1])], dtype=torch.float64)


def dominant_frequency(coords: torch.Tensor, pad: int = PAD) -> float:
    """One frequency for all K signals of [B, T, K] together (power averaged over videos and signals)."""
    return _peak(_spectra(coords, pad).abs().square().mean(dim=(0, 2)), pad)


def coherence(coords: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """[K, K] phase locking of the K signals of [B, T, K] (see the module docstring)."""
    X = _spectra(coords, pad)  # [B, F, K]
    cross = torch.einsum("bfj,bfk->jk", X, X.conj()).abs()
    power = X.abs().square().sum(dim=(0, 1))
    return cross / (power[:, None] * power[None, :]).sqrt().clamp(min=1e-300)


@dataclass
class Rhythms:
    """The rhythms of trajectories, strongest first (``rhythms``): per rhythm its frequency
    (cycles/frame), its direction (orthonormal rows) and the amplitude of a sinusoid of that
    frequency that gives its power above the noise floor (in the coordinates' units)."""

    frequencies: torch.Tensor  # [m]
    directions: torch.Tensor  # [m, K]
    amplitudes: torch.Tensor  # [m]


def rhythms(coords: torch.Tensor, count: int, pad: int = PAD) -> Rhythms:
    """The ``count`` strongest rhythms of ``coords`` [B, T, K] (B clips, K coordinates), one
    direction each and the directions orthonormal: the spectral picture of the motion the
    oscillator bank models, estimated from data.

    S_f = mean over clips of Re(X_f X_f^H), X the windowed spectra (the DC bin left out). Greedily:
    the largest eigenvalue of S_f, within what the directions found so far leave, over the
    frequencies f gives a direction q (its eigenvector) and a frequency (the peak of q' S_f q,
    refined as ``dominant_frequencies`` does); then q is left out of the search.
    Directions moving at their own rhythms with independent phases are found one by one. The
    amplitude: the peak power along q less the median power along q (the floor that frame-by-frame
    noise puts at every frequency), over the peak power of a unit sinusoid at that frequency."""
    b, t, k = coords.shape
    if not 1 <= count <= k:
        raise ValueError(f"count must be in 1..{k}, got {count}")
    if t < 4:
        raise ValueError(f"rhythms need clips of at least 4 frames, got {t}")
    X = _spectra(coords, pad)  # [B, F, K]
    S = torch.einsum("bfj,bfk->fjk", X, X.conj()).real / b  # [F, K, K]
    S[0] = 0
    free = torch.eye(k, dtype=S.dtype)  # an orthonormal basis of what the directions found leave: [K, K - found]
    phases = torch.linspace(0, 2 * math.pi, 65, dtype=torch.float64)[:-1]
    frequencies, directions, amplitudes = [], [], []
    for _ in range(count):
        values, vectors = torch.linalg.eigh(free.T @ S @ free)  # ascending, per frequency
        f = int(values[:, -1].argmax())
        v = vectors[f, :, -1]
        q = free @ v
        power = torch.einsum("j,fjk,k->f", q, S, q)  # [F]
        freq = _peak(power, pad)
        unit = torch.sin(2 * math.pi * freq * torch.arange(t, dtype=torch.float64)[None, :] + phases[:, None])
        unit_power = _spectra(unit[..., None], pad).abs().square().mean(dim=0)[:, 0]  # [F]
        peak = int(power[1:].argmax()) + 1
        above = (power[peak] - power[1:].median()).clamp(min=0)
        frequencies.append(freq)
        directions.append(q)
        amplitudes.append(float((above / unit_power[peak].clamp(min=1e-300)).sqrt()))
        rest = torch.linalg.qr(torch.cat([v[:, None], torch.eye(len(v), dtype=v.dtype)], dim=1))[0][:, 1:]
        free = free @ rest
    return Rhythms(
        torch.tensor(frequencies, dtype=torch.float64),
        torch.stack(directions),
        torch.tensor(amplitudes, dtype=torch.float64),
    )


def step_shares(ws: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """[K] share of the per-step displacement energy of ``ws`` [B, T, D] along each orthonormal
    row of ``directions`` [K, D]."""
    d = (ws[:, 1:] - ws[:, :-1]).double()
    total = d.square().sum().clamp(min=1e-300)
    return (d @ directions.double().T).square().sum(dim=(0, 1)) / total


def motion_stats(ws: torch.Tensor, directions: torch.Tensor, pad: int = PAD) -> MotionStats:
    """The statistics of trajectories ``ws`` [B, T, D] (T >= 2) along ``directions`` [K, D]
    (orthonormal rows, e.g. PCA components)."""
    if ws.ndim != 3 or ws.shape[1] < 2:
        raise ValueError(f"trajectories must be [videos, frames >= 2, w_dim], got {list(ws.shape)}")
    if directions.ndim != 2 or directions.shape[1] != ws.shape[2]:
        raise ValueError(f"directions must be [K, {ws.shape[2]}], got {list(directions.shape)}")
    ws = ws.double()
    shares = step_shares(ws, directions)
    coords = (ws - ws[:, :1]) @ directions.double().T  # [B, T, K]
    d = ws[:, 1:] - ws[:, :-1]
    return MotionStats(
        shares=shares,
        on_span=float(shares.sum()),
        frequencies=dominant_frequencies(coords, pad),
        coherence=coherence(coords, pad),
        step=float(d.square().sum(dim=-1).mean().sqrt()),
    )


def pixel_stats(frames: torch.Tensor) -> dict[str, float]:
    """Cheap pixel-space motion measures of clips [B, T, C, H, W] in [-1, 1]: ``change``, the mean
    absolute frame-to-frame difference, and ``drift``, the mean absolute difference between the
    last and the first frame (both in [0, 2] units, averaged over pixels and clips)."""
    if frames.ndim != 5 or frames.shape[1] < 2:
        raise ValueError(f"clips must be [B, T >= 2, C, H, W], got {list(frames.shape)}")
    f = frames.float()
    return {"change": float((f[:, 1:] - f[:, :-1]).abs().mean()), "drift": float((f[:, -1] - f[:, 0]).abs().mean())}
