"""The latent PCA basis of each image generator, cached in the store.

    basis, path, computed = pca_for("ffhq")        # from the store, or fitted and stored
    save_pca(basis, "basis.safetensors")
    basis = load_pca("basis.safetensors")

A stored basis is a model file of kind ``pca`` tagged with the weights
sha256 of the generator it was fitted for; the maths is ``pca.fit_pca``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from .. import store
from ..errors import MocohdError
from ..formats import canonical, read_any
from ..pca import PCA_FAMILY, PCABasis, fit_pca
from .image_generators import image_identity, load_image_generator


def save_pca(basis: PCABasis, path: str | os.PathLike, source: dict | None = None) -> canonical.ModelHeader:
    """Write ``basis`` as a canonical model file (kind ``pca``); the image generator's
    identity in ``basis.info`` goes to the file's ``mocohd.image``."""
    config = basis.config()
    image = {k: config.pop(k) for k in canonical.IMAGE_KEYS if k in config}
    return canonical.save_model(
        path, basis.tensors(), kind="pca", family=PCA_FAMILY, config=config, source=source, image=image
    )


def load_pca(path: str | os.PathLike) -> PCABasis:
    """A stored basis; its shapes are checked against its config before its tensors
    are read, and the tensors against its recorded hash and for NaN/inf."""
    m = read_any(path, kind="pca")
    return PCABasis.from_tensors(m.tensors, {**m.config, **m.image})


def find_cached(image_sha256: str) -> Path | None:
    """A stored PCA basis fitted for the image generator with these weights, if any."""
    for _kind, _name, path in store.list_store("pca"):
        try:
            h = canonical.read_header(path)
        except MocohdError:
            continue
        if h.image.get("image_sha256") == image_sha256:
            return path
    return None


def pca_for(
    image: str | os.PathLike,
    *,
    G=None,
    samples: int = 1_000_000,
    batch: int = 4096,
    seed: int = 0,
    name: str | None = None,
    force: bool = False,
    exact: bool = False,
    progress=None,
) -> tuple[PCABasis, Path, bool]:
    """The PCA basis of an image generator: from the store cache, or fitted and stored.

    Returns (basis, path, computed). The cache is keyed by the generator's
    weights sha256; with ``exact`` a cached basis must also have been fitted
    with the same ``samples`` and ``seed``; ``force`` always refits.
    """
    if G is None:  # loaded once: its file is read and verified once, cached basis or not
        G = load_image_generator(image, device="auto")
    ident = G.identity if hasattr(G, "identity") else image_identity(image)
    if not force:
        cached = find_cached(ident["weights_sha256"])
        if cached is not None:
            basis = load_pca(cached)
            if not exact or (basis.info.get("samples"), basis.info.get("seed")) == (samples, seed):
                return basis, cached, False
    basis = fit_pca(G, samples=samples, batch=batch, seed=seed, progress=progress)
    basis.info.update(image_name=ident["name"], image_sha256=ident["weights_sha256"])
    dest = store.store_path("pca", store.check_name(name or ident["name"]))
    store.kind_dir("pca", create=True)
    save_pca(basis, dest, source={"format": "mocohd", "image": ident["name"], "image_sha256": ident["weights_sha256"]})
    return basis, dest, True


def express(M, G, image: str | os.PathLike | None = None) -> tuple[object, str | None]:
    """Motion model ``M`` made to drive image generator ``G``: itself when it was trained with
    ``G`` (same weights sha256) or does not know its generator and has G's w size; else
    re-expressed in G's PCA basis (``MotionGenerator.retarget``: direction k -> direction k,
    scaled by G's stdev; another w size carries the first latent through PCA coordinates).
    ``image``: G's name or path (its basis is cached in the store under it; default G's name).
    Returns (motion model, a one-line note of what was done or None)."""
    own = M.image.get("image_sha256")
    target = G.identity["weights_sha256"]
    if (own == target or not own) and M.cfg.w_dim == G.w_dim:
        return M, None
    basis, _, _ = pca_for(image if image is not None else G.identity["name"], G=G)
    if M.cfg.w_dim != G.w_dim and not M.has_mean and own:  # an older file: its generator's cached basis knows the mean
        cached = find_cached(own)
        own_mean = load_pca(cached).mean if cached is not None else None
        if own_mean is not None and own_mean.shape == M.pca_mean.shape:
            M = copy.deepcopy(M)
            M.pca_mean.copy_(own_mean)
            M.has_mean = True
    R = M.retarget(basis.components, basis.stdev, basis.mean)
    info = R.retargeted
    trained = f"'{M.image['image_name']}'" if M.image.get("image_name") else "another generator"
    note = (
        f"cross-domain: motion trained with {trained} re-expressed in the PCA basis of '{G.identity['name']}' "
        "(direction k -> direction k, scaled by its stdev)"
    )
    if info["w_dim"] != info["own_w_dim"]:
        note += (
            f"; its {info['own_w_dim']}-d first latent carried from the {info['w_dim']}-d w through PCA "
            "coordinates" + ("" if info["own_mean"] else " (the motion file has no PCA mean: taken as 0)")
        )
    if info["directions"] < info["n_pca"]:
        note += (
            f"; '{G.identity['name']}' has {info['target_directions']} directions, the motion "
            f"{info['n_pca']}: the last {info['n_pca'] - info['directions']} are dropped"
        )
    return R, note


__all__ = ["express", "find_cached", "load_pca", "pca_for", "save_pca"]
