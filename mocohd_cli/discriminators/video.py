"""The video discriminator D_V: a multi-scale 3D PatchGAN (MoCoGAN-HD, after pix2pixHD).

Each scale is a stack of 3D convolutions (kernel 4, padding 2): a stride-2
conv with leaky ReLU, ``n_layers - 1`` stride-2 convs with instance norm,
one stride-1 conv with instance norm, and a stride-1 conv to one channel of
patch scores. Every layer's output is returned (the intermediate features),
the last one being the scores. Scale k sees the clip average-pooled k times
(3x3x3, stride 2 in space, and in time too for clips longer than 16 frames).
Official defaults: 64 base channels (capped at 64 for the first layer),
3 layers, 2 scales, conv weights ~ N(0, 0.02).

    D = MultiscaleVideoDiscriminator(in_channels=3, n_frames=16)
    feats = D(x)        # x: [B, C, T, H, W]; feats[s][l]: layer l of scale s (full resolution first)
    scores = [f[-1] for f in feats]
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _norm(channels: int) -> nn.Module:
    # affine-free instance norm that also tracks running statistics, as the official model
    return nn.InstanceNorm3d(channels, affine=False, track_running_stats=True)


class PatchDiscriminator3d(nn.Module):
    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3):
        super().__init__()
        k, pad = 4, int(math.ceil((4 - 1) / 2))
        layers = [nn.Sequential(nn.Conv3d(in_channels, base_channels, k, stride=2, padding=pad), nn.LeakyReLU(0.2, True))]
        ch = base_channels
        for _ in range(1, n_layers):
            prev, ch = ch, min(ch * 2, 512)
            layers.append(nn.Sequential(nn.Conv3d(prev, ch, k, stride=2, padding=pad), _norm(ch), nn.LeakyReLU(0.2, True)))
        prev, ch = ch, min(ch * 2, 512)
        layers.append(nn.Sequential(nn.Conv3d(prev, ch, k, stride=1, padding=pad), _norm(ch), nn.LeakyReLU(0.2, True)))
        layers.append(nn.Sequential(nn.Conv3d(ch, 1, k, stride=1, padding=pad)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # [B, C, T, H, W] -> features, scores last
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleVideoDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, n_frames: int = 16, base_channels: int = 64, n_layers: int = 3,
                 num_scales: int = 2, max_first_channels: int = 64):
        super().__init__()
        # scale s (0 = full resolution) gets min(64, base * 2^s) first-layer channels, as the official model
        self.scales = nn.ModuleList(
            PatchDiscriminator3d(in_channels, min(max_first_channels, base_channels * 2**s), n_layers)
            for s in range(num_scales)
        )
        stride = 2 if n_frames > 16 else (1, 2, 2)  # pool time too only for long clips
        self.downsample = nn.AvgPool3d(3, stride=stride, padding=1, count_include_pad=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for s, D in enumerate(self.scales):
            if s:
                x = self.downsample(x)
            out.append(D(x))
        return out
