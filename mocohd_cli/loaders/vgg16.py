"""The VGG16 of the perceptual distance, by name: ``load_vgg16()``.

``mocohd fetch vgg16`` converts timm's ``vgg16.tv_in1k`` (torchvision's ImageNet
weights) into the store once (``mocohd import vgg16-397923af.pth --name vgg16``
does the same from torchvision's own file); from then on it is read from
there, its weights hash checked on every load.
"""

from __future__ import annotations

import os

import torch

from .. import store
from ..errors import MocohdError
from ..formats import ConvertedModel, canonical, checks, read_any
from ..perceptual import VGG16, VGG16Config
from ..runtime import pick_device

MISSING = (
    "the perceptual loss needs VGG16 weights, which are not in the store: run `mocohd fetch vgg16` "
    "(or `mocohd import vgg16-397923af.pth --name vgg16`), or use the pixel loss (--loss pixel)"
)


def build_vgg16(model: ConvertedModel, origin: str = "") -> VGG16:
    if model.kind != "vgg16":
        raise MocohdError(f"{origin}: is a {model.kind} model, expected VGG16 weights")
    checks.check_shapes(
        "vgg16", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    net = VGG16(VGG16Config.from_dict(model.config))
    checks.load_weights(net, model.tensors, "VGG16", origin)
    return net


def load_vgg16(name_or_path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> VGG16:
    """VGG16 in eval mode, frozen, on ``device``: the store's ``vgg16`` by default, or a name or a
    file (a torchvision .pth or timm's safetensors is converted in memory). ``net.identity``
    holds its name and weights sha256."""
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    name = "vgg16" if name_or_path is None else name_or_path
    try:
        r = store.resolve(name, kind="vgg16")
    except MocohdError as e:
        if name_or_path is None:
            raise MocohdError(MISSING) from e
        raise
    model = read_any(r.path, kind="vgg16")
    net = build_vgg16(model, str(r.path))
    net.identity = {"name": r.name, "weights_sha256": model.weights_sha256 or canonical.weights_sha256(model.tensors)}
    net.source = dict(model.source)
    net.requires_grad_(False)
    return net.eval().to(device)


def have_vgg16() -> bool:
    """Whether ``load_vgg16()`` would find weights (without reading them)."""
    try:
        store.resolve("vgg16", kind="vgg16")
    except MocohdError:
        return False
    return True


__all__ = ["MISSING", "build_vgg16", "have_vgg16", "load_vgg16"]
