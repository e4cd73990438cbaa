"""StyleGAN3 image generator (Karras et al., "Alias-Free Generative Adversarial
Networks", NeurIPS 2021), configs T (translation equivariant) and R (rotation
equivariant as well).

    z [B, z_dim] --mapping--> w [B, w_dim] --synthesis--> image [B, 3, R, R]

* Mapping: as StyleGAN2's (``base.MappingNetwork``), 2 layers by default.
* Synthesis: Fourier features (``input``: fixed random frequencies and phases,
  rotated and translated by an affine function of w, then a learned channel
  mixing), ``num_layers`` modulated convolutions, each followed by a filtered
  leaky ReLU (``ops.filtered_lrelu``: up-sample, low-pass, leaky ReLU, low-pass,
  down-sample) whose cutoffs follow a geometric progression from
  ``first_cutoff`` to R/2, and a final 1x1 toRGB layer; the image is scaled by
  ``output_scale``. There are no noise inputs.

Layers are named as NVIDIA names them (``L{i}_{size}_{channels}``), and the
designed low-pass filters, the input's frequencies, phases and transform and
each layer's input-magnitude average are buffers, so NVIDIA's state dicts load
as they are. ``StyleGAN3Config.layer_specs`` repeats NVIDIA's layer design
(sampling rates, cutoffs, transition bands, sizes, paddings) from the
hyper-parameters alone.

One deliberate difference: NVIDIA's modulated convolution first normalises the
styles by their root mean square over the whole *batch*, which cancels in the
demodulation except against its 1e-8 epsilon; here each sample is normalised on
its own, so a frame does not depend on the frames batched with it (the images
agree to float32 rounding).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..dict_config import MAX_LAYERS, DictConfig, check_int, check_real
from ..errors import UsageError
from .base import FullyConnected, MappedGenerator, compiling, mapping_shapes


@dataclass
class StyleGAN3Config(DictConfig):
    resolution: int = 1024
    z_dim: int = 512
    w_dim: int = 512
    img_channels: int = 3
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    w_avg_beta: float = 0.998  # tracking rate of w_avg while training
    channel_base: int = 32768  # T: 32768, R: 65536
    channel_max: int = 512  # T: 512, R: 1024
    num_layers: int = 14  # layers excluding the Fourier features and toRGB
    num_critical: int = 2  # critically sampled layers at the end
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10  # pixels computed outside the image
    output_scale: float = 0.25
    conv_kernel: int = 3  # T: 3, R: 1 (toRGB is always 1x1)
    filter_size: int = 6  # low-pass taps per unit of the lower sampling rate
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False  # R: radially symmetric down-sampling filters
    conv_clamp: float | None = 256.0
    magnitude_ema_beta: float = 0.999  # tracking rate of each layer's input magnitude while training
    num_fp16_res: int = 4  # NVIDIA's float16 layers on CUDA (recorded; mocohd computes in the dtype asked for)

    def __post_init__(self):
        r = self.resolution
        if not (isinstance(r, int) and not isinstance(r, bool) and 8 <= r <= 1024 and r & (r - 1) == 0):
            raise UsageError(f"resolution must be a power of two in 8..1024, got {r!r}")
        for name in ("z_dim", "w_dim", "channel_max"):
            check_int(getattr(self, name), name)
        check_int(self.img_channels, "img_channels", hi=64)
        check_int(self.mapping_layers, "mapping_layers", hi=MAX_LAYERS)
        check_int(self.channel_base, "channel_base", hi=1 << 26)
        check_int(self.num_layers, "num_layers", hi=MAX_LAYERS)
        check_int(self.num_critical, "num_critical", lo=0, hi=self.num_layers - 1)
        check_int(self.margin_size, "margin_size", lo=0, hi=1024)
        check_int(self.conv_kernel, "conv_kernel", hi=15)
        check_int(self.filter_size, "filter_size", hi=64)
        check_int(self.lrelu_upsampling, "lrelu_upsampling", hi=16)
        check_int(self.num_fp16_res, "num_fp16_res", lo=0, hi=MAX_LAYERS)
        check_real(self.mapping_lr_mul, "mapping_lr_mul", lo=0, lo_open=True)
        check_real(self.w_avg_beta, "w_avg_beta", lo=0, hi=1)
        check_real(self.magnitude_ema_beta, "magnitude_ema_beta", lo=0, hi=1)
        check_real(self.first_cutoff, "first_cutoff", lo=0, lo_open=True, hi=r / 2)
        check_real(self.first_stopband, "first_stopband", lo=self.first_cutoff, lo_open=True, hi=4 * r)
        check_real(self.last_stopband_rel, "last_stopband_rel", lo=1, lo_open=True, hi=64)
        check_real(self.output_scale, "output_scale")
        if not isinstance(self.use_radial_filters, bool):
            raise UsageError(f"use_radial_filters must be true or false, got {self.use_radial_filters!r}")
        if self.conv_clamp is not None:
            check_real(self.conv_clamp, "conv_clamp", lo=0, lo_open=True)
        rates = self._bands()[1]
        if rates.min() < 2:
            raise UsageError(f"first_stopband {self.first_stopband} gives a sampling rate below 2")
        for spec in self.layer_specs():
            if spec["out_channels"] < 1:
                raise UsageError("channel_base is too small for this resolution")
            if spec["out_half_width"] <= 0:
                raise UsageError(f"layer {spec['name']}: the stopband must lie above the cutoff")

    @classmethod
    def preset(cls, name: str, resolution: int, **overrides) -> StyleGAN3Config:
        """NVIDIA's configs 'stylegan3-t' ('t') and 'stylegan3-r' ('r')."""
        presets = {
            "t": dict(channel_base=32768, channel_max=512),
            "r": dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True),
        }
        key = name.lower().removeprefix("stylegan3-")
        if key not in presets:
            raise UsageError(f"unknown StyleGAN3 config {name!r} (known: t, r)")
        return cls(resolution=resolution, **{**presets[key], **overrides})

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2

    def _bands(self):
        """Per layer 0..num_layers (numpy, float64, as NVIDIA computes them): cutoffs,
        sampling rates, transition half-widths, sizes and channels."""
        r = self.resolution
        last_cutoff = r / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(self.num_layers + 1) / (self.num_layers - self.num_critical), 1)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** exponents
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, r))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + self.margin_size * 2
        sizes[-2:] = r
        channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        channels[-1] = self.img_channels
        return cutoffs, rates, half_widths, sizes, channels

    def input_spec(self) -> dict:
        cutoffs, rates, _, sizes, channels = self._bands()
        return dict(
            channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(rates[0]), bandwidth=float(cutoffs[0])
        )

    def layer_specs(self) -> list[dict]:
        """Every synthesis layer's design, in order (the last is toRGB)."""
        cutoffs, rates, half_widths, sizes, channels = self._bands()
        out = []
        for i in range(self.num_layers + 1):
            p = max(i - 1, 0)
            torgb = i == self.num_layers
            critical = i >= self.num_layers - self.num_critical
            in_rate, out_rate = int(rates[p]), int(rates[i])
            tmp_rate = max(in_rate, out_rate) * (1 if torgb else self.lrelu_upsampling)
            up, down = tmp_rate // in_rate, tmp_rate // out_rate
            k = 1 if torgb else self.conv_kernel
            up_taps = self.filter_size * up if up > 1 and not torgb else 1
            down_taps = self.filter_size * down if down > 1 and not torgb else 1
            in_size, out_size = int(sizes[p]), int(sizes[i])
            pad_total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
            pad_lo = (pad_total + up) // 2
            pad_hi = pad_total - pad_lo
            out.append(
                dict(
                    name=f"L{i}_{out_size}_{int(channels[i])}",
                    torgb=torgb,
                    critical=critical,
                    in_channels=int(channels[p]),
                    out_channels=int(channels[i]),
                    in_size=in_size,
                    out_size=out_size,
                    in_sampling_rate=in_rate,
                    out_sampling_rate=out_rate,
                    tmp_sampling_rate=tmp_rate,
                    in_cutoff=float(cutoffs[p]),
                    out_cutoff=float(cutoffs[i]),
                    in_half_width=float(half_widths[p]),
                    out_half_width=float(half_widths[i]),
                    conv_kernel=k,
                    up=up,
                    down=down,
                    up_taps=up_taps,
                    down_taps=down_taps,
                    down_radial=self.use_radial_filters and not critical,
                    padding=(pad_lo, pad_hi, pad_lo, pad_hi),
                )
            )
        return out

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor in the generator's state dict, computed
        from the config alone (no module is built, nothing is allocated)."""
        out = mapping_shapes(self)
        c = self.input_spec()["channels"]
        out.update(
            {
                "synthesis.input.weight": (c, c),
                "synthesis.input.affine.weight": (4, self.w_dim),
                "synthesis.input.affine.bias": (4,),
                "synthesis.input.transform": (3, 3),
                "synthesis.input.freqs": (c, 2),
                "synthesis.input.phases": (c,),
            }
        )
        for s in self.layer_specs():
            p, k = f"synthesis.{s['name']}", s["conv_kernel"]
            out.update(
                {
                    f"{p}.weight": (s["out_channels"], s["in_channels"], k, k),
                    f"{p}.bias": (s["out_channels"],),
                    f"{p}.magnitude_ema": (),
                    f"{p}.affine.weight": (s["in_channels"], self.w_dim),
                    f"{p}.affine.bias": (s["in_channels"],),
                }
            )
            if s["up_taps"] > 1:
                out[f"{p}.up_filter"] = (s["up_taps"],)
            if s["down_taps"] > 1:
                out[f"{p}.down_filter"] = (s["down_taps"],) * (2 if s["down_radial"] else 1)
        return out


# ----------------------------------------------------------------------------
# Low-pass filter design (float64, as scipy.signal.firwin and NVIDIA's jinc filter)


def _kaiser_beta(numtaps: int, width: float) -> float:
    """Kaiser window beta for ``numtaps`` taps and a transition ``width`` (fraction of Nyquist)."""
    atten = 2.285 * (numtaps - 1) * np.pi * width + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """Kaiser-windowed low-pass filter: separable [numtaps] (a windowed sinc with unit DC
    gain) or radially symmetric [numtaps, numtaps] (a windowed jinc, unit sum); None for
    one tap (identity)."""
    if numtaps == 1:
        return None
    nyq = fs / 2
    beta = _kaiser_beta(numtaps, width / nyq)
    window = np.kaiser(numtaps, beta)
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        h = (cutoff / nyq) * np.sinc((cutoff / nyq) * m) * window
        return torch.as_tensor(h / h.sum(), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    arg = torch.from_numpy(2 * cutoff * np.pi * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = torch.special.bessel_j1(arg).numpy() / (np.pi * r)
    f = np.where(r == 0, cutoff, f)  # the limit at the centre (an odd number of taps)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# ----------------------------------------------------------------------------
# Modules


class SynthesisInput(nn.Module):
    """Fourier features sampled on a grid, rotated and translated by w."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.channels, self.size, self.sampling_rate, self.bandwidth = channels, size, sampling_rate, bandwidth
        # Frequencies drawn uniformly-ish from a disc of radius ``bandwidth``, random phases.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnected(w_dim, 4)
        with torch.no_grad():  # identity rotation, no translation at initialisation
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))  # user transform (inverse, w.r.t. the image)
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
        """[B, w_dim] -> [B, C, size, size]. ``camera`` [B, 3, 3]: each image's camera (rotation and
        translation of the view, ``camera_matrix``); the features are sampled through its inverse,
        after the stored user ``transform`` (NVIDIA's gen_video sets that buffer to the same inverse).
        Computed in float32 also under autocast: bfloat16 phases would be off by up to 1/128 of a
        period per unit of phase."""
        with ops.float32(w):
            return self._features(w.float(), camera)

    def _features(self, w: torch.Tensor, camera: torch.Tensor | None) -> torch.Tensor:
        batch = w.shape[0]
        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        one, zero = torch.ones_like(t[:, 0]), torch.zeros_like(t[:, 0])
        rot = torch.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], 1).view(batch, 3, 3)
        shift = torch.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], 1).view(batch, 3, 3)
        user = self.transform.unsqueeze(0)
        if camera is not None:
            user = user @ torch.linalg.inv(camera.to(user))
        transforms = rot @ shift @ user
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [B, C, 2]
        # Damp frequencies that the user transform pushes out of band.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # Sample positions: pixel centres, in units of the sampling rate, centred on the image.
        coords = (
            torch.arange(self.size, device=w.device, dtype=torch.float32) + 0.5 - self.size / 2
        ) / self.sampling_rate
        grid = torch.stack(torch.broadcast_tensors(coords[None, :], coords[:, None]), -1)  # [H, W, (x, y)]
        x = (grid.reshape(1, -1, 2) @ freqs.transpose(1, 2)).view(batch, self.size, self.size, -1)
        x = torch.sin((x + phases[:, None, None]) * (2 * math.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


# How far a camera may move the view, in image widths: the input transform is float32, which places
# the view to about 1/1000 of a width up to 10^4 widths; at 10^6 a step of 1/64 of a width is lost.
MAX_CAMERA_SHIFT = 1e4


def check_cameras(camera: torch.Tensor, batch: int) -> None:
    """UsageError unless ``camera`` is [batch, 3, 3] cameras (``camera_matrix``) that are finite,
    invertible (|det| of the rotation part >= 1e-6) and move the view by at most MAX_CAMERA_SHIFT
    image widths on each axis: anything else samples the input at NaN or meaningless positions."""
    if camera.shape != (batch, 3, 3):
        raise UsageError(f"camera must be [{batch}, 3, 3], got {list(camera.shape)}")
    c = camera.detach().float()
    det = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
    fine = torch.isfinite(c).all() & (c[:, :2, 2].abs() <= MAX_CAMERA_SHIFT).all() & (det.abs() >= 1e-6).all()
    if not bool(fine):
        raise UsageError(
            f"camera: each [3, 3] camera must be finite and invertible and move the view by at most "
            f"{MAX_CAMERA_SHIFT:g} image widths (StyleGAN3's float32 input cannot place it further)"
        )


def camera_matrix(angle_deg: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] cameras: a rotation by ``angle_deg`` (counter-clockwise) and a translation by
    (tx, ty) in the input's coordinates (the image is about 1 wide), as NVIDIA's ``make_transform``
    builds them for gen_video.py / the visualizer (which then take the inverse)."""
    a = torch.deg2rad(torch.as_tensor(angle_deg, dtype=torch.float64))
    tx, ty = torch.as_tensor(tx, dtype=torch.float64), torch.as_tensor(ty, dtype=torch.float64)
    c, s, one, zero = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, s, tx, -s, c, ty, zero, zero, one], -1).view(-1, 3, 3).float()


class SynthesisLayer(nn.Module):
    """Modulated conv (demodulated, except toRGB) + filtered leaky ReLU."""

    def __init__(self, w_dim: int, spec: dict, cfg: StyleGAN3Config):
        super().__init__()
        self.spec = spec
        self.torgb = spec["torgb"]
        in_ch, out_ch, k = spec["in_channels"], spec["out_channels"], spec["conv_kernel"]
        self.in_channels, self.out_channels, self.conv_kernel = in_ch, out_ch, k
        self.up, self.down, self.padding = spec["up"], spec["down"], spec["padding"]
        self.conv_clamp = cfg.conv_clamp
        self.gain = 1.0 if self.torgb else ops.LRELU_GAIN
        self.slope = 1.0 if self.torgb else ops.LRELU_SLOPE
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_ch, in_ch, k, k]))
        self.bias = nn.Parameter(torch.zeros([out_ch]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self._normalized = (None, None)  # (key, (normalised weight, its squared norms)) for frozen weights
        self.register_buffer(
            "up_filter",
            design_lowpass_filter(
                spec["up_taps"], spec["in_cutoff"], spec["in_half_width"] * 2, spec["tmp_sampling_rate"]
            ),
        )
        self.register_buffer(
            "down_filter",
            design_lowpass_filter(
                spec["down_taps"],
                spec["out_cutoff"],
                spec["out_half_width"] * 2,
                spec["tmp_sampling_rate"],
                radial=spec["down_radial"],
            ),
        )

    def modulation(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """w [B, w_dim] -> (the weight, the styles [B, in] with the input gain, the demodulation
        [B, out] or None for toRGB), in float32 also under autocast."""
        with ops.float32(w):
            styles = self.affine(w)  # [B, in]
            if self.torgb:
                weight = self.weight
                styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel**2))
                out_scale = None
            else:
                # Pre-normalise (cancels in the demodulation up to its epsilon): weights per
                # output filter, styles per sample.
                weight, weight_sq = self.normalized_weight()
                styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
                # sum_{i,k} (W[o,i,k] s[b,i])^2 = sum_i s[b,i]^2 sum_k W[o,i,k]^2
                out_scale = (styles.square() @ weight_sq.t() + ops.DEMOD_EPS).rsqrt()  # [B, out]
            return weight, styles * self.magnitude_ema.rsqrt(), out_scale  # the input gain on the styles

    def normalized_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight scaled to unit mean square per output filter, and its squared norms per
        (out, in) [out, in]; cached while the weight is unchanged and not being trained."""
        w = self.weight
        if (w.requires_grad and torch.is_grad_enabled()) or compiling():
            wn = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            return wn, wn.square().sum(dim=[2, 3])
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._normalized[0] != key:
            wn = w.detach() * w.detach().square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            self._normalized = (key, (wn, wn.square().sum(dim=[2, 3])))
        return self._normalized[1]

    def forward(self, x: torch.Tensor, w: torch.Tensor, impl: str = "fast") -> torch.Tensor:
        weight, styles, out_scale = self.modulation(w)
        pad = self.conv_kernel - 1
        if impl == "reference":  # one sample at a time, the modulated weight written out
            outs = []
            for i in range(x.shape[0]):
                wb = weight * styles[i].reshape(1, -1, 1, 1)
                if out_scale is not None:
                    wb = wb * out_scale[i].reshape(-1, 1, 1, 1)
                outs.append(F.conv2d(x[i : i + 1], wb.to(x.dtype), padding=pad))
            return ops.filtered_lrelu(
                torch.cat(outs),
                self.up_filter,
                self.down_filter,
                self.bias,
                self.up,
                self.down,
                self.padding,
                gain=self.gain,
                slope=self.slope,
                clamp=self.conv_clamp,
                impl=impl,
            )
        bias = self.bias.to(x.dtype)
        per_sample = x.shape[0] == 1 or (x.shape[2] * x.shape[3] > ops.FUSED_MIN_PIXELS and not ops.batched_modconv(x))
        if per_sample:
            # Per-sample weights (style, demodulation and input gain folded in) and the bias in
            # the convolution: the output is written once.
            outs = []
            for i in range(x.shape[0]):
                wb = weight * styles[i].reshape(1, -1, 1, 1)
                if out_scale is not None:
                    wb = wb * out_scale[i].reshape(-1, 1, 1, 1)
                outs.append(F.conv2d(x[i : i + 1], wb.to(x.dtype), bias, padding=pad))
            x = outs[0] if len(outs) == 1 else torch.cat(outs)
        else:  # small maps, or CUDA: scale the input channels, one batched convolution, scale the output channels
            x = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=pad)
            if out_scale is not None:
                x = x * out_scale.to(x.dtype)[:, :, None, None]
            x = x + bias[None, :, None, None]
        return ops.filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            None,
            self.up,
            self.down,
            self.padding,
            gain=self.gain,
            slope=self.slope,
            clamp=self.conv_clamp,
            impl=impl,
        )


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        self.cfg = cfg
        self.num_ws = cfg.num_ws
        self.input = SynthesisInput(cfg.w_dim, **cfg.input_spec())
        self.layer_names = []
        for spec in cfg.layer_specs():
            self.add_module(spec["name"], SynthesisLayer(cfg.w_dim, spec, cfg))
            self.layer_names.append(spec["name"])

    def conv_layers(self) -> list[SynthesisLayer]:
        """The synthesis layers in order (the last is toRGB)."""
        return [getattr(self, n) for n in self.layer_names]

    def style_affines(self) -> list[list[FullyConnected]]:
        """For each of the ``num_ws`` w's, the affine layers that turn it into styles: none for w 0
        (its affine sets the Fourier features' rotation and translation, not a style), then one
        per synthesis layer, toRGB last."""
        return [[]] + [[layer.affine] for layer in self.conv_layers()]

    def layers(self) -> list:
        """Noise-carrying layers: none (StyleGAN3 has no noise inputs)."""
        return []

    def noise_shapes(self, batch: int = 1) -> list:
        return []

    def make_noise(self, batch: int, generator=None, device=None, dtype=torch.float32) -> list:
        return []

    def forward(
        self,
        ws: torch.Tensor,  # [B, w_dim] or [B, num_ws, w_dim]
        noise_mode: str = "const",  # accepted for the common protocol; there is no noise
        noise: list | None = None,  # must be empty or all None
        impl: str = "fast",
        dtype: torch.dtype | None = None,  # compute dtype (autocast), e.g. torch.bfloat16
        camera: torch.Tensor | None = None,  # [B, 3, 3]: each image's camera (``camera_matrix``)
    ) -> torch.Tensor:  # [B, img_channels, R, R], float32
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.cfg.w_dim):
            raise UsageError(
                f"ws must be [B, {self.cfg.w_dim}] or [B, {self.num_ws}, {self.cfg.w_dim}], got {list(ws.shape)}"
            )
        if noise and any(n is not None for n in noise):
            raise UsageError("StyleGAN3 takes no noise inputs")
        ops._check_impl(impl)
        amp = (
            torch.autocast(ws.device.type, dtype=dtype)
            if impl == "fast" and dtype is not None and dtype != torch.float32
            else contextlib.nullcontext()
        )
        ws = ws.float()
        if camera is not None:
            check_cameras(camera, ws.shape[0])
        with amp:
            x = self.input(ws[:, 0], camera)
            if impl == "fast":  # oneDNN's depthwise filters are fastest on channels-last memory
                x = x.contiguous(memory_format=torch.channels_last)
            for i, layer in enumerate(self.conv_layers()):
                x = layer(x, ws[:, i + 1], impl)
        x = x.float()
        if self.cfg.output_scale != 1:
            x = x * self.cfg.output_scale
        return x.contiguous()


class StyleGAN3Generator(MappedGenerator):
    """z -> w -> image (StyleGAN2's mapping, the alias-free synthesis)."""

    family = "stylegan3"
    SYNTHESIS = SynthesisNetwork
