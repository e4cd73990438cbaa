"""The latent motion discriminator: it judges latent trajectories, not frames.

    coords = pca_coordinates(ws, components, stdev)    # [B, T, w_dim] -> [B, T, K]
    outputs = D_L(coords.transpose(1, 2))               # [B, K, T] -> the losses' layout: scales of feature lists

A trajectory w_1..w_T is seen through the PCA directions the motion generator moves along:
c_t,k = (w_t - w_1) . V_k / s_k, the displacement from the first latent along direction k in
units of that direction's stdev. Real trajectories are the encoder's answers for the frames of
real clips (``data.trajectories``); fake ones the motion generator's, started from the same
encoded first latent, so the two differ by their motion only.

Why a discriminator here: a video discriminator that sees pooled pixels cannot tell true
directions from in-phase mixtures of them, while one that sees the trajectories can (the
measurements are in docs/research/motion-recovery.md). The network is a stack of 1-D
convolutions over time with growing dilation (1, 2, 4, ...: the receptive field covers the
longest rhythm of a clip), each scale seeing the clip at half the frame rate of the one before.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SLOPE = 0.2


def pca_coordinates(ws: torch.Tensor, components: torch.Tensor, stdev: torch.Tensor) -> torch.Tensor:
    """[B, T, w_dim] trajectories -> [B, T, K] coordinates (w_t - w_1) . V_k / s_k, for the K rows
    of ``components`` [K, w_dim] and their ``stdev`` [K]."""
    if ws.ndim != 3 or components.ndim != 2 or ws.shape[-1] != components.shape[1]:
        raise ValueError(f"expected ws [B, T, {components.shape[-1]}], got {list(ws.shape)}")
    moved = ws - ws[:, :1]
    return (moved @ components.to(ws).t()) / stdev.to(ws)


class TrajectoryScale(nn.Module):
    """One scale: dilated 1-D convolutions over time, then a 1x1 convolution to scores [B, 1, T]."""

    def __init__(self, k: int, width: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(k if i == 0 else width, width, 3, padding=2**i, dilation=2**i) for i in range(layers)
        )
        self.score = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), SLOPE)
            feats.append(x)
        return [*feats, self.score(x)]


class TrajectoryDiscriminator(nn.Module):
    def __init__(self, k: int, width: int = 64, layers: int = 4, scales: int = 2):
        super().__init__()
        self.k = k
        self.scales = nn.ModuleList(TrajectoryScale(k, width, layers) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Coordinates, channels first [B, K, T] (as a gradient penalty takes its norm over dim 1:
        per frame, over directions) -> per scale, each layer's features and the scores [B, 1, T / 2^s]."""
        if x.ndim != 3 or x.shape[1] != self.k:
            raise ValueError(f"expected coordinates [B, {self.k}, T], got {list(x.shape)}")
        out = []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool1d(x, 2, ceil_mode=True)
            out.append(scale(x))
        return out
