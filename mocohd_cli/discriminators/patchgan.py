"""Multi-scale PatchGAN discriminators (MoCoGAN-HD, after pix2pixHD), in 3D for
videos (D_V) and in 2D for the in-domain image discriminator (D_I on frame pairs).

Each scale is a stack of convolutions (kernel 4, padding 2): a stride-2 conv
with leaky ReLU, ``n_layers - 1`` stride-2 convs with instance norm, one
stride-1 conv with instance norm, and a stride-1 conv to one channel of
patch scores. Every layer's output is returned (the intermediate features),
the last one being the scores. Scale k sees the input average-pooled k times
(kernel 3, stride 2; a video is pooled in time too only when longer than 16
frames). Official defaults: 64 base channels (capped at 64 for the first
layer), 3 layers, 2 scales, affine-free instance norm with running
statistics, conv weights ~ N(0, 0.02).

    D_V = MultiscaleVideoDiscriminator(in_channels=3, n_frames=16)   # cross-domain: clips
    D_V = MultiscaleVideoDiscriminator(in_channels=6, n_frames=15)   # in-domain: (frame 1, frame t) pairs
    D_I = MultiscaleImageDiscriminator(in_channels=6)                # in-domain: (frame 1, frame t) pairs
    feats = D_V(x)      # x: [B, C, T, H, W]; feats[s][l]: layer l of scale s (full resolution first)
    scores = [f[-1] for f in feats]
    shortest_clip()     # 3: the fewest frames D_V takes (its pooling between scales needs 3)
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn

BASE_CHANNELS = 64  # the official D_V (and in-domain D_I) width

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """x [B, C, ...] with one more channel: the standard deviation of the features over groups of
    ``group`` samples (sample i in group i mod B/group, as StyleGAN's layer; the group shrinks to
    divide the batch), averaged over channels and positions, the same for every member of a group.
    It lets a discriminator see the variety of a batch, which a per-sample one cannot: fakes
    that all move alike (one movement where the real clips have several) score as fakes."""
    b = x.shape[0]
    g = min(group, b)
    while b % g:  # the largest group size <= group dividing the batch
        g -= 1
    y = x.float().reshape(g, b // g, *x.shape[1:])  # sample i is in group i % (b // g)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [B/g, C, ...]
    y = y.mean(dim=tuple(range(1, y.ndim)))  # [B/g]
    y = y.repeat(g).reshape(b, *([1] * (x.ndim - 1))).expand(b, 1, *x.shape[2:])
    return torch.cat([x, y.to(x.dtype)], dim=1)


class PatchDiscriminator(nn.Module):
    def __init__(
        self, dims: int, in_channels: int, base_channels: int = BASE_CHANNELS, n_layers: int = 3, mbstd_group: int = 0
    ):
        super().__init__()
        self.mbstd_group = mbstd_group  # > 0: a minibatch-stddev channel before the stride-1 layers
        conv, k, pad = _CONV[dims], 4, int(math.ceil((4 - 1) / 2))

        def norm(ch):
            return _NORM[dims](ch, affine=False, track_running_stats=True)

        layers = [nn.Sequential(conv(in_channels, base_channels, k, stride=2, padding=pad), nn.LeakyReLU(0.2, True))]
        ch = base_channels
        for _ in range(1, n_layers):
            prev, ch = ch, min(ch * 2, 512)
            layers.append(nn.Sequential(conv(prev, ch, k, stride=2, padding=pad), norm(ch), nn.LeakyReLU(0.2, True)))
        prev, ch = ch, min(ch * 2, 512)
        prev += mbstd_group > 0
        layers.append(nn.Sequential(conv(prev, ch, k, stride=1, padding=pad), norm(ch), nn.LeakyReLU(0.2, True)))
        layers.append(nn.Sequential(conv(ch, 1, k, stride=1, padding=pad)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # features, scores last
        feats = []
        for i, layer in enumerate(self.layers):
            if self.mbstd_group and i == len(self.layers) - 2:
                x = minibatch_stddev(x, self.mbstd_group)
            x = layer(x)
            feats.append(x)
        return feats


class MultiscalePatchDiscriminator(nn.Module):
    def __init__(
        self,
        dims: int,
        in_channels: int,
        base_channels: int = BASE_CHANNELS,
        n_layers: int = 3,
        num_scales: int = 2,
        max_first_channels: int = 64,
        pool_stride=2,
        mbstd_group: int = 0,
    ):
        super().__init__()
        # scale s (0 = full resolution) gets min(64, base * 2^s) first-layer channels, as the official model
        self.scales = nn.ModuleList(
            PatchDiscriminator(dims, in_channels, min(max_first_channels, base_channels * 2**s), n_layers, mbstd_group)
            for s in range(num_scales)
        )
        self.downsample = _POOL[dims](3, stride=pool_stride, padding=1, count_include_pad=False)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for s, D in enumerate(self.scales):
            if s:
                x = self.downsample(x)
            out.append(D(x))
        return out


class MultiscaleVideoDiscriminator(MultiscalePatchDiscriminator):
    """D_V on clips [B, C, T, H, W]."""

    def __init__(self, in_channels: int = 3, n_frames: int = 16, **kw):
        super().__init__(3, in_channels, pool_stride=2 if n_frames > 16 else (1, 2, 2), **kw)

    def takes(self, frames: int) -> bool:
        """Whether clips of ``frames`` frames get through every layer along time: each convolution
        and the average pooling between scales (which PyTorch runs only on an input at least as
        long as its kernel) must leave at least one frame."""
        length = frames
        for s, D in enumerate(self.scales):
            if s:
                length = _length_after(self.downsample, length)
            n = length
            for m in D.modules():
                if isinstance(m, nn.Conv3d):
                    n = _length_after(m, n)
                if n < 1:
                    return False
        return length >= 1


class MultiscaleImageDiscriminator(MultiscalePatchDiscriminator):
    """The in-domain D_I on frame pairs [B, 2C, H, W]."""

    def __init__(self, in_channels: int = 6, **kw):
        super().__init__(2, in_channels, **kw)


def _length_after(module: nn.Module, length: int) -> int:
    """The length along time (the first axis after the channels) of a Conv3d's or an AvgPool3d's
    output for an input of ``length``; 0 when it refuses such an input."""

    def first(v):
        return v[0] if isinstance(v, tuple) else v

    k, s, p, d = (
        first(module.kernel_size),
        first(module.stride),
        first(module.padding),
        first(getattr(module, "dilation", 1)),
    )
    if isinstance(module, nn.AvgPool3d) and length < k:  # its shape check: the unpadded input covers the kernel
        return 0
    return max(0, (length + 2 * p - d * (k - 1) - 1) // s + 1)


@functools.cache
def shortest_clip(n_layers: int = 3, num_scales: int = 2) -> int:
    """The fewest frames a clip of ``MultiscaleVideoDiscriminator`` may have, read from the layers
    of a one-channel copy of the architecture (``takes``). With the official layers every
    convolution takes any length (kernel 4, padding 2), but the average pooling between scales
    (kernel 3) needs 3 frames."""
    for frames in range(1, 65):
        D = MultiscaleVideoDiscriminator(1, frames, base_channels=1, n_layers=n_layers, num_scales=num_scales)
        if D.takes(frames):
            return frames
    raise ValueError(
        f"no clip of up to 64 frames fits a video discriminator of {n_layers} layers and {num_scales} scales"
    )
