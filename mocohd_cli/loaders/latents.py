"""Latents: the w's (and noise maps) that reproduce photos with an image generator.

    latent = invert(G, photos)                      # mocohd_cli.invert
    save_latent(latent, "me")                       # the store: latent/me.safetensors
    latent = load_latent("me")                      # a name or a path
    latent.ws                                       # [N, num_ws, w_dim] float32

A latent file (kind ``latent``, family ``<generator family>-w``:
``stylegan2-w``, ``stylegan3-w`` or ``biggan-deep-w``) holds ``ws`` [N,
num_ws, w_dim] (one w per synthesis layer: in space ``w`` all of a photo's
rows are equal; BigGAN has one w, its truncated-normal z) and, for StyleGAN2
when the noise maps were optimised too, ``noise.I`` [N, 1, r, r] per noise
map, in the generator's order; for BigGAN ``classes`` [N, c_dim], each
photo's class vector (a mix of classes summing to 1). StyleGAN3 has no noise
maps. Its config says the space, the count, the sizes (``resolution``
explicitly: StyleGAN3 has 16 w's at any size), the photos (file name, sha256)
and the distance each reached; its ``mocohd.image`` the generator it belongs
to (name, weights sha256): a latent means nothing with another generator.
Files written before StyleGAN3 and BigGAN latents existed are ``stylegan2-w``
files and read as they were.
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

FAMILY = checks.LATENT_FAMILY  # StyleGAN2's; FAMILIES: latent family -> generator family
FAMILIES = checks.LATENT_FAMILIES
GENERATORS = tuple(FAMILIES.values())
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
    generator: str = "stylegan2"  # the image generator's family: stylegan2, stylegan3 or biggan-deep
    resolution: int = 0  # its image size; 0: from the number of w's (StyleGAN2 only: 2 log2(R) - 2)
    classes: torch.Tensor | None = None  # BigGAN: each latent's class vector [N, c_dim] (a mix of classes)

    def __post_init__(self):
        if not torch.is_tensor(self.ws) or self.ws.ndim != 3 or not self.ws.is_floating_point():
            raise UsageError(f"ws must be a float tensor [N, num_ws, w_dim], got {_describe(self.ws)}")
        if self.space not in SPACES:
            raise UsageError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.generator not in GENERATORS:
            raise UsageError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        n = self.count
        for key in ("photos", "distance"):
            if getattr(self, key) and len(getattr(self, key)) != n:
                raise UsageError(f"{key} must have one entry per latent ({n}), got {len(getattr(self, key))}")
        if not self.resolution:
            if self.generator != "stylegan2":
                raise UsageError(f"give the resolution of a {self.generator} latent's generator")
            if self.num_ws < 2 or self.num_ws % 2:
                raise UsageError(f"{self.num_ws} w's per image is no StyleGAN2's (2 log2(resolution) - 2)")
            self.resolution = 2 ** ((self.num_ws + 2) // 2)
        r = self.resolution
        if isinstance(r, bool) or not isinstance(r, int) or not 4 <= r <= 4096 or r & (r - 1):
            raise UsageError(f"resolution must be a power of two in 4..4096, got {r!r}")
        if self.generator == "stylegan2" and self.num_ws != 2 * (r.bit_length() - 1) - 2:
            raise UsageError(f"{self.num_ws} w's per image is no {r} px StyleGAN2's (2 log2(resolution) - 2)")
        if self.noise is not None:
            if self.generator != "stylegan2":
                raise UsageError(f"a {self.generator} generator has no noise maps: noise must be None")
            sizes = checks.noise_resolutions(r)
            got = [tuple(t.shape) for t in self.noise]
            if got != [(n, 1, s, s) for s in sizes]:
                raise UsageError(f"noise must be {len(sizes)} maps [N, 1, r, r] of sizes {sizes}, got {got[:3]}...")
        if self.generator == "biggan-deep":
            c = self.classes
            if not torch.is_tensor(c) or c.ndim != 2 or c.shape[0] != n or not c.is_floating_point():
                raise UsageError(
                    f"a BigGAN latent needs classes, a float tensor [N, c_dim] with N = {n}, got {_describe(c)}"
                )
            if self.num_ws != 1 or self.space != "w":
                raise UsageError(f"a BigGAN latent is one w (space w), not {self.num_ws} (space {self.space})")
        elif self.classes is not None:
            raise UsageError(f"classes are for BigGAN latents; a {self.generator} latent has none")

    count = property(lambda self: int(self.ws.shape[0]))
    num_ws = property(lambda self: int(self.ws.shape[1]))
    w_dim = property(lambda self: int(self.ws.shape[2]))
    family = property(lambda self: f"{self.generator}-w")  # the latent file's family

    def of_videos(self, videos: int) -> torch.Tensor:
        """Which latent starts each of ``videos`` videos (video v: latent v % count) [videos]."""
        return torch.arange(videos) % self.count

    def config(self) -> dict:
        out = {
            **self.info,
            "space": self.space,
            "count": self.count,
            "num_ws": self.num_ws,
            "w_dim": self.w_dim,
            "resolution": self.resolution,
            "noise": self.noise is not None,
            "distance": [float(d) for d in self.distance],
            "photos": [dict(p) for p in self.photos],
        }
        if self.classes is not None:
            out["c_dim"] = int(self.classes.shape[1])
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"ws": self.ws.detach().float().cpu()}
        for i, t in enumerate(self.noise or []):
            out[f"noise.{i}"] = t.detach().float().cpu()
        if self.classes is not None:
            out["classes"] = self.classes.detach().float().cpu()
        return out


def check_latent(latent: Latent, G) -> None:
    """MocohdError unless ``latent`` was found with ``G``: its weights sha256 (when both know it),
    its family, the number and size of its w's, its resolution and (BigGAN) its class vector."""
    identity = getattr(G, "identity", None) or {}
    own, name, theirs = latent.image.get("image_sha256"), identity.get("name", "?"), identity.get("weights_sha256")
    if own and theirs and own != theirs:  # names can be equal (a retrained 'demo'): the hashes tell them apart
        raise MocohdError(
            f"the start latent belongs to the image generator '{latent.image.get('image_name', '?')}' "
            f"(weights {str(own)[:12]}), not to '{name}' (weights {str(theirs)[:12]}): invert the "
            "photo with this generator"
        )
    family = getattr(G, "family", "stylegan2")
    if latent.generator != family:
        raise MocohdError(
            f"the start latent is a {latent.generator} latent but '{name}' is a {family} generator: "
            "invert the photo with this generator"
        )
    if (latent.num_ws, latent.w_dim) != (G.num_ws, G.w_dim):
        raise MocohdError(
            f"the start latent has {latent.num_ws} w's of size {latent.w_dim}, the generator "
            f"{G.num_ws} of size {G.w_dim}"
        )
    if latent.resolution != G.resolution:
        raise MocohdError(
            f"the start latent is for a {latent.resolution} px generator, '{name}' makes {G.resolution} px images"
        )
    c_dim = getattr(G, "c_dim", 0)
    if c_dim and (latent.classes is None or latent.classes.shape[1] != c_dim):
        raise MocohdError(f"the start latent has no class vector of '{name}'s {c_dim} classes")


def concat_latents(latents: list[Latent]) -> Latent:
    """Several latents of one generator as one (their rows in order; space w+ if any is w+, noise
    maps only if all have them; photos and distances only if all know them)."""
    if len(latents) == 1:
        return latents[0]
    first = latents[0]
    shas = {x.image["image_sha256"] for x in latents if x.image.get("image_sha256")}
    for x in latents[1:]:
        if len(shas) > 1 or (x.generator, x.resolution, x.num_ws, x.w_dim) != (
            first.generator,
            first.resolution,
            first.num_ws,
            first.w_dim,
        ):
            raise MocohdError("the start latents belong to different image generators: give latents of one generator")
    noise = None
    if all(x.noise is not None for x in latents):
        noise = [torch.cat(maps) for maps in zip(*(x.noise for x in latents), strict=True)]
    classes = torch.cat([x.classes for x in latents]) if first.classes is not None else None
    found = {x.info.get("truncation") for x in latents}  # BigGAN: the truncation they were found at, if one
    return Latent(
        torch.cat([x.ws for x in latents]),
        noise,
        "w+" if any(x.space == "w+" for x in latents) else "w",
        next((dict(x.image) for x in latents if x.image.get("image_sha256")), dict(first.image)),
        [p for x in latents for p in x.photos] if all(x.photos for x in latents) else [],
        [d for x in latents for d in x.distance] if all(x.distance for x in latents) else [],
        {"truncation": found.pop()} if len(found) == 1 and None not in found else {},
        generator=first.generator,
        resolution=first.resolution,
        classes=classes,
    )


def _describe(t) -> str:
    return f"{tuple(t.shape)} {t.dtype}" if torch.is_tensor(t) else type(t).__name__


def latent_model(latent: Latent, source: dict | None = None) -> ConvertedModel:
    """The canonical-file view of a latent (for saving)."""
    config = latent.config()
    if not latent.distance:
        config.pop("distance")
    if not latent.photos:
        config.pop("photos")
    return ConvertedModel(
        "latent",
        latent.family,
        config,
        latent.tensors(),
        source or {"format": "mocohd"},
        image={k: v for k, v in latent.image.items() if k in canonical.IMAGE_KEYS},
    )


def from_model(model: ConvertedModel, origin: str = "") -> Latent:
    if model.kind != "latent":
        raise MocohdError(f"{origin}: is a {model.kind} model, expected a latent")
    checks.check_shapes(
        "latent", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    cfg = dict(model.config)
    n_noise = len(checks.noise_resolutions(cfg["resolution"])) if cfg.get("noise") else 0
    info = {
        k: v
        for k, v in cfg.items()
        if k not in ("space", "count", "num_ws", "w_dim", "resolution", "noise", "distance", "photos", "c_dim")
    }
    photos = cfg.get("photos") or []
    if not all(isinstance(p, dict) for p in photos):
        raise MocohdError(f"{origin}: damaged latent config: photos must be objects")
    try:
        distance = [float(d) for d in cfg.get("distance") or []]
    except (TypeError, ValueError) as e:
        raise MocohdError(f"{origin}: damaged latent config: distances must be numbers") from e
    return Latent(
        ws=model.tensors["ws"].float(),
        noise=[model.tensors[f"noise.{i}"].float() for i in range(n_noise)] if n_noise else None,
        space=cfg["space"],
        image=dict(model.image),
        photos=photos,
        distance=distance,
        info=info,
        generator=FAMILIES[model.family],
        resolution=cfg["resolution"],
        classes=model.tensors["classes"].float() if "classes" in model.tensors else None,
    )


def _destination(path_or_name: str | os.PathLike) -> Path:
    """A store name -> latent/NAME.safetensors in the store; anything that looks like a path -> that path."""
    s = str(path_or_name)
    if os.sep in s or "/" in s or s.endswith(canonical.SUFFIX) or Path(s).is_absolute():
        return Path(s).expanduser()
    return store.store_path("latent", store.check_name(s))


def save_latent(
    latent: Latent, path_or_name: str | os.PathLike, overwrite: bool = False, source: dict | None = None
) -> canonical.ModelHeader:
    """Write ``latent`` as a canonical file (atomically): under a store name (``me`` ->
    ``MOCOHD_HOME/latent/me.safetensors``) or at a path (``.../me.safetensors``). An existing
    file is replaced only with ``overwrite``. Returns the file's header."""
    dest = _destination(path_or_name)
    if dest.is_dir():
        raise MocohdError(f"{dest}: is a folder; give a file name ending in {canonical.SUFFIX} or a store name")
    if dest.exists() and not overwrite:
        what = (
            f"a latent named '{dest.stem}' already exists in the store"
            if dest.parent == store.kind_dir("latent")
            else f"{dest} already exists"
        )
        raise MocohdError(f"{what}: pick another name, or replace it (overwrite=True, --force)")
    m = latent_model(latent, source)
    checks.check_finite(m.tensors, dest)
    if dest.parent == store.kind_dir("latent"):
        store.kind_dir("latent", create=True)
    elif not dest.parent.is_dir():
        raise MocohdError(f"{dest}: the folder {dest.parent} does not exist")
    try:
        return canonical.save_model(
            dest, m.tensors, kind="latent", family=m.family, config=m.config, source=m.source, image=m.image
        )
    except OSError as e:
        raise MocohdError(f"cannot write {dest}: {e.strerror}") from e


def load_latent(name_or_path: str | os.PathLike) -> Latent:
    """A stored latent: a store name or a path; its shapes are checked against its config before
    its tensors are read, and its tensors against its recorded hash and for NaN/inf."""
    r = store.resolve(name_or_path, kind="latent")
    return from_model(read_any(r.path, kind="latent"), str(r.path))


def free_name(name: str) -> str:
    """``name`` if no stored latent has it, else the first of ``name-2``, ``name-3``, ... that none has."""
    candidate, k = store.check_name(name), 1
    while store.store_path("latent", candidate).exists():
        k += 1
        candidate = f"{name[: 127 - len(str(k))]}-{k}"
    return candidate


def default_name(photo: str | os.PathLike) -> str:
    """A store name for the latent of ``photo``: its file name without the extension, with
    anything but letters, digits, '.', '_' and '-' replaced by '-' ('photo' if nothing is left)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(photo).stem).strip("-._")[:128]
    return stem or "photo"


__all__ = [
    "FAMILIES",
    "FAMILY",
    "GENERATORS",
    "Latent",
    "SPACES",
    "check_latent",
    "concat_latents",
    "default_name",
    "free_name",
    "from_model",
    "latent_model",
    "load_latent",
    "save_latent",
]
