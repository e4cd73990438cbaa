"""An image encoder for a frozen StyleGAN generator: an image -> the w's that make it.

    E = ImageEncoder(EncoderConfig(resolution=64, w_dim=512, num_ws=10, space="w+"), w_avg=G.mapping.w_avg)
    ws = E(images)                     # images [B, 3, R, R] in [-1, 1] -> [B, num_ws, w_dim]
    frames = G.synthesis(ws)

The design follows the encoders that invert StyleGAN in one forward pass (pSp, Richardson et
al. 2021; e4e, Tov et al. 2021), at the size a CPU can train:

* a residual convolutional trunk halves the image down to 4 x 4 (average-pool down-sampling,
  leaky ReLU, each block's output the scaled sum of its path and a 1x1 skip);
* a head reads the 4 x 4 features (where they are) and the mean of every scale's features
  (what is there), and maps them through a two-layer MLP;
* the output is an offset around the generator's average w (a buffer copied from
  ``G.mapping.w_avg``): one w shared by every layer plus, in space ``w+``, one offset per layer
  (e4e's shape: training keeps the per-layer offsets small, so the latents stay where the
  generator's own w's are and motion along its PCA directions means what it means there).
  The last layer starts at zero: an untrained encoder answers the average w.

Images of another size are resized (area) to ``resolution`` first, so a 1024 px generator's
frames can be encoded at 256 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dict_config import DictConfig, check_int
from ..errors import UsageError

FAMILY = "mocohd-encoder"  # the family of an encoder file (kind "encoder")
SPACES = ("w", "w+")
SLOPE = 0.2


@dataclass
class EncoderConfig(DictConfig):
    resolution: int = 64  # the input size (images are resized to it)
    w_dim: int = 512
    num_ws: int = 10  # the generator's number of w's per image
    space: str = "w+"  # "w": one w for every layer; "w+": one per layer
    channel_base: int = 2048  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 128
    hidden: int = 512  # the head's hidden width

    def __post_init__(self):
        check_int(self.resolution, "resolution", lo=4, hi=4096)
        if self.resolution & (self.resolution - 1):
            raise UsageError(f"resolution must be a power of two, got {self.resolution}")
        for name in ("w_dim", "channel_base", "channel_max", "hidden"):
            check_int(getattr(self, name), name)
        check_int(self.num_ws, "num_ws", hi=64)
        if self.space not in SPACES:
            raise UsageError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    @property
    def scales(self) -> list[int]:
        """The trunk's resolutions, from the input down to 4."""
        return [2**i for i in range(int(math.log2(self.resolution)), 1, -1)]

    @property
    def offsets(self) -> int:
        """How many w-sized vectors the head outputs: the shared w, and one per layer in w+."""
        return 1 + (self.num_ws if self.space == "w+" else 0)

    def head_inputs(self) -> int:
        return 16 * self.channels(4) + sum(self.channels(r) for r in self.scales)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        top = self.scales[0]
        out["from_rgb.weight"] = (self.channels(top), 3, 1, 1)
        out["from_rgb.bias"] = (self.channels(top),)
        for res in self.scales[1:]:
            cin, cout = self.channels(res * 2), self.channels(res)
            out[f"b{res}.conv0.weight"], out[f"b{res}.conv0.bias"] = (cin, cin, 3, 3), (cin,)
            out[f"b{res}.conv1.weight"], out[f"b{res}.conv1.bias"] = (cout, cin, 3, 3), (cout,)
            out[f"b{res}.skip.weight"] = (cout, cin, 1, 1)
        out["fc0.weight"], out["fc0.bias"] = (self.hidden, self.head_inputs()), (self.hidden,)
        out["fc1.weight"], out["fc1.bias"] = (self.offsets * self.w_dim, self.hidden), (self.offsets * self.w_dim,)
        out["w_avg"] = (self.w_dim,)
        return out


class DownBlock(nn.Module):
    """Half the resolution: (conv 3x3, lrelu, conv 3x3, average pool, lrelu) beside (average
    pool, conv 1x1), summed and scaled by 1/sqrt(2) so the features keep their size."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cin, 3, padding=1)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), SLOPE)
        y = F.leaky_relu(F.avg_pool2d(self.conv1(y), 2), SLOPE)
        return (y + self.skip(F.avg_pool2d(x, 2))) * (1 / math.sqrt(2))


class ImageEncoder(nn.Module):
    family = FAMILY

    def __init__(self, cfg: EncoderConfig, w_avg: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        top = cfg.scales[0]
        self.from_rgb = nn.Conv2d(3, cfg.channels(top), 1)
        for res in cfg.scales[1:]:
            self.add_module(f"b{res}", DownBlock(cfg.channels(res * 2), cfg.channels(res)))
        self.fc0 = nn.Linear(cfg.head_inputs(), cfg.hidden)
        self.fc1 = nn.Linear(cfg.hidden, cfg.offsets * cfg.w_dim)
        nn.init.zeros_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim) if w_avg is None else w_avg.detach().clone().float())

    resolution = property(lambda self: self.cfg.resolution)
    num_ws = property(lambda self: self.cfg.num_ws)
    w_dim = property(lambda self: self.cfg.w_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, head_inputs]: the 4 x 4 features, flattened, and every scale's mean features."""
        x = images
        if x.shape[-1] != self.cfg.resolution or x.shape[-2] != self.cfg.resolution:
            x = F.interpolate(x, size=(self.cfg.resolution,) * 2, mode="area")
        x = F.leaky_relu(self.from_rgb(x), SLOPE)
        means = [x.mean(dim=(2, 3))]
        for res in self.cfg.scales[1:]:
            x = getattr(self, f"b{res}")(x)
            means.append(x.mean(dim=(2, 3)))
        return torch.cat([x.flatten(1), *means], dim=1)

    def offsets(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the shared offset [B, w_dim], the per-layer offsets [B, num_ws, w_dim] or None in w)."""
        h = F.leaky_relu(self.fc0(self.features(images)), SLOPE)
        out = self.fc1(h).view(images.shape[0], self.cfg.offsets, self.cfg.w_dim)
        return out[:, 0], (out[:, 1:] if self.cfg.space == "w+" else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1] -> ws [B, num_ws, w_dim]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"an encoder takes images [B, 3, H, W], got {list(images.shape)}")
        return self.compose(*self.offsets(images))

    def compose(self, shared: torch.Tensor, layers: torch.Tensor | None) -> torch.Tensor:
        """The ws [B, num_ws, w_dim] of ``offsets``' output: w_avg + shared (+ each layer's own)."""
        w = (self.w_avg + shared)[:, None].expand(-1, self.cfg.num_ws, -1)
        return w if layers is None else w + layers
