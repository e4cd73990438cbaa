"""End-to-end rendering: generation + MP4 encoding against generation alone, and
peak memory as the video gets longer.

    python benchmarks/bench_render.py                    # 256 px config f, 48 frames; memory with -n 32 / 1000
    python benchmarks/bench_render.py --frames 96 --dtype bf16

Each measurement runs in a fresh process with its own MOCOHD_HOME (random
weights; a PCA basis fitted on 20,000 samples, which does not change speed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def setup(home: Path, resolution: int) -> None:
    """A config-f generator and a matching (untrained) motion model in the store."""
    import torch

    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator
    from mocohd_cli.loaders.motion_models import save_motion
    from mocohd_cli.motion import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca

    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config.preset("f", resolution)).eval()
    h = save_model(
        home / "image" / "bench.safetensors", G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict()
    )
    basis = fit_pca(G, samples=20_000)
    M = MotionGenerator(MotionConfig(), basis.components, basis.stdev)
    save_motion(
        home / "motion" / "bench.safetensors", M, image={"image_name": "bench", "image_sha256": h.weights_sha256}
    )


def worker(args) -> dict:
    os.environ["MOCOHD_HOME"] = args.home
    from mocohd_cli.loaders import load_image_generator
    from mocohd_cli.loaders.motion_models import load_motion
    from mocohd_cli.render import DTYPES, RenderConfig, render, render_frames

    G = load_image_generator(args.image, device="cpu")
    M = load_motion(args.motion)
    list(render_frames(M, G, 2, dtype=DTYPES[args.dtype]))  # warm-up
    t0 = time.perf_counter()
    if args.mode == "generate":
        n = sum(1 for _ in render_frames(M, G, args.frames, batch=args.batch, dtype=DTYPES[args.dtype]))
    else:
        out = Path(args.home) / "out.mp4"
        n = render(
            out,
            RenderConfig(
                motion=args.motion,
                image=args.image,
                frames=args.frames,
                batch=args.batch,
                device="cpu",
                dtype=args.dtype,
            ),
        ).frames
    dt = time.perf_counter() - t0
    return {
        "mode": args.mode,
        "frames": n,
        "seconds": dt,
        "fps": n / dt,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(args, mode, frames, image="bench", motion="bench") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--home",
        args.home,
        "--mode",
        mode,
        "--frames",
        str(frames),
        "--batch",
        str(args.batch),
        "--dtype",
        args.dtype,
        "--image",
        image,
        "--motion",
        motion,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--image", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--motion", default="bench", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    with tempfile.TemporaryDirectory() as home:
        args.home = home
        setup(Path(home), args.resolution)
        print(f"# {args.resolution} px config f, {args.frames} frames, batch {args.batch}, {args.dtype}, CPU")
        best = {}
        for _ in range(2):  # interleaved, best of 2
            for mode in ("generate", "render"):
                r = run(args, mode, args.frames)
                best[mode] = max(best.get(mode, 0), r["fps"])
        print(
            f"generation only: {best['generate']:.2f} frames/s; generation + MP4: {best['render']:.2f} frames/s "
            f"({100 * best['render'] / best['generate']:.0f}%)"
        )
        rss = {n: run(args, "render", n, image="demo", motion="demo")["rss_mb"] for n in (32, 1000)}
        print(
            f"peak RSS, demo models (64 px): -n 32 {rss[32]:.0f} MB, -n 1000 {rss[1000]:.0f} MB "
            f"(+{100 * (rss[1000] / rss[32] - 1):.1f}%)"
        )


if __name__ == "__main__":
    main()
