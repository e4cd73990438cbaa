"""Does `mocohd train` learn motion? Recover a known latent motion.

"Real" videos are rendered by a small frozen StyleGAN2 along known latent
trajectories: sinusoids of one chosen frequency along a few chosen PCA
directions of that same generator (random phases, a fixed amplitude in
units of each direction's stdev), from random starting latents. A motion
generator is then trained in-domain on them (the official losses and
schedule, smaller networks), and at every checkpoint we measure

  energy  the share of the learned per-step latent displacement energy that
          lies in the span of the true directions (an untrained model puts
          about its variance-weighted share of n_true / n_pca there);
  freq    the dominant temporal frequency of the learned motion along the
          true directions, estimated exactly as for the real trajectories
          (Hann window, zero-padded FFT, mean power over videos).

Targets (issue 4): energy >= 60 % and freq within 25 % of the true one,
within 20 CPU minutes.

    python benchmarks/bench_motion_recovery.py                # ~20 min on 2 cores
    python benchmarks/bench_motion_recovery.py --minutes 3    # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_generator(resolution: int, w_dim: int, seed: int):
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    cfg = StyleGAN2Config(resolution=resolution, z_dim=w_dim, w_dim=w_dim, mapping_layers=4,
                          channel_base=1024, channel_max=32)
    torch.manual_seed(seed)
    G = StyleGAN2Generator(cfg).eval().requires_grad_(False)
    # A randomly initialised generator paints far outside [-1, 1] (a third of its pixels); real
    # frames are clipped by 8-bit encoding, fake ones are not, so a discriminator could tell them
    # apart by clipping alone. Scale every toRGB layer so images stay in range, as a trained
    # generator's do: the image is the sum of the toRGB outputs, so it scales by the same factor.
    with torch.no_grad():
        imgs = G.synthesis(G.mapping(torch.randn(512, cfg.z_dim, generator=torch.Generator().manual_seed(seed))))
        k = 0.35 / float(imgs.std())
        for block in G.synthesis.blocks():
            block.torgb.weight.mul_(k)
            block.torgb.bias.mul_(k)
    return G


def true_trajectories(w1, basis, dirs, amplitude, period, frames, g):
    """w_t = w_1 + sum_k A s_k sin(2 pi t / period + phi_k) V_k, t = 0..frames-1 ([B, T, w_dim])."""
    t = torch.arange(frames, dtype=torch.float64)
    phase = torch.rand(w1.shape[0], len(dirs), generator=g, dtype=torch.float64) * 2 * math.pi
    coef = amplitude * torch.sin(2 * math.pi * t[None, :, None] / period + phase[:, None, :])  # [B, T, K]
    coef = coef - coef[:, :1]  # start at w_1
    steps = (basis.components[dirs] * basis.stdev[dirs, None]).double()  # [K, w_dim]
    return (w1.double()[:, None] + coef @ steps).float()


def render_videos(G, ws, folder: Path, noise_seed: int):
    import imageio.v3 as iio

    from mocohd_cli.render import to_uint8

    g = torch.Generator().manual_seed(noise_seed)
    for v in range(ws.shape[0]):
        noise = G.synthesis.make_noise(1, generator=g)
        with torch.no_grad():
            frames = to_uint8(G.synthesis(ws[v], noise=noise)).numpy()
        out = folder / f"video_{v:04d}"  # lossless PNG frames
        out.mkdir()
        for i, f in enumerate(frames):
            iio.imwrite(out / f"{i:04d}.png", f)


def dominant_frequency(coords: torch.Tensor, pad: int = 512) -> float:
    """Cycles per frame of the strongest component of [B, T, K] signals (mean power over B and K)."""
    x = coords - coords.mean(dim=1, keepdim=True)
    win = torch.hann_window(x.shape[1], periodic=False, dtype=x.dtype)
    spec = torch.fft.rfft(x * win[None, :, None], n=pad, dim=1).abs().square().mean(dim=(0, 2))
    spec[0] = 0
    k = int(spec.argmax())
    if 0 < k < len(spec) - 1:  # parabolic peak interpolation
        a, b, c = spec[k - 1].log(), spec[k].log(), spec[k + 1].log()
        k = k + 0.5 * float((a - c) / (a - 2 * b + c))
    return k / pad


def measure(M, G, basis, dirs, frames: int, videos: int = 256, seed: int = 123):
    """(energy share on the true directions, dominant frequency) of M's motion."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w1 = G.mapping(torch.randn(videos, G.z_dim, generator=g))
        ws = M(w1, frames, generator=g).double()
    d = ws[:, 1:] - ws[:, :-1]  # per-step displacements
    V = basis.components[dirs].double()  # orthonormal rows
    on = (d @ V.T).square().sum()
    energy = float(on / d.square().sum().clamp(min=1e-30))
    coords = (ws - ws[:, :1]) @ V.T  # [B, T, K]
    return energy, dominant_frequency(coords)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training time budget (stops at the first checkpoint past it)")
    ap.add_argument("--steps", type=int, default=100000, help="upper bound on training steps")
    ap.add_argument("--eval-every", type=int, default=25, help="steps between checkpoints / measurements")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--w-dim", type=int, default=64)
    ap.add_argument("--n-pca", type=int, default=16)
    ap.add_argument("--dirs", default="1,3,5", help="the true PCA directions")
    ap.add_argument("--period", type=float, default=8.0, help="true period, frames")
    ap.add_argument("--amplitude", type=float, default=1.0, help="in stdevs of each direction")
    ap.add_argument("--videos", type=int, default=96)
    ap.add_argument("--video-frames", type=int, default=48)
    ap.add_argument("--frames", type=int, default=16, help="clip length")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frame-size", type=int, default=16, help="training frame size (generated frames are pooled to it)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (videos, run, models)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam lr of every network (the official 1e-4 is too slow for a 20-minute budget)")
    ap.add_argument("--w-residual", type=float, default=1.0)
    ap.add_argument("--h-dim", type=int, default=128)
    ap.add_argument("--w-mutual", type=float, default=1.0, help="motion-diversity weight (official: 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--d-channels", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the curve here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="mocohd-recovery-"))
    os.environ["MOCOHD_HOME"] = str(work / "home")
    from mocohd_cli.formats import canonical
    from mocohd_cli.models.motion import load_motion
    from mocohd_cli.motion.generator import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca
    from mocohd_cli.train import TrainConfig, train

    dirs = [int(d) for d in args.dirs.split(",")]
    G = make_generator(args.resolution, args.w_dim, args.seed)
    gpath = work / "frozen.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    basis = fit_pca(G, samples=50_000, batch=5000, seed=0)

    g = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        w1 = G.mapping(torch.randn(args.videos, G.z_dim, generator=g))
    ws = true_trajectories(w1, basis, dirs, args.amplitude, args.period, args.video_frames, g)
    data = work / "videos"
    data.mkdir()
    t0 = time.perf_counter()
    render_videos(G, ws, data, args.seed + 2)
    print(f"rendered {args.videos} videos of {args.video_frames} frames in {time.perf_counter() - t0:.1f} s", flush=True)
    true_freq = dominant_frequency(((ws - ws[:, :1]) @ basis.components[dirs].T)[:, : args.frames])
    print(f"true: period {args.period} frames -> measured frequency {true_freq:.4f} cycles/frame "
          f"(exact {1 / args.period:.4f}); directions {dirs} of {args.n_pca}", flush=True)

    torch.manual_seed(args.seed)
    M0 = MotionGenerator(MotionConfig(w_dim=args.w_dim, noise_dim=args.w_dim, h_dim=args.h_dim, n_pca=args.n_pca,
                                      w_residual=args.w_residual), basis.components, basis.stdev)
    e0, f0 = measure(M0, G, basis, dirs, args.frames)
    share = float(basis.stdev[dirs].square().sum() / basis.stdev[: args.n_pca].square().sum())
    print(f"untrained: energy {e0:.1%} (variance-weighted share of the true directions {share:.1%}, "
          f"n_true/n_pca {len(dirs) / args.n_pca:.1%}), frequency {f0:.4f}", flush=True)
    curve = [{"step": 0, "seconds": 0.0, "energy": e0, "freq": f0}]
    start = time.perf_counter()

    def on_event(kind, info):
        if kind == "checkpoint":
            M = load_motion("recovery")
            e, f = measure(M, G, basis, dirs, args.frames)
            sec = time.perf_counter() - start
            curve.append({"step": info["step"], "seconds": sec, "energy": e, "freq": f})
            print(f"step {info['step']:6d}  {sec / 60:5.1f} min  energy {e:6.1%}  freq {f:.4f} "
                  f"({f / true_freq - 1:+.0%})", flush=True)
            if sec > args.minutes * 60 and not curve[0].get("stopping"):
                curve[0]["stopping"] = True
                os.kill(os.getpid(), 2)  # SIGINT: the trainer saves and stops after this step

    # the training clips are taken from the rendered videos at time step 1, so frequencies compare directly
    cfg = TrainConfig(data=str(data), image=str(gpath), name="recovery", domain="in", steps=args.steps,
                      batch=args.batch, lr=args.lr, frame_size=args.frame_size, frames=args.frames, time_step=1, n_pca=args.n_pca,
                      h_dim=args.h_dim, w_residual=args.w_residual, w_mutual=args.w_mutual, dv_channels=args.d_channels, workers=1,
                      save_every=args.eval_every, sample_every=10**9, log_every=args.eval_every,
                      pca_samples=50_000, seed=args.seed, device="cpu")
    # the trainer's PCA basis must be the one the truth was built on: store it under the generator's identity
    from mocohd_cli import store
    from mocohd_cli.models import load_image_generator
    from mocohd_cli.models.pca import save_pca

    ident = load_image_generator(gpath).identity
    basis.info.update(image_name=ident["name"], image_sha256=ident["weights_sha256"])
    store.kind_dir("pca", create=True)
    save_pca(basis, store.store_path("pca", "frozen"))
    train(cfg, on_event=on_event)

    curve[0].pop("stopping", None)
    best = max(curve, key=lambda r: r["energy"])
    last = curve[-1]
    print(f"\nfinal: step {last['step']}, {last['seconds'] / 60:.1f} min: energy {last['energy']:.1%} (target >= 60%), "
          f"frequency {last['freq']:.4f} vs true {true_freq:.4f} ({last['freq'] / true_freq - 1:+.0%}, target within 25%)")
    print(f"best energy: {best['energy']:.1%} at step {best['step']}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "true_freq": true_freq,
                                         "untrained_share": share, "curve": curve}, indent=1))
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
