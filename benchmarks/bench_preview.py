"""Low-resolution frames (``frames.synthesize(size=...)``, `mocohd render --size`, the studio's
preview): seconds per frame of a 1024 px StyleGAN2 at full size and stopped at a smaller block,
measured in one run, interleaved, best of ``--repeats``.

    python benchmarks/bench_preview.py                     # config f, 1024 px; 1024, 256 and 128 px frames
    python benchmarks/bench_preview.py --resolution 256 --sizes 256 64

Random weights (speed does not depend on them); the frames of one batch, with per-frame noise maps
as a render draws them. The studio's preview is 4 videos x 16 steps: 64 frames.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mocohd_cli.frames import VideoNoise, synthesize
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

PREVIEW_FRAMES = 64  # jobs.PREVIEW_VIDEOS x jobs.PREVIEW_FRAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 256, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config.preset("f", args.resolution)).eval()
    ws = G.mapping(torch.randn(args.batch, G.z_dim)).detach()
    noise = VideoNoise(G, args.batch, "fixed", torch.Generator().manual_seed(0))(torch.arange(args.batch))
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"# StyleGAN2 config f, {args.resolution} px, batch {args.batch}, fp32, CPU, best of {args.repeats}")
    best = {s: float("inf") for s in args.sizes}
    with torch.no_grad():
        synthesize(G, ws[:1], [n[:1] for n in noise], size=min(args.sizes))  # warm-up
        for _ in range(args.repeats):
            for s in args.sizes:  # interleaved: the machine's drift hits every size alike
                t0 = time.perf_counter()
                synthesize(G, ws, noise, size=s)
                best[s] = min(best[s], (time.perf_counter() - t0) / args.batch)
    full = best.get(args.resolution, max(best.values()))
    print("| frame size | s/frame | a preview (64 frames) | vs full size |")
    print("|---|---|---|---|")
    for s in args.sizes:
        print(f"| {s} px | {best[s]:.4f} | {best[s] * PREVIEW_FRAMES:.1f} s | {full / best[s]:.1f}x faster |")


if __name__ == "__main__":
    main()
