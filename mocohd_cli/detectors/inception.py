"""The Inception-v3 of FID: pytorch-fid's FID variant, batch norm folded away.

FID (Heusel et al. 2017) compares the 2048 pool features of the Inception-v3
graph TensorFlow published on 2015-12-05 (``inception-2015-12-05.tgz``).
pytorch-fid ports it (``pytorch_fid/inception.py``, ``fid_inception_v3``,
weights ``pt_inception-2015-12-05-6726825d.pth``) as torchvision's
``Inception3`` with four blocks patched to behave like the TF graph:

- ``FIDInceptionA`` (Mixed_5b/c/d), ``FIDInceptionC`` (Mixed_6b..e) and
  ``FIDInceptionE_1`` (Mixed_7b): the pool branch is a 3x3 average pool,
  stride 1, pad 1, that averages real pixels only (``count_include_pad=False``);
- ``FIDInceptionE_2`` (Mixed_7c): that branch is a 3x3 *max* pool;
- Mixed_6a and Mixed_7a are torchvision's ``InceptionB`` / ``InceptionD``.

The stem (torchvision ``Inception3.__init__``): Conv2d_1a_3x3 (stride 2),
Conv2d_2a_3x3, Conv2d_2b_3x3 (pad 1), 3x3 max pool stride 2, Conv2d_3b_1x1,
Conv2d_4a_3x3, 3x3 max pool stride 2. After Mixed_7c a global average pool
gives the 2048 features (pytorch-fid's block 3). Every convolution of the
port is torchvision's ``BasicConv2d``: conv without bias, BatchNorm2d(eps=0.001),
ReLU. Here each is one convolution with a bias, then ReLU: the batch norm is
folded in when a file is converted (``mocohd_cli.formats.inception``).
Tensor names are pytorch-fid's without the ``.conv`` (``Mixed_5b.branch1x1.weight``).

Speed (CPU, fp32), both exact up to rounding:
- channels_last activations (oneDNN's preferred layout for convolutions);
- in each mixed block the 1x1 convolutions that read the block input run as
  one convolution with their weights concatenated. The average-pool branch
  joins them by convolving first and pooling after: a 1x1 convolution and an
  average pool commute (both linear, one per pixel, the other per channel),
  and with ``count_include_pad=False`` the pool's weights sum to 1 at every
  pixel, so the bias passes through it unchanged. Pooling the branch's 32..192
  output channels instead of the 192..2048 input channels is cheaper too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..dict_config import DictConfig

FEATURE_DIM = 2048  # Mixed_7c's channels: fixed by the architecture
MIN_SIZE = 75  # the smallest input the stride-2 layers leave a 1x1 map for (torchvision Inception_V3_Weights min_size)
MAX_SIZE = 4096

# A convolution: (in channels, out channels, (kh, kw), stride, (ph, pw)).
_K1 = ((1, 1), 1, (0, 0))
_K3 = ((3, 3), 1, (1, 1))
_K3_VALID = ((3, 3), 1, (0, 0))
_K3_S2 = ((3, 3), 2, (0, 0))
_K1x7 = ((1, 7), 1, (0, 3))
_K7x1 = ((7, 1), 1, (3, 0))
_K1x3 = ((1, 3), 1, (0, 1))
_K3x1 = ((3, 1), 1, (1, 0))


def _block_a(cin: int, pool: int) -> dict:
    """torchvision ``InceptionA``: out 64 + 64 + 96 + pool channels."""
    return {
        "branch1x1": (cin, 64, *_K1),
        "branch5x5_1": (cin, 48, *_K1),
        "branch5x5_2": (48, 64, (5, 5), 1, (2, 2)),
        "branch3x3dbl_1": (cin, 64, *_K1),
        "branch3x3dbl_2": (64, 96, *_K3),
        "branch3x3dbl_3": (96, 96, *_K3),
        "branch_pool": (cin, pool, *_K1),
    }


def _block_b(cin: int) -> dict:
    """torchvision ``InceptionB`` (Mixed_6a): out 384 + 96 + cin channels, stride 2."""
    return {
        "branch3x3": (cin, 384, *_K3_S2),
        "branch3x3dbl_1": (cin, 64, *_K1),
        "branch3x3dbl_2": (64, 96, *_K3),
        "branch3x3dbl_3": (96, 96, *_K3_S2),
    }


def _block_c(cin: int, c7: int) -> dict:
    """torchvision ``InceptionC``: out 4 x 192 channels."""
    return {
        "branch1x1": (cin, 192, *_K1),
        "branch7x7_1": (cin, c7, *_K1),
        "branch7x7_2": (c7, c7, *_K1x7),
        "branch7x7_3": (c7, 192, *_K7x1),
        "branch7x7dbl_1": (cin, c7, *_K1),
        "branch7x7dbl_2": (c7, c7, *_K7x1),
        "branch7x7dbl_3": (c7, c7, *_K1x7),
        "branch7x7dbl_4": (c7, c7, *_K7x1),
        "branch7x7dbl_5": (c7, 192, *_K1x7),
        "branch_pool": (cin, 192, *_K1),
    }


def _block_d(cin: int) -> dict:
    """torchvision ``InceptionD`` (Mixed_7a): out 320 + 192 + cin channels, stride 2."""
    return {
        "branch3x3_1": (cin, 192, *_K1),
        "branch3x3_2": (192, 320, *_K3_S2),
        "branch7x7x3_1": (cin, 192, *_K1),
        "branch7x7x3_2": (192, 192, *_K1x7),
        "branch7x7x3_3": (192, 192, *_K7x1),
        "branch7x7x3_4": (192, 192, *_K3_S2),
    }


def _block_e(cin: int) -> dict:
    """torchvision ``InceptionE``: out 320 + 768 + 768 + 192 = 2048 channels."""
    return {
        "branch1x1": (cin, 320, *_K1),
        "branch3x3_1": (cin, 384, *_K1),
        "branch3x3_2a": (384, 384, *_K1x3),
        "branch3x3_2b": (384, 384, *_K3x1),
        "branch3x3dbl_1": (cin, 448, *_K1),
        "branch3x3dbl_2": (448, 384, *_K3),
        "branch3x3dbl_3a": (384, 384, *_K1x3),
        "branch3x3dbl_3b": (384, 384, *_K3x1),
        "branch_pool": (cin, 192, *_K1),
    }


# name -> (kind, convolutions), in the order of the forward pass (torchvision
# ``Inception3.__init__`` with pytorch-fid's ``fid_inception_v3`` patches).
# Kinds: conv; A, C, E1 (average-pool branch); E2 (max-pool branch); B, D (reductions).
LAYOUT: dict[str, tuple[str, dict]] = {
    "Conv2d_1a_3x3": ("conv", {"": (3, 32, *_K3_S2)}),
    "Conv2d_2a_3x3": ("conv", {"": (32, 32, *_K3_VALID)}),
    "Conv2d_2b_3x3": ("conv", {"": (32, 64, *_K3)}),
    "Conv2d_3b_1x1": ("conv", {"": (64, 80, *_K1)}),
    "Conv2d_4a_3x3": ("conv", {"": (80, 192, *_K3_VALID)}),
    "Mixed_5b": ("A", _block_a(192, 32)),
    "Mixed_5c": ("A", _block_a(256, 64)),
    "Mixed_5d": ("A", _block_a(288, 64)),
    "Mixed_6a": ("B", _block_b(288)),
    "Mixed_6b": ("C", _block_c(768, 128)),
    "Mixed_6c": ("C", _block_c(768, 160)),
    "Mixed_6d": ("C", _block_c(768, 160)),
    "Mixed_6e": ("C", _block_c(768, 192)),
    "Mixed_7a": ("D", _block_d(768)),
    "Mixed_7b": ("E1", _block_e(1280)),
    "Mixed_7c": ("E2", _block_e(2048)),
}


def conv_names() -> list[str]:
    """Every convolution's name (pytorch-fid's BasicConv2d name), in forward order."""
    return [f"{block}.{conv}" if conv else block for block, (_, convs) in LAYOUT.items() for conv in convs]


def conv_shape(name: str) -> tuple[int, int, int, int]:
    """The weight shape [out, in, kh, kw] of the convolution ``name``."""
    block, _, conv = name.partition(".")
    cin, cout, (kh, kw), _, _ = LAYOUT[block][1][conv]
    return (cout, cin, kh, kw)


def _check_int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


@dataclass(frozen=True)
class InceptionConfig(DictConfig):
    """The FID Inception-v3 is one fixed network; the config only records it.

    ``size``: the square input the frames are bilinearly resized to (299 for FID,
    pytorch-fid ``InceptionV3(resize_input=True)``; at least 75). ``feature_dim``:
    always 2048, the pool features FID uses (pytorch-fid ``BLOCK_INDEX_BY_DIM[2048]``).
    """

    size: int = 299
    feature_dim: int = FEATURE_DIM

    def __post_init__(self):
        _check_int(self.size, "size", MIN_SIZE, MAX_SIZE)
        _check_int(self.feature_dim, "feature_dim", 1, 1 << 16)
        if self.feature_dim != FEATURE_DIM:
            raise ValueError(
                f"feature_dim must be {FEATURE_DIM} (the FID Inception-v3's pool features), got {self.feature_dim}"
            )

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """name -> shape of every tensor of ``InceptionV3(self).state_dict()``, without building it."""
        out: dict[str, tuple[int, ...]] = {}
        for name in conv_names():
            shape = conv_shape(name)
            out[name + ".weight"], out[name + ".bias"] = shape, (shape[0],)
        return out


def _conv(spec: tuple) -> nn.Conv2d:
    cin, cout, kernel, stride, padding = spec
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)


def _relu_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.relu_(conv(x))


class _Mixed(nn.Module):
    """One mixed block: its convolutions as children named like pytorch-fid's (``branch1x1``, ...)."""

    # the convolutions that read the block input, run as one (see the module docstring)
    FUSED: dict[str, tuple[str, ...]] = {
        "A": ("branch1x1", "branch5x5_1", "branch3x3dbl_1", "branch_pool"),
        "B": ("branch3x3dbl_1",),
        "C": ("branch1x1", "branch7x7_1", "branch7x7dbl_1", "branch_pool"),
        "D": ("branch3x3_1", "branch7x7x3_1"),
        "E1": ("branch1x1", "branch3x3_1", "branch3x3dbl_1", "branch_pool"),
        "E2": ("branch1x1", "branch3x3_1", "branch3x3dbl_1"),
    }

    def __init__(self, kind: str, convs: dict):
        super().__init__()
        self.kind = kind
        for name, spec in convs.items():
            self.add_module(name, _conv(spec))
        self.fused = self.FUSED[kind]
        self.splits = [convs[n][1] for n in self.fused]

    def _entry(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fused 1x1 convolutions of the block input, split per branch, ReLU applied to
        all but an average-pool branch (last; it is pooled first)."""
        convs = [getattr(self, n) for n in self.fused]
        if len(convs) == 1:
            return [F.relu_(convs[0](x))]
        y = F.conv2d(x, torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs]))
        pooled = self.kind in ("A", "C", "E1")
        F.relu_(y[:, : y.shape[1] - self.splits[-1]] if pooled else y)
        return list(y.split(self.splits, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kind
        if k in ("A", "C", "E1"):  # the pool branch: average the fused 1x1 output, then ReLU
            *entry, p = self._entry(x)
            p = F.relu_(F.avg_pool2d(p, 3, stride=1, padding=1, count_include_pad=False))
        else:
            entry = self._entry(x)
        if k == "A":
            a, b, d = entry
            b = _relu_conv(self.branch5x5_2, b)
            d = _relu_conv(self.branch3x3dbl_3, _relu_conv(self.branch3x3dbl_2, d))
            return torch.cat([a, b, d, p], 1)
        if k == "B":
            (d,) = entry
            d = _relu_conv(self.branch3x3dbl_3, _relu_conv(self.branch3x3dbl_2, d))
            return torch.cat([_relu_conv(self.branch3x3, x), d, F.max_pool2d(x, 3, stride=2)], 1)
        if k == "C":
            a, b, d = entry
            b = _relu_conv(self.branch7x7_3, _relu_conv(self.branch7x7_2, b))
            d = _relu_conv(self.branch7x7dbl_3, _relu_conv(self.branch7x7dbl_2, d))
            d = _relu_conv(self.branch7x7dbl_5, _relu_conv(self.branch7x7dbl_4, d))
            return torch.cat([a, b, d, p], 1)
        if k == "D":
            a, b = entry
            a = _relu_conv(self.branch3x3_2, a)
            b = _relu_conv(self.branch7x7x3_3, _relu_conv(self.branch7x7x3_2, b))
            return torch.cat([a, _relu_conv(self.branch7x7x3_4, b), F.max_pool2d(x, 3, stride=2)], 1)
        a, b, d = entry  # E1 / E2
        if k == "E2":  # pytorch-fid's FIDInceptionE_2: a max pool, then the branch's convolution
            p = _relu_conv(self.branch_pool, F.max_pool2d(x, 3, stride=1, padding=1))
        d = _relu_conv(self.branch3x3dbl_2, d)
        return torch.cat(
            [
                a,
                _relu_conv(self.branch3x3_2a, b),
                _relu_conv(self.branch3x3_2b, b),
                _relu_conv(self.branch3x3dbl_3a, d),
                _relu_conv(self.branch3x3dbl_3b, d),
                p,
            ],
            1,
        )


class InceptionV3(nn.Module):
    """pytorch-fid's FID Inception-v3 with folded batch norm (see the module docstring).

    ``forward(x)``: float [B, 3, H, W] in [-1, 1] -> float [B, 2048] pool features.
    Frames of another size are resized to ``size`` x ``size`` with
    ``F.interpolate(mode='bilinear', align_corners=False)`` as pytorch-fid does
    (it resizes [0, 1] images and maps them to [-1, 1] after; both maps are
    linear, so the order changes rounding only).
    """

    def __init__(self, config: InceptionConfig | None = None):
        super().__init__()
        self.config = config or InceptionConfig()
        self.size = self.config.size
        self.feature_dim = self.config.feature_dim
        for block, (kind, convs) in LAYOUT.items():
            self.add_module(block, _conv(convs[""]) if kind == "conv" else _Mixed(kind, convs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"InceptionV3 takes images [B, 3, H, W], got {list(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"InceptionV3 takes float images in [-1, 1], got {x.dtype}")
        dtype = self.Conv2d_1a_3x3.weight.dtype
        x = x.to(dtype)
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        x = _relu_conv(self.Conv2d_1a_3x3, x)
        x = _relu_conv(self.Conv2d_2a_3x3, x)
        x = _relu_conv(self.Conv2d_2b_3x3, x)
        x = F.max_pool2d(x, 3, stride=2)
        x = _relu_conv(self.Conv2d_3b_1x1, x)
        x = _relu_conv(self.Conv2d_4a_3x3, x)
        x = F.max_pool2d(x, 3, stride=2)
        for block in (
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(self, block)(x)
        return x.mean(dim=(2, 3))
