"""Speed of evaluation: I3D clips/s and Inception frames/s as a share of the machine's measured
convolution peak, and a whole ``fvd16`` on the demo (render + embed) with its time split.

    python benchmarks/bench_eval.py                      # CPU, fp32: detectors, then fvd16 with 256 videos
    python benchmarks/bench_eval.py --videos 64          # a shorter fvd16
    python benchmarks/bench_eval.py --device cuda
    python benchmarks/bench_eval.py --skip-fvd           # the detectors only
    python benchmarks/bench_eval.py --skip-detectors --skip-fvd --fid-frames 2048   # FID on the demo

Detectors have the published sizes with random weights (speed does not depend on the weights;
no real detector file is needed). FLOPs are counted as 2 x multiply-adds of every convolution as
run (``torch.utils.flop_counter``); pools, ReLUs and the input resize are not counted. The peaks are
measured in the same run: a 3x3 2-D convolution (512 channels, 64 x 64, channels-last) for
Inception and a 3x3x3 3-D convolution (192 channels, 8 x 28 x 28, the shape of I3D's middle
blocks; the faster of the two memory layouts) for I3D.
The fvd16 part writes a procedural talking-head dataset (the demo's domain, 64 px) to a
temporary folder and uses a temporary store, so it leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generator import calls_per_s, machine_line, measure_peak

from mocohd_cli.detectors import I3D, I3DConfig, InceptionConfig, InceptionV3
from mocohd_cli.runtime import pick_device


def rate(fn, device) -> float:
    """Calls per second (``bench_generator.calls_per_s``, windows of 1 s)."""
    return calls_per_s(fn, device, min_time=1.0)


def conv3d_peak(device) -> float:
    """The faster of the two memory layouts (channels-last is about 2x on CPU)."""
    best = 0.0
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        x = torch.randn(2, 192, 8, 28, 28, device=device).contiguous(memory_format=layout)
        w = torch.randn(192, 192, 3, 3, 3, device=device).contiguous(memory_format=layout)
        flops = 2 * x.shape[0] * 8 * 28 * 28 * 27 * 192 * 192
        best = max(best, rate(lambda x=x, w=w: F.conv3d(x, w, padding=1), device) * flops / 1e9)
    return best


def conv_flops(net: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of the convolutions (2 x multiply-adds, as ``torch.utils.flop_counter`` counts them) in
    one forward of ``x``, per item of the batch; pools, ReLUs and the resize are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    convs = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    return convs / x.shape[0]


def randomize(net: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * ((2.0 / p[0].numel()) ** 0.5 if p.ndim > 1 else 0.05))
    return net.eval().requires_grad_(False)


def bench_detectors(device, batches_i3d, batches_inc, rows) -> None:
    i3d = randomize(I3D(I3DConfig())).to(device)
    inc = randomize(InceptionV3(InceptionConfig())).to(device)
    p3 = conv3d_peak(device)
    p2 = measure_peak(device, torch.float32)["conv_gflops"]
    print(
        f"# measured peaks: conv3d 3x3x3 (192 ch, 8x28x28) {p3:.0f} GFLOP/s, "
        f"conv2d 3x3 (512 ch, 64x64) {p2:.0f} GFLOP/s"
    )
    f3 = conv_flops(i3d, torch.zeros(1, 3, 16, 224, 224, device=device))
    f2 = conv_flops(inc, torch.zeros(1, 3, 299, 299, device=device))
    for b in batches_i3d:
        for size in (224, 64):  # 64: the demo's frames, resized inside
            x = torch.rand(b, 3, 16, size, size, device=device) * 2 - 1
            with torch.no_grad():
                r = rate(lambda x=x: i3d(x), device) * b
            rows.append(
                (
                    "I3D",
                    f"{b} x 16 x {size}^2",
                    f"{r:.2f} clips/s",
                    f"{f3 / 1e9:.1f}",
                    f"{r * f3 / 1e9:.0f}",
                    f"{100 * r * f3 / 1e9 / p3:.0f}% of conv3d",
                )
            )
    for b in batches_inc:
        for size in (299, 64):
            x = torch.rand(b, 3, size, size, device=device) * 2 - 1
            with torch.no_grad():
                r = rate(lambda x=x: inc(x), device) * b
            rows.append(
                (
                    "Inception",
                    f"{b} x {size}^2",
                    f"{r:.1f} frames/s",
                    f"{f2 / 1e9:.2f}",
                    f"{r * f2 / 1e9:.0f}",
                    f"{100 * r * f2 / 1e9 / p2:.0f}% of conv2d",
                )
            )


def bench_fvd(device, videos: int, batch: int) -> None:
    """fvd16 on the demo with a random full-size I3D in a temporary store: the whole command, then
    the render alone (same videos), so that fake embedding = fake total - render."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOCOHD_HOME"] = str(Path(tmp) / "home")
        from mocohd_cli import store
        from mocohd_cli.data.procedural import write_dataset
        from mocohd_cli.formats import canonical
        from mocohd_cli.loaders import load_image_generator
        from mocohd_cli.loaders.motion_models import load_motion
        from mocohd_cli.metrics.evaluate import evaluate, fake_videos

        net = randomize(I3D(I3DConfig()))
        store.kind_dir("i3d", create=True)
        canonical.save_model(
            store.store_path("i3d", "i3d"),
            net.state_dict(),
            kind="i3d",
            family="i3d",
            config=net.cfg.to_dict() if hasattr(net, "cfg") else I3DConfig().to_dict(),
        )
        t0 = time.perf_counter()
        data = write_dataset(Path(tmp) / "heads", videos=videos, frames=24, size=64, seed=0)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = evaluate(["fvd16"], data, motion="demo", image="demo", videos=videos, device=device, batch=batch)[0]
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = evaluate(["fvd16"], data, motion="demo", image="demo", videos=videos, device=device, batch=batch)[0]
        t_again = time.perf_counter() - t0
        G, M = load_image_generator("demo", device), load_motion("demo", device)
        t0 = time.perf_counter()
        for _ in fake_videos(M, G, list(range(videos)), list(range(16)), batch=batch):
            pass
        t_render = time.perf_counter() - t0
    prep = first.seconds["real"]
    print(
        f"\n## fvd16 on the demo, {videos} real + {videos} fake clips of 16 x 64 px (I3D resizes to 224), "
        f"batch {batch}, {device}\n"
    )
    print("| part | seconds | clips/s |")
    print("|---|---|---|")
    print(f"| writing the dataset (not part of eval) | {t_write:.1f} | |")
    print(
        f"| first eval, real side: decode into the clip cache + embed {first.real} clips | {prep:.1f} | "
        f"{first.real / prep:.2f} |"
    )
    print(
        f"| first eval, fake side: render + embed {first.fake} clips | {first.seconds['fake']:.1f} | "
        f"{first.fake / first.seconds['fake']:.2f} |"
    )
    print(f"| of which render (16 frames x {videos} videos) | {t_render:.1f} | {videos / t_render:.2f} |")
    print(
        f"| of which I3D on the fakes | {first.seconds['fake'] - t_render:.1f} | "
        f"{first.fake / max(first.seconds['fake'] - t_render, 1e-9):.2f} |"
    )
    print(f"| first eval, total | {t_first:.1f} | |")
    print(f"| second eval (real statistics cached: {again.real_cached}) | {t_again:.1f} | |")
    print(f"\nvalue (random-weight I3D, so not a real FVD): {first.value:.4f}, again {again.value:.4f}")


def bench_fid(device, frames: int, batch: int) -> None:
    """FID on the demo with a random full-size Inception in a temporary store: ``frames`` real frames
    (procedural heads, 64 videos x ceil(frames / 64) frames at 64 px) against as many rendered ones
    (16 per video), first with the real statistics computed, then cached."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOCOHD_HOME"] = str(Path(tmp) / "home")
        from mocohd_cli import store
        from mocohd_cli.data.procedural import write_dataset
        from mocohd_cli.formats import canonical
        from mocohd_cli.metrics.evaluate import evaluate

        net = randomize(InceptionV3(InceptionConfig()))
        store.kind_dir("inception", create=True)
        canonical.save_model(
            store.store_path("inception", "inception"),
            net.state_dict(),
            kind="inception",
            family="inception",
            config=InceptionConfig().to_dict(),
        )
        data = write_dataset(Path(tmp) / "heads", videos=64, frames=-(-frames // 64), size=64, seed=0)
        t0 = time.perf_counter()
        first = evaluate(["fid"], data, motion="demo", image="demo", fid_frames=frames, device=device, batch=batch)[0]
        t1 = time.perf_counter()
        again = evaluate(["fid"], data, motion="demo", image="demo", fid_frames=frames, device=device, batch=batch)[0]
        t2 = time.perf_counter()
    print(
        f"\n## fid on the demo, {first.real} real + {first.fake} fake frames of 64 px (Inception resizes to 299), "
        f"batch {batch}, {device}\n"
    )
    print("| part | seconds | frames/s |")
    print("|---|---|---|")
    print(
        f"| first eval, real side: decode + Inception on {first.real} frames | {first.seconds['real']:.1f} | "
        f"{first.real / first.seconds['real']:.1f} |"
    )
    print(
        f"| first eval, fake side: render + Inception on {first.fake} frames | {first.seconds['fake']:.1f} | "
        f"{first.fake / first.seconds['fake']:.1f} |"
    )
    print(f"| first eval, total | {t1 - t0:.1f} | |")
    print(f"| second eval (real statistics cached: {again.real_cached}) | {t2 - t1:.1f} | |")
    print(f"\nvalue (random-weight Inception, so not a real FID): {first.value:.4f}, again {again.value:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--videos", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--skip-fvd", action="store_true")
    ap.add_argument("--skip-detectors", action="store_true")
    ap.add_argument("--fid-frames", type=int, default=0, help="also FID on the demo with this many frames (0: no)")
    args = ap.parse_args()
    device = pick_device(args.device)
    print(f"# {machine_line(device)}; {time.strftime('%Y-%m-%d')}")
    print(f"# command: python benchmarks/bench_eval.py {' '.join(sys.argv[1:])}")
    if not args.skip_detectors:
        rows = []
        gpu = device.type == "cuda"
        bench_detectors(device, (8, 32) if gpu else (1, 4), (32, 128) if gpu else (1, 8), rows)
        print("\n| detector | input | speed | GFLOP / item | GFLOP/s | share of the measured peak |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    if not args.skip_fvd:
        bench_fvd(device, args.videos, args.batch)
    if args.fid_frames:
        bench_fid(device, args.fid_frames, max(args.batch, 32))


if __name__ == "__main__":
    main()
