"""What checking a clip cache against its folder costs: the stat-based source signatures that
``mocohd_cli.data.prepare`` compares on every use, against hashing the frames' content.

    python benchmarks/bench_cache_check.py                       # 1,000 frame folders of 100 frames
    python benchmarks/bench_cache_check.py --videos 100 --frames 1000

The frames are hard links to one small PNG (the check reads only ``stat``, so their content does not
matter to it); the content hash is timed on bytes in memory and projected to the dataset at
``--frame-kib`` KiB per frame (a 256 px PNG frame is about 100 KiB).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mocohd_cli.data import scan, signature


def make_folders(root: Path, videos: int, frames: int) -> None:
    one = root / "frame.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one)
    data = root / "data"
    for v in range(videos):
        folder = data / f"video_{v:05d}"
        folder.mkdir(parents=True)
        first = folder / "img_00000.png"
        first.write_bytes(one.read_bytes())
        for t in range(1, frames):  # links to the folder's first frame (a file takes some 65,000 links)
            os.link(first, folder / f"img_{t:05d}.png")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--frame-kib", type=float, default=100.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folders(root, args.videos, args.frames)
        data = root / "data"
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            videos, _ = scan(data)
            sigs = [signature(data, v) for v in videos]
            times.append(time.perf_counter() - t0)
        n = sum(len(v.frames) for v in videos)
        assert len(sigs) == args.videos and n == args.videos * args.frames
    block = np.random.default_rng(0).integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    hashlib.sha256(block).digest()
    mib_s = 64 / (time.perf_counter() - t0)
    gib = n * args.frame_kib / 2**20
    print(
        f"{args.videos} videos, {n} frames: scan + signatures {min(times):.2f} s (best of {args.repeat}; "
        f"all: {', '.join(f'{t:.2f}' for t in times)})"
    )
    print(
        f"content hash instead: sha256 at {mib_s:.0f} MiB/s in memory -> {gib:.1f} GiB of frames at "
        f"{args.frame_kib:g} KiB each: at least {gib * 1024 / mib_s:.0f} s, before reading them from disk"
    )


if __name__ == "__main__":
    main()
