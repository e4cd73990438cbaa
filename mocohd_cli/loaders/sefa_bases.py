"""The SeFa directions of each image generator, cached in the store.

    basis, computed = sefa_for(G, layers=(0, 3))     # from the cache, or factorised and cached

A cached basis is a safetensors file under ``directions/`` in the store, named by a digest of
what it depends on: the generator's weights sha256, the w's factorised and the samples of its
stdev (``sefa.factorize``). A file that is unreadable, damaged or made for other inputs is
recomputed; a cache that cannot be written only costs the (closed-form, quick) factorisation
next time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from .. import store
from ..formats.canonical import atomic_write_bytes
from ..sefa import SAMPLES, SeFaBasis, check_layers, factorize

CACHE_VERSION = 1


def _key(G, layers: tuple[int, int], samples: int, seed: int) -> dict | None:
    """What a cached basis depends on; None for a generator without a weights sha256 (not cached)."""
    sha = (getattr(G, "identity", None) or {}).get("weights_sha256")
    if not sha:
        return None
    return {
        "method": "sefa",
        "version": CACHE_VERSION,
        "image_sha256": sha,
        "layers": list(layers),
        "samples": samples,
        "seed": seed,
    }


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return store.kind_dir("directions") / f"sefa-{digest}.safetensors"


def _read_cached(path: Path, key: dict, w_dim: int) -> SeFaBasis | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if json.loads(meta.get("mocohd.directions_key", "null")) != key:
                return None
            t = {name: f.get_tensor(name).float() for name in ("components", "eigenvalues", "stdev")}
        basis = SeFaBasis(t["components"], t["eigenvalues"], t["stdev"], tuple(key["layers"]), json.loads(meta["info"]))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):  # damaged or foreign: recompute
        return None
    if basis.w_dim != w_dim or not all(bool(torch.isfinite(v).all()) for v in t.values()):
        return None
    return basis


def _write_cached(path: Path, key: dict, basis: SeFaBasis, image_name: str) -> None:
    data = st_save(
        {"components": basis.components, "eigenvalues": basis.eigenvalues, "stdev": basis.stdev},
        metadata={
            "mocohd.directions_key": json.dumps(key, sort_keys=True),
            "info": json.dumps(basis.info, sort_keys=True),
            "image_name": image_name,
        },
    )
    try:
        atomic_write_bytes(path, data)
    except OSError:  # a cache that cannot be written only costs time next run
        pass


def sefa_for(G, layers: tuple[int, int], *, samples: int = SAMPLES, seed: int = 0) -> tuple[SeFaBasis, bool]:
    """The SeFa basis of G's w's ``layers`` (first, last; inclusive): from the store's cache, or
    factorised (``sefa.factorize``) and cached when G has an identity (a loaded generator).
    Returns (basis, computed)."""
    layers = check_layers(layers, G.num_ws)
    key = _key(G, layers, samples, seed)
    if key is not None:
        cached = _read_cached(cache_path(key), key, G.w_dim)
        if cached is not None:
            return cached, False
    basis = factorize(G, layers, samples=samples, seed=seed)
    if key is not None:
        _write_cached(cache_path(key), key, basis, str(G.identity.get("name", "")))
    return basis, True


__all__ = ["cache_path", "sefa_for"]
