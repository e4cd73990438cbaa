"""Training data throughput: one-time preparation (decode + crop + resize) and
clips/s read from the clip cache, per DataLoader worker.

    python benchmarks/bench_data.py                  # 12 synthetic 256x256 MP4s of 150 frames, 128 px clips
    python benchmarks/bench_data.py --videos 40 --frame-size 256
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch


def make_videos(root: Path, n: int, frames: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        gen = imageio_ffmpeg.write_frames(
            str(root / f"v{i:03d}.mp4"), (size, size), fps=25, macro_block_size=1, ffmpeg_log_level="error"
        )
        gen.send(None)
        base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        for t in range(frames):
            gen.send(np.roll(base, t, axis=1))  # moving texture: a realistic bitrate
        gen.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=12)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frame-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=30)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOCOHD_HOME"] = str(Path(tmp) / "home")
        from mocohd_cli.data import ClipDataset, prepare

        root = Path(tmp) / "videos"
        root.mkdir()
        make_videos(root, args.videos, args.frames, args.size)
        t0 = time.perf_counter()
        info = prepare(root, frame_size=args.frame_size)
        dt = time.perf_counter() - t0
        print(
            f"# {args.videos} videos x {args.frames} frames of {args.size}x{args.size} -> {args.frame_size} px; "
            f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
        )
        print(
            f"prepare (decode + crop + resize, once): {info.frames / dt:.0f} frames/s; cache "
            f"{sum(f.stat().st_size for f in info.cache.iterdir()) / 2**20:.0f} MB"
        )
        ds = ClipDataset(info.cache, frames=16, time_step=2)
        for workers in (0, 1, 2):
            loader = torch.utils.data.DataLoader(
                ds,
                batch_size=args.batch,
                num_workers=workers,
                sampler=torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10**9),
            )
            it = iter(loader)
            next(it)  # start-up
            t0 = time.perf_counter()
            for _ in range(args.batches):
                next(it)
            rate = args.batches * args.batch / (time.perf_counter() - t0)
            print(f"clips/s with {workers} worker(s): {rate:.0f} ({rate / max(workers, 1):.0f} per worker)")
            del it


if __name__ == "__main__":
    main()
