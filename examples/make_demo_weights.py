"""Rebuild the embedded default models in weights/:

- stylegan2-demo.safetensors: a small (64 px, w 512) StyleGAN2 with seeded
  random weights;
- motion-demo.safetensors: an untrained motion generator (the official
  initialisation, seeded) moving along that generator's PCA directions.

Both are placeholders that exercise the whole pipeline offline until trained
demos ship. Run:  python examples/make_demo_weights.py
"""

from pathlib import Path

import torch

from mocohd_cli.formats.canonical import save_model
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator
from mocohd_cli.motion import MotionConfig, MotionGenerator, save_motion
from mocohd_cli.pca import fit_pca

weights = Path(__file__).resolve().parent.parent / "weights"
origin = "random initialisation, torch seed 0 (untrained placeholder)"

cfg = StyleGAN2Config(resolution=64, z_dim=512, w_dim=512, mapping_layers=2, channel_base=2048, channel_max=64)
torch.manual_seed(0)
G = StyleGAN2Generator(cfg).eval()
image = save_model(weights / "stylegan2-demo.safetensors", G.state_dict(), kind="image", family="stylegan2",
                   config=cfg.to_dict(), source={"format": "mocohd", "origin": origin})
print(f"wrote {image.path} (weights sha256 {image.weights_sha256[:16]})")

basis = fit_pca(G, samples=100_000, seed=0)
torch.manual_seed(0)
M = MotionGenerator(MotionConfig(w_dim=512), basis.components, basis.stdev)
motion = save_motion(weights / "motion-demo.safetensors", M,
                     image={"image_name": "demo", "image_sha256": image.weights_sha256},
                     source={"format": "mocohd", "origin": origin + "; PCA of the demo generator, 100000 samples"})
print(f"wrote {motion.path} (weights sha256 {motion.weights_sha256[:16]})")
