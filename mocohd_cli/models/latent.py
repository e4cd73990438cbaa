"""Latents: the w's (and noise maps) that reproduce photos with an image generator.

    latent = invert(G, photos)                      # mocohd_cli.invert
    save_latent(latent, "me")                       # the store: latent/me.safetensors
    latent = load_latent("me")                      # a name or a path
    latent.ws                                       # [N, num_ws, w_dim] float32

A latent file (kind ``latent``, family ``stylegan2-w``) holds ``ws`` [N,
num_ws, w_dim] (one w per synthesis layer: in space ``w`` all of a photo's
rows are equal) and, when the noise maps were optimised too, ``noise.I`` [N,
1, r, r] per noise map, in the generator's order. Its config says the space,
the count, the sizes, the photos (file name, sha256) and the distance each
reached; its ``mocohd.image`` the generator it belongs to (name, weights
sha256): a latent means nothing with another generator.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import store
from ..errors import MocohdError, UsageError
from ..formats import ConvertedModel, canonical, checks, read_any

FAMILY = checks.LATENT_FAMILY
SPACES = checks.LATENT_SPACES


@dataclass
class Latent:
    """What ``invert`` found for N photos (see the module docstring)."""

    ws: torch.Tensor  # [N, num_ws, w_dim] float32
    noise: list[torch.Tensor] | None = None  # per noise map [N, 1, r, r], the generator's order; None: none
    space: str = "w"  # 'w': one w for every layer; 'w+': one per layer
    image: dict = field(default_factory=dict)  # the generator: image_name, image_sha256
    photos: list[dict] = field(default_factory=list)  # per latent: {file, sha256}
    distance: list[float] = field(default_factory=list)  # per latent: the distance to its photo
    info: dict = field(default_factory=dict)  # how it was found: loss, steps, seed, lr, stopped, ...

    def __post_init__(self):
        if not torch.is_tensor(self.ws) or self.ws.ndim != 3 or not self.ws.is_floating_point():
            raise UsageError(f"ws must be a float tensor [N, num_ws, w_dim], got {_describe(self.ws)}")
        if self.space not in SPACES:
            raise UsageError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        n = self.count
        for key in ("photos", "distance"):
            if getattr(self, key) and len(getattr(self, key)) != n:
                raise UsageError(f"{key} must have one entry per latent ({n}), got {len(getattr(self, key))}")
        if self.noise is not None:
            sizes = checks.noise_resolutions(self.resolution)
            got = [tuple(t.shape) for t in self.noise]
            if got != [(n, 1, r, r) for r in sizes]:
                raise UsageError(f"noise must be {len(sizes)} maps [N, 1, r, r] of sizes {sizes}, got {got[:3]}...")

    count = property(lambda self: int(self.ws.shape[0]))
    num_ws = property(lambda self: int(self.ws.shape[1]))
    w_dim = property(lambda self: int(self.ws.shape[2]))

    @property
    def resolution(self) -> int:
        """The generator's image size, from the number of w's (StyleGAN2: 2 log2(R) - 2)."""
        r = 2 ** ((self.num_ws + 2) // 2)
        if self.num_ws < 2 or self.num_ws % 2:
            raise UsageError(f"{self.num_ws} w's per image is no StyleGAN2's (2 log2(resolution) - 2)")
        return r

    def config(self) -> dict:
        return {**self.info, "space": self.space, "count": self.count, "num_ws": self.num_ws, "w_dim": self.w_dim,
                "resolution": self.resolution, "noise": self.noise is not None,
                "distance": [float(d) for d in self.distance], "photos": [dict(p) for p in self.photos]}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"ws": self.ws.detach().float().cpu()}
        for i, t in enumerate(self.noise or []):
            out[f"noise.{i}"] = t.detach().float().cpu()
        return out


def _describe(t) -> str:
    return f"{tuple(t.shape)} {t.dtype}" if torch.is_tensor(t) else type(t).__name__


def latent_model(latent: Latent, source: dict | None = None) -> ConvertedModel:
    """The canonical-file view of a latent (for saving)."""
    config = latent.config()
    if not latent.distance:
        config.pop("distance")
    if not latent.photos:
        config.pop("photos")
    return ConvertedModel("latent", FAMILY, config, latent.tensors(), source or {"format": "mocohd"},
                          image={k: v for k, v in latent.image.items() if k in canonical.IMAGE_KEYS})


def from_model(model: ConvertedModel, origin: str = "") -> Latent:
    if model.kind != "latent":
        raise MocohdError(f"{origin}: is a {model.kind} model, expected a latent")
    checks.check_shapes("latent", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()},
                        origin)
    cfg = dict(model.config)
    n_noise = len(checks.noise_resolutions(cfg["resolution"])) if cfg.get("noise") else 0
    info = {k: v for k, v in cfg.items()
            if k not in ("space", "count", "num_ws", "w_dim", "resolution", "noise", "distance", "photos")}
    photos = cfg.get("photos") or []
    if not all(isinstance(p, dict) for p in photos):
        raise MocohdError(f"{origin}: damaged latent config: photos must be objects")
    try:
        distance = [float(d) for d in cfg.get("distance") or []]
    except (TypeError, ValueError) as e:
        raise MocohdError(f"{origin}: damaged latent config: distances must be numbers") from e
    return Latent(ws=model.tensors["ws"].float(),
                  noise=[model.tensors[f"noise.{i}"].float() for i in range(n_noise)] if n_noise else None,
                  space=cfg["space"], image=dict(model.image), photos=photos, distance=distance, info=info)


def _destination(path_or_name: str | os.PathLike) -> Path:
    """A store name -> latent/NAME.safetensors in the store; anything that looks like a path -> that path."""
    s = str(path_or_name)
    if os.sep in s or "/" in s or s.endswith(canonical.SUFFIX) or Path(s).is_absolute():
        return Path(s).expanduser()
    return store.store_path("latent", store.check_name(s))


def save_latent(latent: Latent, path_or_name: str | os.PathLike, overwrite: bool = False,
                source: dict | None = None) -> canonical.ModelHeader:
    """Write ``latent`` as a canonical file (atomically): under a store name (``me`` ->
    ``MOCOHD_HOME/latent/me.safetensors``) or at a path (``.../me.safetensors``). An existing
    file is replaced only with ``overwrite``. Returns the file's header."""
    dest = _destination(path_or_name)
    if dest.is_dir():
        raise MocohdError(f"{dest}: is a folder; give a file name ending in {canonical.SUFFIX} or a store name")
    if dest.exists() and not overwrite:
        what = f"a latent named '{dest.stem}' already exists in the store" if dest.parent == store.kind_dir("latent") \
            else f"{dest} already exists"
        raise MocohdError(f"{what}: pick another name, or replace it (overwrite=True, --force)")
    m = latent_model(latent, source)
    checks.check_finite(m.tensors, dest)
    if dest.parent == store.kind_dir("latent"):
        store.kind_dir("latent", create=True)
    elif not dest.parent.is_dir():
        raise MocohdError(f"{dest}: the folder {dest.parent} does not exist")
    try:
        return canonical.save_model(dest, m.tensors, kind="latent", family=FAMILY, config=m.config, source=m.source,
                                    image=m.image)
    except OSError as e:
        raise MocohdError(f"cannot write {dest}: {e.strerror}") from e


def load_latent(name_or_path: str | os.PathLike) -> Latent:
    """A stored latent: a store name or a path; its shapes are checked against its config before
    its tensors are read, and its tensors against its recorded hash and for NaN/inf."""
    r = store.resolve(name_or_path, kind="latent")
    return from_model(read_any(r.path, kind="latent"), str(r.path))


def default_name(photo: str | os.PathLike) -> str:
    """A store name for the latent of ``photo``: its file name without the extension, with
    anything but letters, digits, '.', '_' and '-' replaced by '-' ('photo' if nothing is left)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(photo).stem).strip("-._")[:128]
    return stem or "photo"


__all__ = ["FAMILY", "Latent", "SPACES", "default_name", "from_model", "latent_model", "load_latent", "save_latent"]
