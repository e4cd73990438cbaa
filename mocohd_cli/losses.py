"""Losses of motion training (MoCoGAN-HD's, ICLR 2021).

Discriminator outputs are lists over scales of lists of layer features; the
last feature of each scale is its patch scores.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def _scores(outputs) -> list[torch.Tensor]:
    return [o[-1] if isinstance(o, (list, tuple)) else o for o in outputs]


def ralsgan(outputs_a, outputs_b, target: float) -> torch.Tensor:
    """Relativistic-average LSGAN: sum over scales of mean((D(a) - mean(D(b)) - target)^2).

    Discriminator: ralsgan(real, fake, 1) + ralsgan(fake, real, 0);
    generator:     ralsgan(fake, real, 1) + ralsgan(real, fake, 0).
    """
    loss = 0.0
    for a, b in zip(_scores(outputs_a), _scores(outputs_b), strict=True):
        loss = loss + F.mse_loss(a - b.mean(), torch.full_like(a, target))
    return loss


def gradient_penalty(
    D, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP on random interpolates of real and fake clips [B, C, T, H, W], per scale:
    mean((||dD/dx||_2 over channels - 1)^2) (the official norm is over dim 1),
    averaged over scales, times ``weight``."""
    alpha = torch.rand(real.shape[0], *[1] * (real.ndim - 1), generator=generator).to(real)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = _scores(D(x))
    penalty = 0.0
    for s in scores:
        (g,) = torch.autograd.grad(s.sum(), x, create_graph=True)
        penalty = penalty + (g.norm(2, dim=1) - 1).square().mean()
    return penalty / len(scores) * weight


def hinge_discriminator(scores_fake: torch.Tensor, scores_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean relu(1 - D(real)), mean relu(1 + D(fake)))."""
    return F.relu(1.0 - scores_real).mean(), F.relu(1.0 + scores_fake).mean()


def hinge_generator(scores_fake: torch.Tensor) -> torch.Tensor:
    return -scores_fake.mean()


def motion_diversity(eps_rec: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Mutual-information term on the motion noise: -mean cos(e_rec_t, eps_t) over the last dim."""
    return -F.cosine_similarity(eps_rec, eps, dim=-1).mean()


def temporal_spectrum(clips: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean temporal power spectrum of clips [B, T, C, H, W]: every pixel's time series, mean
    removed, Hann-windowed, |rfft|^2, averaged over clips, channels and pixels -> [T // 2 + 1]
    (float32). How much the frames change at each temporal frequency, whatever moves."""
    spec = torch.fft.rfft(_centred_windowed(clips), dim=1).abs().square()
    return spec.mean(dim=(0, 2, 3, 4)) + eps


def _centred_windowed(clips: torch.Tensor) -> torch.Tensor:
    """Clips [B, T, ...] as float32 time series ready for a Fourier transform along T: each
    one's mean over time removed, then a (symmetric) Hann window."""
    x = clips.float()
    x = x - x.mean(dim=1, keepdim=True)
    win = torch.hann_window(x.shape[1], periodic=False, dtype=x.dtype, device=x.device)
    return x * win.view(-1, *[1] * (x.ndim - 2))


def spectrum_matching(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the log temporal power spectra of fake and real clips
    [B, T, C, H, W] (the real one a fixed target): a feature-matching term on the rhythms
    of the motion. A motion model that moves everything at one compromise period, where the
    real clips mix several, has its power at the wrong frequencies and is pulled apart."""
    with torch.no_grad():
        target = temporal_spectrum(real).log()
    return (temporal_spectrum(fake).log() - target).square().mean()


def _temporal_fourier(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips [B, T, C, H, W] -> every pixel's temporal Fourier coefficients as (real, imaginary)
    parts, each [F, B, C*H*W] in float32 (mean removed, Hann-windowed, the DC bin dropped:
    F = T // 2). A DFT by matrix products, not ``torch.fft``: clips are short, and real
    matmuls run on every device (MPS has no complex matmul)."""
    x = _centred_windowed(clips.flatten(2))
    cos, sin = _dft_matrices(x.shape[1], x.device, x.dtype)
    return torch.einsum("ft,btd->fbd", cos, x), -torch.einsum("ft,btd->fbd", sin, x)


@functools.lru_cache(maxsize=16)
def _dft_matrices(n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2 pi f t / n, [F, T] for f = 1..n // 2: built once per (n, device, dtype)
    (computed in float64 on the host, then copied once), not at every call."""
    with torch.inference_mode(False), torch.no_grad():
        t = torch.arange(n, dtype=torch.float64)
        f = torch.arange(1, n // 2 + 1, dtype=torch.float64)
        angle = (2 * math.pi / n) * torch.outer(f, t)  # [F, T]
        return tuple(a.to(device=device, dtype=dtype) for a in (angle.cos(), angle.sin()))


def _pair_power(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    same: bool,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over clip pairs of |<a_i, b_j>|^2 at each frequency [F]: a and b are (real, imag)
    pairs of [F, B, D]. With ``same`` (b is a), the pairs i != j only, an unbiased estimate
    of ||E[a a^H]||_F^2 (a batch of one falls back to its own pair). ``weight`` [Ba, Bb]
    multiplies each pair's power (a kernel on what else the clips have: a product kernel)."""
    (ar, ai), (br, bi) = a, b
    re = torch.matmul(ar, br.transpose(1, 2)) + torch.matmul(ai, bi.transpose(1, 2))
    im = torch.matmul(ai, br.transpose(1, 2)) - torch.matmul(ar, bi.transpose(1, 2))
    k = re.square() + im.square()  # [F, Ba, Bb]
    if weight is not None:
        k = k * weight
    n = k.shape[1]
    if same and n > 1:
        return (k.sum(dim=(1, 2)) - k.diagonal(dim1=1, dim2=2).sum(dim=1)) / (n * (n - 1))
    return k.mean(dim=(1, 2))


def cross_spectrum_matching(
    fake: torch.Tensor, real: torch.Tensor, content: float | None = None, eps: float = 1e-12
) -> torch.Tensor:
    """Distance between the cross-spectral densities of fake and real clips [B, T, C, H, W]: at
    each temporal frequency f, S_f = E[X_f X_f^H] over clips, X_f every pixel's Fourier
    coefficient, so S_f says which pixels move at that rhythm, and together. The term is
    sum_f ||S_f(fake) - S_f(real)||_F^2 / ||S_f(real)||_F^2 / F. The distance is estimated
    without bias from the two batches (an MMD with the kernel |<X_f, Y_f>|^2, pairs of a clip
    with itself left out) and never forms a D x D matrix; dividing by the real batch's own
    estimate leaves a small bias (about -0.02 at batch 8).

    ``temporal_spectrum`` averages the pixels away and sees only how much moves at each
    rhythm; this term also sees what moves at each one. A model that moves the eyes at the
    mouth's rhythm, or locks two movements together (cross terms the real S_f lacks), pays
    for it. Near 0 (it may dip below) when the two sets move alike.

    With ``content`` (a bandwidth, in units of the median distance between the real batch's
    first frames), the densities are compared given the first frame: each pair of clips is
    weighted by exp(-|x_0 - y_0|^2 / 2 h^2), an MMD with a product kernel on (first frame,
    motion). Pooled over all clips, motion off the true directions can rebuild S_f (what a
    direction moves differs from video to video, and the average hides it); compared between clips that look
    alike, it cannot. Smaller bandwidths condition more and weigh fewer pairs (more noise)."""
    xf = _temporal_fourier(fake)
    w_ff = w_fr = w_rr = None
    with torch.no_grad():
        xr = _temporal_fourier(real)
        if content is not None:
            w_ff, w_fr, w_rr = _content_kernel(fake[:, 0], real[:, 0], content)
        rr = _pair_power(xr, xr, same=True, weight=w_rr)
    ff = _pair_power(xf, xf, same=True, weight=w_ff)
    fr = _pair_power(xf, xr, same=False, weight=w_fr)
    return ((ff - 2 * fr + rr) / rr.clamp_min(eps)).mean()


def _content_kernel(fake0: torch.Tensor, real0: torch.Tensor, bandwidth: float):
    """Gaussian kernel between first frames [B, ...] (fake-fake, fake-real, real-real), its
    width ``bandwidth`` times the median distance between distinct real first frames."""
    if not bandwidth > 0:
        raise ValueError(f"content bandwidth must be > 0, got {bandwidth}")
    f, r = fake0.flatten(1).float(), real0.flatten(1).float()
    d_rr = torch.cdist(r, r).square()
    n = r.shape[0]
    if n < 2:  # no distance to scale by: nothing to condition on
        return tuple(torch.ones(a, b, device=r.device) for a, b in ((len(f), len(f)), (len(f), n), (n, n)))
    distinct = d_rr[~torch.eye(n, dtype=torch.bool, device=r.device)]
    scale = 2 * (bandwidth * distinct.sqrt().median()).square().clamp_min(1e-12)
    return tuple(torch.exp(-d / scale) for d in (torch.cdist(f, f).square(), torch.cdist(f, r).square(), d_rr))
