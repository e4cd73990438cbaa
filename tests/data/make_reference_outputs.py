"""Regenerate tests/data/reference_outputs.safetensors from the public implementations.

The file holds, for three tiny generators with every parameter randomised:
our canonical state dict, latents, and the images that NVIDIA's
stylegan2-ada-pytorch and rosinality's stylegan2-pytorch produce for those
weights (stored noise). ``tests/test_reference_outputs.py`` checks that mocohd
reproduces them. The reference code is not part of this repository; point
the script at local checkouts (CPU fallbacks of their ops are enough):

    python tests/data/make_reference_outputs.py --nvidia PATH/stylegan2-ada-pytorch \\
        --rosinality PATH/stylegan2-pytorch

rosinality's Generator hard-codes 512 channels up to 32 px; for a small file
we run a copy whose channel table is shrunk (4..32 px: 32, 64 px: 16 * channel_multiplier),
which changes widths only, not the operations.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mocohd_cli.formats.rosinality import to_rosinality_state_dict
from tests.conftest import randomized_generator, tiny_config

CASES = {
    # name: (config, seed, batch, truncation psi)
    "nvidia_a": (tiny_config(32, z_dim=64, w_dim=64, channel_base=1024, channel_max=64, conv_clamp=256.0), 1, 3, 0.7),
    "nvidia_b": (tiny_config(16, conv_clamp=0.7), 2, 2, 1.0),
    "rosinality": (tiny_config(64, z_dim=64, w_dim=64, channel_base=1024, channel_max=32), 3, 2, 0.7),
}


def nvidia_images(root, G, z, psi):
    sys.path.insert(0, str(root))
    from training.networks import Generator

    c = G.cfg
    ref = Generator(
        z_dim=c.z_dim,
        c_dim=0,
        w_dim=c.w_dim,
        img_resolution=c.resolution,
        img_channels=3,
        mapping_kwargs=dict(num_layers=c.mapping_layers),
        synthesis_kwargs=dict(
            channel_base=c.channel_base, channel_max=c.channel_max, num_fp16_res=0, conv_clamp=c.conv_clamp
        ),
    ).eval()
    missing, unexpected = ref.load_state_dict(G.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("resample_filter") for k in missing), (missing, unexpected)
    with torch.no_grad():
        ws = ref.mapping(z, None, truncation_psi=psi)
        return ref.synthesis(ws, noise_mode="const", force_fp32=True), ws[:, 0]


def rosinality_images(root, G, z, psi):
    sys.path.insert(0, str(root))
    model = importlib.import_module("model")
    ref = model.Generator(size=G.resolution, style_dim=G.w_dim, n_mlp=G.cfg.mapping_layers, channel_multiplier=1).eval()
    ckpt = to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict())
    ref.load_state_dict(ckpt["g_ema"], strict=True)
    with torch.no_grad():
        img, _ = ref([z], truncation=psi, truncation_latent=ckpt["latent_avg"][None], randomize_noise=False)
        w = ref.style(z)
        w = ckpt["latent_avg"] + psi * (w - ckpt["latent_avg"])
    return img, w


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nvidia", type=Path, required=True)
    p.add_argument("--rosinality", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("reference_outputs.safetensors"))
    args = p.parse_args()
    tensors = {}
    for name, (cfg, seed, batch, psi) in CASES.items():
        G = randomized_generator(cfg, seed=seed)
        z = torch.randn(batch, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        run = rosinality_images if name == "rosinality" else nvidia_images
        img, w = run(args.rosinality if name == "rosinality" else args.nvidia, G, z, psi)
        tensors.update({f"{name}/{k}": v for k, v in G.state_dict().items()})
        tensors.update({f"{name}/z": z, f"{name}/w": w, f"{name}/img": img, f"{name}/psi": torch.tensor(psi)})
        print(f"{name}: {tuple(img.shape)}, |img| max {img.abs().max():.3f}")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        args.out,
        metadata={"configs": json.dumps({k: v[0].to_dict() for k, v in CASES.items()})},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
