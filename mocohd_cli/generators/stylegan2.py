"""StyleGAN2 image generator (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020), configs e and f, skip-connected toRGB.

    z [B, z_dim] --mapping--> w [B, w_dim] --synthesis--> image [B, 3, R, R] in [-1, 1]

* Mapping: z normalised to unit second moment, ``mapping_layers`` fully
  connected layers with leaky ReLU, equalised learning rate with a 0.01 lr
  multiplier; truncation lerps w toward the tracked average ``w_avg``.
* Synthesis: a learned 4x4 constant, then one block per resolution 8..R, each
  block a 2x up-sampling modulated 3x3 conv, a modulated 3x3 conv and a toRGB
  1x1 conv whose output is added to the 2x up-sampled image so far. Every
  conv adds per-pixel noise with a learned strength, then bias, leaky ReLU
  times sqrt(2), and an optional clamp (NVIDIA's ``conv_clamp``).

Parameters are stored as in the paper's equalised-learning-rate form (the
runtime gain 1/sqrt(fan_in) is applied in forward), so checkpoints of the
public implementations convert by renaming alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .. import ops
from ..dict_config import MAX_LAYERS, DictConfig, check_int, check_real
from ..errors import UsageError
from .base import FullyConnected, MappedGenerator, compiling, mapping_shapes

NOISE_MODES = ("const", "random", "none")


@dataclass
class StyleGAN2Config(DictConfig):
    resolution: int = 1024
    z_dim: int = 512
    w_dim: int = 512
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    conv_clamp: float | None = None  # NVIDIA's trained models use 256
    w_avg_beta: float = 0.995  # tracking rate of w_avg while training

    def __post_init__(self):
        r = self.resolution
        if not (isinstance(r, int) and not isinstance(r, bool) and 4 <= r <= 1024 and r & (r - 1) == 0):
            raise UsageError(f"resolution must be a power of two in 4..1024, got {r!r}")
        for name in ("z_dim", "w_dim", "channel_max"):
            check_int(getattr(self, name), name)
        check_int(self.img_channels, "img_channels", hi=64)
        check_int(self.mapping_layers, "mapping_layers", hi=MAX_LAYERS)
        check_int(self.channel_base, "channel_base", hi=1 << 26)
        check_real(self.mapping_lr_mul, "mapping_lr_mul", lo=0, lo_open=True)
        check_real(self.w_avg_beta, "w_avg_beta", lo=0, hi=1)
        if self.conv_clamp is not None:
            check_real(self.conv_clamp, "conv_clamp", lo=0, lo_open=True)
        if min(self.channel_base // r, self.channel_max) < 1:
            raise UsageError("channel_base is too small for this resolution")

    @classmethod
    def preset(cls, name: str, resolution: int, **overrides) -> StyleGAN2Config:
        """NVIDIA's configs: 'e' (channel_base 16384) and 'f' (32768)."""
        bases = {"e": 16384, "f": 32768}
        if name not in bases:
            raise UsageError(f"unknown StyleGAN2 config {name!r} (known: e, f)")
        return cls(resolution=resolution, channel_base=bases[name], **overrides)

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.resolution)) - 2

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor in the generator's state dict, computed
        from the config alone (no module is built, nothing is allocated)."""
        out = mapping_shapes(self)

        def layer(prefix: str, cin: int, cout: int, res: int):
            out.update(
                {
                    f"{prefix}.affine.weight": (cin, self.w_dim),
                    f"{prefix}.affine.bias": (cin,),
                    f"{prefix}.weight": (cout, cin, 3, 3),
                    f"{prefix}.bias": (cout,),
                    f"{prefix}.noise_strength": (),
                    f"{prefix}.noise_const": (res, res),
                }
            )

        cin = 0
        for res in self.block_resolutions:
            cout, p = self.channels(res), f"synthesis.b{res}"
            if cin == 0:
                out[f"{p}.const"] = (cout, 4, 4)
            else:
                layer(f"{p}.conv0", cin, cout, res)
            layer(f"{p}.conv1", cout, cout, res)
            out.update(
                {
                    f"{p}.torgb.affine.weight": (cout, self.w_dim),
                    f"{p}.torgb.affine.bias": (cout,),
                    f"{p}.torgb.weight": (self.img_channels, cout, 1, 1),
                    f"{p}.torgb.bias": (self.img_channels,),
                }
            )
            cin = cout
        return out


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up-sampling) + noise + bias + lrelu."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: int = 1, conv_clamp=None):
        super().__init__()
        self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self._weight_sq = (None, None)  # (key, weight.square().sum([2, 3])) for frozen weights

    def weight_sq(self) -> torch.Tensor:
        """Per (out, in) squared norm of the 3x3 kernels, cached while the weight is unchanged."""
        w = self.weight
        if (w.requires_grad and torch.is_grad_enabled()) or compiling():  # a compiled graph computes it once itself
            return w.square().sum(dim=[2, 3])
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._weight_sq[0] != key:
            self._weight_sq = (key, w.detach().square().sum(dim=[2, 3]))
        return self._weight_sq[1]

    def forward(self, x, w, noise: torch.Tensor | None, impl: str = "fast"):
        # x: [B, in_ch, R/up, R/up], w: [B, w_dim], noise: [B or 1, 1, R, R] or None
        with ops.float32(w):  # the styles stay float32 under autocast, as with ``dtype``
            styles = self.affine(w)
        if impl == "reference":  # in the paper's order: conv, + noise, + bias, lrelu, * gain, clamp
            x = ops.modulated_conv2d(x, self.weight, styles, up=self.up, impl=impl)
            if noise is not None:
                x = x + noise * self.noise_strength
            return ops.bias_act(x, self.bias, act="lrelu", gain=ops.LRELU_GAIN, clamp=self.conv_clamp)
        # lrelu(y) * g == lrelu(y * g) for g > 0: the gain rides along with the
        # demodulation, bias and noise, and the activation runs in place.
        g = ops.LRELU_GAIN
        x = ops.modulated_conv2d(x, self.weight, styles, up=self.up, bias=self.bias, gain=g, weight_sq=self.weight_sq())
        if noise is not None:
            x = x.add_((noise * (self.noise_strength * g)).to(x.dtype))
        return ops.bias_act(x, None, act="lrelu", clamp=self.conv_clamp, inplace=True)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation; the style carries the weight gain."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, conv_clamp=None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1 / math.sqrt(in_ch)

    def forward(self, x, w, impl: str = "fast"):
        with ops.float32(w):
            styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, bias=self.bias, impl=impl)
        return ops.bias_act(x, None, clamp=self.conv_clamp, inplace=True)


class SynthesisBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cfg: StyleGAN2Config, resolution: int):
        super().__init__()
        self.resolution = resolution
        if in_ch == 0:
            self.const = nn.Parameter(torch.randn(out_ch, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_ch, out_ch, cfg.w_dim, resolution, up=2, conv_clamp=cfg.conv_clamp)
        self.conv1 = SynthesisLayer(out_ch, out_ch, cfg.w_dim, resolution, conv_clamp=cfg.conv_clamp)
        self.torgb = ToRGB(out_ch, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)
        self.num_conv = 1 if in_ch == 0 else 2

    def forward(
        self, x, img, ws, noises, impl: str = "fast", memory_format=torch.contiguous_format, dtype=torch.float32
    ):
        # ws: [B, num_conv + 1, w_dim] (the toRGB style is the next block's first conv style)
        if self.num_conv == 1:
            # Later layers inherit this memory format and dtype from their inputs.
            x = (
                self.const.unsqueeze(0)
                .expand(ws.shape[0], -1, -1, -1)
                .to(dtype)
                .contiguous(memory_format=memory_format)
            )
            x = self.conv1(x, ws[:, 0], noises[0], impl)
        else:
            x = self.conv0(x, ws[:, 0], noises[0], impl)
            x = self.conv1(x, ws[:, 1], noises[1], impl)
        y = self.torgb(x, ws[:, self.num_conv], impl).float()  # the image accumulates in float32
        if img is not None:
            with ops.float32(img):  # also under autocast
                img = ops.upsample2d(img, impl).add_(y)
        else:
            img = y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        self.cfg = cfg
        # Channels-last activations let oneDNN/cuDNN skip layout conversions
        # around every convolution (fast path only).
        self.channels_last = True
        # Activation size (bytes) above which blocks run in sub-batches (fast path, CPU); 0 = never.
        # On CUDA (``ops.batched_modconv``) blocks never split: sub-batches multiply kernel launches.
        self.working_set_bytes = 16 << 20
        self.num_ws = cfg.num_ws
        in_ch = 0
        for res in cfg.block_resolutions:
            out_ch = cfg.channels(res)
            self.add_module(f"b{res}", SynthesisBlock(in_ch, out_ch, cfg, res))
            in_ch = out_ch

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.cfg.block_resolutions]

    def layers(self) -> list[SynthesisLayer]:
        """Every noise-carrying conv layer, in the order of ``noise`` lists."""
        out = []
        for block in self.blocks():
            if block.num_conv == 2:
                out.append(block.conv0)
            out.append(block.conv1)
        return out

    def noise_shapes(self, batch: int = 1) -> list[tuple[int, int, int, int]]:
        return [(batch, 1, layer.resolution, layer.resolution) for layer in self.layers()]

    def style_affines(self) -> list[list[FullyConnected]]:
        """For each of the ``num_ws`` w's, the affine layers that turn it into styles: w k modulates
        conv layer k (when there is one) and the toRGB of the block whose convs end at k - 1."""
        out: list[list[FullyConnected]] = [[] for _ in range(self.num_ws)]
        k = 0
        for block in self.blocks():
            convs = [block.conv1] if block.num_conv == 1 else [block.conv0, block.conv1]
            for i, conv in enumerate(convs):
                out[k + i].append(conv.affine)
            out[k + len(convs)].append(block.torgb.affine)
            k += len(convs)
        return out

    def make_noise(
        self, batch: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32
    ) -> list[torch.Tensor]:
        """Draw one noise map per layer, [batch, 1, r, r] each (for noise fixed across frames).
        With a CPU ``generator`` the maps are drawn on the CPU, so a seed gives the same noise on any device."""
        device = device if device is not None else self.b4.const.device
        on = generator.device if generator is not None else device
        return [
            torch.randn(s, generator=generator, device=on, dtype=dtype).to(device) for s in self.noise_shapes(batch)
        ]

    def forward(
        self,
        ws: torch.Tensor,  # [B, w_dim] or [B, num_ws, w_dim]
        noise_mode: str = "const",
        noise: list[torch.Tensor] | None = None,  # per layer [B or 1, 1, r, r]; overrides noise_mode
        impl: str = "fast",
        dtype: torch.dtype | None = None,  # activation/convolution dtype (fast path), e.g. torch.bfloat16
        size: int | None = None,  # stop after the block of this resolution (a power of two in 4..R)
    ) -> torch.Tensor:  # [B, img_channels, size or R, size or R], float32
        """The image of ``ws``; with ``size`` the image the skip architecture has summed up to the
        block of that resolution, without running the larger blocks (a fast low-resolution frame)."""
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.cfg.w_dim):
            raise UsageError(
                f"ws must be [B, {self.cfg.w_dim}] or [B, {self.num_ws}, {self.cfg.w_dim}], got {list(ws.shape)}"
            )
        layers = self.layers()
        if noise is None:
            if noise_mode not in NOISE_MODES:
                raise UsageError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
            if noise_mode == "const":
                noise = [layer.noise_const[None, None] for layer in layers]
            elif noise_mode == "random":
                noise = self.make_noise(ws.shape[0], device=ws.device, dtype=ws.dtype)
            else:
                noise = [None] * len(layers)
        elif len(noise) != len(layers):
            raise UsageError(f"expected {len(layers)} noise maps, got {len(noise)}")

        sizes = self.cfg.block_resolutions
        if size is not None and size not in sizes:
            raise UsageError(f"size must be a power of two in 4..{self.cfg.resolution}, got {size!r}")
        end = len(sizes) if size is None else sizes.index(size) + 1
        fmt = torch.channels_last if self.channels_last and impl == "fast" else torch.contiguous_format
        if impl != "fast" or dtype is None:
            dtype = ws.dtype
        return self._run_blocks(0, None, None, ws, noise, impl, fmt, dtype, end).contiguous()

    def _run_blocks(self, start: int, x, img, ws, noise, impl, fmt, dtype, end: int) -> torch.Tensor:
        """Run blocks ``start`` to ``end`` - 1 on a batch; once a block's activations would exceed
        ``working_set_bytes``, go on in sub-batches (fast path). Small, early
        blocks stay batched (efficient convolutions); large ones run a few
        samples at a time, so time per frame stays flat and memory bounded. On CUDA
        every block runs on the whole batch."""
        blocks = self.blocks()
        w_idx = n_idx = sum(b.num_conv for b in blocks[:start])
        batch = ws.shape[0]
        for i in range(start, end):
            block = blocks[i]
            if impl == "fast" and self.working_set_bytes and batch > 1 and not ops.batched_modconv(ws):
                per_sample = block.conv1.weight.shape[0] * block.resolution**2 * torch.finfo(dtype).bits // 8
                step = max(1, self.working_set_bytes // per_sample)
                if step < batch:

                    def part(t, j, step=step):
                        return t if t is None or t.shape[0] == 1 else t[j : j + step]

                    return torch.cat(
                        [
                            self._run_blocks(
                                i,
                                part(x, j),
                                part(img, j),
                                ws[j : j + step],
                                [part(n, j) for n in noise],
                                impl,
                                fmt,
                                dtype,
                                end,
                            )
                            for j in range(0, batch, step)
                        ]
                    )
            n = block.num_conv
            x, img = block(x, img, ws[:, w_idx : w_idx + n + 1], noise[n_idx : n_idx + n], impl, fmt, dtype)
            w_idx += n
            n_idx += n
        return img


class StyleGAN2Generator(MappedGenerator):
    family = "stylegan2"
    SYNTHESIS = SynthesisNetwork
