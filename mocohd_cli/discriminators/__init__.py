"""Discriminators of motion training: the video discriminator D_V (both
domains), the in-domain image discriminator D_I (multi-scale PatchGANs), and
the cross-domain D_I (an SN-ResNet with a projection head, its EMA copy and
contrastive queue)."""

from .contrastive import ContrastiveDiscriminator, info_nce
from .patchgan import (
    MultiscaleImageDiscriminator,
    MultiscalePatchDiscriminator,
    MultiscaleVideoDiscriminator,
    PatchDiscriminator,
    shortest_clip,
)
from .snresnet import SNResNetDiscriminator

__all__ = [
    "ContrastiveDiscriminator",
    "MultiscaleImageDiscriminator",
    "MultiscalePatchDiscriminator",
    "MultiscaleVideoDiscriminator",
    "PatchDiscriminator",
    "SNResNetDiscriminator",
    "info_nce",
    "shortest_clip",
]
