"""Frames/s of StyleGAN3 synthesis (NVIDIA's T or R config), ours (fast and reference
paths) and, given a checkout, NVIDIA's code on the same weights and machine (on a
CPU it runs its reference paths of filtered_lrelu, bias_act and upfirdn2d).

    python benchmarks/bench_stylegan3.py                                  # T, 256 px, batch 1, fp32
    python benchmarks/bench_stylegan3.py --config r --resolution 256 --nvidia PATH/stylegan3

Randomly initialised weights (speed does not depend on them); the images of the
three are compared too (max |difference|). Each is timed over ``--repeat`` frames
after one warm-up frame.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator  # noqa: E402


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
    G = Generator(z_dim=c.z_dim, c_dim=0, w_dim=c.w_dim, img_resolution=c.resolution, img_channels=c.img_channels,
                  mapping_kwargs=dict(num_layers=c.mapping_layers), channel_base=c.channel_base,
                  channel_max=c.channel_max, conv_kernel=c.conv_kernel, use_radial_filters=c.use_radial_filters,
                  magnitude_ema_beta=c.magnitude_ema_beta).eval()
    G.load_state_dict(state, strict=True)
    return lambda ws: G.synthesis(ws, force_fp32=True)


def timed(fn, ws, repeat: int):
    with torch.no_grad():
        img = fn(ws)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn(ws)
        return img, repeat * ws.shape[0] / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="t", choices=["t", "r"])
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--nvidia", type=Path, default=None, help="a checkout of NVlabs/stylegan3")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = StyleGAN3Config.preset(args.config, args.resolution)
    G = StyleGAN3Generator(cfg).eval()
    ws = G.mapping(torch.randn(args.batch, cfg.z_dim)).unsqueeze(1).repeat(1, cfg.num_ws, 1)
    print(f"StyleGAN3-{args.config.upper()} {args.resolution} px, batch {args.batch}, fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    runs = {"mocohd fast": lambda w: G.synthesis(w)}
    if not args.skip_reference:
        runs["mocohd reference"] = lambda w: G.synthesis(w, impl="reference")
    if args.nvidia:
        runs["NVIDIA (CPU reference ops)"] = nvidia_synthesis(args.nvidia, cfg, G.state_dict())
    base = None
    for name, fn in runs.items():
        img, fps = timed(fn, ws, args.repeat)
        base = img if base is None else base
        print(f"{name:28s} {fps:7.3f} frames/s   max |diff| to mocohd fast {float((img - base).abs().max()):.2e}")


if __name__ == "__main__":
    main()
