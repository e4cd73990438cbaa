"""The generator families by name: ``build_generator(family, config)``, and the
extra synthesis arguments of a class-conditional one (``synthesis_kwargs``)."""

from __future__ import annotations

from ..errors import MocohdError, UsageError
from .biggan import BigGANConfig, BigGANGenerator
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator
from .stylegan3 import StyleGAN3Config, StyleGAN3Generator

FAMILIES = {
    "stylegan2": (StyleGAN2Config, StyleGAN2Generator),
    "stylegan3": (StyleGAN3Config, StyleGAN3Generator),
    "biggan-deep": (BigGANConfig, BigGANGenerator),
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


def synthesis_kwargs(G, c=None, truncation: float = 1.0) -> dict:
    """The extra arguments of ``G.synthesis``: none for an unconditional generator;
    the class vectors ``c`` [B, c_dim] and the truncation for a conditional one."""
    if not getattr(G, "c_dim", 0):
        return {}
    if c is None:
        raise UsageError(f"the {G.family} generator is class-conditional: give a class")
    return {"c": c, "truncation": truncation}
