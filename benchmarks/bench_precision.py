"""bf16 frames against float32, and the cost of deterministic kernels, measured in one run.

    python benchmarks/bench_precision.py                   # StyleGAN2-f and StyleGAN3-T at 64 px, CPU
    python benchmarks/bench_precision.py --resolution 256

PSNR against the float32 frames of the same w's (random weights, no noise): render's bf16 path
(``synthesize(..., dtype=torch.bfloat16)``: styles, demodulation and the image in float32) and a
blanket ``torch.autocast`` around ``synthesize`` (what a caller under autocast gets). Then
StyleGAN2's forward and backward with and without ``torch.use_deterministic_algorithms(True)``,
interleaved, best of ``--repeats``: the ratio is the cost of ``--deterministic`` on this device.
Only torch and the generators are used, so the same script measures an older tree too.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from mocohd_cli.frames import synthesize
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator, StyleGAN3Config, StyleGAN3Generator


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    mse = (out.float() - ref.float()).square().mean().item()
    peak = (ref.max() - ref.min()).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def bf16_rows(G, ws) -> tuple[float, float]:
    with torch.no_grad():
        ref = synthesize(G, ws)
        render_bf16 = synthesize(G, ws, dtype=torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = synthesize(G, ws)
    return psnr(render_bf16, ref), psnr(autocast, ref)


def seconds(G, ws, deterministic: bool, iters: int) -> float:
    torch.use_deterministic_algorithms(deterministic)
    try:
        t0 = time.perf_counter()
        for _ in range(iters):
            w = ws.clone().requires_grad_(True)
            synthesize(G, w).square().mean().backward()
        return (time.perf_counter() - t0) / iters
    finally:
        torch.use_deterministic_algorithms(False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| generator | render bf16 vs fp32 (dB) | autocast bf16 vs fp32 (dB) |\n|---|---:|---:|")
    nets = {
        "StyleGAN2-f": StyleGAN2Generator(StyleGAN2Config.preset("f", args.resolution)),
        "StyleGAN3-T": StyleGAN3Generator(StyleGAN3Config.preset("t", args.resolution)),
    }
    for name, G in nets.items():
        G = G.eval().requires_grad_(False)
        ws = G.mapping(torch.randn(args.batch, G.z_dim))
        render_db, autocast_db = bf16_rows(G, ws)
        print(f"| {name} {args.resolution} px | {render_db:.2f} | {autocast_db:.2f} |")
    G = nets["StyleGAN2-f"]
    ws = G.mapping(torch.randn(args.batch, G.z_dim))
    seconds(G, ws, False, 1)  # warm-up
    best = {False: math.inf, True: math.inf}
    for _ in range(args.repeats):
        for det in (False, True):
            best[det] = min(best[det], seconds(G, ws, det, args.iters))
    print(
        f"\nStyleGAN2-f {args.resolution} px, batch {args.batch}, forward + backward, best of {args.repeats} x "
        f"{args.iters}: {best[False] * 1e3:.1f} ms, deterministic {best[True] * 1e3:.1f} ms "
        f"(ratio {best[True] / best[False]:.3f})"
    )


if __name__ == "__main__":
    main()
