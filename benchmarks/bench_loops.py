"""Seamless loops (`render --loop`): is the closing step (last frame -> first) an ordinary step,
and does the loop keep the open render's motion statistics? And what does each of the loop's
three moves (``mocohd_cli.paths``: crossfade, bridge, speed) contribute?

    python benchmarks/bench_loops.py                          # demo x demo, loops of 32 and 96 frames, 16 videos
    python benchmarks/bench_loops.py --motion vox --image ffhq256 --frames 64 --pixel-videos 4

Variants, all from the same seed and walk: ``repeat`` (the open render played again: the jump a
loop must avoid), ``bridge`` (the gap taken off evenly), ``crossfade + bridge``, and ``loop`` (what
`render --loop` makes: crossfade + bridge + speed). For each, in w: the closing step's size
against the other steps of its video (ratio to their median, its percentile among them, the share
of videos where it is no larger than their largest), the break in velocity at the seam (|second
difference| at frames N - 1 and 0 against the others'), and ``motion.stats`` of the loop (its N
frames and the closing step) against the open render's N frames along the first 8 principal
directions: step (rms; also against the open render's frames 1 .. N, without its first step),
energy share on them (on span), the largest change of one direction's share (as a fraction of
the open render's on span), and the dominant periods (median change). Then the same seam
measures in pixels (mean absolute frame difference) for the open render and the loop, and the
walk alone (no synthesis: time and peak memory, open and loop, a short and a long one), each in a
fresh process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch

from mocohd_cli.frames import VideoNoise, draw_w1, synthesize
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.motion_models import load_motion
from mocohd_cli.loaders.pca_bases import express
from mocohd_cli.motion.stats import motion_stats
from mocohd_cli.paths import loop_chunks
from mocohd_cli.render import _generator, to_uint8, trajectory_chunks

VARIANTS = {
    "repeat": None,
    "bridge": dict(crossfade=False, keep_speed=False),
    "crossfade + bridge": dict(crossfade=True, keep_speed=False),
    "loop (shipped)": dict(crossfade=True, keep_speed=True),
}


def seam(points: torch.Tensor) -> dict:
    """Seam measures of cyclic sequences [V, N, ...] (frame N - 1 flows into frame 0): per video,
    the closing step against the N - 1 others, and the velocity break at the seam."""
    x = points.flatten(2).double()
    cyc = torch.cat([x, x[:, :1]], dim=1)
    steps = cyc.diff(dim=1)  # [V, N, D]: step t from frame t to t + 1; the last is the closing step
    size = steps.norm(dim=2)
    close, other = size[:, -1], size[:, :-1]
    rank = (other < close[:, None]).double().mean(dim=1)  # the closing step's percentile among the others
    ring = torch.cat([steps[:, -1:], steps], dim=1)  # step N - 1 before step 0: second differences around the ring
    accel = ring.diff(dim=1).norm(dim=2)  # [V, N]: accel[:, 0] at frame 0, accel[:, -1] at frame N - 1
    at_seam = torch.stack([accel[:, 0], accel[:, -1]], dim=1).mean(dim=1)
    return {
        "close/median": float((close / other.median(dim=1).values).mean()),
        "percentile": float(rank.median()),
        "<= max": float((close <= other.max(dim=1).values).double().mean()),
        "accel/median": float((at_seam / accel[:, 1:-1].median(dim=1).values).mean()),
    }


SEAM_HEADER = "closing / median step | closing percentile | closing <= max | velocity break / median"


def _seam_cells(s: dict) -> str:
    return f"{s['close/median']:.2f} | {s['percentile']:.2f} | {s['<= max']:.0%} | {s['accel/median']:.2f}"


def stats_change(loop_ws: torch.Tensor, open_ws: torch.Tensor, directions: torch.Tensor) -> dict:
    """motion_stats of the loop (its N frames and the closing step) against the open render's N
    frames (``open_ws`` [V, N + 1, w]: frames 0 .. N - 1, and for ``step 1+`` frames 1 .. N)."""
    n = loop_ws.shape[1]
    s_loop = motion_stats(torch.cat([loop_ws, loop_ws[:, :1]], dim=1), directions)
    s_open, s_later = motion_stats(open_ws[:, :n], directions), motion_stats(open_ws[:, 1:], directions)
    return {
        "step": s_loop.step / s_open.step - 1,
        "step 1+": s_loop.step / s_later.step - 1,
        "on_span": s_loop.on_span / s_open.on_span - 1,
        "shares": float((s_loop.shares - s_open.shares).abs().max() / s_open.on_span),
        "periods": float((s_loop.periods / s_open.periods - 1).abs().median()),
    }


def memory_worker(frames: int, videos: int, loop: bool) -> None:
    torch.set_num_threads(1)  # tiny LSTM steps: threads only spin on a shared machine
    M, G = load_motion("demo"), load_image_generator("demo", device="cpu")
    walk = loop_chunks if loop else trajectory_chunks
    with torch.no_grad():
        w1 = draw_w1(G, videos, _generator(0, 0))
        t0 = time.perf_counter()
        n = sum(c.shape[1] for c in walk(M, w1, frames, generator=_generator(0, 1)))
    assert n == frames
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rss:.0f} {time.perf_counter() - t0:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--motion", default="demo")
    ap.add_argument("--image", default="demo")
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 96])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--pixel-videos", type=int, default=8, help="videos synthesised for the pixel measures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", type=int, nargs=2, default=[100, 20000], metavar=("SHORT", "LONG"))
    ap.add_argument("--memory-worker", type=int, nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_worker:
        return memory_worker(*args.memory_worker)
    torch.set_num_threads(2)
    G = load_image_generator(args.image, device="cpu")
    M, note = express(load_motion(args.motion), G, args.image)
    directions = M.pca_components[:8]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.motion} x {args.image}"
        + (f" ({note})" if note else "")
    )
    for n in args.frames:
        with torch.no_grad():
            w1 = draw_w1(G, args.videos, _generator(args.seed, 0))
            walked = torch.cat(list(trajectory_chunks(M, w1, n + 1, generator=_generator(args.seed, 1))), dim=1)
            open_ws = walked[:, :n]
            runs = {"repeat": open_ws}
            for name, kw in VARIANTS.items():
                if kw is not None:
                    runs[name] = torch.cat(list(loop_chunks(M, w1, n, generator=_generator(args.seed, 1), **kw)), dim=1)
        print(f"\n### {n} frames, {args.videos} videos: the seam in w, and motion statistics against the open render\n")
        print(f"| variant | {SEAM_HEADER} | step | step, open from frame 1 | on span | shares | periods |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, ws in runs.items():
            s, c = seam(ws), stats_change(ws, walked, directions)
            changes = (
                f"{c['step']:+.1%} | {c['step 1+']:+.1%} | {c['on_span']:+.1%} | {c['shares']:.3f} | {c['periods']:.1%}"
            )
            print(f"| {name} | {_seam_cells(s)} | {changes} |")
        k = args.pixel_videos
        print(f"\npixels ({k} videos, fixed noise):\n")
        print(f"| variant | {SEAM_HEADER} |")
        print("|---|---|---|---|---|")
        for name in ("repeat", "loop (shipped)"):
            ws = runs[name][:k]
            noise = VideoNoise(G, k, "fixed", _generator(args.seed, 2))
            frames = []
            with torch.no_grad():
                for t in range(n):
                    frames.append(to_uint8(synthesize(G, ws[:, t], noise(torch.arange(k)))).float())
            s = seam(torch.stack(frames, dim=1) / 255)
            print(f"| {name} | {_seam_cells(s)} |")
    print("\nthe walk alone (demo motion, 16 videos, no synthesis, 1 thread), each in a fresh process:\n")
    print("| frames | walk | peak RSS MB | seconds |")
    print("|---|---|---|---|")
    for n in args.memory:
        for loop in (0, 1):
            cmd = [sys.executable, __file__, "--memory-worker", str(n), "16", str(loop)]
            rss, secs = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
            print(f"| {n} | {'loop' if loop else 'open'} | {rss} | {secs} |")


if __name__ == "__main__":
    main()
