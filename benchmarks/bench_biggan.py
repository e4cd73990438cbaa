"""BigGAN-deep synthesis speed: mocohd's generator against the public port's way of
computing it, on the full 128 px architecture (random weights, same tensors).

The port (restated plainly in tests/biggan_reference.py: spectral-norm modules that
divide every weight by sigma at every forward, batch norm as separate ops, bmm
attention, a [B, 4, 4, C] view plus permute after gen_z) and ours (weights baked
once at import, batch norm folded into one multiply-add per layer, fused
scaled-dot-product attention, channel-major gen_z) compute the same images; the
script checks that, then times both in one process, alternating, and reports the
ratio (these machines are shared and noisy: compare ratios, not absolute times).

    python benchmarks/bench_biggan.py                 # CPU, batch 4
    python benchmarks/bench_biggan.py --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--truncation", type=float, default=0.4)
    args = ap.parse_args()
    device = torch.device(args.device)

    from tests.biggan_reference import make_reference

    from mocohd_cli.formats import biggan as fmt
    from mocohd_cli.generators import build_generator
    from mocohd_cli.generators.biggan import deep_layers

    cfg = dict(
        output_dim=128,
        z_dim=128,
        class_embed_dim=128,
        channel_width=128,
        num_classes=1000,
        layers=deep_layers(128),
        attention_layer_position=8,
        eps=1e-4,
        n_stats=51,
    )
    ref = make_reference(cfg)
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)  # what a pytorch_model.bin holds
    config, tensors, _ = fmt.convert(torch.load(io.BytesIO(buf.getvalue()), weights_only=True), cfg)
    ours = build_generator("biggan-deep", config)
    ours.load_state_dict(tensors)
    ours.eval().requires_grad_(False).to(device)
    ref.requires_grad_(False).to(device)

    t = args.truncation
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(args.batch, 128, generator=g).clamp(-2, 2) * t).to(device)
    c = F.one_hot(torch.randint(1000, (args.batch,), generator=g), 1000).float().to(device)
    with torch.no_grad():
        a, b = ref(z, c, t), ours.synthesis(z, c, truncation=t)
    diff = float((a - b).abs().max())

    runs = {
        "port": lambda: ref(z, c, t),
        "mocohd fp32": lambda: ours.synthesis(z, c, truncation=t),
        "mocohd bf16": lambda: ours.synthesis(z, c, truncation=t, dtype=torch.bfloat16),
    }
    times = {k: [] for k in runs}
    with torch.no_grad():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for k, fn in runs.items():
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"BigGAN-deep 128 px, batch {args.batch}, {device}, truncation {t}, {torch.get_num_threads()} threads; "
        f"max |port - mocohd| = {diff:.2e}"
    )
    for k, s in med.items():
        print(f"  {k:12s} {s * 1000:8.1f} ms/batch  {args.batch / s:7.2f} images/s  x{med['port'] / s:.2f} vs port")
    print(
        json.dumps(
            {
                "device": str(device),
                "batch": args.batch,
                "max_abs_diff": diff,
                "seconds": {k: round(v, 4) for k, v in med.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
