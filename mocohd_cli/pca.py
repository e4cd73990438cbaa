"""Principal directions of an image generator's latent space (MoCoGAN-HD, ICLR 2021: the motion
model moves along them).

The motion generator moves w along the first ``n_pca`` principal directions
of w = mapping(z), z ~ N(0, I), each scaled by its standard deviation. The
official recipe maps 1,000,000 samples and fits sklearn's IncrementalPCA
with 512 components; we compute the same statistics exactly and faster:

    mean, covariance   streamed over batches: float32 products of centred
                       batches, merged in float64 (Chan et al.)
    components         eigenvectors of the covariance, rows, sorted by variance,
                       sign fixed so each row's largest-magnitude entry is positive
    stdev              sqrt of the eigenvalues (covariance with n - 1, as sklearn)
    var_ratio          eigenvalue / total variance
    mean, var          per-dimension mean and variance of w (var with n, as numpy)

    basis = fit_pca(G, samples=1_000_000)          # seeded: same call, same basis

This module is the maths alone. Files: ``formats.mocogan_hd.read_official``
(the official .npy folders); the store cache per generator:
``loaders.pca_bases.pca_for``, ``load_pca``, ``save_pca``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import ops
from .errors import MocohdError
from .runtime import precision

PCA_FAMILY = "latent-pca"  # the family of a stored basis (a model file of kind "pca")


@dataclass
class PCABasis:
    components: torch.Tensor  # [k, w_dim], unit rows, sorted by variance (descending)
    stdev: torch.Tensor  # [k]
    var_ratio: torch.Tensor | None = None  # [k]
    mean: torch.Tensor | None = None  # [w_dim]
    var: torch.Tensor | None = None  # [w_dim]
    info: dict = field(default_factory=dict)  # samples, seed, image generator identity, ...

    def __post_init__(self):
        if self.components.ndim != 2 or not 1 <= self.components.shape[0] <= self.components.shape[1]:
            raise MocohdError(
                f"PCA components have shape {list(self.components.shape)}, expected [k, w_dim] with k <= w_dim"
            )
        k, d = self.components.shape
        for name, n in (("stdev", k), ("var_ratio", k), ("mean", d), ("var", d)):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (n,):
                raise MocohdError(f"PCA {name} has shape {list(t.shape)}, expected [{n}]")

    @property
    def w_dim(self) -> int:
        return self.components.shape[1]

    def tensors(self) -> dict[str, torch.Tensor]:
        t = {"components": self.components, "stdev": self.stdev}
        for name in ("var_ratio", "mean", "var"):
            if getattr(self, name) is not None:
                t[name] = getattr(self, name)
        return {k: v.float().contiguous() for k, v in t.items()}

    def config(self) -> dict:
        return {"n_components": int(self.components.shape[0]), "w_dim": self.w_dim, **self.info}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], config: dict | None = None) -> PCABasis:
        """The inverse of ``tensors()`` and ``config()``: a basis from its named tensors
        (components and stdev; var_ratio, mean and var if present) and its config."""
        info = {k: v for k, v in (config or {}).items() if k not in ("n_components", "w_dim")}
        t = tensors
        return cls(t["components"], t["stdev"], t.get("var_ratio"), t.get("mean"), t.get("var"), info)


class _Moments:
    """Streaming mean and scatter matrix, merged batch by batch in float64.

    Each batch is centred on its own mean (computed in float64) and its
    scatter product runs in float32, the precision w itself has; the batches
    are merged in float64 (Chan, Golub and LeVeque's pairwise update), so
    the total does not drift with the number of samples."""

    def __init__(self, dim: int, device):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def add(self, x: torch.Tensor) -> None:  # x: [n, dim]
        nb = x.shape[0]
        mb = x.double().mean(0)
        xc = x.float() - mb.float()
        cb = (xc.t() @ xc).double()
        delta = mb - self.mean
        n = self.n + nb
        self.m2 += cb + torch.outer(delta, delta) * (self.n * nb / n)
        self.mean += delta * (nb / n)
        self.n = n


def _float64_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if ops.device_kind(device) == "mps" else device  # MPS has no float64


def fit_pca(
    G,
    samples: int = 1_000_000,
    batch: int = 4096,
    seed: int = 0,
    n_components: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PCABasis:
    """PCA of w = G.mapping(z) over ``samples`` seeded z ~ N(0, I).

    z is drawn on the CPU from ``seed`` in batches of ``batch``, so the
    samples do not depend on the device; ``progress(n)`` is called after each
    batch with the number of samples so far. The mapping runs in exact float32 (no TF32), so
    a basis fitted inside training is the one ``mocohd pca`` fits.
    """
    if samples < 2 or batch < 1:
        raise MocohdError("PCA needs at least 2 samples and a positive batch size")
    device = next(G.parameters()).device
    acc_device = _float64_device(device)
    gen = torch.Generator().manual_seed(seed)
    moments = _Moments(G.w_dim, acc_device)
    with torch.no_grad(), precision(device):
        done = 0
        while done < samples:
            n = min(batch, samples - done)
            z = torch.randn(n, G.z_dim, generator=gen).to(device)
            moments.add(G.mapping(z).to(acc_device))
            done += n
            if progress:
                progress(done)
    return _basis_from_moments(moments, n_components or G.w_dim, {"samples": samples, "seed": seed})


def _basis_from_moments(m: _Moments, k: int, info: dict) -> PCABasis:
    cov = m.m2 / (m.n - 1)
    evals, evecs = torch.linalg.eigh(cov.cpu())  # ascending
    evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
    comps = evecs.t()  # rows
    # sklearn's convention (svd_flip, v-based): the largest |entry| of each row is positive.
    idx = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(k), idx])
    comps = comps * signs[:, None]
    evals = evals.clamp(min=0)
    total = torch.diagonal(cov).sum().cpu()
    return PCABasis(
        components=comps.float(),
        stdev=evals.sqrt().float(),
        var_ratio=(evals / total).float(),
        mean=m.mean.cpu().float(),
        var=(torch.diagonal(m.m2) / m.n).cpu().float(),
        info=info,
    )
