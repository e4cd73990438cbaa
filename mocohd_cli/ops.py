"""Numerical kernels of the StyleGAN2 synthesis network.

Each operation has two implementations:

* ``impl="fast"`` -- what the networks run: batched, no per-sample loops, the
  [1, 3, 3, 1] FIR filter applied separably, and the modulation folded into
  whichever of input or weight is smaller.
* ``impl="reference"`` -- a slow, obviously-correct restatement: one sample
  at a time, the modulated weight built explicitly, up-sampling done by
  inserting zeros and running the full 2-D FIR filter as a convolution.

``tests/test_ops.py`` checks that they agree. Neither depends on a device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The 1-D binomial filter [1, 3, 3, 1] normalised to unit sum. Used for every
# 2x up-sampling (gain 2 per axis, 4 for the 2-D filter).
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8

IMPLS = ("fast", "reference")


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


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
    if b is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x.add_(b.reshape(shape)) if inplace else x + b.reshape(shape)
        inplace = True
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=inplace)
        inplace = True
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
        inplace = True
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


# ----------------------------------------------------------------------------
# FIR filtering.


def _fir_1d_valid(x: torch.Tensor, dim: int, gain: float) -> torch.Tensor:
    """'valid' correlation with [1,3,3,1]/8 * gain along ``dim`` (length L -> L-3)."""
    n = x.shape[dim] - 3
    a = x.narrow(dim, 0, n) + x.narrow(dim, 3, n)
    b = x.narrow(dim, 1, n) + x.narrow(dim, 2, n)
    # a*1 + b*3, scaled: the two multiplies are folded into one fused add.
    return torch.add(a, b, alpha=3.0).mul_(gain / 8.0)


def blur_after_transposed_conv(x: torch.Tensor) -> torch.Tensor:
    """Apply the up-sampling FIR filter (gain 4) to a stride-2 transposed conv output.

    x: [B, C, 2H+1, 2W+1] -> [B, C, 2H, 2W]; zero padding of 1 on each side.
    """
    x = F.pad(x, (1, 1, 1, 1))
    x = _fir_1d_valid(x, 2, 2.0)
    return _fir_1d_valid(x, 3, 2.0)


def upsample2d(x: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """2x up-sampling with the [1,3,3,1] filter: [B, C, H, W] -> [B, C, 2H, 2W].

    Same as upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4).
    """
    _check_impl(impl)
    if impl == "reference":
        return _upfirdn2d_reference(x, fir_filter_2d(x.device, x.dtype), up=2, pad=(2, 1), gain=4.0)
    # Polyphase form: even outputs take 0.25*x[n-1] + 0.75*x[n], odd outputs
    # 0.75*x[n] + 0.25*x[n+1], zero outside the image.
    x = _upsample_1d(x, 2)
    return _upsample_1d(x, 3)


def _upsample_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - dim - 1) + [1, 1]
    xp = F.pad(x, pad)
    prev, cur, nxt = xp.narrow(dim, 0, n), xp.narrow(dim, 1, n), xp.narrow(dim, 2, n)
    even = torch.add(cur * 0.75, prev, alpha=0.25)
    odd = torch.add(cur * 0.75, nxt, alpha=0.25)
    out = torch.stack([even, odd], dim=dim + 1)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return out.reshape(shape)


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
    impl: str = "fast",
) -> torch.Tensor:  # [B, Cout, H*up, W*up]
    """StyleGAN2's modulated (and demodulated) convolution, 'same' padding.

    w_b = weight * styles_b (per input channel); if ``demodulate``, each output
    filter of w_b is scaled to unit norm: w_b / sqrt(sum(w_b^2) + 1e-8).
    With ``up=2`` the convolution is a stride-2 transposed convolution followed
    by the [1,3,3,1] FIR filter (gain 4), as in StyleGAN2.
    """
    _check_impl(impl)
    batch, in_ch, _, _ = x.shape
    out_ch, w_in, kh, kw = weight.shape
    assert w_in == in_ch and kh == kw and styles.shape == (batch, in_ch), (x.shape, weight.shape, styles.shape)
    assert up in (1, 2)
    if impl == "reference":
        return _modulated_conv2d_reference(x, weight, styles, demodulate, up)

    dcoefs = None
    if demodulate:
        # sum_{i,k} (W[o,i,k] s[b,i])^2 = sum_i s[b,i]^2 * sum_k W[o,i,k]^2
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + DEMOD_EPS).rsqrt()  # [B, Cout]

    if batch == 1:
        # One sample: fold style and demodulation into the (shared) weight.
        w = weight * styles.reshape(1, in_ch, 1, 1)
        if dcoefs is not None:
            w = w * dcoefs.reshape(out_ch, 1, 1, 1)
        return _conv(x, w, up)
    # Several samples: scale the input channels, run one batched convolution
    # with the shared weight, scale the output channels.
    x = x * styles.reshape(batch, in_ch, 1, 1)
    x = _conv(x, weight, up)
    if dcoefs is not None:
        x = x.mul_(dcoefs.reshape(batch, out_ch, 1, 1))
    return x


def _conv(x: torch.Tensor, w: torch.Tensor, up: int) -> torch.Tensor:
    k = w.shape[-1]
    if up == 1:
        return F.conv2d(x, w, padding=k // 2)
    # Transposed convolution (stride 2, no padding): [H, W] -> [2H+k-2, 2W+k-2],
    # then the FIR filter brings a 3x3 kernel's output to [2H, 2W].
    assert k == 3, "up-sampling convolutions use 3x3 kernels"
    x = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
    return blur_after_transposed_conv(x)


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
