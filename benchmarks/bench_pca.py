"""Latent PCA: mocohd's streaming fit against the official recipe (sklearn IncrementalPCA).

    pip install scikit-learn            # optional: the official recipe's comparison
    python benchmarks/bench_pca.py                      # 1,000,000 samples, config-f mapping (8 x 512)
    python benchmarks/bench_pca.py --samples 200000     # quicker

Reports, on identical samples: the time of our statistics (float64 and
float32-products variants) and of IncrementalPCA (512 components, batch
1024 as in the official script's max(100, 2 * n)), the largest principal
angle between the top-384 subspaces, and the whole ``fit_pca`` (mapping +
statistics) against the mapping network's FLOP limit at the measured
matmul peak.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator
from mocohd_cli.pca import _basis_from_moments, _Moments, fit_pca
from mocohd_cli.runtime import tune_allocator


def largest_angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest principal angle between the row spaces of a and b [k, d].

    Computed from sines (||(I - Q_b Q_b^T) Q_a||_2) on float64-orthonormalised
    bases: the cosine form, acos(min svd(a b^T)), cannot resolve angles below
    about 0.03 degrees once the rows carry float32 rounding.
    """
    qa = torch.linalg.qr(a.double().t()).Q
    qb = torch.linalg.qr(b.double().t()).Q
    residual = qa - qb @ (qb.t() @ qa)
    return math.degrees(math.asin(min(1.0, float(torch.linalg.svdvals(residual).max()))))


def matmul_peak(seconds: float = 2.0) -> float:
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            n += 1
        best = max(best, 2 * 4096**3 * n / (time.perf_counter() - t0) / 1e9)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--k", type=int, default=384, help="subspace compared (the motion model's n_pca)")
    p.add_argument("--no-sklearn", action="store_true")
    args = p.parse_args()
    tune_allocator()
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config.preset("f", 256)).eval().requires_grad_(False)
    cfg = G.cfg
    flops = args.samples * 2 * (cfg.z_dim * cfg.w_dim + (cfg.mapping_layers - 1) * cfg.w_dim**2)
    peak = matmul_peak()
    print(
        f"# {args.samples} samples, mapping {cfg.mapping_layers} x {cfg.w_dim}: {flops / 1e12:.2f} TFLOP; "
        f"measured fp32 matmul peak {peak:.0f} GFLOP/s -> mapping limit {flops / peak / 1e9:.1f} s"
    )

    t0 = time.perf_counter()
    basis = fit_pca(G, samples=args.samples, batch=args.batch, seed=0)
    t_fit = time.perf_counter() - t0
    print(f"fit_pca (mapping + statistics): {t_fit:.1f} s = {t_fit / (flops / peak / 1e9):.2f}x the mapping limit")

    # The same samples, materialised, for the statistics-only comparisons.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        w = torch.cat(
            [
                G.mapping(torch.randn(min(args.batch, args.samples - i), cfg.z_dim, generator=gen))
                for i in range(0, args.samples, args.batch)
            ]
        )
    t0 = time.perf_counter()
    m = _Moments(cfg.w_dim, torch.device("cpu"))
    for i in range(0, args.samples, args.batch):
        m.add(w[i : i + args.batch])
    ours = _basis_from_moments(m, cfg.w_dim, {})
    t_ours = time.perf_counter() - t0
    ev = ours.stdev.double() ** 2
    cov = torch.cov(w.double().t())  # the exact reference: float64 throughout
    exact = torch.linalg.eigh(cov).eigenvectors.flip(1)[:, : args.k].t()
    print(
        f"statistics only: {t_ours:.2f} s; eigenvalue gap at the cut lambda_{args.k}/lambda_{args.k + 1} = "
        f"{float(ev[args.k - 1] / ev[args.k]):.4f}; top-{args.k} largest principal angle to a float64 "
        f"eigendecomposition of the same samples {largest_angle_deg(ours.components[: args.k], exact):.1e} deg "
        f"(fit_pca: {largest_angle_deg(basis.components[: args.k], exact):.1e})"
    )

    if not args.no_sklearn:
        try:
            from sklearn.decomposition import IncrementalPCA
        except ImportError:
            print("sklearn not installed: pip install scikit-learn for the official recipe's timing")
            return
        x = w.numpy()
        t0 = time.perf_counter()
        ipca = IncrementalPCA(cfg.w_dim, batch_size=max(100, 2 * cfg.w_dim)).fit(x)
        t_sk = time.perf_counter() - t0
        ref = torch.from_numpy(ipca.components_).float()
        ang = largest_angle_deg(ours.components[: args.k], ref[: args.k])
        ang_exact = largest_angle_deg(ref[: args.k], exact)
        sd = float(
            (ours.stdev - torch.from_numpy(ipca.explained_variance_).float().sqrt()).abs().max() / ours.stdev.max()
        )
        print(
            f"sklearn IncrementalPCA: {t_sk:.1f} s -> statistics {t_sk / t_ours:.0f}x faster, whole fit_pca "
            f"{t_sk / t_fit:.1f}x faster than IncrementalPCA alone; "
            f"top-{args.k} largest principal angle to ours {ang:.1e} deg "
            f"(IncrementalPCA to the float64 reference {ang_exact:.1e}); "
            f"max stdev difference {sd:.1e} (relative)"
        )


if __name__ == "__main__":
    main()
