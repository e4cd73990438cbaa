"""Discriminators of motion training: the video discriminator D_V (both
domains) and the in-domain image discriminator D_I (multi-scale PatchGANs)."""

from .patchgan import (MultiscaleImageDiscriminator, MultiscalePatchDiscriminator, MultiscaleVideoDiscriminator,
                       PatchDiscriminator)

__all__ = ["MultiscaleImageDiscriminator", "MultiscalePatchDiscriminator", "MultiscaleVideoDiscriminator",
           "PatchDiscriminator"]
