"""What StyleGAN2 and StyleGAN3 share (Karras et al. 2020, 2021): the
equalised-learning-rate linear layer, the mapping network z -> w, and the
generator skeleton ``MappedGenerator`` (mapping, then the family's synthesis).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer: y = act(x (W * lr_mul / sqrt(in))^T + b * lr_mul)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in] -> [B, out]
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        # lrelu(x W^T + b) * g == lrelu(x (gW)^T + gb) for g > 0: the gain folds into the
        # weights and one fused matmul + bias is followed by one in-place activation.
        g = ops.LRELU_GAIN
        return F.leaky_relu(torch.addmm((b * g).unsqueeze(0), x, (w * g).t()), ops.LRELU_SLOPE, inplace=True)


def mapping_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The state shapes of ``MappingNetwork(cfg)`` (StyleGAN2's and StyleGAN3's), under ``mapping.``."""
    out: dict[str, tuple[int, ...]] = {}
    dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = (dims[i + 1], dims[i])
        out[f"mapping.fc{i}.bias"] = (dims[i + 1],)
    out["mapping.w_avg"] = (cfg.w_dim,)
    return out


class MappingNetwork(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_layers = cfg.mapping_layers
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        for i in range(cfg.mapping_layers):
            self.add_module(f"fc{i}", FullyConnected(dims[i], dims[i + 1], "lrelu", lr_mul=cfg.mapping_lr_mul))
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:  # [B, z_dim] -> [B, w_dim]
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x


def compiling() -> bool:
    """Whether torch.compile is tracing (the weight cache compares data pointers, which it cannot trace)."""
    check = getattr(torch.compiler, "is_compiling", None)
    return bool(check and check())


class MappedGenerator(nn.Module):
    """z -> w (``MappingNetwork``) -> image (the family's ``SYNTHESIS``); ``mapping`` and
    ``synthesis`` are usable on their own. The skeleton StyleGAN2 and StyleGAN3 share."""

    family = ""
    SYNTHESIS: type = nn.Module

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        self.synthesis = self.SYNTHESIS(cfg)

    z_dim = property(lambda self: self.cfg.z_dim)
    w_dim = property(lambda self: self.cfg.w_dim)
    c_dim = 0  # unconditional
    resolution = property(lambda self: self.cfg.resolution)
    num_ws = property(lambda self: self.cfg.num_ws)
    img_channels = property(lambda self: self.cfg.img_channels)

    def forward(self, z, truncation_psi: float = 1.0, noise_mode: str = "const", impl: str = "fast"):
        return self.synthesis(self.mapping(z, truncation_psi=truncation_psi), noise_mode=noise_mode, impl=impl)
