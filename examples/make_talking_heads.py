"""Write the procedural talking-head dataset (the demo's training domain) and a
preview strip.

    python examples/make_talking_heads.py ./heads --videos 200 --frames 64 --size 64
    python examples/make_talking_heads.py --preview examples/talking_heads.png
"""

import argparse
from pathlib import Path

import numpy as np


def main():
    from mocohd_cli.data.procedural import talking_head, write_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, help="dataset folder (one PNG frame folder per video)")
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", type=Path, help="write a PNG strip: 6 videos, every 4th of 48 frames")
    args = ap.parse_args()
    if args.out:
        write_dataset(
            args.out,
            args.videos,
            args.frames,
            args.size,
            args.seed,
            progress=lambda i, n: print(f"\r{i}/{n} videos", end="", flush=True),
        )
        print(f"\nwrote {args.out}")
    if args.preview:
        import imageio.v3 as iio

        rows = [np.concatenate(list(talking_head(s, 48, args.size)[::4]), axis=1) for s in range(6)]
        iio.imwrite(args.preview, np.concatenate(rows, axis=0))
        print(f"wrote {args.preview}")
    if not (args.out or args.preview):
        ap.error("give a dataset folder and/or --preview")


if __name__ == "__main__":
    main()
