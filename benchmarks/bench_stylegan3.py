"""StyleGAN3 synthesis (NVIDIA's T or R config): frames/s, GFLOP/frame, share of the
machine's measured convolution peak, fp32 and bf16, peak memory against the batch
size, and the ratio to NVIDIA's reference path on the same weights and machine, all
in one run per configuration.

    python benchmarks/bench_stylegan3.py --config t --resolution 256 --nvidia PATH/stylegan3
    python benchmarks/bench_stylegan3.py --config r --resolution 1024 --nvidia PATH/stylegan3 --skip-reference
    python benchmarks/bench_stylegan3.py --quick            # tiny sizes: a smoke test of seconds (tests run it)

What one run does:
- measures the machine's peaks in this process (``bench_generator.measure_peak``:
  a 3x3 convolution with 512 channels on a 64x64 map, and a large matmul) in
  each dtype asked for;
- times, each in a fresh process (so that its peak memory is its own): our fast
  path in every ``--dtypes`` (bf16: autocast on CPU) at every ``--batches``, our
  reference path (fp32, batch 1; ``--skip-reference`` leaves it out) and, given
  ``--nvidia`` (a checkout of NVlabs/stylegan3, not part of this repo), NVIDIA's
  code on its CPU path (the reference implementations of filtered_lrelu,
  bias_act and upfirdn2d; fp32 at ``--nvidia-batches``);
- compares the batch-1 images of every path with our fast fp32 one (max |diff|;
  PSNR for bf16).

Each measurement: one warm-up call, then calls until ``--min-iters`` and
``--min-time`` seconds (at most ``--max-iters``); the median call is kept.
Randomly initialised weights (speed does not depend on them), the same in every
process (seed 0). Our workers tune glibc's allocator as the CLI does
(``runtime.tune_allocator``); NVIDIA's run as its code runs.

GFLOP/frame: the FLOPs of our fast path as it runs, counted by
``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 forward and checked
against ``synthesis_flops`` (the analytic count, 2 x multiply-adds of: the dense
modulated convolutions, the 2-D depthwise up- and down-sampling filters as run
(the up-sampling one as a transposed convolution over its input), the Fourier
input's and the affines' matrix products); leaky ReLU, clamp and other
element-wise work are not counted. GFLOP/s and % of the conv peak are given for
our fast path (the reference paths do more arithmetic for the same frame; their
speed is the ratio). Memory: the process's peak RSS (``getrusage`` maxrss), and
what synthesis added to it over the peak before the first call (per frame).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_generator import DTYPES, machine_line, measure_peak  # noqa: E402 - after sys.path (and HERE)

from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator  # noqa: E402 - after sys.path

PATHS = ("fast", "reference", "nvidia")


def bench_config(name: str, resolution: int, quick: bool = False) -> StyleGAN3Config:
    """NVIDIA's published config ``name`` ('t' or 'r'); ``quick``: a tiny one at 16 px."""
    if quick:
        return StyleGAN3Config.preset(
            name, 16, z_dim=32, w_dim=32, channel_base=1024, channel_max=32, num_layers=6, margin_size=4
        )
    return StyleGAN3Config.preset(name, resolution)


def synthesis_flops(cfg: StyleGAN3Config) -> dict[str, float]:
    """FLOPs of one frame of our fast path's synthesis, as run at batch 1: ``conv`` (the dense
    modulated convolutions), ``filters`` (the depthwise up- and down-sampling filters, as 2-D
    kernels; up-sampling as a transposed convolution over its input), ``other`` (the Fourier
    input's and the affines' matrix products, the demodulation)."""
    inp = cfg.input_spec()
    c, s = inp["channels"], inp["size"]
    other = 2 * cfg.w_dim * 4 + 2 * s * s * 2 * c + 2 * s * s * c * c  # affine, grid @ freqs, channel mixing
    other += 2 * c * 2 + 2 * c * 2 * 2 + 2 * 2 * 27  # phases, rotated freqs, 3x3 transform products
    conv = filters = 0
    for spec in cfg.layer_specs():
        cin, cout, k = spec["in_channels"], spec["out_channels"], spec["conv_kernel"]
        n = spec["in_size"] + k - 1  # the convolution's output size (padding k - 1)
        conv += 2 * cin * cout * k * k * n * n
        other += 2 * cfg.w_dim * cin + (0 if spec["torgb"] else 2 * cin * cout)  # affine, demodulation
        if spec["up_taps"] > 1:
            filters += 2 * cout * n * n * spec["up_taps"] ** 2
        if spec["down_taps"] > 1:
            filters += 2 * cout * spec["out_size"] ** 2 * spec["down_taps"] ** 2
    return {"conv": float(conv), "filters": float(filters), "other": float(other)}


def counted_flops(fn, ws) -> float:
    """FLOPs of ``fn(ws)`` as run, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(ws.detach())
    return float(counter.get_total_flops())


def nvidia_synthesis(root: Path, cfg: StyleGAN3Config, state: dict):
    sys.path.insert(0, str(root))
    for name, stub in (("requests", types.ModuleType("requests")), ("pkg_resources", None)):
        try:
            __import__(name)
        except ImportError:
            if stub is None:
                from packaging.version import parse

                stub = types.SimpleNamespace(parse_version=parse)
            sys.modules[name] = stub
    from training.networks_stylegan3 import Generator

    c = cfg
    G = (
        Generator(
            z_dim=c.z_dim,
            c_dim=0,
            w_dim=c.w_dim,
            img_resolution=c.resolution,
            img_channels=c.img_channels,
            mapping_kwargs=dict(num_layers=c.mapping_layers),
            channel_base=c.channel_base,
            channel_max=c.channel_max,
            num_layers=c.num_layers,
            num_critical=c.num_critical,
            first_cutoff=c.first_cutoff,
            first_stopband=c.first_stopband,
            last_stopband_rel=c.last_stopband_rel,
            margin_size=c.margin_size,
            output_scale=c.output_scale,
            conv_kernel=c.conv_kernel,
            filter_size=c.filter_size,
            lrelu_upsampling=c.lrelu_upsampling,
            use_radial_filters=c.use_radial_filters,
            conv_clamp=c.conv_clamp,
            magnitude_ema_beta=c.magnitude_ema_beta,
        )
        .eval()
        .requires_grad_(False)
    )
    G.load_state_dict(state, strict=True)
    return lambda ws: G.synthesis(ws, force_fp32=True)


# ----------------------------------------------------------------------------
# Worker: one (path, dtype, batch) in its own process.


def worker(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.path != "nvidia":
        from mocohd_cli.runtime import tune_allocator

        tune_allocator()
    cfg = bench_config(args.config, args.resolution, args.quick)
    torch.manual_seed(0)
    G = StyleGAN3Generator(cfg).eval().requires_grad_(False)
    dtype = DTYPES[args.dtype]
    if args.path == "fast":
        fn = (lambda w: G.synthesis(w)) if dtype == torch.float32 else (lambda w: G.synthesis(w, dtype=dtype))
    elif args.path == "reference":
        fn = lambda w: G.synthesis(w, impl="reference")  # noqa: E731
    else:
        fn = nvidia_synthesis(Path(args.nvidia), cfg, G.state_dict())
    z = torch.randn(args.batch, cfg.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ws = G.mapping(z).unsqueeze(1).repeat(1, cfg.num_ws, 1)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        img = fn(ws)  # warm-up
        times = []
        t_end = time.perf_counter() + args.min_time
        while len(times) < args.min_iters or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            fn(ws)
            times.append(time.perf_counter() - t0)
            if len(times) >= args.max_iters:
                break
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "path": args.path,
        "dtype": args.dtype,
        "batch": args.batch,
        "iters": len(times),
        "seconds_per_batch": sorted(times)[len(times) // 2],
        "rss_mb": rss / 1024,
        "synthesis_mb": (rss - rss0) / 1024,
    }
    if args.save_image:
        torch.save(img[:1].float().clone(), args.save_image)
    if args.count_flops:  # after the memory was read: the counter's own bookkeeping is not in it
        result["flops_counted"] = counted_flops(fn, ws[:1])
    return result


def run_worker(path: str, dtype: str, batch: int, args, image: Path | None = None, count_flops: bool = False) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--path",
        path,
        "--dtype",
        dtype,
        "--batch",
        str(batch),
        "--config",
        args.config,
        "--resolution",
        str(args.resolution),
        "--min-time",
        str(args.min_time),
        "--min-iters",
        str(args.min_iters),
        "--max-iters",
        str(args.max_iters),
    ]
    cmd += ["--quick"] * args.quick + ["--count-flops"] * count_flops
    cmd += (["--threads", str(args.threads)] if args.threads else []) + (
        ["--nvidia", str(args.nvidia)] if args.nvidia else []
    )
    cmd += ["--save-image", str(image)] if image else []
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="t", choices=["t", "r"])
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument(
        "--dtypes",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="dtypes of our fast path (fp32 is always run: the images are compared with it)",
    )
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="batch sizes of our fast path")
    p.add_argument("--nvidia", type=Path, default=None, help="a checkout of NVlabs/stylegan3: time NVIDIA's code too")
    p.add_argument("--nvidia-batches", type=int, nargs="+", default=[1], help="batch sizes of NVIDIA's code")
    p.add_argument("--skip-reference", action="store_true", help="leave out our reference path")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--min-time", type=float, default=10.0, help="seconds of timed calls per measurement")
    p.add_argument("--min-iters", type=int, default=2)
    p.add_argument("--max-iters", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="a tiny 16 px config and short timings: a smoke test")
    p.add_argument("--json", type=Path, default=None, help="also write everything measured to this file")
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--save-image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick and not args.worker:
        args.min_time, args.min_iters, args.max_iters = min(args.min_time, 0.05), 1, min(args.max_iters, 3)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = ["fp32"] + [d for d in args.dtypes if d != "fp32"]
    batches = sorted(set(args.batches) | {1})
    cfg = bench_config(args.config, args.resolution, args.quick)
    cpu = torch.device("cpu")
    title = f"StyleGAN3-{args.config.upper()} {cfg.resolution} px" + (" (--quick: tiny config)" if args.quick else "")
    print(f"# {title}; {machine_line(cpu)}; {time.strftime('%Y-%m-%d')}", flush=True)
    peaks = {d: measure_peak(cpu, DTYPES[d], quick=args.quick) for d in dtypes}
    for d, pk in peaks.items():
        print(
            f"# measured {d} peak: 3x3 conv {pk['conv_gflops']:.0f} GFLOP/s, matmul {pk['matmul_gflops']:.0f} GFLOP/s",
            flush=True,
        )

    jobs = [("fast", d, b) for d in dtypes for b in batches]
    jobs += [] if args.skip_reference else [("reference", "fp32", 1)]
    jobs += [("nvidia", "fp32", b) for b in sorted(set(args.nvidia_batches))] if args.nvidia else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, dtype, batch in jobs:
            image = Path(tmp) / f"{path}-{dtype}.pt" if batch == 1 else None
            r = run_worker(
                path, dtype, batch, args, image=image, count_flops=(path, dtype, batch) == ("fast", "fp32", 1)
            )
            if image:
                r["image"] = torch.load(image)
            rows.append(r)
    base = rows[0]  # fast, fp32, batch 1
    ref = base["image"]
    analytic = synthesis_flops(cfg)
    flops = base["flops_counted"]
    nvidia = {r["batch"]: r for r in rows if r["path"] == "nvidia"}
    print(
        f"# GFLOP/frame {flops / 1e9:.2f} (counted on our fast path; analytic {sum(analytic.values()) / 1e9:.2f}: "
        f"dense convolutions {analytic['conv'] / 1e9:.2f}, filters {analytic['filters'] / 1e9:.2f}, "
        f"other {analytic['other'] / 1e9:.3f})"
    )
    print()
    print(
        "| config | path | dtype | batch | frames/s | s/frame | GFLOP/s | % conv peak | vs NVIDIA | peak RSS MB "
        "| synthesis MB (per frame) | max abs diff | PSNR vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fps = r["batch"] / r["seconds_per_batch"]
        r["frames_per_s"] = fps
        if r["path"] == "fast":
            r["gflops"] = fps * flops / 1e9
            r["conv_peak_pct"] = 100 * r["gflops"] / peaks[r["dtype"]]["conv_gflops"]
        if r["batch"] in nvidia and r["path"] != "nvidia":
            r["vs_nvidia"] = fps / (r["batch"] / nvidia[r["batch"]]["seconds_per_batch"])
        if "image" in r:
            img = r.pop("image")
            r["max_abs_diff"] = float((img - ref).abs().max())
            if r["dtype"] != "fp32":
                mse = float((img - ref).square().mean())
                r["psnr_db"] = 10 * math.log10(float(ref.max() - ref.min()) ** 2 / mse) if mse > 0 else float("inf")
        name = {"fast": "mocohd fast", "reference": "mocohd reference", "nvidia": "NVIDIA (CPU reference ops)"}[
            r["path"]
        ]
        cells = [
            f"{args.config.upper()}, {cfg.resolution} px",
            name,
            r["dtype"],
            str(r["batch"]),
            f"{fps:.3f}",
            f"{1 / fps:.3f}",
            f"{r['gflops']:.0f}" if "gflops" in r else "-",
            f"{r['conv_peak_pct']:.0f}%" if "conv_peak_pct" in r else "-",
            f"{r['vs_nvidia']:.1f}x" if "vs_nvidia" in r else "-",
            f"{r['rss_mb']:.0f}",
            f"{r['synthesis_mb']:.0f} ({r['synthesis_mb'] / r['batch']:.0f})",
            f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-",
            f"{r['psnr_db']:.1f} dB" if "psnr_db" in r else "-",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "config": args.config,
                    "resolution": cfg.resolution,
                    "quick": args.quick,
                    "machine": machine_line(cpu),
                    "torch": torch.__version__,
                    "threads": args.threads or torch.get_num_threads(),
                    "peaks": peaks,
                    "gflop_per_frame": flops / 1e9,
                    "analytic_gflop": {k: v / 1e9 for k, v in analytic.items()},
                    "rows": rows,
                    "nvidia": str(args.nvidia) if args.nvidia else None,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
