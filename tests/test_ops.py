"""The fast kernels agree with the slow, obviously-correct formulations."""

import pytest
import torch
import torch.nn.functional as F

from mocohd_cli import ops


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("size", [4, 7, 40])
@pytest.mark.parametrize("fused", [None, True, False])
def test_modulated_conv_fast_matches_reference(batch, up, demodulate, size, fused):
    g = torch.Generator().manual_seed(batch * 100 + up * 10 + size)
    x = torch.randn(batch, 6, size, size, generator=g)
    w = torch.randn(5, 6, 3, 3, generator=g)
    s = torch.randn(batch, 6, generator=g) + 1
    b = torch.randn(5, generator=g)
    fast = ops.modulated_conv2d(x, w, s, demodulate=demodulate, up=up, bias=b, gain=1.5, fused=fused)
    ref = ops.modulated_conv2d(x, w, s, demodulate=demodulate, up=up, bias=b, gain=1.5, impl="reference")
    assert fast.shape == ref.shape == (batch, 5, size * up, size * up)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    # the reference's bias and gain are plain arithmetic on its convolution
    plain = ops.modulated_conv2d(x, w, s, demodulate=demodulate, up=up, impl="reference")
    torch.testing.assert_close(ref, (plain + b.reshape(1, -1, 1, 1)) * 1.5)


def test_modulated_conv_channels_last_and_bfloat16():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 9, generator=g)
    w, s = torch.randn(8, 8, 3, 3, generator=g), torch.rand(2, 8, generator=g) + 0.5
    ref = ops.modulated_conv2d(x, w, s, up=2, impl="reference")
    cl = ops.modulated_conv2d(x.contiguous(memory_format=torch.channels_last), w, s, up=2)
    torch.testing.assert_close(cl, ref, rtol=1e-5, atol=1e-5)
    bf = ops.modulated_conv2d(x.bfloat16(), w, s, up=2)
    assert bf.dtype == torch.bfloat16
    assert (bf.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_reference_modconv_is_what_it_claims():
    # Without modulation (styles 1) and demodulation, a modulated conv is a plain 3x3 conv.
    x, w = torch.randn(2, 4, 6, 6), torch.randn(3, 4, 3, 3)
    ref = ops.modulated_conv2d(x, w, torch.ones(2, 4), demodulate=False, impl="reference")
    torch.testing.assert_close(ref, F.conv2d(x, w, padding=1))
    # Demodulation makes every output filter unit-norm: a per-sample constant scale.
    s = torch.rand(2, 4) + 0.5
    y = ops.modulated_conv2d(x, w, s, demodulate=True, impl="reference")
    for b in range(2):
        wb = w * s[b].reshape(1, -1, 1, 1)
        expected = F.conv2d(x[b : b + 1], wb / wb.square().sum([1, 2, 3], keepdim=True).add(1e-8).sqrt(), padding=1)
        torch.testing.assert_close(y[b : b + 1], expected)


def test_upsample_constant_and_reference():
    # An up-sampled constant stays constant away from the zero-padded border.
    x = torch.ones(1, 2, 5, 5)
    y = ops.upsample2d(x)
    assert y.shape == (1, 2, 10, 10)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], torch.ones(1, 2, 8, 8))
    x = torch.randn(3, 4, 6, 5)
    torch.testing.assert_close(ops.upsample2d(x), ops.upsample2d(x, impl="reference"))


def test_upsampling_filter_is_binomial():
    f = ops.fir_filter_2d()
    assert f.shape == (4, 4)
    torch.testing.assert_close(f.sum(), torch.tensor(1.0))
    torch.testing.assert_close(f[0], torch.tensor([1.0, 3, 3, 1]) / 64)


def test_bias_act_clamp_and_gain():
    x = torch.tensor([[-10.0, 1.0, 1000.0]]).reshape(1, 3, 1)
    y = ops.bias_act(x, torch.tensor([0.0, 1.0, 0.0]), act="lrelu", gain=2.0, clamp=256)
    torch.testing.assert_close(y.flatten(), torch.tensor([-4.0, 4.0, 256.0]))


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError):
        ops.upsample2d(torch.zeros(1, 1, 2, 2), impl="magic")
