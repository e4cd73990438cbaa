"""VGG16 weights (the perceptual distance of ``invert``) to our ``perceptual.VGG16``.

Two layouts hold the 13 convolutions under the same names:

    torchvision ``vgg16()`` state dict (``vgg16-397923af.pth``, read with weights_only):
        features.0.weight [64, 3, 3, 3], features.0.bias [64], features.2.*, ..., features.28.*
        classifier.0 / 3 / 6 .weight / .bias        -> ignored (the ImageNet classifier)
    timm ``vgg16.tv_in1k`` (``model.safetensors`` on the Hub; torchvision's weights):
        features.N.weight / bias as above
        pre_logits.fc1 / fc2, head.fc .weight / .bias -> ignored (timm's classifier; never read)

The convolutions sit at features.0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28
(``perceptual.CONV_INDICES``); the channel widths are read off the shapes. A
batch-norm VGG (``vgg16_bn``: features.1.running_mean, ...) is refused.
"""

from __future__ import annotations

import re

import torch

from ..errors import MocohdError
from ..perceptual import CONV_INDICES, STAGES, VGG16Config
from .checks import brief, check_real

FORMAT_TORCHVISION = "torchvision-vgg16"
FORMAT_TIMM = "timm-vgg16"
IGNORED = ("classifier.", "pre_logits.", "head.")
_FEATURE = re.compile(r"features\.(\d+)\.(weight|bias)")


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def is_vgg(keys) -> bool:
    """Whether the tensor names are those of a (torchvision or timm) VGG: the first convolution
    and nothing but ``features.*`` and the classifiers."""
    keys = [_strip(str(k)) for k in keys]
    return "features.0.weight" in keys and all(k.startswith(("features.", *IGNORED)) for k in keys)


def wanted(keys) -> list[str]:
    """The names of ``keys`` to read (the features; the classifiers are skipped unread)."""
    return [k for k in keys if _strip(str(k)).startswith("features.")]


def convert(sd: dict, origin) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, float32 tensors in our names, notes) of a VGG16 state dict, or a one-line
    MocohdError naming ``origin`` and the first tensor that does not fit."""
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not is_vgg(sd.keys()):
        raise MocohdError(f"{origin}: not a VGG16 state dict (expected features.0.weight, ... features.28.bias)")
    feats = {}
    for k, v in sd.items():
        name = _strip(str(k))
        if name.startswith(IGNORED):
            continue
        m = _FEATURE.fullmatch(name)
        if m is None or not isinstance(v, torch.Tensor):
            raise MocohdError(
                f"{origin}: unexpected entry {name} in a VGG16 state dict "
                "(a batch-norm VGG? only plain VGG16 is supported)"
            )
        if int(m.group(1)) not in CONV_INDICES:
            raise MocohdError(
                f"{origin}: tensor {name} is not one of VGG16's convolutions (a batch-norm VGG or "
                "another depth? only plain VGG16 is supported)"
            )
        check_real(name, v, origin)
        feats[name] = v
    try:
        w0 = [feats[f"features.{CONV_INDICES[sum(STAGES[:s])]}.weight"].shape[0] for s in range(len(STAGES))]
        cfg = VGG16Config(widths=tuple(int(w) for w in w0))
    except KeyError as e:
        raise MocohdError(f"{origin}: a VGG16 state dict without {e.args[0]} (another VGG depth?)") from e
    except ValueError as e:
        raise MocohdError(f"{origin}: unusual VGG16 widths: {brief(e)}") from e
    expected = cfg.state_shapes()
    missing = sorted(set(expected) - set(feats), key=_order)
    if missing:
        raise MocohdError(f"{origin}: a VGG16 state dict without {missing[0]} (another VGG depth?)")
    for name in sorted(expected, key=_order):
        if tuple(feats[name].shape) != expected[name]:
            raise MocohdError(f"{origin}: {name} is {list(feats[name].shape)}, VGG16 needs {list(expected[name])}")
    tensors = {k: feats[k].detach().to(torch.float32).contiguous() for k in sorted(expected, key=_order)}
    return cfg.to_dict(), tensors, {}


def _order(name: str) -> tuple[int, str]:
    m = _FEATURE.fullmatch(name)
    return (int(m.group(1)) if m else 1 << 30, name)


__all__ = ["FORMAT_TIMM", "FORMAT_TORCHVISION", "convert", "is_vgg", "wanted"]
