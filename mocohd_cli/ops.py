"""Numerical kernels of the StyleGAN2 synthesis network.

Each operation has two implementations:

* ``impl="fast"`` -- what the networks run: the [1, 3, 3, 1] FIR filter as
  one depthwise convolution (a single pass over channels-last memory), the
  modulation folded into a per-sample weight on large maps or into the
  activations of one batched convolution on small maps, and bias and gain
  folded into the convolution.
* ``impl="reference"`` -- a slow, obviously-correct restatement: one sample
  at a time, the modulated weight built explicitly, up-sampling done by
  inserting zeros and running the full 2-D FIR filter as a convolution.

``tests/test_ops.py`` checks that they agree.

Levers per device: ``device_kind`` says which device's choices apply. On the CPU a
modulated convolution on a map larger than ``FUSED_MIN_PIXELS`` runs one sample at a
time (per-sample weights: the CPU is compute-bound and that is its conv peak); on CUDA
every modulated convolution is one batched convolution, because a GPU is bound by
kernel launches, not by the extra pass over the activations. ``stand_in("cuda")``
makes ``device_kind`` answer "cuda" for CPU tensors, so tests and
``benchmarks/gpu_shape.py`` run and count the CUDA path without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F

from .errors import UsageError

# The 1-D binomial filter [1, 3, 3, 1] normalised to unit sum. Used for every
# 2x up-sampling (gain 2 per axis, 4 for the 2-D filter).
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
FUSED_MIN_PIXELS = 32 * 32

IMPLS = ("fast", "reference")


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise UsageError(f"impl must be one of {IMPLS}, got {impl!r}")


DEVICE_KINDS = ("cpu", "cuda", "mps")
_stand_in: str | None = None


def device_kind(x: torch.Tensor | torch.device | str) -> str:
    """Which device's levers apply to tensor (or device) ``x``: its device type, or the
    kind forced by ``stand_in``."""
    if _stand_in is not None:
        return _stand_in
    return x.device.type if isinstance(x, torch.Tensor) else torch.device(x).type


@contextmanager
def stand_in(kind: str) -> Iterator[None]:
    """Within the block, ``device_kind`` answers ``kind`` whatever the tensors' device: the
    code takes that device's path on CPU tensors (see tests/support/gpu_shape.py)."""
    global _stand_in
    if kind not in DEVICE_KINDS:
        raise UsageError(f"device kind must be one of {DEVICE_KINDS}, got {kind!r}")
    before, _stand_in = _stand_in, kind
    try:
        yield
    finally:
        _stand_in = before


def float32(x: torch.Tensor):
    """A region that computes in float32 even under autocast (on ``x``'s device): styles,
    demodulation, the image sum. Outside autocast it is nothing, and costs nothing."""
    kind = x.device.type
    try:
        on = torch.is_autocast_enabled(kind)
    except TypeError:  # torch < 2.4 takes no device
        on = torch.is_autocast_enabled() if kind == "cuda" else torch.is_autocast_cpu_enabled()
    except RuntimeError:  # a device without autocast (meta)
        on = False
    return torch.autocast(kind, enabled=False) if on else nullcontext()


def batched_modconv(x: torch.Tensor) -> bool:
    """Whether modulated convolutions on x run as one batched convolution whatever the map
    size (CUDA: launch-bound) rather than per sample on large maps (CPU: compute-bound)."""
    return device_kind(x) == "cuda"


_FIR_CACHE: dict[tuple, torch.Tensor] = {}


def fir_filter_2d(device=None, dtype=torch.float32) -> torch.Tensor:
    """The 4x4 filter outer([1,3,3,1], [1,3,3,1]) / 64 (unit sum).

    Built once per (device, dtype) and cached: no host-to-device copy per call (which
    would also break CUDA-graph capture). Treat the result as read-only."""
    return _cached_fir(torch.device(device) if device is not None else torch.device("cpu"), dtype, 1.0, 0)


def _cached_fir(device: torch.device, dtype: torch.dtype, gain: float, channels: int) -> torch.Tensor:
    """outer(taps, taps) / 64 * gain: [4, 4], or as a depthwise weight [channels, 1, 4, 4]."""
    key = (device, dtype, gain, channels)
    f = _FIR_CACHE.get(key)
    if f is None:
        # A plain tensor whatever mode the first caller runs in (inference mode, no_grad).
        with torch.inference_mode(False), torch.no_grad():
            taps = torch.tensor(FIR_TAPS, dtype=torch.float32)  # exact: the taps and sums are dyadic
            f = torch.outer(taps, taps) / 64.0 * gain
            if channels:
                f = f.expand(channels, 1, 4, 4).contiguous()
            f = f.to(device=device, dtype=dtype)
        _FIR_CACHE[key] = f
    return f


# ----------------------------------------------------------------------------
# Bias + activation (+ clamp), as StyleGAN2's bias_act: x = act(x + b) * gain,
# then clamp to [-clamp, clamp].


def bias_act(
    x: torch.Tensor,  # [B, C, ...]
    b: torch.Tensor | None,  # [C]
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    # A fresh intermediate may be updated in place, unless autograd needs it.
    fresh_ok = not (torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)))
    inplace = inplace and fresh_ok
    if b is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x.add_(b.reshape(shape)) if inplace else x + b.reshape(shape)
        inplace = fresh_ok
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=inplace)
        inplace = fresh_ok
    elif act != "linear":
        raise UsageError(f"unknown activation {act!r}")
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
        inplace = fresh_ok
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


# ----------------------------------------------------------------------------
# FIR filtering.


def _depthwise_fir(x: torch.Tensor, gain: float) -> torch.Tensor:
    """The 4x4 filter as a depthwise conv weight [C, 1, 4, 4] for x's channels (cached)."""
    return _cached_fir(x.device, x.dtype, gain, x.shape[1])


def upsample2d(x: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """2x up-sampling with the [1,3,3,1] filter: [B, C, H, W] -> [B, C, 2H, 2W].

    Same as upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4).
    """
    _check_impl(impl)
    if impl == "reference":
        return _upfirdn2d_reference(x, fir_filter_2d(x.device, x.dtype), up=2, pad=(2, 1), gain=4.0)
    # A depthwise stride-2 transposed convolution inserts the zeros and filters
    # in one pass; padding=1 crops it to exactly the upfirdn2d window.
    return F.conv_transpose2d(x, _depthwise_fir(x, 4.0), stride=2, padding=1, groups=x.shape[1])


def _zero_insert(x: torch.Tensor, up: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H*up, W*up] with x at multiples of ``up``, zeros elsewhere."""
    b, c, h, w = x.shape
    out = x.new_zeros([b, c, h * up, w * up])
    out[:, :, ::up, ::up] = x
    return out


def _upfirdn2d_reference(x, f, up: int, pad: tuple[int, int], gain: float) -> torch.Tensor:
    """Zero-insert by ``up``, zero-pad (pad[0] before, pad[1] after), convolve with f * gain."""
    b, c, _, _ = x.shape
    x = _zero_insert(x, up) if up > 1 else x
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    kernel = (f * gain).flip([0, 1])  # convolution = correlation with the flipped filter
    kernel = kernel[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kernel, groups=c)


# ----------------------------------------------------------------------------
# Modulated convolution.


def modulated_conv2d(
    x: torch.Tensor,  # [B, Cin, H, W]
    weight: torch.Tensor,  # [Cout, Cin, k, k]
    styles: torch.Tensor,  # [B, Cin]
    demodulate: bool = True,
    up: int = 1,
    bias: torch.Tensor | None = None,  # [Cout]
    gain: float = 1.0,
    impl: str = "fast",
    fused: bool | None = None,
    weight_sq: torch.Tensor | None = None,  # [Cout, Cin]: weight.square().sum([2, 3]), if cached
) -> torch.Tensor:  # [B, Cout, H*up, W*up]
    """StyleGAN2's modulated (and demodulated) convolution, 'same' padding,
    returning ``gain * (conv + bias)``.

    w_b = weight * styles_b (per input channel); if ``demodulate``, each output
    filter of w_b is scaled to unit norm: w_b / sqrt(sum(w_b^2) + 1e-8).
    With ``up=2`` the convolution is a stride-2 transposed convolution followed
    by the [1,3,3,1] FIR filter (gain 4), as in StyleGAN2.

    Fast path: ``fused`` (default for one sample, and on the CPU for maps larger
    than ``FUSED_MIN_PIXELS``) folds style, demodulation and gain into a
    per-sample weight and the bias into the convolution, so the output is
    written once; otherwise (default on CUDA for any batch) the input channels
    are scaled, one batched convolution runs with the shared weight, and the
    output channels are scaled.
    """
    _check_impl(impl)
    batch, in_ch, _, _ = x.shape
    out_ch, w_in, kh, kw = weight.shape
    assert w_in == in_ch and kh == kw and styles.shape == (batch, in_ch), (x.shape, weight.shape, styles.shape)
    assert up in (1, 2)
    if impl == "reference":
        y = _modulated_conv2d_reference(x, weight, styles, demodulate, up)
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return y * gain if gain != 1 else y

    if demodulate:
        # sum_{i,k} (W[o,i,k] s[b,i])^2 = sum_i s[b,i]^2 * sum_k W[o,i,k]^2
        if weight_sq is None:
            weight_sq = weight.square().sum(dim=[2, 3])
        with float32(styles):
            out_scale = (styles.square() @ weight_sq.t() + DEMOD_EPS).rsqrt()  # [B, Cout]
        if gain != 1:
            out_scale = out_scale * gain
    else:
        out_scale = styles.new_full([batch, out_ch], gain)
    # Modulation and demodulation are computed in the parameters' precision;
    # only the convolution runs in x's dtype (e.g. bfloat16).
    dt = x.dtype
    b = bias * gain if bias is not None and gain != 1 else bias
    b = b.to(dt) if b is not None else None

    if fused is None:
        # CPU: on large maps, per-sample weights (one pass over the weight) beat
        # scaling the activations; on small maps (<= 32x32) the weight is the
        # larger tensor, and one batched convolution is also more efficient.
        # CUDA: one batched convolution always (a loop over samples is launch-bound).
        if batched_modconv(x):
            fused = batch == 1
        else:
            fused = x.shape[2] * x.shape[3] > FUSED_MIN_PIXELS
    if fused:
        outs = []
        for i in range(batch):
            w = weight * (styles[i].reshape(1, in_ch, 1, 1) * out_scale[i].reshape(out_ch, 1, 1, 1))
            outs.append(_conv(x[i : i + 1], w.to(dt), up, b))
        return outs[0] if batch == 1 else torch.cat(outs)
    x = x * styles.to(dt).reshape(batch, in_ch, 1, 1)
    x = _conv(x, weight.to(dt), up, None)
    x = x.mul_(out_scale.to(dt).reshape(batch, out_ch, 1, 1))
    return x.add_(b.reshape(1, out_ch, 1, 1)) if b is not None else x


def _conv(x: torch.Tensor, w: torch.Tensor, up: int, bias: torch.Tensor | None) -> torch.Tensor:
    k = w.shape[-1]
    if up == 1:
        return F.conv2d(x, w, bias, padding=k // 2)
    # Transposed convolution (stride 2, no padding): [H, W] -> [2H+k-2, 2W+k-2],
    # then the FIR filter (with the bias fused in) brings a 3x3 kernel's output to [2H, 2W].
    assert k == 3, "up-sampling convolutions use 3x3 kernels"
    x = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
    return F.conv2d(x, _depthwise_fir(x, 4.0), bias, padding=1, groups=x.shape[1])


def _modulated_conv2d_reference(x, weight, styles, demodulate: bool, up: int) -> torch.Tensor:
    outs = []
    k = weight.shape[-1]
    f = fir_filter_2d(x.device, x.dtype)
    for b in range(x.shape[0]):
        w = weight * styles[b].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + DEMOD_EPS)
        xb = x[b : b + 1]
        if up == 1:
            outs.append(F.conv2d(F.pad(xb, [k // 2] * 4), w))
            continue
        # Transposed convolution written out: insert zeros between the input
        # pixels, pad by k-1, correlate with the spatially flipped kernel...
        z = _zero_insert(xb, 2)[:, :, : 2 * xb.shape[2] - 1, : 2 * xb.shape[3] - 1]
        z = F.conv2d(F.pad(z, [k - 1] * 4), w.flip([2, 3]))
        # ... then the FIR filter, padded by 1 on each side, gain 4.
        outs.append(_upfirdn2d_reference(z, f, up=1, pad=(1, 1), gain=4.0))
    return torch.cat(outs)


# ----------------------------------------------------------------------------
# Filtered leaky ReLU (StyleGAN3's alias-free nonlinearity).
#
#   x + b -> up-sample by ``up`` (insert zeros), pad, low-pass ``fu`` (gain up^2)
#         -> leaky ReLU * gain, clamp -> low-pass ``fd`` -> keep every ``down``-th sample
#
# Filters are 1-D (separable: the same taps along both axes), 2-D, or None (identity).
# Filtering is convolution (the taps flipped), padding may be negative (cropping);
# ``padding`` is (left, right, top, bottom) with respect to the up-sampled image.


def filtered_lrelu_size(size: tuple[int, int], fu, fd, up: int, down: int, padding) -> tuple[int, int]:
    """Output (height, width) of ``filtered_lrelu`` for an input of (height, width) ``size``."""
    px0, px1, py0, py1 = padding
    fu_h, fu_w = _filter_hw(fu)
    fd_h, fd_w = _filter_hw(fd)
    h = (size[0] * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down
    w = (size[1] * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down
    return h, w


def _filter_hw(f) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[0], f.shape[-1])


def filtered_lrelu(
    x: torch.Tensor,  # [B, C, H, W]
    fu: torch.Tensor | None,  # up-sampling filter: [taps], [taps, taps] or None
    fd: torch.Tensor | None,  # down-sampling filter: [taps], [taps, taps] or None
    b: torch.Tensor | None = None,  # [C]
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = LRELU_GAIN,
    slope: float = LRELU_SLOPE,
    clamp: float | None = None,
    impl: str = "fast",
) -> torch.Tensor:
    """StyleGAN3's filtered leaky ReLU (see above); ``slope`` 1 and ``gain`` 1 make it a
    plain resampling filter. Fast path: up-sampling, padding and the up-sampling filter as
    one depthwise transposed convolution (the leaky ReLU's gain folded into the filter),
    leaky ReLU and clamp in place, the down-sampling filter as one strided depthwise
    convolution (only kept samples are computed). Separable filters run as their 2-D
    outer products: on channels-last memory (what StyleGAN3's synthesis uses)
    oneDNN's depthwise kernels are faster than two 1-D passes."""
    _check_impl(impl)
    assert x.ndim == 4 and up >= 1 and down >= 1 and gain > 0 and slope >= 0
    if impl == "reference":
        return _filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    src = x
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = _upfir_fast(x, fu, up, padding, gain)
    # In place on a tensor of our own, unless autograd keeps what the activation saw.
    inplace = x is not src and x.data_ptr() != src.data_ptr() and not (torch.is_grad_enabled() and x.requires_grad)
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=inplace)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return _firdown_fast(x, fd, down)


def _upfirdn_reference(x, f, up: int, down: int, padding, gain: float) -> torch.Tensor:
    """Zero insertion, padding/cropping, the full filter as one convolution, decimation."""
    c = x.shape[1]
    if up > 1:
        x = _zero_insert(x, up)
    x = F.pad(x, list(padding))  # negative values crop
    if f is None:
        f = torch.ones([1, 1])
    f = f.to(device=x.device, dtype=torch.float32) * gain ** (f.ndim / 2)
    kernel = f.flip(list(range(f.ndim))).to(x.dtype)
    if kernel.ndim == 2:
        x = F.conv2d(x, kernel[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, kernel[None, None, None].repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, kernel[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def _filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp) -> torch.Tensor:
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = _upfirdn_reference(x, fu, up, 1, padding, up**2)
    x = F.leaky_relu(x, slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return _upfirdn_reference(x, fd, 1, down, (0, 0, 0, 0), 1.0)


def _kernel_2d(f: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """A separable [taps] filter as its 2-D outer product (a 2-D one as it is), times ``scale``,
    as a depthwise weight [C, 1, kh, kw] for x's channels."""
    f = f.to(device=x.device, dtype=torch.float32)
    f2 = torch.outer(f, f) if f.ndim == 1 else f
    return (f2 * scale).to(x.dtype).expand(x.shape[1], 1, *f2.shape).contiguous()


def _upfir_fast(x: torch.Tensor, f, up: int, padding, gain: float) -> torch.Tensor:
    """up-sample, pad, filter with f * up^2 * gain (gain: the leaky ReLU's, folded in).

    One depthwise transposed convolution with stride ``up`` and the 2-D filter inserts
    the zeros and filters in one pass (it computes the full convolution of the
    zero-inserted image); the padding then selects the window. On channels-last
    memory oneDNN vectorises it over channels, which beats two separable passes."""
    px0, px1, py0, py1 = padding
    if f is None:
        x = F.pad(x, [px0, px1, py0, py1])
        return x * gain if gain != 1 else x
    kh, kw = _filter_hw(f)
    _, _, h, w = x.shape
    kernel = _kernel_2d(f, x, up**2 * gain)
    # The full convolution y has (n - 1) * up + L samples per axis; the result is
    # y[L - 1 - pad0 : ...], zero outside y.
    out_h, out_w = h * up + py0 + py1 - kh + 1, w * up + px0 + px1 - kw + 1
    sy, sx = kh - 1 - py0, kw - 1 - px0
    oy, ox = out_h - ((h - 1) * up + kh - 2 * sy), out_w - ((w - 1) * up + kw - 2 * sx)
    if sy == sx and oy == ox and sy >= 0 and 0 <= oy < up:
        # The window is y cropped by sy at the start and sy - oy at the end: the
        # transposed convolution's own padding computes just that (no copy after).
        return F.conv_transpose2d(x, kernel, stride=up, padding=sy, output_padding=oy, groups=x.shape[1])
    y = F.conv_transpose2d(x, kernel, stride=up, groups=x.shape[1])
    if sy >= 0 and sx >= 0 and sy + out_h <= y.shape[2] and sx + out_w <= y.shape[3]:
        return y[:, :, sy : sy + out_h, sx : sx + out_w]
    return F.pad(y, [-sx, sx + out_w - y.shape[3], -sy, sy + out_h - y.shape[2]])


def _firdown_fast(x: torch.Tensor, f, down: int) -> torch.Tensor:
    """Filter with f ('valid'), keep every down-th sample: one strided depthwise convolution
    with the 2-D filter (only kept samples are computed)."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    kernel = _kernel_2d(f, x, 1.0).flip([2, 3])
    return F.conv2d(x, kernel, stride=down, groups=x.shape[1])
