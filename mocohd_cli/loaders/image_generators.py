"""Image generators by name: ``load_image_generator("ffhq")`` (a store or registry
name, a canonical file, or an original checkpoint converted in memory) and their
identity (name + weights sha256), which motion models, PCA bases and latents
record to say which generator they belong to.

What a generator's images show, where a command treats it differently (``depicts``:
"faces", and ``invert`` aligns photos as FFHQ's by default), is what its file's
provenance says (``mocohd.source`` "depicts", which ``fetch`` copies from the
registry), else what the registry says of the Hub file it came from; else nothing.
"""

from __future__ import annotations

import os

import torch

from .. import store
from ..errors import MocohdError, a
from ..formats import ConvertedModel, canonical, checks, read_any
from ..generators import build_generator
from ..runtime import pick_device, tune_allocator


def build_image_generator(model: ConvertedModel, origin: str):
    if model.kind != "image":
        raise MocohdError(f"{origin}: is {a(model.kind)} model, expected an image generator")
    # The config's tensor shapes, computed without building anything, must be the
    # file's: a config that lies about its sizes is refused before it allocates.
    checks.check_shapes(
        "image", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    g = build_generator(model.family, model.config)
    checks.load_weights(g, model.tensors, model.family, origin)
    return g


def identity(name: str, model: ConvertedModel) -> dict:
    """Name and weights sha256 of a model: the hash of its tensors (a canonical
    file's recorded hash was checked against them when it was read)."""
    return {"name": name, "weights_sha256": model.weights_sha256 or canonical.weights_sha256(model.tensors)}


def depicts(source: dict) -> str | None:
    """What the images of a generator of provenance ``source`` show ("faces"), or None when
    nothing says: its own "depicts", else the registry entry of the Hub file it came from."""
    said = source.get("depicts")
    if isinstance(said, str) and said:
        return said
    where = (source.get("repo"), source.get("file"))
    for e in store.registry():
        if e.kind == "image" and e.depicts and e.repo_id and (e.repo_id, e.filename) == where:
            return e.depicts
    return None


def image_identity(name_or_path: str | os.PathLike) -> dict:
    """{'name', 'weights_sha256', 'w_dim'} of an image generator, without building it
    (its file is read and verified: about 0.6 ms per MB)."""
    r = store.resolve(name_or_path, kind="image")
    model = read_any(r.path, kind="image")
    return {**identity(r.name, model), "w_dim": model.config.get("w_dim")}


def load_image_generator(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """An image generator in eval mode, parameters frozen, on ``device``
    ("auto": CUDA, then MPS, then CPU). ``G.source`` holds its provenance,
    ``G.identity`` its name and weights sha256, and ``G.depicts`` what its images
    show where that is known ("faces"; else None).

    Accepts a store/registry name, a canonical ``.safetensors`` file, or an
    original checkpoint (rosinality ``.pt``, NVIDIA ``.pkl``) converted in memory.
    """
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    if device.type == "cpu":
        tune_allocator()
    r = store.resolve(name_or_path, kind="image")
    model = read_any(r.path, kind="image")
    g = build_image_generator(model, str(r.path))
    g.source = model.source
    g.identity = identity(r.name, model)
    g.depicts = depicts(model.source)
    g.requires_grad_(False)
    return g.eval().to(device)
