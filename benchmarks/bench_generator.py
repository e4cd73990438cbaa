"""Frames/s of StyleGAN2 synthesis (config f), FLOPs per frame, and the share of
the machine's measured peak it reaches.

    python benchmarks/bench_generator.py                       # 256 and 1024 px, batch 1/4/16, fp32, CPU
    python benchmarks/bench_generator.py --dtypes fp32 bf16    # add the bfloat16 path (+ PSNR vs fp32)
    python benchmarks/bench_generator.py --levers              # ratios: allocator, channels-last, fused modulation, ...
    python benchmarks/bench_generator.py --levers --nvidia PATH/stylegan2-ada-pytorch   # + NVIDIA's code, same weights
    python benchmarks/bench_generator.py --device cuda

Each measurement runs in a fresh process (so allocator state and peak memory
are its own). Randomly initialised weights: speed does not depend on them.
FLOPs count 2 x multiply-adds of every convolution as run (a transposed
convolution at its input resolution), the toRGB and affine layers and the
mapping network; the FIR filter and element-wise work are not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def synthesis_flops(cfg) -> float:
    """FLOPs for one frame (mapping + synthesis)."""
    fl = 2 * (cfg.z_dim * cfg.w_dim + (cfg.mapping_layers - 1) * cfg.w_dim * cfg.w_dim)
    in_ch = 0
    for r in cfg.block_resolutions:
        c = cfg.channels(r)
        if in_ch:
            fl += 2 * (r // 2) ** 2 * 9 * in_ch * c + 2 * cfg.w_dim * in_ch  # up conv (transposed) + affine
        fl += 2 * r * r * 9 * c * c + 2 * cfg.w_dim * c  # conv1 + affine
        fl += 2 * r * r * c * cfg.img_channels + 2 * cfg.w_dim * c  # toRGB + affine
        in_ch = c
    return float(fl)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def calls_per_s(fn, device, windows: int = 3, min_time: float = 0.7) -> float:
    """Calls of ``fn`` per second: the best of ``windows`` windows of at least ``min_time`` s (the
    machine may be shared), after one warm-up call."""
    fn()
    best = 0.0
    for _ in range(windows):
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_time:
            fn()
            n += 1
        _sync(device)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def measure_peak(device, dtype, quick: bool = False) -> dict:
    """Measured matmul and 3x3-convolution throughput (GFLOP/s) in ``dtype`` (``quick``: tiny
    sizes and one short window, for smoke tests only)."""
    import torch.nn.functional as F

    def rate(fn, flops):
        return calls_per_s(fn, device, **(dict(windows=1, min_time=0.05) if quick else {})) * flops / 1e9

    n = 256 if quick else 4096 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    mm = rate(lambda: a @ b, 2 * n**3)
    ch, hw = (64, 16) if quick else (512, 64)
    x = torch.randn(1 if device.type == "cpu" else 16, ch, hw, hw, device=device, dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )
    w = torch.randn(ch, ch, 3, 3, device=device, dtype=dtype)
    conv = rate(lambda: F.conv2d(x, w, padding=1), 2 * x.shape[0] * hw * hw * 9 * ch * ch)
    return {"matmul_gflops": mm, "conv_gflops": conv}


# ----------------------------------------------------------------------------
# Worker: one (resolution, batch, dtype, variant) in its own process.


def worker(args) -> dict:
    if args.variant not in ("no-allocator", "nvidia"):
        from mocohd_cli.runtime import tune_allocator

        tune_allocator()
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    device = torch.device(args.device)
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config.preset("f", args.resolution)).eval().requires_grad_(False).to(device)
    syn = G.synthesis
    impl = "fast"
    if args.variant == "no-channels-last":
        syn.channels_last = False
    elif args.variant == "no-sub-batch":
        syn.working_set_bytes = 0
    elif args.variant.startswith("working-set-"):
        syn.working_set_bytes = int(args.variant.rsplit("-", 1)[1]) << 20
    elif args.variant in ("all-fused", "all-batched"):
        from mocohd_cli import ops

        ops.FUSED_MIN_PIXELS = 0 if args.variant == "all-fused" else 1 << 40
        if args.variant == "all-batched":  # batch 1 too: the input-scaling formulation everywhere
            orig = ops.modulated_conv2d
            ops.modulated_conv2d = lambda *a, **k: orig(*a, **{**k, "fused": False})
    elif args.variant == "reference":
        impl = "reference"
    if args.variant == "nvidia":  # NVIDIA's stylegan2-ada-pytorch, same config and weights, for comparison
        sys.path.insert(0, args.nvidia)
        from training.networks import Generator

        c = G.cfg
        ref = Generator(
            z_dim=c.z_dim,
            c_dim=0,
            w_dim=c.w_dim,
            img_resolution=c.resolution,
            img_channels=3,
            mapping_kwargs=dict(num_layers=c.mapping_layers),
            synthesis_kwargs=dict(
                channel_base=c.channel_base, channel_max=c.channel_max, num_fp16_res=0, conv_clamp=c.conv_clamp
            ),
        )
        ref.load_state_dict(G.state_dict(), strict=False)
        ref = ref.eval().requires_grad_(False).to(device)

        def syn(w, impl=None, dtype=None):
            return ref.synthesis(w.unsqueeze(1).repeat(1, ref.num_ws, 1), noise_mode="const", force_fp32=True)

    dtype = DTYPES[args.dtype]
    z = torch.randn(args.batch, G.z_dim, device=device, generator=torch.Generator(device).manual_seed(1))
    with torch.no_grad():
        w = G.mapping(z)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        out = syn(w, impl=impl, dtype=dtype)  # warm-up
        _sync(device)
        times = []
        t_end = time.perf_counter() + args.min_time
        while len(times) < args.min_iters or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            out = syn(w, impl=impl, dtype=dtype)
            _sync(device)
            times.append(time.perf_counter() - t0)
            if len(times) >= args.max_iters:
                break
        result = {
            "resolution": args.resolution,
            "batch": args.batch,
            "dtype": args.dtype,
            "variant": args.variant,
            "device": args.device,
            "seconds_per_batch": sorted(times)[len(times) // 2],
            "iters": len(times),
            "gflop_per_frame": synthesis_flops(G.cfg) / 1e9,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "activation_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
        }
        if device.type == "cuda":
            result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        if args.dtype != "fp32":  # quality of the reduced-precision path against fp32
            ref = syn(w, impl=impl).float()
            mse = (out.float() - ref).square().mean().item()
            peak = (ref.max() - ref.min()).item()
            result["psnr_db"] = 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf")
    return result


def run_worker(res, batch, dtype, device, variant, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--resolution",
        str(res),
        "--batch",
        str(batch),
        "--dtype",
        dtype,
        "--device",
        device,
        "--variant",
        variant,
        "--min-time",
        str(args.min_time),
        "--min-iters",
        str(args.min_iters),
        "--max-iters",
        str(args.max_iters),
    ] + (["--nvidia", args.nvidia] if args.nvidia else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def machine_line(device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    line = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        line += f", {torch.cuda.get_device_name()}"
    return line


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=list(DTYPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--levers", action="store_true", help="compare optimisation levers as ratios to the default")
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timed runs per measurement")
    p.add_argument("--min-iters", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="--levers: interleaved repetitions (best is kept)")
    p.add_argument("--variants", nargs="+", help="--levers: only these variants (besides default)")
    p.add_argument("--nvidia", help="--levers: path to a stylegan2-ada-pytorch checkout, timed as variant 'nvidia'")
    p.add_argument("--max-iters", type=int, default=50)
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    device = torch.device(args.device)
    print(f"# machine: {machine_line(device)}")
    peaks = {d: measure_peak(device, DTYPES[d]) for d in args.dtypes}
    for d, pk in peaks.items():
        print(
            f"# measured {d} peak: matmul {pk['matmul_gflops']:.0f} GFLOP/s, "
            f"3x3 conv (512 ch, 64x64) {pk['conv_gflops']:.0f} GFLOP/s"
        )
    print()

    if args.levers:
        variants = [
            "default",
            "no-allocator",
            "no-channels-last",
            "all-fused",
            "all-batched",
            "no-sub-batch",
            "working-set-64",
            "working-set-256",
        ] + (["nvidia"] if args.nvidia else [])
        if args.variants:
            variants = ["default"] + [v for v in args.variants if v != "default"]
        print("| res | batch | variant | s/frame | time vs default |")
        print("|---|---|---|---|---|")
        for res in args.resolutions:
            for batch in args.batches:
                todo = [v for v in variants if batch > 1 or not (v == "no-sub-batch" or v.startswith("working-set"))]
                best = {}
                for _ in range(args.repeats):  # interleaved, best of N: the machine is shared and noisy
                    for v in todo:
                        r = run_worker(res, batch, args.dtypes[0], args.device, v, args)
                        best[v] = min(best.get(v, float("inf")), r["seconds_per_batch"] / batch)
                for v in todo:
                    print(f"| {res} | {batch} | {v} | {best[v]:.3f} | {best[v] / best['default']:.2f}x |", flush=True)
        return

    print(
        "| res | batch | dtype | frames/s | s/frame | GFLOP/frame | GFLOP/s | % matmul peak | % conv peak "
        "| peak RSS MB | PSNR vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for res in args.resolutions:
        for dtype in args.dtypes:
            for batch in args.batches:
                r = run_worker(res, batch, dtype, args.device, "default", args)
                fps = batch / r["seconds_per_batch"]
                gflops = fps * r["gflop_per_frame"]
                pk = peaks[dtype]
                psnr = f"{r['psnr_db']:.1f} dB" if "psnr_db" in r else "-"
                mem = f"{r['cuda_peak_mb']:.0f} (GPU)" if "cuda_peak_mb" in r else f"{r['rss_mb']:.0f}"
                print(
                    f"| {res} | {batch} | {dtype} | {fps:.2f} | {1 / fps:.3f} | {r['gflop_per_frame']:.2f} "
                    f"| {gflops:.0f} | {100 * gflops / pk['matmul_gflops']:.0f}% "
                    f"| {100 * gflops / pk['conv_gflops']:.0f}% | {mem} | {psnr} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
