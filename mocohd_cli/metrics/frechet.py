"""The Fréchet distance between two Gaussians, in float64.

    d = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2))

FID and FVD are this distance between Gaussians fitted to detector features.
The reference codes (pytorch-fid, StyleGAN-V's ``frechet_video_distance.py``)
take ``scipy.linalg.sqrtm(S1 @ S2)``: a non-symmetric matrix square root that
turns complex, or fails, when a covariance is singular (fewer samples than
feature dimensions) and whose imaginary parts must be thrown away.

Here only the trace is needed, and S1 S2 has the same eigenvalues as the
symmetric positive semi-definite M = sqrt(S1) S2 sqrt(S1) (similar matrices:
S1 S2 = sqrt(S1) M sqrt(S1)^-1 where S1 is invertible, and by continuity
otherwise), so Tr(sqrt(S1 S2)) = sum_i sqrt(lambda_i(M)). Both square roots
come from ``eigh`` with rounding-negative eigenvalues clamped to 0: symmetric
eigensolvers never fail on singular input, and the result is real by
construction. Where sqrtm is well conditioned the two agree to ~1e-10
relative (tests/test_metrics_frechet.py checks 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError


def _as_float64(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()  # float64 on the host (MPS has none)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UsageError(f"frechet_distance: {name} is not a numeric array ({e})") from None
    if not np.isfinite(a).all():
        raise UsageError(f"frechet_distance: {name} holds NaN or infinite values")
    return a


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """The symmetric square root of a (nearly) positive semi-definite matrix."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    Accepts torch tensors or numpy arrays (any float dtype): means [D],
    covariances [D, D]. Covariances are symmetrised ((S + S^T) / 2) against
    rounding. Singular covariances are fine. Raises ``UsageError`` for
    mismatched shapes or non-finite values. The result is clamped at 0 (it
    can only go below through rounding).
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu2.ndim != 1 or mu1.shape != mu2.shape or mu1.size == 0:
        raise UsageError(
            f"frechet_distance: means must be two vectors of one length, got {list(mu1.shape)} and {list(mu2.shape)}"
        )
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise UsageError(f"frechet_distance: {name} must be [{d}, {d}] to match the means, got {list(s.shape)}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    m = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(value, 0.0))
