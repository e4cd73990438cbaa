"""The StyleGAN2 generator (mocohd_cli/generators/stylegan2.py): fast path ==
reference path, shapes, API, noise modes."""

import pytest
import torch

from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

from .conftest import randomized_generator, tiny_config
from .support.devices import psnr


@pytest.mark.parametrize("resolution,batch", [(4, 1), (8, 2), (16, 1), (32, 4), (64, 2)])
def test_fast_path_matches_reference_path(resolution, batch):
    G = randomized_generator(tiny_config(resolution, conv_clamp=256.0), seed=resolution)
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        w = G.mapping(z, truncation_psi=0.7)
        fast = G.synthesis(w, noise_mode="const")
        ref = G.synthesis(w, noise_mode="const", impl="reference")
    assert fast.shape == (batch, 3, resolution, resolution)
    assert (fast - ref).abs().max() < 1e-4
    assert fast.abs().max() > 0.1  # not a trivially zero image


def test_batch_results_do_not_depend_on_batch_size(tiny_generator):
    G = tiny_generator
    w = G.mapping(torch.randn(5, G.z_dim))
    with torch.no_grad():
        together = G.synthesis(w)
        alone = torch.cat([G.synthesis(w[i : i + 1]) for i in range(5)])
    assert (together - alone).abs().max() < 1e-4


def test_api_attributes_and_ws_forms(tiny_generator):
    G = tiny_generator
    assert (G.z_dim, G.w_dim, G.resolution, G.num_ws) == (32, 32, 16, 6)
    w = G.mapping(torch.randn(2, 32))
    assert w.shape == (2, 32)
    with torch.no_grad():
        a = G.synthesis(w)
        b = G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(2, 5, 32))


def test_truncation_lerps_toward_w_avg(tiny_generator):
    G = tiny_generator
    z = torch.randn(3, 32)
    w1, w0 = G.mapping(z), G.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(w0, G.mapping.w_avg.expand(3, -1))
    torch.testing.assert_close(G.mapping(z, truncation_psi=0.5), (w1 + w0) / 2)


def test_noise_modes(tiny_generator):
    G = tiny_generator
    w = G.mapping(torch.randn(1, 32))
    with torch.no_grad():
        const1, const2 = G.synthesis(w, noise_mode="const"), G.synthesis(w, noise_mode="const")
        rand1, rand2 = G.synthesis(w, noise_mode="random"), G.synthesis(w, noise_mode="random")
        none = G.synthesis(w, noise_mode="none")
        zeros = G.synthesis(w, noise=[torch.zeros(s) for s in G.synthesis.noise_shapes()])
        explicit = G.synthesis(w, noise=[layer.noise_const[None, None] for layer in G.synthesis.layers()])
    torch.testing.assert_close(const1, const2)
    assert (rand1 - rand2).abs().max() > 1e-3
    torch.testing.assert_close(none, zeros)
    torch.testing.assert_close(explicit, const1)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(w, noise_mode="loud")


def test_config_presets_and_validation():
    f = StyleGAN2Config.preset("f", 1024)
    assert [f.channels(r) for r in f.block_resolutions] == [512, 512, 512, 512, 512, 256, 128, 64, 32]
    e = StyleGAN2Config.preset("e", 256)
    assert [e.channels(r) for r in e.block_resolutions] == [512, 512, 512, 512, 256, 128, 64]
    assert f.num_ws == 18 and e.num_ws == 14
    for bad in (3, 2048, 48):
        with pytest.raises(ValueError):
            StyleGAN2Config(resolution=bad)
    with pytest.raises(ValueError):
        StyleGAN2Config.preset("g", 256)


def test_config_f_parameter_count():
    # The official FFHQ config-f generator has 30,370,060 parameters (mapping 8 x 512).
    G = StyleGAN2Generator(StyleGAN2Config.preset("f", 1024))
    assert sum(p.numel() for p in G.parameters()) == 30_370_060


def test_bfloat16_path_stays_above_40db():
    G = randomized_generator(tiny_config(32, channel_base=1024, channel_max=64))
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        ref = G.synthesis(w)
        bf = G.synthesis(w, dtype=torch.bfloat16)
    assert bf.dtype == torch.float32 and bf.shape == ref.shape
    assert 40 < psnr(bf, ref) < 90  # close, but really computed in reduced precision


def test_sub_batches_give_the_same_frames(tiny_generator):
    G = tiny_generator
    w = G.mapping(torch.randn(7, G.z_dim))
    noise = G.synthesis.make_noise(7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        G.synthesis.working_set_bytes = 0
        whole = G.synthesis(w, noise=noise)
        whole_const = G.synthesis(w)
        G.synthesis.working_set_bytes = 16 * 16 * 32 * 4 * 2  # 2 samples at 16 px
        split = G.synthesis(w, noise=noise)
        split_const = G.synthesis(w)
    assert (whole - split).abs().max() < 1e-5
    assert (whole_const - split_const).abs().max() < 1e-5


def test_cached_kernel_norms_follow_weight_changes(tiny_generator):
    G = tiny_generator
    w = G.mapping(torch.randn(2, G.z_dim))
    with torch.no_grad():
        before = G.synthesis(w)
        G.synthesis.b8.conv1.weight[:, :3].mul_(3.0)  # in place: same storage, new version
        after = G.synthesis(w)
        ref = G.synthesis(w, impl="reference")
    assert (before - after).abs().max() > 1e-3
    assert (after - ref).abs().max() < 1e-4


def test_gradients_flow_through_the_fast_path():
    G = randomized_generator(tiny_config(8)).train()
    G.requires_grad_(True)
    w = G.mapping(torch.randn(2, G.z_dim))
    G.synthesis(w).square().mean().backward()
    grads = [p.grad for n, p in G.named_parameters() if n.endswith("conv1.weight")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_latent_gradients_of_the_fast_path_match_the_reference():
    """Motion training back-propagates through the frozen generator into w: the
    fast kernels (in-place activations, sub-batching) must give the reference's gradients."""
    G = randomized_generator(tiny_config(16))
    G.synthesis.working_set_bytes = 4096  # force sub-batching in the 16 px block
    G.requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(3, G.z_dim)).unsqueeze(1).repeat(1, G.num_ws, 1)
    noise = G.synthesis.make_noise(3, generator=torch.Generator().manual_seed(0))
    target = torch.randn(3, 3, 16, 16)
    grads = {}
    for impl in ("fast", "reference"):
        w = ws.clone().requires_grad_(True)
        (G.synthesis(w, noise=noise, impl=impl) * target).sum().backward()
        grads[impl] = w.grad
    assert grads["fast"].abs().max() > 1e-3
    torch.testing.assert_close(grads["fast"], grads["reference"], rtol=1e-4, atol=1e-5)


def test_synthesis_compiles_as_one_graph(tiny_generator):
    """torch.compile traces the whole synthesis network without a graph break (the
    frozen-weight cache steps aside while it traces) and gives the same images."""
    G = tiny_generator.requires_grad_(False)
    w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)))
    compiled = torch.compile(G.synthesis, backend="eager", fullgraph=True)  # fullgraph: a break is an error
    for kw in ({"noise_mode": "const"}, {"noise_mode": "none"}, {"noise_mode": "const", "dtype": torch.bfloat16}):
        torch.testing.assert_close(compiled(w, **kw), G.synthesis(w, **kw), rtol=0, atol=0)
