"""Is it the motion generator or the discriminator? The recovery benchmark's
multi-movement case, with the images taken out.

The same LSTM motion generator (``MotionGenerator``, the benchmark's sizes) is
trained against a discriminator that sees the latent trajectories themselves:
the PCA coordinates (w_t - w_1) . V_k / s_k of the generator's n_pca directions
over a clip, for real clips (the benchmark's true sinusoids) and fake ones.
The discriminator is a small 1-D convolution network over time, trained with
the official losses (relativistic-average LSGAN, gradient penalty 10, 5 motion
updates per discriminator update, the diversity term), so only the pixels and
the frozen image generator are missing. No image is rendered: thousands of
steps take minutes.

If the LSTM learns independent movements at their own periods here, the image
pipeline (the video discriminator and what it sees) is what fails in the full
benchmark; if it locks them together here too, the motion generator does.

    python benchmarks/ablate_motion_latent.py --steps 3000
    python benchmarks/ablate_motion_latent.py --steps 3000 --blocks 4   # LSTM units in 4 uncoupled groups
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


class TrajectoryDiscriminator(nn.Module):
    """Scores of coordinate sequences [B, T, K]: 1-D convolutions over time (kernel 3) and a mean."""

    def __init__(self, k: int, width: int = 64, layers: int = 4):
        super().__init__()
        mods, ch = [], k
        for _ in range(layers):
            mods += [nn.Conv1d(ch, width, 3, padding=1), nn.LeakyReLU(0.2)]
            ch = width
        mods.append(nn.Conv1d(ch, 1, 3, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return [[self.net(x.transpose(1, 2))]]  # the losses' layout: scales of feature lists


def block_mask(h: int, blocks: int) -> torch.Tensor:
    """[4h, h] mask of an LSTM's recurrent weights that splits its h units into ``blocks`` groups
    with no recurrent connection between groups (the same for each of the four gates)."""
    group = torch.arange(h) * blocks // h
    same = (group[:, None] == group[None, :]).float()
    return same.repeat(4, 1)


def main():
    import bench_motion_recovery as bench

    from mocohd_cli import losses
    from mocohd_cli.motion.generator import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--g-steps", type=int, default=5)
    ap.add_argument("--w-mutual", type=float, default=1.0)
    ap.add_argument("--noise-dim", type=int, default=64)
    ap.add_argument("--h-dim", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=1, help="block-diagonal recurrent weights: independent LSTM groups")
    ap.add_argument(
        "--oscillators", type=int, default=0, help="the motion model's oscillator bank (0: the authors' model)"
    )
    ap.add_argument(
        "--w-residual", type=float, default=1.0, help="lambda, the LSTM's step weight (0: only the oscillators move)"
    )
    ap.add_argument(
        "--freeze",
        nargs="*",
        default=[],
        choices=["osc_move", "osc_log_period"],
        help="oscillator parameters kept at their initial values",
    )
    ap.add_argument("--case", default="multi", choices=sorted(bench.CASES))
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    case = bench.CASES[args.case]
    dirs = [int(d) for d in case["dirs"].split(",")]
    periods = bench._per_direction(case["periods"], len(dirs), "periods")
    amplitudes = bench._per_direction(case["amplitudes"], len(dirs), "amplitudes")
    G = bench.make_generator(32, 64, 0)
    basis = fit_pca(G, samples=50_000, batch=5000, seed=0)
    n_pca = 16
    V, s = basis.components[:n_pca], basis.stdev[:n_pca]
    g = torch.Generator().manual_seed(1)

    def coords(ws):  # [B, T, w_dim] -> [B, T, n_pca], in stdevs, from the first frame
        return ((ws - ws[:, :1]) @ V.T) / s

    def real_batch(n):
        with torch.no_grad():
            w1 = G.mapping(torch.randn(n, G.z_dim, generator=g))
        return bench.true_trajectories(w1, basis, dirs, amplitudes, periods, args.frames, g), w1

    M = MotionGenerator(
        MotionConfig(
            w_dim=64,
            noise_dim=args.noise_dim,
            h_dim=args.h_dim,
            n_pca=n_pca,
            w_residual=args.w_residual,
            oscillators=args.oscillators,
        ),
        basis.components,
        basis.stdev,
    )
    mask = block_mask(args.h_dim, args.blocks)
    with torch.no_grad():
        M.cell.weight_hh.mul_(mask)
    for name in args.freeze:
        getattr(M, name).requires_grad_(False)
    D = TrajectoryDiscriminator(n_pca)
    opt_M = torch.optim.Adam([p for p in M.parameters() if p.requires_grad], args.lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), args.lr, betas=(0.5, 0.999))
    real_ws, _ = real_batch(512)
    rs, _ = bench.trajectory_stats(real_ws, V[dirs])
    real = {"within": rs.shares.tolist(), "periods": rs.periods.tolist()}
    print(f"real: shares {bench._fmt(real['within'])} periods {bench._fmt(real['periods'])}", flush=True)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, w1 = real_batch(args.batch)
        xr = coords(x)
        for _ in range(args.g_steps):
            ws, eps, eps_rec = M(w1, args.frames, generator=g, return_eps=True)
            xf = coords(ws)
            d_f, d_r = D(xf), D(xr)
            loss = 0.5 * (losses.ralsgan(d_f, d_r, 1.0) + losses.ralsgan(d_r, d_f, 0.0))
            loss = loss + args.w_mutual * losses.motion_diversity(eps_rec, eps)
            opt_M.zero_grad(set_to_none=True)
            loss.backward(inputs=[p for p in M.parameters() if p.requires_grad])
            opt_M.step()
            with torch.no_grad():  # keep the groups independent: no recurrent weight between them
                M.cell.weight_hh.mul_(mask)
        xf = xf.detach()
        d_f, d_r = D(xf), D(xr)
        loss = 0.5 * (losses.ralsgan(d_r, d_f, 1.0) + losses.ralsgan(d_f, d_r, 0.0))
        alpha = torch.rand(xr.shape[0], 1, 1, generator=g)
        xi = (alpha * xr + (1 - alpha) * xf).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(xi)[0][-1].sum(), xi, create_graph=True)
        loss = loss + 10.0 * (grad.flatten(1).norm(dim=1) - 1).square().mean()
        opt_D.zero_grad(set_to_none=True)
        loss.backward(inputs=list(D.parameters()))
        opt_D.step()
        if step % args.eval_every == 0 or step == args.steps:
            r = bench.row(step, time.perf_counter() - t0, bench.measure(M, G, basis, dirs, args.frames), real)
            print(
                f"step {step:5d} {r['seconds'] / 60:5.1f} min  energy {r['energy']:6.1%}  "
                f"shares {bench._fmt(r['within'])} "
                f"(err {r['share_error']:.2f})  periods {bench._fmt(r['periods'])} (err {r['period_error']:.0%})  "
                f"coh {r['coherence']:.2f}",
                flush=True,
            )
            if args.oscillators:
                print(
                    "    oscillators (period: size): " + ", ".join(f"{p:.2f}: {z:.2f}" for p, z in M.bank()[:5]),
                    flush=True,
                )


if __name__ == "__main__":
    main()
