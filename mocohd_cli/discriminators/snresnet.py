"""The cross-domain image discriminator: a BigGAN-style spectrally normalised
ResNet with a projection head (MoCoGAN-HD's D_I for cross-domain training).

    D = SNResNetDiscriminator(resolution=128)       # CHANNELS (96) base channels, PROJ_DIM (256)-d projections
    score, proj = D(x)                              # x: [B, 3, 128, 128] -> [B], [B, 256]
    proj = D(x, proj_only=True)

Residual blocks halve the resolution down to 4x4 (average pooling), then one
block at 4x4; channels grow x1, x2, x4, x8, (x8,) x16 of the base. The first
block convolves its input directly, the others start with a ReLU
(pre-activation); shortcuts are 1x1 convolutions where the shape changes.
Features are ReLU'd and summed over space, then a spectrally normalised
linear layer to ``proj_dim`` with ReLU gives ``h``: a linear layer on ``h``
scores the image (hinge loss), and a two-layer head on ``h`` gives the
projection used by the contrastive loss and by the generator's
feature-matching term. Every convolution and linear layer is spectrally
normalised and initialised orthogonally.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import UsageError

CHANNELS = 96  # base channels of MoCoGAN-HD's cross-domain D_I
PROJ_DIM = 256  # size of its projections (the contrastive loss, feature matching)


def _sn(module: nn.Module) -> nn.Module:
    nn.init.orthogonal_(module.weight)
    return spectral_norm(module, eps=1e-12)


def channel_multipliers(resolution: int) -> list[int]:
    """Output channels of each block, as multiples of the base: one block per
    halving down to 4x4, then a last block at 4x4 with 16x."""
    if resolution < 8 or resolution & (resolution - 1):
        raise UsageError(f"the image discriminator needs a power-of-two frame size >= 8, got {resolution}")
    downs = int(math.log2(resolution)) - 2
    grow = [1, 2, 4, 8, 16]
    mults = grow[:downs] if downs <= 5 else grow[:4] + [8] * (downs - 5) + [16]
    return mults + [16]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.conv1 = _sn(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = _sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.downsample, self.preactivation = downsample, preactivation
        self.shortcut = _sn(nn.Conv2d(cin, cout, 1)) if cin != cout or downsample else None

    def _skip(self, x):
        if self.preactivation:  # convolve at full size, then pool
            x = self.shortcut(x) if self.shortcut is not None else x
            return F.avg_pool2d(x, 2) if self.downsample else x
        x = F.avg_pool2d(x, 2) if self.downsample else x  # pool first: cheaper on the 3-channel input
        return self.shortcut(x) if self.shortcut is not None else x

    def forward(self, x):
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._skip(x)


class SNResNetDiscriminator(nn.Module):
    def __init__(self, resolution: int = 128, channels: int = CHANNELS, proj_dim: int = PROJ_DIM, in_channels: int = 3):
        super().__init__()
        mults = channel_multipliers(resolution)
        self.resolution = resolution
        blocks, cin = [], in_channels
        for i, m in enumerate(mults):
            blocks.append(ResBlock(cin, m * channels, downsample=i < len(mults) - 1, preactivation=i > 0))
            cin = m * channels
        self.blocks = nn.Sequential(*blocks)
        self.proj0 = _sn(nn.Linear(cin, proj_dim))
        self.linear = _sn(nn.Linear(proj_dim, 1))
        self.proj1 = _sn(nn.Linear(proj_dim, proj_dim))
        self.proj2 = _sn(nn.Linear(proj_dim, proj_dim))

    def forward(self, x: torch.Tensor, proj_only: bool = False):
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        h = F.relu(self.proj0(h))
        proj = self.proj2(F.relu(self.proj1(h)))
        if proj_only:
            return proj
        return self.linear(h).squeeze(1), proj
