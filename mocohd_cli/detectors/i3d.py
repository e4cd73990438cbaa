"""The Kinetics-400 Inception-I3D of FVD, batch norm folded away.

FVD (Unterthiner et al. 2018, ``frechet_video_distance.py`` of
google-research) compares the logits of DeepMind's Inception-I3D trained on
Kinetics-400 (Carreira and Zisserman 2017; TF-Hub ``deepmind/i3d-kinetics-400``,
the network of github.com/deepmind/kinetics-i3d ``i3d.py``). StyleGAN-V
ships it as ``i3d_torchscript.pt`` and calls it as
``detector(videos, rescale=True, resize=True, return_features=True)``:
videos [B, 3, T, H, W] in 0..255 are mapped to x/255*2-1, resized per frame
to 224x224 (trilinear, T unchanged, ``align_corners=False``), and the 400
pre-softmax logits averaged over time are returned. Here the caller rescales
(``forward`` takes [-1, 1]); the resize is the module's job.

The architecture (kinetics-i3d ``InceptionI3d._build``), every convolution and
max pool padded like TensorFlow's ``SAME`` (out = ceil(in / stride); the total
pad max((out - 1) * stride + k - in, 0) split with the smaller half first;
max pools pad with -inf, so padded cells never win):

    Conv3d_1a_7x7 (k7, s2), MaxPool3d_2a_3x3 (k 1,3,3, s 1,2,2),
    Conv3d_2b_1x1, Conv3d_2c_3x3, MaxPool3d_3a_3x3 (k 1,3,3, s 1,2,2),
    Mixed_3b, Mixed_3c, MaxPool3d_4a_3x3 (k3, s2), Mixed_4b..Mixed_4f,
    MaxPool3d_5a_2x2 (k2, s2), Mixed_5b, Mixed_5c,
    average pool (2, 7, 7) stride 1 VALID, Logits/Conv3d_0c_1x1 (bias, no
    batch norm, no activation), squeeze, mean over time.

A mixed block concatenates Branch_0 (1x1x1), Branch_1 (1x1x1 then 3x3x3),
Branch_2 (1x1x1 then 3x3x3) and Branch_3 (3x3x3 max pool stride 1, then
1x1x1); its six widths [b0, b1a, b1b, b2a, b2b, b3] are those of
``i3d.py``. Every unit but the logits is conv, batch norm, ReLU; here it is
one convolution with a bias (the batch norm is folded in when a file is
converted, ``mocohd_cli.formats.i3d``), then ReLU.

The temporal strides (2 at Conv3d_1a, MaxPool3d_4a and MaxPool3d_5a) leave
fewer than the 2 steps the final average pool needs for clips shorter than 9
frames (``min_frames``): the published model refuses them too.

Speed (CPU, fp32), exact up to rounding: weights and activations are
channels-last (``channels_last_3d``, oneDNN's preferred layout: 2 clips of 16
frames at 224x224 took 0.28 s instead of 0.54 s on 2 cores, and max pools were
8x faster); the three 1x1x1 convolutions that read a mixed block's input
(Branch_0, Branch_1's and Branch_2's first) run as one convolution with their
weights concatenated; symmetric padding goes to the convolution or pool itself
(max pools pad with -inf implicitly), and a pool whose TF padding is (0, 1)
uses ``ceil_mode``, which takes the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..dict_config import DictConfig
from ..errors import UsageError

BLOCKS = ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c")
STEM = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
# A mixed block's six convolutions (kinetics-i3d: Branch_0/Conv3d_0a_1x1, Branch_1/Conv3d_0a_1x1,
# Branch_1/Conv3d_0b_3x3, Branch_2/Conv3d_0a_1x1, Branch_2/Conv3d_0b_3x3, Branch_3/Conv3d_0b_1x1).
BRANCHES = ("b0", "b1a", "b1b", "b2a", "b2b", "b3")
BRANCH_KERNEL = {"b0": 1, "b1a": 1, "b1b": 3, "b2a": 1, "b2b": 3, "b3": 1}
STEM_KERNEL = {"Conv3d_1a_7x7": 7, "Conv3d_2b_1x1": 1, "Conv3d_2c_3x3": 3}
LOGITS = "Logits"

# kinetics-i3d i3d.py: the output channels of each unit
_STEM_WIDTHS = (64, 64, 192)
_MIXED_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# The forward pass: (kind, name, kernel, stride); "mixed" entries are the blocks.
LAYOUT = (
    ("conv", "Conv3d_1a_7x7", (7, 7, 7), (2, 2, 2)),
    ("pool", "MaxPool3d_2a_3x3", (1, 3, 3), (1, 2, 2)),
    ("conv", "Conv3d_2b_1x1", (1, 1, 1), (1, 1, 1)),
    ("conv", "Conv3d_2c_3x3", (3, 3, 3), (1, 1, 1)),
    ("pool", "MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2)),
    ("mixed", "Mixed_3b", None, None),
    ("mixed", "Mixed_3c", None, None),
    ("pool", "MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
    *(("mixed", b, None, None) for b in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f")),
    ("pool", "MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
    ("mixed", "Mixed_5b", None, None),
    ("mixed", "Mixed_5c", None, None),
)
HEAD_POOL = (2, 7, 7)  # kinetics-i3d: avg_pool3d ksize [1, 2, 7, 7, 1], stride 1, VALID

MAX_WIDTH = 1 << 16
_MEMORY_FORMAT = torch.channels_last_3d  # activations and weights (see the module docstring: 2x faster on CPU)


def _reduced(n: int, axis: int) -> int:
    """The length of axis ``axis`` (0: time, 1/2: space) after every strided layer (ceil(n / s) each)."""
    for _kind, _, _, stride in LAYOUT:
        if stride is not None:
            n = -(-n // stride[axis])
    return n


def min_frames() -> int:
    """The fewest frames the strides leave enough time steps for the final (2, 7, 7) pool (9)."""
    t = 1
    while _reduced(t, 0) < HEAD_POOL[0]:
        t += 1
    return t


def _check_width(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if not 1 <= value <= MAX_WIDTH:
        raise ValueError(f"{name} must be in 1..{MAX_WIDTH}, got {value}")
    return value


def _config_field(block: str) -> str:
    return block.lower()


@dataclass(frozen=True)
class I3DConfig(DictConfig):
    """Every width of the Inception-I3D; the defaults are the published model's
    (kinetics-i3d ``i3d.py``). Stem widths: the output channels of Conv3d_1a_7x7,
    Conv3d_2b_1x1 and Conv3d_2c_3x3; each ``mixed_*``: [b0, b1a, b1b, b2a, b2b, b3]
    (Branch_0; Branch_1's 1x1x1 and 3x3x3; Branch_2's; Branch_3's 1x1x1).
    ``size``: the square frame size the input is resized to (224, StyleGAN-V's
    resize); the head pools a 7x7 map, so ceil(size / 32) must be 7."""

    conv3d_1a_7x7: int = _STEM_WIDTHS[0]
    conv3d_2b_1x1: int = _STEM_WIDTHS[1]
    conv3d_2c_3x3: int = _STEM_WIDTHS[2]
    mixed_3b: tuple[int, ...] = _MIXED_WIDTHS["Mixed_3b"]
    mixed_3c: tuple[int, ...] = _MIXED_WIDTHS["Mixed_3c"]
    mixed_4b: tuple[int, ...] = _MIXED_WIDTHS["Mixed_4b"]
    mixed_4c: tuple[int, ...] = _MIXED_WIDTHS["Mixed_4c"]
    mixed_4d: tuple[int, ...] = _MIXED_WIDTHS["Mixed_4d"]
    mixed_4e: tuple[int, ...] = _MIXED_WIDTHS["Mixed_4e"]
    mixed_4f: tuple[int, ...] = _MIXED_WIDTHS["Mixed_4f"]
    mixed_5b: tuple[int, ...] = _MIXED_WIDTHS["Mixed_5b"]
    mixed_5c: tuple[int, ...] = _MIXED_WIDTHS["Mixed_5c"]
    num_classes: int = 400
    in_channels: int = 3
    size: int = 224

    def __post_init__(self):
        for name in ("conv3d_1a_7x7", "conv3d_2b_1x1", "conv3d_2c_3x3", "num_classes", "in_channels", "size"):
            _check_width(getattr(self, name), name)
        for block in BLOCKS:
            name = _config_field(block)
            widths = getattr(self, name)
            if not isinstance(widths, (list, tuple)) or len(widths) != len(BRANCHES):
                raise TypeError(f"{name} must be a list of {len(BRANCHES)} widths {list(BRANCHES)}, got {widths!r}")
            for branch, w in zip(BRANCHES, widths, strict=True):
                _check_width(w, f"{name}[{branch}]")
            object.__setattr__(self, name, tuple(widths))
        if _reduced(self.size, 1) != HEAD_POOL[1]:
            raise ValueError(
                f"size must leave a {HEAD_POOL[1]}x{HEAD_POOL[2]} map for the final pool "
                f"(193..224; the published model uses 224), got {self.size}"
            )

    def to_dict(self) -> dict:
        """JSON-ready: the mixed widths as lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def scaled(cls, factor: float, num_classes: int = 400) -> I3DConfig:
        """The published widths times ``factor`` (at least 1 each): small networks for tests."""

        def s(w: int) -> int:
            return max(1, int(round(w * factor)))

        mixed = {_config_field(b): tuple(s(w) for w in ws) for b, ws in _MIXED_WIDTHS.items()}
        stem = dict(zip(("conv3d_1a_7x7", "conv3d_2b_1x1", "conv3d_2c_3x3"), (s(w) for w in _STEM_WIDTHS), strict=True))
        return cls(**stem, **mixed, num_classes=num_classes)

    def stem_widths(self) -> dict[str, int]:
        return {
            "Conv3d_1a_7x7": self.conv3d_1a_7x7,
            "Conv3d_2b_1x1": self.conv3d_2b_1x1,
            "Conv3d_2c_3x3": self.conv3d_2c_3x3,
        }

    def mixed_widths(self, block: str) -> dict[str, int]:
        """{'b0': .., 'b1a': .., ...} of ``block`` ('Mixed_3b')."""
        return dict(zip(BRANCHES, getattr(self, _config_field(block)), strict=True))

    def convs(self) -> dict[str, tuple[int, int, int]]:
        """Every convolution in forward order: name -> (in channels, out channels, kernel)."""
        out, c = {}, self.in_channels
        for name, w in self.stem_widths().items():
            out[name] = (c, w, STEM_KERNEL[name])
            c = w
        for block in BLOCKS:
            w = self.mixed_widths(block)
            for branch, cin in zip(BRANCHES, (c, c, w["b1a"], c, w["b2a"], c), strict=True):
                out[f"{block}.{branch}"] = (cin, w[branch], BRANCH_KERNEL[branch])
            c = w["b0"] + w["b1b"] + w["b2b"] + w["b3"]
        out[LOGITS] = (c, self.num_classes, 1)
        return out

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """name -> shape of every tensor of ``I3D(self).state_dict()``, without building it."""
        out: dict[str, tuple[int, ...]] = {}
        for name, (cin, cout, k) in self.convs().items():
            out[f"{name}.weight"] = (cout, cin, k, k, k)
            out[f"{name}.bias"] = (cout,)
        return out


def same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis of length ``n``: (before, after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _f_pad(pads: list[tuple[int, int]]) -> list[int]:
    """Per-axis (before, after) for (T, H, W) -> F.pad's order (last axis first)."""
    return [p for before_after in reversed(pads) for p in before_after]


class Unit(nn.Module):
    """A 3-D convolution with a bias, TF SAME padding (the batch norm folded in)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        # channels-last (oneDNN's layout): loading a state dict copies into it, keeping the layout
        weight = torch.zeros(cout, cin, kernel, kernel, kernel)
        self.weight = nn.Parameter(weight.contiguous(memory_format=_MEMORY_FORMAT))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_same(x, self.weight, self.bias, self.stride)


def conv_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """``tf.nn.conv3d(padding='SAME')`` with a bias: zero padding, in the convolution itself
    when it is symmetric (every stride-1 layer), else by ``F.pad`` (Conv3d_1a_7x7, stride 2)."""
    k = weight.shape[2:]
    pads = [same_pad(n, kk, stride) for n, kk in zip(x.shape[2:], k, strict=True)]
    if all(a == b for a, b in pads):
        return F.conv3d(x, weight, bias, stride, padding=[a for a, _ in pads])
    return F.conv3d(F.pad(x, _f_pad(pads)), weight, bias, stride)


def max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """``tf.nn.max_pool3d(padding='SAME')``: padded cells are -inf.

    PyTorch pads with -inf itself (``padding`` <= k // 2 each side); with
    ``ceil_mode`` it also takes the windows that run past the end, so TF's
    (p, p + 1) padding is ``padding=p, ceil_mode=True`` whenever that gives
    TF's output length (then the windows are the same)."""
    dims = x.shape[2:]
    pads = [same_pad(n, k, s) for n, k, s in zip(dims, kernel, stride, strict=True)]
    before = [a for a, _ in pads]
    if all(a == b for a, b in pads) and all(a <= k // 2 for a, k in zip(before, kernel, strict=True)):
        return F.max_pool3d(x, kernel, stride, padding=before)
    if all(a <= k // 2 for a, k in zip(before, kernel, strict=True)):
        same = True
        for n, k, s, p in zip(dims, kernel, stride, before, strict=True):
            out = -(-(n + 2 * p - k) // s) + 1  # PyTorch's ceil_mode length
            if (out - 1) * s >= n + p:
                out -= 1
            same &= out == -(-n // s)
        if same:
            return F.max_pool3d(x, kernel, stride, padding=before, ceil_mode=True)
    return F.max_pool3d(F.pad(x, _f_pad(pads), value=float("-inf")), kernel, stride)


class Mixed(nn.Module):
    """One inception block: the concat of four branches (see the module docstring)."""

    def __init__(self, cin: int, widths: dict[str, int]):
        super().__init__()
        self.b0 = Unit(cin, widths["b0"], 1)
        self.b1a = Unit(cin, widths["b1a"], 1)
        self.b1b = Unit(widths["b1a"], widths["b1b"], 3)
        self.b2a = Unit(cin, widths["b2a"], 1)
        self.b2b = Unit(widths["b2a"], widths["b2b"], 3)
        self.b3 = Unit(cin, widths["b3"], 1)
        self.splits = [widths["b0"], widths["b1a"], widths["b2a"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the three 1x1x1 convolutions of the block input as one
        weight = torch.cat([self.b0.weight, self.b1a.weight, self.b2a.weight])
        bias = torch.cat([self.b0.bias, self.b1a.bias, self.b2a.bias])
        a, b, c = F.relu_(F.conv3d(x, weight, bias)).split(self.splits, dim=1)
        b = F.relu_(self.b1b(b))
        c = F.relu_(self.b2b(c))
        d = F.relu_(self.b3(F.max_pool3d(x, 3, 1, padding=1)))
        return torch.cat([a, b, c, d], 1)


class I3D(nn.Module):
    """DeepMind's Kinetics-400 Inception-I3D with folded batch norm (see the module docstring).

    ``forward(x)``: float [B, 3, T, H, W] in [-1, 1], T >= ``min_frames`` ->
    float [B, num_classes]: the logits averaged over time (StyleGAN-V's
    ``return_features=True``). Frames of another size are resized to
    ``size`` x ``size`` with ``F.interpolate(size=(T, size, size),
    mode='trilinear', align_corners=False)``, as StyleGAN-V's detector does.
    """

    def __init__(self, config: I3DConfig | None = None):
        super().__init__()
        self.config = config or I3DConfig()
        self.size = self.config.size
        self.in_channels = self.config.in_channels
        self.feature_dim = self.config.num_classes
        self.min_frames = min_frames()
        convs = self.config.convs()
        for kind, name, _kernel, stride in LAYOUT:
            if kind == "conv":
                cin, cout, k = convs[name]
                self.add_module(name, Unit(cin, cout, k, stride[0]))
            elif kind == "mixed":
                self.add_module(name, Mixed(convs[f"{name}.b0"][0], self.config.mixed_widths(name)))
        cin, cout, _ = convs[LOGITS]
        self.add_module(LOGITS, Unit(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise UsageError(f"I3D takes videos [B, {self.in_channels}, T, H, W], got {list(x.shape)}")
        if not x.is_floating_point():
            raise UsageError(f"I3D takes float videos in [-1, 1], got {x.dtype}")
        t = x.shape[2]
        if t < self.min_frames:
            raise UsageError(f"I3D needs clips of at least {self.min_frames} frames, got {t}")
        x = x.to(self.Logits.weight.dtype)
        if tuple(x.shape[3:]) != (self.size, self.size):
            x = F.interpolate(x, size=(t, self.size, self.size), mode="trilinear", align_corners=False)
        x = x.contiguous(memory_format=_MEMORY_FORMAT)
        for kind, name, kernel, stride in LAYOUT:
            if kind == "pool":
                x = max_pool_same(x, kernel, stride)
            elif kind == "conv":
                x = F.relu_(getattr(self, name)(x))
            else:
                x = getattr(self, name)(x)
        x = F.avg_pool3d(x, HEAD_POOL, stride=1)
        x = self.Logits(x)  # [B, classes, T', 1, 1]
        return x.flatten(2).mean(2)

    def extra_repr(self) -> str:
        return f"size={self.size}, min_frames={self.min_frames}, feature_dim={self.feature_dim}"
