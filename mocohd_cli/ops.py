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

``tests/test_ops.py`` checks that they agree. Neither depends on a device.
"""

from __future__ import annotations

import math

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


def fir_filter_2d(device=None, dtype=torch.float32) -> torch.Tensor:
    """The 4x4 filter outer([1,3,3,1], [1,3,3,1]) / 64 (unit sum)."""
    f = torch.tensor(FIR_TAPS, device=device, dtype=dtype)
    f2 = torch.outer(f, f)
    return f2 / f2.sum()


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
    """The 4x4 filter as a depthwise conv weight [C, 1, 4, 4] for x's channels."""
    f = fir_filter_2d(x.device, x.dtype) * gain
    return f.expand(x.shape[1], 1, 4, 4).contiguous()


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

    Fast path: ``fused`` (default for one sample) folds style, demodulation and
    gain into a per-sample weight and the bias into the convolution, so the
    output is written once; otherwise the input channels are scaled, one
    batched convolution runs with the shared weight, and the output channels
    are scaled.
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
        # On large maps, per-sample weights (one pass over the weight) beat
        # scaling the activations; on small maps (<= 32x32) the weight is the
        # larger tensor, and one batched convolution is also more efficient.
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
