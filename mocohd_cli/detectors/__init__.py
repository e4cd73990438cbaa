"""The feature detectors that metrics compare videos and frames with.

- ``i3d``: the Kinetics-400 Inception-I3D of the FVD papers (Carreira and
  Zisserman 2017; the TF-Hub weights that StyleGAN-V's ``i3d_torchscript.pt``
  holds): float videos [B, 3, T, H, W] in [-1, 1] -> 400 logits averaged over time.
- ``inception``: the Inception-v3 of FID (pytorch-fid's FID variant of the
  2015-12-05 TF graph): float images [B, 3, H, W] in [-1, 1] -> 2048 pool features.

Each family is a config dataclass (``from_dict``, ``to_dict``, ``state_shapes``)
and an ``nn.Module`` built from it; batch norm is folded into the convolutions
when a file is converted, so the modules hold convolutions and biases only.
"""

from __future__ import annotations

from ..errors import MocohdError
from .i3d import I3D, I3DConfig
from .inception import InceptionConfig, InceptionV3

FAMILIES = {
    "i3d": (I3DConfig, I3D),
    "inception": (InceptionConfig, InceptionV3),
}


def detector_config(family: str, config: dict):
    """The config dataclass of ``family`` from its dict; ``MocohdError`` when it does not fit."""
    if family not in FAMILIES:
        raise MocohdError(f"unknown detector family {family!r} (known: {', '.join(FAMILIES)})")
    try:
        return FAMILIES[family][0].from_dict(config)
    except (TypeError, ValueError, KeyError) as e:
        raise MocohdError(f"invalid {family} config: {e}") from e


def build_detector(family: str, config: dict):
    """A detector of ``family`` with uninitialised weights, built from its config dict."""
    return FAMILIES[family][1](detector_config(family, config))


__all__ = ["FAMILIES", "I3D", "I3DConfig", "InceptionConfig", "InceptionV3", "build_detector", "detector_config"]
