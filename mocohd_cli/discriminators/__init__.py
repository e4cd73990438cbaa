"""Discriminators of motion training: the video discriminator D_V (both
domains) and, in later modules, the image discriminators D_I."""

from .video import MultiscaleVideoDiscriminator, PatchDiscriminator3d

__all__ = ["MultiscaleVideoDiscriminator", "PatchDiscriminator3d"]
