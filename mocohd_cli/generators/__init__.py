"""Image generator families. Each family is a config dataclass plus an nn.Module
that exposes ``z_dim``, ``w_dim``, ``resolution``, ``num_ws``, ``mapping(z)``
and ``synthesis(w, noise_mode=...)``."""

from __future__ import annotations

from ..errors import MocohdError
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator

FAMILIES = {
    "stylegan2": (StyleGAN2Config, StyleGAN2Generator),
}


def build_generator(family: str, config: dict):
    """Instantiate a randomly initialised generator of ``family`` from its config dict."""
    if family not in FAMILIES:
        raise MocohdError(f"unknown image generator family {family!r} (known: {', '.join(FAMILIES)})")
    config_cls, module_cls = FAMILIES[family]
    try:
        cfg = config_cls.from_dict(config)
    except (TypeError, ValueError) as e:
        raise MocohdError(f"invalid {family} config: {e}") from e
    return module_cls(cfg)


__all__ = ["FAMILIES", "StyleGAN2Config", "StyleGAN2Generator", "build_generator"]
