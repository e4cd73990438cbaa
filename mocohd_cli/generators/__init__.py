"""Image generator families. Each family is a config dataclass plus an nn.Module
that exposes ``z_dim``, ``w_dim``, ``c_dim`` (0: unconditional; else the size of
the class vector), ``resolution``, ``num_ws``, ``mapping(z)`` and
``synthesis(w, noise=...)``; a conditional one's synthesis also takes ``c``
and ``truncation`` (``synthesis_kwargs`` builds them). StyleGAN2 and StyleGAN3
share their mapping network and skeleton (``base``)."""

from .biggan import BigGANConfig, BigGANGenerator
from .families import FAMILIES, build_generator, synthesis_kwargs
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator
from .stylegan3 import StyleGAN3Config, StyleGAN3Generator

__all__ = [
    "FAMILIES",
    "BigGANConfig",
    "BigGANGenerator",
    "StyleGAN2Config",
    "StyleGAN2Generator",
    "StyleGAN3Config",
    "StyleGAN3Generator",
    "build_generator",
    "synthesis_kwargs",
]
