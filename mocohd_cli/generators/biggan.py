"""BigGAN-deep image generator (Brock et al., "Large Scale GAN Training for High
Fidelity Natural Image Synthesis", ICLR 2019), class-conditional, 128-512 px.

    z [B, 128] --mapping--> w = z, truncated normal
    (w, class vector c [B, 1000]) --synthesis--> image [B, 3, R, R] in [-1, 1]

* Condition: the class vector (one-hot, or any mix of classes) goes through a
  linear embedding and is concatenated with w: cond = [w, embed(c)].
* A linear layer turns cond into a 4x4 map of ``16 x channel_width`` channels.
* Residual bottleneck blocks: batch norm whose gain (1 + scale(cond)) and bias
  offset(cond) are linear in cond, ReLU, 1x1 conv to a quarter of the
  channels, two 3x3 convs (the first after a 2x nearest up-sampling in "up"
  blocks), a 1x1 conv out. The skip keeps the first ``out`` channels and is
  up-sampled with the block. Every resolution has a plain block, then an up
  block. One self-attention block (SAGAN, key/value max-pooled 2x) sits
  before block ``attention``.
* Then batch norm, ReLU, a 3x3 conv to RGB and tanh.

Batch norm never uses batch statistics: the released models store the
statistics measured at 51 truncation values 0, 0.02, ..., 1 and the forward
pass picks the row of the truncation in use (interpolating between rows as
the public PyTorch port does, see ``stat_rows``).

The public weights are spectrally normalised; the converter divides every
weight by its stored spectral norm once (``formats.biggan``), so this module
holds plain weights and does no power iteration.

Latent space: BigGAN samples z from a normal truncated to [-2, 2] and scales
it by the truncation. ``mapping`` turns a standard normal z into that
truncated normal exactly (through the normal CDF), so the rest of mocohd
(PCA, motion, rendering) sees the same z -> w -> image protocol as StyleGAN2;
``w_avg`` is zero, so truncation toward it scales w as BigGAN does.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..dict_config import MAX_LAYERS, DictConfig, check_int, check_real
from ..errors import UsageError

THRESHOLD = 2.0  # z is drawn from N(0, 1) truncated to [-THRESHOLD, THRESHOLD]


def deep_layers(resolution: int) -> list[list]:
    """The BigGAN-deep block plan [[up, in_mult, out_mult], ...] for 128 px (the paper's table):
    at each resolution a plain block then an up block, channels 16,16,16,8,4,2,1 x width."""
    if resolution != 128:
        raise UsageError("only the 128 px plan is built in; 256 and 512 px models bring theirs in config.json")
    mults = [16, 16, 8, 4, 2, 1]
    plan = [[False, 16, 16]]
    for i in range(5):
        plan += (
            [[True, mults[i], mults[i + 1]]]
            if i == 0
            else [[False, mults[i], mults[i]], [True, mults[i], mults[i + 1]]]
        )
    return plan


@dataclass
class BigGANConfig(DictConfig):
    resolution: int = 128
    z_dim: int = 128
    embed_dim: int = 128  # class embedding size
    num_classes: int = 1000
    channel_width: int = 128
    layers: list = field(default_factory=lambda: deep_layers(128))  # [[up, in_mult, out_mult], ...]
    attention: int = 8  # the self-attention block sits before layers[attention]
    eps: float = 1e-4  # batch-norm epsilon
    n_stats: int = 51  # stored batch-norm statistics: truncation 0, 1/(n-1), ..., 1

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)) or not 1 <= len(self.layers) <= MAX_LAYERS:
            raise UsageError(f"layers must be a list of 1..{MAX_LAYERS} blocks [up, in, out]")
        layers = []
        for k, item in enumerate(self.layers):
            if not isinstance(item, (list, tuple)) or len(item) != 3 or not isinstance(item[0], (bool, int)):
                raise UsageError(f"layer {k} must be [up, in, out], got {item!r}")
            layers.append([bool(item[0]), check_int(item[1], f"layer {k} in"), check_int(item[2], f"layer {k} out")])
        self.layers = layers
        for name in ("z_dim", "embed_dim", "num_classes", "channel_width"):
            check_int(getattr(self, name), name)
        check_int(self.resolution, "resolution", lo=4, hi=4096)
        check_int(self.n_stats, "n_stats", lo=2, hi=4096)
        check_int(self.attention, "attention", lo=0, hi=len(self.layers))
        check_real(self.eps, "eps", lo=0, lo_open=True)
        ups = sum(u for u, _, _ in self.layers)
        if self.resolution != 4 * 2**ups:
            raise UsageError(f"{ups} up-sampling blocks make {4 * 2**ups} px, not {self.resolution}")
        for k, (_, i, o) in enumerate(self.layers):
            if i * self.channel_width < 4 or o < 1 or o > i:
                raise UsageError(f"layer {k}: channels {i} -> {o} (x{self.channel_width}) are not a bottleneck block")
            if k and self.layers[k - 1][2] != i:
                raise UsageError(
                    f"layer {k} takes {i} x width channels but layer {k - 1} gives {self.layers[k - 1][2]}"
                )
        if not 0 <= self.attention <= len(self.layers):
            raise UsageError(f"attention position {self.attention} is outside 0..{len(self.layers)}")
        if self.attention < len(self.layers) and self.layers[self.attention][1] * self.channel_width < 8:
            raise UsageError("self-attention needs at least 8 channels")

    @property
    def attention_channels(self) -> int:
        k = min(self.attention, len(self.layers) - 1)
        return self.channel_width * (self.layers[k][1] if self.attention < len(self.layers) else self.layers[k][2])

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor in the generator's state dict, computed
        from the config alone (no module is built, nothing is allocated)."""
        ch, cond, n = self.channel_width, self.z_dim + self.embed_dim, self.n_stats
        out: dict[str, tuple[int, ...]] = {
            "mapping.w_avg": (self.z_dim,),
            "synthesis.embed.weight": (self.embed_dim, self.num_classes),
        }
        c0 = 16 * self.layers[0][1] * ch
        out.update({"synthesis.gen_z.weight": (c0, cond), "synthesis.gen_z.bias": (c0,)})

        def bn(prefix: str, c: int, conditional: bool = True):
            out.update({f"{prefix}.running_mean": (n, c), f"{prefix}.running_var": (n, c)})
            if conditional:
                out.update({f"{prefix}.scale.weight": (c, cond), f"{prefix}.offset.weight": (c, cond)})
            else:
                out.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,)})

        for k, (_, i, o) in enumerate(self.layers):
            cin, cout, p = i * ch, o * ch, f"synthesis.blocks.{k}"
            mid = cin // 4
            for j, (a, b, size) in enumerate([(cin, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, cout, 1)]):
                bn(f"{p}.bn{j}", a)
                out.update({f"{p}.conv{j}.weight": (b, a, size, size), f"{p}.conv{j}.bias": (b,)})
        c = self.attention_channels
        out.update(
            {
                "synthesis.attention.theta.weight": (c // 8, c, 1, 1),
                "synthesis.attention.phi.weight": (c // 8, c, 1, 1),
                "synthesis.attention.g.weight": (c // 2, c, 1, 1),
                "synthesis.attention.o.weight": (c, c // 2, 1, 1),
                "synthesis.attention.gamma": (1,),
            }
        )
        last = self.layers[-1][2] * ch
        bn("synthesis.bn", last, conditional=False)
        out.update({"synthesis.to_rgb.weight": (3, last, 3, 3), "synthesis.to_rgb.bias": (3,)})
        return out


def stat_rows(truncation: float, n_stats: int) -> tuple[int, int, float]:
    """Which stored statistic rows a truncation uses: (i, j, a) with stats = a * row_i + (1 - a) * row_j.

    As the public PyTorch port computes it: a, i = modf(truncation * (n - 1)); on a grid
    point (a == 0) row i alone, otherwise a * row_i + (1 - a) * row_(i+1). Note the weights:
    the fractional part goes to the lower row, so just above a grid point the statistics
    are close to the next row's. The released models are only ever used this way, so we
    keep it to reproduce their images exactly.
    """
    if not 0 < truncation <= 1:
        raise UsageError(f"BigGAN truncation must be in (0, 1], got {truncation}")
    a, i = math.modf(truncation / (1.0 / (n_stats - 1)))
    i = int(i)
    if a == 0.0:
        return i, i, 1.0
    return i, i + 1, a


class TruncatedNormal(nn.Module):
    """z ~ N(0, I) -> N(0, I) truncated to [-2, 2], elementwise through the normal CDF
    (the same distribution as BigGAN's truncated sampling, but a deterministic map)."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.register_buffer("w_avg", torch.zeros(z_dim))  # the mean of w: truncation scales w toward 0

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        lo = 0.5 * math.erfc(THRESHOLD / math.sqrt(2))  # normal CDF at -THRESHOLD; 1 - lo at +THRESHOLD
        wide = torch.float32 if ops.device_kind(z) == "mps" else torch.float64  # MPS has no float64
        p = lo + torch.special.ndtr(z.to(wide)) * (1 - 2 * lo)
        w = torch.special.ndtri(p).clamp(-THRESHOLD, THRESHOLD).to(z.dtype)
        return w * truncation_psi if truncation_psi != 1 else w


class ConditionalBatchNorm(nn.Module):
    """Inference batch norm with stored statistics per truncation; the gain and bias are
    1 + scale(cond), offset(cond) (``cond_dim`` > 0) or learned constants."""

    def __init__(self, channels: int, cond_dim: int, n_stats: int, eps: float):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(n_stats, channels))
        self.register_buffer("running_var", torch.ones(n_stats, channels))
        if cond_dim:
            self.scale = nn.Linear(cond_dim, channels, bias=False)
            self.offset = nn.Linear(cond_dim, channels, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))

    def stats(self, rows: tuple[int, int, float]) -> tuple[torch.Tensor, torch.Tensor]:
        i, j, a = rows
        if i == j:
            return self.running_mean[i], self.running_var[i]
        return (
            self.running_mean[i] * a + self.running_mean[j] * (1 - a),
            self.running_var[i] * a + self.running_var[j] * (1 - a),
        )

    def forward(self, x: torch.Tensor, rows: tuple[int, int, float], cond: torch.Tensor | None = None) -> torch.Tensor:
        mean, var = self.stats(rows)
        inv = torch.rsqrt(var + self.eps)
        if hasattr(self, "scale"):
            gain = (1 + self.scale(cond)) * inv  # [B, C]
            bias = self.offset(cond) - mean * gain
            return torch.addcmul(bias[:, :, None, None], x, gain[:, :, None, None])
        gain = self.weight * inv
        return torch.addcmul((self.bias - mean * gain)[None, :, None, None], x, gain[None, :, None, None])


class DeepBlock(nn.Module):
    """BigGAN-deep's residual bottleneck block (optionally 2x up-sampling)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, up: bool, n_stats: int, eps: float):
        super().__init__()
        mid = cin // 4
        self.up, self.cout = up, cout
        self.bn0 = ConditionalBatchNorm(cin, cond_dim, n_stats, eps)
        self.conv0 = nn.Conv2d(cin, mid, 1)
        self.bn1 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn2 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv3 = nn.Conv2d(mid, cout, 1)

    def forward(self, x, cond, rows):
        h = self.conv0(F.relu(self.bn0(x, rows, cond)))
        h = F.relu(self.bn1(h, rows, cond))
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, rows, cond)))
        h = self.conv3(F.relu(self.bn3(h, rows, cond)))
        skip = x[:, : self.cout]
        if self.up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class SelfAttention(nn.Module):
    """SAGAN self-attention: queries C/8, keys C/8 and values C/2 channels, keys and
    values max-pooled 2x; out = x + gamma * o(attention)."""

    def __init__(self, channels: int):
        super().__init__()
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # [B, HW, C/8]
        k = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2)  # [B, HW/4, C/8]
        v = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)  # [B, HW/4, C/2]
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]  # unscaled logits
        return x + self.gamma * self.o(a.transpose(1, 2).reshape(b, -1, h, w))


class BigGANSynthesis(nn.Module):
    """(w, class vector) -> image; BigGAN has no noise inputs (``make_noise`` gives none)."""

    def __init__(self, cfg: BigGANConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channel_width
        cond = cfg.z_dim + cfg.embed_dim
        self.embed = nn.Linear(cfg.num_classes, cfg.embed_dim, bias=False)
        self.gen_z = nn.Linear(cond, 4 * 4 * cfg.layers[0][1] * ch)
        self.blocks = nn.ModuleList(
            DeepBlock(i * ch, o * ch, cond, up, cfg.n_stats, cfg.eps) for up, i, o in cfg.layers
        )
        self.attention = SelfAttention(cfg.attention_channels)
        self.bn = ConditionalBatchNorm(cfg.layers[-1][2] * ch, 0, cfg.n_stats, cfg.eps)
        self.to_rgb = nn.Conv2d(cfg.layers[-1][2] * ch, 3, 3, padding=1)

    def layers(self) -> list:
        return []

    def make_noise(self, batch: int, generator=None, device=None, dtype=torch.float32) -> list:
        return []

    def forward(
        self,
        w: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation: float = 1.0,
        noise=None,
        noise_mode: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """w [B, z_dim], c [B, num_classes] (one-hot or a mix) -> [B, 3, R, R]. ``truncation``
        picks the batch-norm statistics; scale w with it too (``mapping`` does) as BigGAN does."""
        if c is None:
            raise UsageError("BigGAN is class-conditional: give a class vector c")
        if c.shape != (w.shape[0], self.cfg.num_classes):
            raise UsageError(f"class vector shape {tuple(c.shape)}, expected ({w.shape[0]}, {self.cfg.num_classes})")
        if noise and any(n is not None for n in noise):
            raise UsageError("BigGAN takes no noise inputs")
        rows = stat_rows(truncation, self.cfg.n_stats)
        amp = (
            torch.autocast(w.device.type, dtype=dtype)
            if dtype is not None and dtype != torch.float32
            else contextlib.nullcontext()
        )
        with amp:
            cond = torch.cat([w, self.embed(c.to(w.dtype))], dim=1)
            x = self.gen_z(cond).view(w.shape[0], -1, 4, 4)
            for k, block in enumerate(self.blocks):
                if k == self.cfg.attention:
                    x = self.attention(x)
                x = block(x, cond, rows)
            if self.cfg.attention == len(self.blocks):
                x = self.attention(x)
            x = self.to_rgb(F.relu(self.bn(x, rows)))
        return torch.tanh(x.float())


class BigGANGenerator(nn.Module):
    """z -> w (truncated normal) -> image, conditioned on a class vector."""

    family = "biggan-deep"

    def __init__(self, cfg: BigGANConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = TruncatedNormal(cfg.z_dim)
        self.synthesis = BigGANSynthesis(cfg)

    z_dim = property(lambda self: self.cfg.z_dim)
    w_dim = property(lambda self: self.cfg.z_dim)
    c_dim = property(lambda self: self.cfg.num_classes)
    resolution = property(lambda self: self.cfg.resolution)
    num_ws = 1
    img_channels = 3

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi=truncation), c, truncation=truncation)
