"""Principal directions of an image generator's latent space (SPEC section 4).

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
    basis = pca_for("ffhq")                          # cached in the store per generator
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import store
from .errors import MocohdError, a
from .formats import canonical, checks

PCA_FAMILY = "latent-pca"
OFFICIAL_FILES = {  # MoCoGAN-HD's get_stats_pca.py output -> our tensor names
    "pca_comp.npy": "components",
    "pca_stdev.npy": "stdev",
    "pca_var_ratio.npy": "var_ratio",
    "style_mean.npy": "mean",
    "style_var.npy": "var",
}


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
            raise MocohdError(f"PCA components have shape {list(self.components.shape)}, expected [k, w_dim] with k <= w_dim")
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

    def save(self, path: str | os.PathLike, source: dict | None = None) -> canonical.ModelHeader:
        return canonical.save_model(path, self.tensors(), kind="pca", family=PCA_FAMILY, config=self.config(), source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCABasis":
        """A stored basis; its shapes are checked against its config before its tensors
        are read, and the tensors against its recorded hash and for NaN/inf."""
        h = canonical.read_header(path)
        if h.kind != "pca":
            raise MocohdError(f"{path}: is {a(h.kind)} model, expected a PCA basis")
        checks.check_shapes("pca", h.family, h.config, h.shapes, path)
        t, _ = canonical.load_verified(path, h)
        info = {k: v for k, v in h.config.items() if k not in ("n_components", "w_dim")}
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
    return torch.device("cpu") if device.type == "mps" else device  # MPS has no float64


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
    batch with the number of samples so far.
    """
    if samples < 2 or batch < 1:
        raise MocohdError("PCA needs at least 2 samples and a positive batch size")
    device = next(G.parameters()).device
    acc_device = _float64_device(device)
    gen = torch.Generator().manual_seed(seed)
    moments = _Moments(G.w_dim, acc_device)
    with torch.no_grad():
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


# ----------------------------------------------------------------------------
# Import of the official .npy files, and the per-generator cache in the store.


def _read_npy(p: Path) -> torch.Tensor:
    """One official .npy array as float32: numbers only (allow_pickle=False), data as long
    as its header says (memory-mapped, so a header that lies allocates nothing), all finite."""
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise MocohdError(f"{p}: holds {getattr(arr, 'dtype', 'no')} values, expected floating-point numbers")
        out = torch.from_numpy(np.array(arr, dtype=np.float32))
    except (ValueError, OSError, EOFError) as e:
        raise MocohdError(f"{p}: not a readable .npy array (damaged or truncated?): {checks.brief(e)}") from e
    if not checks.tensor_is_finite(out):
        raise MocohdError(f"{p}: holds NaN or infinite values (damaged file); refusing it")
    return out


def read_official(folder: str | os.PathLike) -> PCABasis:
    """MoCoGAN-HD's PCA folder: pca_comp.npy [n, w_dim] and pca_stdev.npy [n]
    (+ pca_var_ratio.npy [n], style_mean.npy and style_var.npy [w_dim] if present),
    checked for shapes that fit together, finite values, unit-length directions."""
    folder = Path(folder)
    if not folder.exists():
        raise MocohdError(f"{folder}: no such folder")
    if folder.is_file():
        folder = folder.parent
    arrays = {key: _read_npy(folder / fname) for fname, key in OFFICIAL_FILES.items() if (folder / fname).is_file()}
    if "components" not in arrays or "stdev" not in arrays:
        raise MocohdError(f"{folder}: expected pca_comp.npy and pca_stdev.npy (MoCoGAN-HD's get_stats_pca.py output)")
    comps, stdev = arrays["components"], arrays["stdev"]
    if comps.ndim != 2 or not 1 <= comps.shape[0] <= comps.shape[1]:
        raise MocohdError(f"{folder}: pca_comp.npy is {list(comps.shape)}, expected [n, w_dim] with n <= w_dim")
    n, d = comps.shape
    expected = {"stdev": [n], "var_ratio": [n], "mean": [d], "var": [d]}
    for key, fname in ((k, f) for f, k in OFFICIAL_FILES.items() if k in expected and k in arrays):
        if list(arrays[key].shape) != expected[key]:
            raise MocohdError(f"{folder}: {fname} is {list(arrays[key].shape)} but pca_comp.npy is {list(comps.shape)}: "
                              f"expected {expected[key]} (files from different PCA runs?)")
    if (stdev < 0).any() or ("var" in arrays and (arrays["var"] < 0).any()):
        raise MocohdError(f"{folder}: negative standard deviations or variances: not a PCA folder")
    norms = comps.double().norm(dim=1)
    off = ((norms - 1).abs() > 1e-2).nonzero()
    if len(off):
        k = int(off[0])
        raise MocohdError(f"{folder}: pca_comp.npy row {k} has length {float(norms[k]):.3g}; principal directions have length 1")
    return PCABasis(comps, stdev, arrays.get("var_ratio"), arrays.get("mean"), arrays.get("var"),
                    {"origin": "MoCoGAN-HD get_stats_pca.py"})


def find_cached(image_sha256: str) -> Path | None:
    """A stored PCA basis fitted for the image generator with these weights, if any."""
    for kind, _name, path in store.list_store("pca"):
        try:
            h = canonical.read_header(path)
        except MocohdError:
            continue
        if h.config.get("image_sha256") == image_sha256:
            return path
    return None


def pca_for(image: str | os.PathLike, G=None, samples: int = 1_000_000, batch: int = 4096, seed: int = 0,
            name: str | None = None, force: bool = False, exact: bool = False, progress=None) -> tuple[PCABasis, Path, bool]:
    """The PCA basis of an image generator: from the store cache, or fitted and stored.

    Returns (basis, path, computed). The cache is keyed by the generator's
    weights sha256; with ``exact`` a cached basis must also have been fitted
    with the same ``samples`` and ``seed``; ``force`` always refits.
    """
    from .models import image_identity, load_image_generator

    ident = G.identity if G is not None and hasattr(G, "identity") else image_identity(image)
    if not force:
        cached = find_cached(ident["weights_sha256"])
        if cached is not None:
            basis = PCABasis.load(cached)
            if not exact or (basis.info.get("samples"), basis.info.get("seed")) == (samples, seed):
                return basis, cached, False
    if G is None:
        G = load_image_generator(image, device="auto")
    basis = fit_pca(G, samples=samples, batch=batch, seed=seed, progress=progress)
    basis.info.update(image_name=ident["name"], image_sha256=ident["weights_sha256"])
    dest = store.store_path("pca", store.check_name(name or ident["name"]))
    store.kind_dir("pca", create=True)
    basis.save(dest, source={"format": "mocohd", "image": ident["name"], "image_sha256": ident["weights_sha256"]})
    return basis, dest, True
