"""How good is the embedded demo? Frames and motion against the procedural domain it imitates.

Real: held-out procedural talking heads (seeds never used in training), sampled
every ``--time-step`` frames as the motion model was trained. Fake: videos
rendered by an image generator + motion model pair. We report

  precision  share of fake frames that land inside the real-frame manifold: within
             the distance from some real frame to its k-th nearest real neighbour
             (Kynkaenniemi et al. 2019, k = 3), in a plain feature space: the frame
             area-pooled to 16 x 16 RGB (768 numbers in [0, 1]). No learned network,
             so no discriminator and nothing downloaded. Measured on the first and
             the last frame of every video (one pair per video: frames of one video
             are near duplicates and would make the radii meaningless); the real
             manifold is made of ``--real-videos`` held-out videos the same way.
  recall     the same the other way round (real frames inside the fake manifold).
  motion     mean absolute change between consecutive frames (0-255 scale): 0 means
             frozen.
  smooth     that change over the change across 4 steps: ~0.25-0.5 for smooth motion,
             ~1 for flicker (each frame a new random image).
  drift      feature distance between a video's first and last frames over the mean
             distance between first frames of different videos: small when a video
             keeps its face and background, ~1 when it morphs into another one.

for each model pair given (``--pair NAME IMAGE MOTION``, repeatable; MOTION ``init:M``
is M's architecture and basis with the official initialisation, untrained), plus
held-out real videos as the reference row.

    python benchmarks/bench_demo_quality.py --pair trained demo demo --pair "motion untrained" demo init:demo \\
        --pair placeholders /tmp/old/stylegan2-demo.safetensors /tmp/old/motion-demo.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(frames: np.ndarray) -> torch.Tensor:
    """[N, S, S, 3] uint8 -> [N, 768] float: 16 x 16 area-pooled RGB in [0, 1]."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    return F.adaptive_avg_pool2d(x, 16).flatten(1).double()


def manifold_coverage(ref: torch.Tensor, query: torch.Tensor, k: int = 3) -> float:
    """Share of ``query`` points within the k-NN radius of some ``ref`` point."""
    d_ref = torch.cdist(ref, ref)
    radii = d_ref.kthvalue(k + 1, dim=1).values  # k+1: the point itself is at distance 0
    d = torch.cdist(query, ref)
    return float((d <= radii[None]).any(dim=1).double().mean())


def motion_stats(videos: np.ndarray) -> tuple[float, float]:
    """videos [V, T, S, S, 3] uint8 -> (mean |x_t+1 - x_t|, that / mean |x_t+4 - x_t|)."""
    v = videos.astype(np.float64)
    d1 = np.abs(v[:, 1:] - v[:, :-1]).mean()
    d4 = np.abs(v[:, 4:] - v[:, :-4]).mean()
    return float(d1), float(d1 / max(d4, 1e-9))


def drift(videos: np.ndarray) -> float:
    first, last = features(videos[:, 0]), features(videos[:, -1])
    within = (last - first).norm(dim=1).mean()
    between = torch.pdist(first).mean()
    return float(within / between)


def real_videos(n: int, frames: int, size: int, time_step: int, seed: int) -> np.ndarray:
    from mocohd_cli.data.procedural import talking_head

    span = (frames - 1) * time_step + 1
    return np.stack([talking_head(seed + i, span, size)[::time_step] for i in range(n)])


def untrained_like(motion: str):
    """A motion model with ``motion``'s architecture and basis but the official initialisation (seed 0)."""
    from mocohd_cli import load_motion
    from mocohd_cli.motion.generator import MotionGenerator

    ref = load_motion(motion)
    torch.manual_seed(0)
    M = MotionGenerator(ref.cfg, ref.pca_components, ref.pca_stdev).eval()
    M.image = ref.image
    return M


def fake_videos(image: str, motion: str, n: int, frames: int, seed: int) -> tuple[np.ndarray, float]:
    from mocohd_cli import load_image_generator, load_motion, render_frames

    G = load_image_generator(image)
    M = untrained_like(motion[len("init:") :]) if motion.startswith("init:") else load_motion(motion)
    t0 = time.perf_counter()
    out = np.stack([f.numpy() for f in render_frames(M, G, frames=frames, videos=n, seed=seed, batch=32)], axis=1)
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", nargs=3, action="append", metavar=("LABEL", "IMAGE", "MOTION"), required=True)
    ap.add_argument("--videos", type=int, default=256, help="fake videos per pair (and held-out real ones)")
    ap.add_argument("--real-videos", type=int, default=1024, help="held-out real videos of the manifold")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--time-step", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-seed", type=int, default=10_000_000, help="first seed of the held-out real videos")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    rows = []
    size = None
    fakes = {}
    for label, image, motion in args.pair:
        fake, secs = fake_videos(image, motion, args.videos, args.frames, args.seed)
        fakes[label] = (fake, secs)
        size = size or fake.shape[2]
        if fake.shape[2] != size:
            raise SystemExit("all image generators must have the same resolution")

    def ends(v):  # [V, T, S, S, 3] -> features of the first and last frames
        return features(np.concatenate([v[:, 0], v[:, -1]]))

    real = real_videos(args.real_videos, args.frames, size, args.time_step, args.real_seed)
    f_real = ends(real)
    held = real_videos(args.videos, args.frames, size, args.time_step, args.real_seed + 5_000_000)
    m, s = motion_stats(held)  # the reference row: held-out real videos, as many as the fakes
    rows.append(
        dict(
            label="real (held-out procedural)",
            precision=manifold_coverage(f_real, ends(held)),
            recall=manifold_coverage(ends(held), f_real),
            motion=m,
            smooth=s,
            drift=drift(held),
        )
    )
    for label, (fake, secs) in fakes.items():
        m, s = motion_stats(fake)
        rows.append(
            dict(
                label=label,
                precision=manifold_coverage(f_real, ends(fake)),
                recall=manifold_coverage(ends(fake), f_real),
                motion=m,
                smooth=s,
                drift=drift(fake),
                render_s=round(secs, 2),
            )
        )
    print(
        f"{args.videos} videos x {args.frames} frames, {size} px, real frames every {args.time_step}; "
        f"features: 16x16 RGB, k = 3"
    )
    print(f"{'':28s} {'precision':>9s} {'recall':>7s} {'motion':>7s} {'smooth':>7s} {'drift':>7s}")
    for r in rows:
        print(
            f"{r['label']:28s} {r['precision']:9.3f} {r['recall']:7.3f} {r['motion']:7.2f} {r['smooth']:7.3f} "
            f"{r['drift']:7.3f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: v for k, v in vars(args).items() if k != "json"}, "rows": rows}, indent=1, default=str
            )
        )


if __name__ == "__main__":
    main()
