"""A reference Inception-I3D for the tests, written from the published architecture
(DeepMind kinetics-i3d ``i3d.py``, ``InceptionI3d``) and independent of
``mocohd_cli.detectors.i3d``: real ``nn.BatchNorm3d`` (eps 1e-3, sonnet's default, unless told),
TensorFlow SAME padding done the plain way (always ``F.pad``; -inf before max
pools), module names of its own. It is scriptable (``torch.jit.script``) and
traceable, and its ``forward(x, rescale, resize, return_features)`` mirrors the
interface of StyleGAN-V's ``i3d_torchscript.pt``: x in 0..255, rescale
x / 255 * 2 - 1, resize each frame to 224x224 (trilinear, T kept,
align_corners=False), return the time-averaged logits (else their softmax).

``make_reference(scale, norm=..., eps=...)`` builds it with every width times ``scale`` and
random, seeded weights and batch-norm statistics far from the identity, so a
conversion that mixes up two tensors or forgets part of the fold shows. ``norm``
picks how each unit normalises (``ConvNormAct``): the archive layouts a
converter must read by shape and attribute name, not by module name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# kinetics-i3d i3d.py, InceptionI3d._build: output channels per unit
STEM_WIDTHS = [64, 64, 192]
BLOCK_WIDTHS = [  # [Branch_0, Branch_1 a/b, Branch_2 a/b, Branch_3] of Mixed_3b .. Mixed_5c
    [64, 96, 128, 16, 32, 32],
    [128, 128, 192, 32, 96, 64],
    [192, 96, 208, 16, 48, 64],
    [160, 112, 224, 24, 64, 64],
    [128, 128, 256, 24, 64, 64],
    [112, 144, 288, 32, 64, 64],
    [256, 160, 320, 32, 128, 128],
    [256, 160, 320, 32, 128, 128],
    [384, 192, 384, 48, 128, 128],
]


def tf_same_pad(x: torch.Tensor, kernel: list[int], stride: list[int], value: float) -> torch.Tensor:
    """Pad (T, H, W) the way TensorFlow's padding='SAME' does: out = ceil(n / s)."""
    pads: list[int] = []
    for i in range(3):
        d = 2 - i  # F.pad lists the last axis first
        n = x.shape[2 + d]
        out = (n + stride[d] - 1) // stride[d]
        total = max((out - 1) * stride[d] + kernel[d] - n, 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    return F.pad(x, pads, mode="constant", value=value)


class TFMaxPool(nn.Module):
    def __init__(self, kernel: list[int], stride: list[int]):
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(tf_same_pad(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class OffsetOnlyNorm(nn.Module):
    """sonnet's ``snt.BatchNorm(scale=False)`` as TF names it: moving statistics and an
    offset; eps a plain attribute (so a scripted archive keeps it in data.pkl)."""

    def __init__(self, n: int, eps: float):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(n))
        self.register_buffer("moving_mean", torch.zeros(n))
        self.register_buffer("moving_variance", torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.moving_mean, self.moving_variance, None, self.beta, False, 0.0, self.eps)


class ConvNormAct(nn.Module):
    """kinetics-i3d Unit3D: conv (no bias), batch norm, ReLU. ``norm``: 'affine'
    (``nn.BatchNorm3d``: scale and offset), 'stats' (``nn.BatchNorm3d(affine=False)``),
    'sonnet' (``OffsetOnlyNorm``), or 'none' (a conv bias instead: batch norm folded)."""

    def __init__(self, cin: int, cout: int, k: int, s: int = 1, norm: str = "affine", eps: float = 1e-3):
        super().__init__()
        self.kernel = [k, k, k]
        self.stride = [s, s, s]
        self.conv = nn.Conv3d(cin, cout, k, stride=s, bias=norm == "none")
        if norm == "none":
            self.norm = nn.Identity()
        elif norm == "sonnet":
            self.norm = OffsetOnlyNorm(cout, eps)
        else:
            self.norm = nn.BatchNorm3d(cout, eps=eps, affine=norm == "affine")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(tf_same_pad(x, self.kernel, self.stride, 0.0))))


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, w: list[int], norm: str, eps: float):
        super().__init__()
        self.path0 = ConvNormAct(cin, w[0], 1, norm=norm, eps=eps)
        self.path1 = nn.Sequential(
            ConvNormAct(cin, w[1], 1, norm=norm, eps=eps), ConvNormAct(w[1], w[2], 3, norm=norm, eps=eps)
        )
        self.path2 = nn.Sequential(
            ConvNormAct(cin, w[3], 1, norm=norm, eps=eps), ConvNormAct(w[3], w[4], 3, norm=norm, eps=eps)
        )
        self.path3 = nn.Sequential(TFMaxPool([3, 3, 3], [1, 1, 1]), ConvNormAct(cin, w[5], 1, norm=norm, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.path0(x), self.path1(x), self.path2(x), self.path3(x)], 1)


def scaled(w: int, scale: float) -> int:
    return max(1, int(round(w * scale)))


class ReferenceI3D(nn.Module):
    def __init__(
        self,
        scale: float = 1.0,
        num_classes: int = 400,
        norm: str = "affine",
        eps: float = 1e-3,
        head_first: bool = False,
    ):
        super().__init__()
        c1, c2, c3 = (scaled(w, scale) for w in STEM_WIDTHS)
        blocks = [[scaled(w, scale) for w in ws] for ws in BLOCK_WIDTHS]
        c_out = blocks[-1][0] + blocks[-1][2] + blocks[-1][4] + blocks[-1][5]
        if head_first:  # registered before the body, as pytorch-i3d's InceptionI3d does with its logits
            self.head = nn.Conv3d(c_out, num_classes, 1, bias=True)
        self.stem = nn.Sequential(
            ConvNormAct(3, c1, 7, 2, norm=norm, eps=eps),
            TFMaxPool([1, 3, 3], [1, 2, 2]),
            ConvNormAct(c1, c2, 1, norm=norm, eps=eps),
            ConvNormAct(c2, c3, 3, norm=norm, eps=eps),
            TFMaxPool([1, 3, 3], [1, 2, 2]),
        )
        layers: list[nn.Module] = []
        cin = c3
        for i, w in enumerate(blocks):
            if i == 2:
                layers.append(TFMaxPool([3, 3, 3], [2, 2, 2]))
            if i == 7:
                layers.append(TFMaxPool([2, 2, 2], [2, 2, 2]))
            layers.append(InceptionBlock(cin, w, norm, eps))
            cin = w[0] + w[2] + w[4] + w[5]
        self.body = nn.Sequential(*layers)
        if not head_first:
            self.head = nn.Conv3d(cin, num_classes, 1, bias=True)  # Logits/Conv3d_0c_1x1: bias, no batch norm

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = True
    ) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x / 255.0 * 2.0 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        x = self.body(self.stem(x))
        x = F.avg_pool3d(x, [2, 7, 7], stride=[1, 1, 1])
        logits = self.head(x).squeeze(4).squeeze(3).mean(2)
        if return_features:
            return logits
        return F.softmax(logits, dim=1)


class HeadFirstI3D(ReferenceI3D):
    """The same network with the logits registered first. A class of its own: TorchScript
    reuses a compiled module type for modules of one class whose attributes match in any
    order, so the order would come from whichever instance was scripted first."""


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights that keep activations in range, and batch-norm statistics and
    affine parameters far from the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
        elif isinstance(m, nn.BatchNorm3d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.3)
            if m.affine:
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        elif isinstance(m, OffsetOnlyNorm):
            n = m.beta.numel()
            m.moving_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.moving_variance.copy_(torch.rand(n, generator=g) * 1.5 + 0.3)
            m.beta.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def make_reference(
    scale: float = 1 / 8,
    num_classes: int = 400,
    norm: str = "affine",
    eps: float = 1e-3,
    seed: int = 0,
    head_first: bool = False,
) -> ReferenceI3D:
    cls = HeadFirstI3D if head_first else ReferenceI3D
    return randomize(cls(scale, num_classes, norm, eps, head_first), seed)
