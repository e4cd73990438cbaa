"""The GPU path's shape without a GPU: per unit of work, the ATen operators (about one kernel
launch each), views (metadata only), convolutions, host syncs, blocking copies and draws from
a CPU generator that the CUDA path would make, counted on a stand-in device
(tests/support/gpu_shape.py: the CUDA choices run on CPU tensors; see docs/gpus-and-clusters.md).

    python benchmarks/gpu_shape.py                 # the table, CUDA choices (about 1 minute on 2 cores)
    python benchmarks/gpu_shape.py --kind cpu      # the CPU path's choices, for comparison
    python benchmarks/gpu_shape.py --json out.json

Rows: a StyleGAN2 config f synthesis forward at 1024 px (batch 8 and 32) and a StyleGAN3-T one
(batch 8), on the meta device (the real shapes, nothing computed); one training ``fake_clips``
forward and backward at the authors' sizes (16 clips x 16 frames at 256 px, config f, meta);
one motion training iteration of each domain with the loop's book-keeping at a step without a
metric line, one evaluation pass (render and embed 4 videos), one render of 2 videos of 32
frames (16 forwards of 4 frames) and one inversion step (the
difference of runs of 4 and 8 steps, divided by 4), with tiny networks (syncs and copies do
not depend on the sizes). Targets: the 1024 px batch-8 forward <= 500 operators
and 0 syncs; a training iteration <= 2 syncs; evaluation and inversion 0 syncs per batch/step.
Code without device levers (before this harness) runs its single path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator  # noqa: E402
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator  # noqa: E402
from tests.support import gpu_shape as gs  # noqa: E402

COLUMNS = ("ops", "views", "convs", "syncs", "copies", "host_draws")


def meta_generator(family: str, resolution: int):
    with torch.device("meta"):
        if family == "stylegan2":
            return StyleGAN2Generator(StyleGAN2Config.preset("f", resolution)).eval().requires_grad_(False)
        return StyleGAN3Generator(StyleGAN3Config(resolution=resolution)).eval().requires_grad_(False)


def fake_clips_meta(kind: str) -> gs.Counts:
    """One ``MotionGAN.fake_clips`` forward and backward into the motion generator, config f at
    256 px, 16 clips x 16 frames at the 128 px training size, on the meta device."""
    from mocohd_cli.motion import MotionGenerator
    from mocohd_cli.motion.generator import MotionConfig
    from mocohd_cli.train import Dist, GANConfig, MotionGAN

    G = meta_generator("stylegan2", 256)
    with torch.device("meta"):
        M = MotionGenerator(MotionConfig(w_dim=512), torch.zeros(384, 512), torch.ones(384)).train()
    cfg = GANConfig(domain="cross", frames=16, frame_size=128, world_batch=16)
    with gs.stand_in(kind):
        gan = MotionGAN(G, M, cfg, Dist(device=torch.device("meta")), seed=0)

        def work():
            clips, _, _ = gan.fake_clips(16)
            clips.float().sum().backward()

        work()
        with gs.ShapeCounter() as counts:
            work()
    return counts


def rows(kind: str) -> list[tuple[str, gs.Counts | dict]]:
    out = []
    G2 = meta_generator("stylegan2", 1024)
    for batch in (8, 32):
        out.append((f"StyleGAN2-f 1024 px forward, batch {batch}", gs.synthesis_forward(G2, batch, kind)))
    G3 = meta_generator("stylegan3", 1024)
    out.append(("StyleGAN3-T 1024 px forward, batch 8", gs.synthesis_forward(G3, 8, kind)))
    try:
        out.append(("fake_clips fwd+bwd, 16x16 at 256 px", fake_clips_meta(kind)))
    except Exception as e:  # noqa: BLE001 - a row that cannot run on the meta device says why
        print(f"fake_clips on meta: {type(e).__name__}: {e}", file=sys.stderr)
    for domain in ("cross", "in"):
        out.append((f"motion training iteration, {domain}-domain", gs.training_iteration(domain, kind)))
    out.append(("eval: render + embed 4 videos", gs.eval_batches(kind)))
    out.append(("render: 2 videos x 32 frames, batch 4", gs.render_pass(kind, frames=32, videos=2, batch=4)))
    four, eight = gs.invert_steps(kind, steps=4)
    step = {k: (getattr(eight, k) - getattr(four, k)) / 4 for k in COLUMNS}
    out.append(("invert: one step", step))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="cuda", choices=["cuda", "cpu", "mps"], help="whose choices to count")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    table = []
    for name, counts in rows(args.kind):
        values = counts if isinstance(counts, dict) else counts.row()
        table.append({"work": name, **values})
    print(f"| work ({args.kind} choices) | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for row in table:
        print(f"| {row['work']} | " + " | ".join(f"{row[k]:g}" for k in COLUMNS) + " |")
    print(f"({time.perf_counter() - t0:.0f} s, torch {torch.__version__})")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
