"""StyleGAN2's residual discriminator (the image discriminator of ``mocohd
train-image``).

    D = StyleGAN2Discriminator(resolution=64, channel_base=4096, channel_max=256)
    logits = D(images)                       # [B, 3, R, R] in [-1, 1] -> [B]

From RGB (1x1 conv) at full resolution, then one residual block per halving
down to 4x4: two 3x3 convolutions, the second after a [1, 3, 3, 1] blur and
with stride 2, plus a blurred, strided 1x1 skip, summed with gain sqrt(1/2).
At 4x4: the minibatch standard deviation (groups of up to 4, one feature
map), a 3x3 convolution, a fully connected layer and the output logit.
Every layer has an equalised learning rate (weights scaled by 1/sqrt(fan-in)
at run time) and leaky ReLU (0.2) with gain sqrt(2). Channels at resolution
r: min(channel_base / r, channel_max), as in the generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..errors import UsageError

_GAIN = math.sqrt(2.0)


class EqConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, k: int, bias: bool = True, stride: int = 1, pad: int | None = None, act: bool = True
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * k * k)
        self.stride, self.pad, self.act = stride, (k // 2 if pad is None else pad), act

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.pad)
        return F.leaky_relu(x, 0.2) * _GAIN if self.act else x


class EqLinear(nn.Module):
    def __init__(self, cin: int, cout: int, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.act = 1 / math.sqrt(cin), act

    def forward(self, x):
        x = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(x, 0.2) * _GAIN if self.act else x


def blur(x: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Depthwise [1, 3, 3, 1] (outer product, sum 1) low-pass with (before, after) padding."""
    k = ops.fir_filter_2d(x.device, x.dtype)  # cached: no host-to-device copy per call
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, k.expand(c, 1, 4, 4), groups=c)


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqConv(cin, cin, 3)
        self.conv1 = EqConv(cin, cout, 3, stride=2, pad=0)
        self.skip = EqConv(cin, cout, 1, bias=False, stride=2, pad=0, act=False)

    def forward(self, x):
        y = self.skip(blur(x, (1, 1)))
        x = self.conv1(blur(self.conv0(x), (2, 2)))
        return (x + y) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    def __init__(
        self,
        resolution: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        img_channels: int = 3,
        mbstd_group: int = 4,
    ):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise UsageError(f"the discriminator needs a power-of-two resolution >= 4, got {resolution}")
        ch = lambda r: min(channel_base // r, channel_max)  # noqa: E731
        self.resolution, self.mbstd_group = resolution, mbstd_group
        self.from_rgb = EqConv(img_channels, ch(resolution), 1)
        blocks, r = [], resolution
        while r > 4:
            blocks.append(DBlock(ch(r), ch(r // 2)))
            r //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = ch(4)
        self.conv = EqConv(c4 + 1, c4, 3)
        self.fc = EqLinear(c4 * 16, c4)
        self.out = EqLinear(c4, 1, act=False)

    def minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.mbstd_group, b)
        while b % g:
            g -= 1
        y = x.reshape(g, -1, c, h, w)  # [G, B/G, C, H, W]: sample i is in group i % (B/G)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # std over the group
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # one value per group
        return torch.cat([x, y], dim=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(img))
        x = self.conv(self.minibatch_std(x))
        return self.out(self.fc(x.flatten(1))).squeeze(1)
