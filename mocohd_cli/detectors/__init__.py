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

from .families import FAMILIES, build_detector, detector_config
from .i3d import I3D, I3DConfig
from .inception import InceptionConfig, InceptionV3

__all__ = ["FAMILIES", "I3D", "I3DConfig", "InceptionConfig", "InceptionV3", "build_detector", "detector_config"]
