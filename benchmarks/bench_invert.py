"""Speed of `mocohd invert`: optimisation steps/s of NVIDIA's projector recipe on a config-f
StyleGAN2 (random weights: speed does not depend on them) with a full-size VGG16 (random
weights too), and where a step's time goes.

    python benchmarks/bench_invert.py                                  # 256 and 1024 px, fp32, CPU
    python benchmarks/bench_invert.py --dtypes fp32 bf16 --steps 5
    python benchmarks/bench_invert.py --device cuda --steps 50 --json invert.json
    python benchmarks/bench_invert.py --family stylegan3 --resolutions 256    # StyleGAN3-T (no noise maps)
    python benchmarks/bench_invert.py --family biggan-deep --resolutions 128  # BigGAN-deep 128 (z + class mix)

Per resolution and dtype (each in a fresh process), for one photo:

- step: seconds per `invert` step (perceptual loss, space w, noise maps optimised), timed
  from its progress calls, the first step (warm-up) left out; its set-up (10,000 z -> w
  for the w statistics, the photo's VGG features) is reported apart;
- G fwd+bwd: one synthesis forward and backward to w and the noise maps, alone: the floor
  a step cannot go under; the step's cost as a multiple of it;
- VGG share: one VGG16 forward and backward (to the image) of the synthesised image,
  area-resized to 256 px when larger, as a share of the step (target: < 25% at 256 px);
- pixel step: seconds per step with the pixel loss (MSE + multi-scale SSIM) instead.

``--family``: stylegan2 (config f), stylegan3 (config T: w only, no noise maps) or biggan-deep (the
128 px plan only: z and the 1000 class logits optimised, G fwd+bwd to both).

bf16 runs the generator in bfloat16 (``synthesize(dtype=...)``) and VGG16 under autocast;
the optimiser and the losses stay in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from itertools import pairwise

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_generator import machine_line

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def worker(args) -> dict:
    from mocohd_cli.runtime import tune_allocator

    tune_allocator()
    from mocohd_cli.frames import synthesize
    from mocohd_cli.generators import (
        BigGANConfig,
        BigGANGenerator,
        StyleGAN2Config,
        StyleGAN2Generator,
        StyleGAN3Config,
        StyleGAN3Generator,
    )
    from mocohd_cli.invert import invert
    from mocohd_cli.perceptual import VGG16

    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    compute = None if args.dtype == "fp32" else dtype
    torch.manual_seed(0)
    if args.family == "stylegan3":
        G = StyleGAN3Generator(StyleGAN3Config.preset("t", args.resolution))
    elif args.family == "biggan-deep":
        G = BigGANGenerator(BigGANConfig(resolution=args.resolution))
    else:
        G = StyleGAN2Generator(StyleGAN2Config.preset("f", args.resolution))
    G = G.eval().requires_grad_(False).to(device)
    net = VGG16().eval().requires_grad_(False).to(device)
    gen = torch.Generator().manual_seed(1)
    c = None
    if G.c_dim:  # BigGAN: a class mix (what invert optimises), its gradient wanted
        c = torch.randn(1, G.c_dim, generator=gen).to(device).softmax(dim=1).requires_grad_(True)
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=gen).to(device))
        ws0 = w if G.c_dim else w[:, None].expand(-1, G.num_ws, -1)
        photo = synthesize(G, ws0, G.synthesis.make_noise(1, generator=gen), c).clamp(-1, 1)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=compute is not None)

    def timed(fn, reps):
        fn()  # warm-up
        out = []
        for _ in range(reps):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t0)
        return _median(out)

    ws = ws0.clone().requires_grad_(True)
    noise = [n.to(device).requires_grad_(True) for n in G.synthesis.make_noise(1, generator=gen)]

    def gen_fwd_bwd():
        synthesize(G, ws, noise, c, dtype=compute).square().mean().backward()

    with torch.no_grad(), autocast:
        target = [f.detach() for f in net.embed(photo)]
    image = photo.clone().requires_grad_(True)

    def vgg_fwd_bwd():
        with autocast:
            d = net.distance(net.embed(image), target).float()
        d.sum().backward()

    t_gen = timed(gen_fwd_bwd, args.reps)
    t_vgg = timed(vgg_fwd_bwd, args.reps)

    def step_time(loss):
        stamps = []
        t0 = time.perf_counter()
        invert(
            G,
            photo,
            steps=args.steps,
            loss=loss,
            perceptual=net,
            dtype=compute,
            progress=lambda *_: (_sync(device), stamps.append(time.perf_counter())),
        )
        total = time.perf_counter() - t0
        per_step = _median([b - a for a, b in pairwise(stamps)]) if len(stamps) > 1 else total
        return per_step, total - per_step * args.steps

    t_step, t_setup = step_time("perceptual")
    t_pixel, _ = step_time("pixel")
    result = {
        "family": args.family,
        "resolution": args.resolution,
        "dtype": args.dtype,
        "device": args.device,
        "steps": args.steps,
        "step_s": t_step,
        "steps_per_s": 1 / t_step,
        "setup_s": t_setup,
        "gen_fwd_bwd_s": t_gen,
        "step_over_gen": t_step / t_gen,
        "vgg_fwd_bwd_s": t_vgg,
        "vgg_share": t_vgg / t_step,
        "pixel_step_s": t_pixel,
        "pixel_steps_per_s": 1 / t_pixel,
    }
    if device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="stylegan2", choices=["stylegan2", "stylegan3", "biggan-deep"])
    p.add_argument("--resolutions", type=int, nargs="+", default=None, help="default: 256 1024 (BigGAN: 128)")
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=list(DTYPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=4, help="invert steps timed per loss (the first is a warm-up)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions of the G and VGG passes alone")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2 (the first step is a warm-up)")
    if args.resolutions is None:
        args.resolutions = [128] if args.family == "biggan-deep" else [256, 1024]
    print(f"# invert ({args.family}): {machine_line(torch.device(args.device))}")
    print(
        "| res | dtype | steps/s | s/step | setup s | G fwd+bwd s | step / G | VGG fwd+bwd s | VGG share "
        "| pixel steps/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for res in args.resolutions:
        for dt in args.dtypes:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--family",
                args.family,
                "--resolution",
                str(res),
                "--dtype",
                dt,
                "--device",
                args.device,
                "--steps",
                str(args.steps),
                "--reps",
                str(args.reps),
            ]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"worker failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
            x = json.loads(r.stdout.strip().splitlines()[-1])
            results.append(x)
            print(
                f"| {res} | {dt} | {x['steps_per_s']:.3f} | {x['step_s']:.3f} | {x['setup_s']:.2f} | "
                f"{x['gen_fwd_bwd_s']:.3f} | {x['step_over_gen']:.2f} | {x['vgg_fwd_bwd_s']:.3f} | "
                f"{100 * x['vgg_share']:.0f}% | {x['pixel_steps_per_s']:.3f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
