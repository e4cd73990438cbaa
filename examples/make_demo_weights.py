"""Rebuild weights/stylegan2-demo.safetensors: the embedded default image generator.

It is a small (64 px, w 512) StyleGAN2 with seeded random weights: a
placeholder that exercises the whole pipeline offline until a trained demo
ships. Run:  python examples/make_demo_weights.py
"""

from pathlib import Path

import torch

from mocohd_cli.formats.canonical import save_model
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

cfg = StyleGAN2Config(resolution=64, z_dim=512, w_dim=512, mapping_layers=2, channel_base=2048, channel_max=64)
torch.manual_seed(0)
G = StyleGAN2Generator(cfg)
out = Path(__file__).resolve().parent.parent / "weights" / "stylegan2-demo.safetensors"
h = save_model(out, G.state_dict(), kind="image", family="stylegan2", config=cfg.to_dict(),
               source={"format": "mocohd", "origin": "random initialisation, torch seed 0 (untrained placeholder)"})
print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, weights sha256 {h.weights_sha256[:16]})")
