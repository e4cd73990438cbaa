"""Regenerate tests/data/stylegan3_reference.safetensors from NVIDIA's StyleGAN3 code.

For tiny StyleGAN3-T and -R generators (16 and 32 px) with every parameter,
w_avg, the input's frequencies, phases and transform and every layer's
magnitude average randomised, the file holds: our canonical state dict, the
low-pass filters NVIDIA's own code designs for a fresh generator of the same
config (``CASE/designed/...``), latents z and, for truncation 0.7 and 1.0,
the w's and images of NVIDIA's generator (CPU, float32: the reference paths
of filtered_lrelu, bias_act and upfirdn2d) loaded with those weights.
``tests/test_stylegan3.py`` checks that mocohd reproduces them. NVIDIA's code
is not part of this repository; point the script at a local checkout:

    python tests/data/make_stylegan3_reference.py --nvidia PATH/stylegan3
"""

import argparse
import json
import math
import pickle
import sys
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mocohd_cli.formats import nvidia
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator

PSIS = (0.7, 1.0)
CASES = {
    # name: (config, seed, batch, user transform (rotation in degrees, translation x, y) or None)
    "t16": (
        StyleGAN3Config.preset(
            "t", 16, z_dim=32, w_dim=32, channel_base=512, channel_max=32, num_layers=6, margin_size=4
        ),
        1,
        3,
        None,
    ),
    "t32": (
        StyleGAN3Config.preset(
            "t",
            32,
            z_dim=32,
            w_dim=48,
            channel_base=1024,
            channel_max=32,
            num_layers=8,
            conv_clamp=None,
            magnitude_ema_beta=0.99,
        ),
        2,
        2,
        (20.0, 0.1, -0.05),
    ),
    "r16": (
        StyleGAN3Config.preset(
            "r", 16, z_dim=32, w_dim=32, channel_base=1024, channel_max=48, num_layers=6, margin_size=4, conv_clamp=0.5
        ),
        3,
        2,
        None,
    ),
    "r32": (
        StyleGAN3Config.preset(
            "r",
            32,
            z_dim=48,
            w_dim=32,
            channel_base=1024,
            channel_max=32,
            num_layers=8,
            num_critical=3,
            output_scale=0.5,
        ),
        4,
        2,
        (-35.0, 0.0, 0.2),
    ),
}


def randomized(cfg: StyleGAN3Config, seed: int, transform) -> StyleGAN3Generator:
    """A generator whose every parameter and buffer (except the designed filters) is random."""
    torch.manual_seed(seed)
    G = StyleGAN3Generator(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if name.endswith(("up_filter", "down_filter", "transform", "freqs", "phases")):
                continue
            if name.endswith("magnitude_ema"):
                t.copy_(torch.rand([], generator=gen) * 1.5 + 0.25)
            elif name.endswith("affine.bias"):
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=gen))
            elif name.endswith("bias") or name.endswith("w_avg"):
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
            else:
                t.copy_(torch.randn(t.shape, generator=gen))
        if transform is not None:
            angle, tx, ty = transform
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            G.synthesis.input.transform.copy_(torch.tensor([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]]))
    return G


def nvidia_generator(root: Path, cfg: StyleGAN3Config):
    sys.path.insert(0, str(root))
    try:
        import requests  # noqa: F401  (dnnlib.util imports it for downloads, which are not used here)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    try:
        import pkg_resources  # noqa: F401  (conv2d_gradfix: parse_version, gone from recent setuptools)
    except ImportError:
        from packaging.version import parse

        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    from training.networks_stylegan3 import Generator

    c = cfg
    return Generator(
        z_dim=c.z_dim,
        c_dim=0,
        w_dim=c.w_dim,
        img_resolution=c.resolution,
        img_channels=c.img_channels,
        mapping_kwargs=dict(num_layers=c.mapping_layers, lr_multiplier=c.mapping_lr_mul, w_avg_beta=c.w_avg_beta),
        channel_base=c.channel_base,
        channel_max=c.channel_max,
        num_layers=c.num_layers,
        num_critical=c.num_critical,
        first_cutoff=c.first_cutoff,
        first_stopband=c.first_stopband,
        last_stopband_rel=c.last_stopband_rel,
        margin_size=c.margin_size,
        output_scale=c.output_scale,
        num_fp16_res=c.num_fp16_res,
        conv_kernel=c.conv_kernel,
        filter_size=c.filter_size,
        lrelu_upsampling=c.lrelu_upsampling,
        use_radial_filters=c.use_radial_filters,
        conv_clamp=c.conv_clamp,
        magnitude_ema_beta=c.magnitude_ema_beta,
    ).eval()


def check_pickle_import(ref, G) -> None:
    """A real network pickle of NVIDIA's generator (pickled by its own persistence code, into a
    temporary folder: nothing of it is kept) imports to exactly our config and state dict."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "network-snapshot.pkl"
        with open(path, "wb") as f:
            pickle.dump({"G": ref, "D": None, "G_ema": ref, "augment_pipe": None}, f)
        config, tensors, _ = nvidia.convert(nvidia.read_pickle(path))
    assert config == G.cfg.to_dict(), (config, G.cfg.to_dict())
    sd = G.state_dict()
    assert set(tensors) == set(sd) and all(torch.equal(tensors[k], sd[k]) for k in sd)
    print("  NVIDIA's own pickle of it imports to the same config and tensors")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nvidia", type=Path, required=True, help="a checkout of NVlabs/stylegan3")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("stylegan3_reference.safetensors"))
    args = p.parse_args()
    tensors = {}
    for name, (cfg, seed, batch, transform) in CASES.items():
        G = randomized(cfg, seed, transform)
        ref = nvidia_generator(args.nvidia, cfg)
        fresh = ref.state_dict()
        assert set(fresh) == set(G.state_dict()), set(fresh) ^ set(G.state_dict())
        tensors.update({f"{name}/designed/{k}": v for k, v in fresh.items() if k.endswith("_filter")})
        ref.load_state_dict(G.state_dict(), strict=True)
        z = torch.randn(batch, cfg.z_dim, generator=torch.Generator().manual_seed(100 + seed))
        tensors.update({f"{name}/state/{k}": v for k, v in G.state_dict().items()})
        check_pickle_import(ref, G)
        tensors[f"{name}/z"] = z
        with torch.no_grad():
            for psi in PSIS:
                ws = ref.mapping(z, None, truncation_psi=psi)
                img = ref.synthesis(ws, force_fp32=True)
                tensors[f"{name}/w_{psi}"] = ws[:, 0]
                tensors[f"{name}/img_{psi}"] = img
                print(f"{name} psi {psi}: {tuple(img.shape)}, |img| max {img.abs().max():.3f}")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        args.out,
        metadata={"configs": json.dumps({k: v[0].to_dict() for k, v in CASES.items()}), "psis": json.dumps(PSIS)},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
