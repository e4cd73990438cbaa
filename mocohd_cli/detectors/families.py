"""The detector families by name: their config dataclasses and modules built from a config dict."""

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
