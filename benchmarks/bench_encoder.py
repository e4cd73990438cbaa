"""Inversion from an encoder against optimisation alone, at equal wall time.

For held-out samples of the generator (whose latents are known) and for real frames of the
procedural talking heads (the demo's domain), each image is inverted three ways, pixel loss
(no VGG16 needed), space w+ for the encoder's paths and w for NVIDIA's recipe:

- encoder: its answer alone (one forward for the whole batch);
- encoder + K: that answer refined by K steps of the recipe (``invert(start=...)``);
- optimisation: the recipe from the average w, for as many steps as fit in the time the
  encoder + K path took (equal wall time).

Reported: PSNR of the re-rendered image against the target (dB, images in [-1, 1]), the pixel
distance (MSE + 1 - SSIM, what the search minimises), seconds per image, and for the samples
the cosine of the found w (about the average w) with the true one.

    python benchmarks/bench_encoder.py --image demo --encoder demo --images 16 --refine 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(4 / (a - b).square().mean(dim=(1, 2, 3)))


def run_paths(G, E, targets: torch.Tensor, refine: int, true_w: torch.Tensor | None) -> dict:
    from mocohd_cli.invert import invert
    from mocohd_cli.perceptual import pixel_distance

    def scored(ws, seconds):
        with torch.no_grad():
            img = G.synthesis(ws, noise_mode="const")
            row = {
                "psnr": float(psnr(img, targets).mean()),
                "distance": float(pixel_distance(img, targets).mean()),
                "seconds_per_image": seconds / targets.shape[0],
            }
            if true_w is not None:
                centred = ws.mean(1) - E.w_avg, true_w - E.w_avg
                row["cosine"] = float(torch.nn.functional.cosine_similarity(*centred, dim=1).mean())
        return row

    out = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        start = E(targets)
    out["encoder"] = scored(start, time.perf_counter() - t0)
    t1 = time.perf_counter()
    refined = invert(G, targets, steps=refine, space="w+", loss="pixel", start=start)
    budget = time.perf_counter() - t0
    out[f"encoder + {refine}"] = scored(refined.ws, budget)
    if refine:  # a step of the recipe, its set-up (the w statistics) shared out
        per_step = (budget - (t1 - t0)) / refine
    else:
        t2 = time.perf_counter()
        invert(G, targets, steps=1, space="w", loss="pixel")
        per_step = time.perf_counter() - t2
    steps = max(1, round(budget / per_step))
    t3 = time.perf_counter()
    alone = invert(G, targets, steps=steps, space="w", loss="pixel")
    out[f"optimisation ({steps} steps)"] = scored(alone.ws, time.perf_counter() - t3)
    return out


def main():
    from mocohd_cli.data import ClipDataset, prepare
    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.loaders import load_encoder, load_image_generator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="demo")
    ap.add_argument("--encoder", default="demo")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--refine", type=int, default=20, help="K: the recipe's steps after the encoder's answer")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_image_generator(args.image)
    E = load_encoder(args.encoder, G)
    g = torch.Generator().manual_seed(args.seed + 999)  # not the encoder's training draws
    with torch.no_grad():
        w = G.mapping(torch.randn(args.images, G.z_dim, generator=g))
        samples = G.synthesis(w, noise_mode="const")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "heads", videos=args.images, frames=2, size=G.resolution, seed=args.seed + 7)
        clips = ClipDataset(prepare(data, frame_size=G.resolution, min_frames=1).cache, frames=1, time_step=1)
        frames = torch.stack([clips.clip(i, 0)[0] for i in range(args.images)])
    real = frames.permute(0, 3, 1, 2).float() / 127.5 - 1
    print(f"{args.images} images at {G.resolution} px, encoder {args.encoder}, {args.threads} thread(s)")
    for what, targets, true_w in (("generator samples", samples, w), ("real frames", real, None)):
        for path, row in run_paths(G, E, targets, args.refine, true_w).items():
            extra = f", cosine {row['cosine']:.3f}" if "cosine" in row else ""
            print(
                f"{what}: {path}: PSNR {row['psnr']:.2f} dB, distance {row['distance']:.4f}, "
                f"{row['seconds_per_image'] * 1000:.0f} ms per image{extra}",
                flush=True,
            )


if __name__ == "__main__":
    main()
