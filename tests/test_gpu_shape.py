"""The GPU path's shape, counted on a stand-in device (tests/support/gpu_shape.py): on CUDA a
synthesis forward is one batched convolution per layer with no host sync or copy, a motion
training iteration syncs at most twice when no metric line is due, an eval batch and an
invert step not at all, and on MPS nothing computes in float64. The CUDA choices give the
CPU path's images.

    python -m pytest tests/test_gpu_shape.py -q          # < 30 s on one CPU thread
    python benchmarks/gpu_shape.py                       # the same counts at full size
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mocohd_cli import ops
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator

from .conftest import randomized_generator, tiny_config
from .support import gpu_shape as gs
from .support.gpu_shape import ShapeCounter
from .test_device_paths import biggan

pytestmark = pytest.mark.usefixtures("one_thread")

SG3_DATA = Path(__file__).parent / "data" / "stylegan3_reference.safetensors"


def stylegan2(resolution: int = 64):
    """Tiny channels at a resolution whose last blocks are larger than ops.FUSED_MIN_PIXELS."""
    return randomized_generator(tiny_config(resolution, channel_base=128, channel_max=8)).requires_grad_(False)


def stylegan3():
    with safe_open(str(SG3_DATA), "pt") as f:
        cfg = StyleGAN3Config.from_dict(json.loads(f.metadata()["configs"])["t32"])
    torch.manual_seed(0)
    return StyleGAN3Generator(cfg).eval().requires_grad_(False)


def counted(fn, kind: str = "cuda"):
    """fn's result and counts under the stand-in ``kind``, after one warm-up call (caches)."""
    with ops.stand_in(kind), torch.no_grad():
        fn()
        with ShapeCounter() as counts:
            out = fn()
    return out, counts


@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
def test_batched_synthesis_equals_per_sample(family):
    """CUDA's batched modulated convolutions (no sub-batches) give the CPU path's images."""
    G = stylegan2() if family == "stylegan2" else stylegan3()
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)))
    noise = G.synthesis.make_noise(3, generator=torch.Generator().manual_seed(2))
    if family == "stylegan2":
        G.synthesis.working_set_bytes = 64 * 64 * 8 * 4  # the CPU path splits the 64 px block
    batched, on_cuda = counted(lambda: G.synthesis(w, noise=noise), "cuda")
    per_sample, on_cpu = counted(lambda: G.synthesis(w, noise=noise), "cpu")
    assert (batched - per_sample).abs().max() < 1e-5
    # CUDA: per modulated conv, one convolution and its filters (StyleGAN2: the up-sampling FIR;
    # StyleGAN3: the filtered leaky ReLU's up and down filters), whatever the batch
    if family == "stylegan2":
        bound = 2 * (len(G.synthesis.layers()) + len(G.synthesis.blocks()))
    else:
        bound = 3 * len(G.synthesis.conv_layers())
    assert on_cpu.convs > on_cuda.convs
    assert on_cuda.convs <= bound, on_cuda.by_op
    assert on_cuda.syncs == on_cuda.copies == 0


def test_synthesis_forward_shape_does_not_grow_with_the_batch():
    G = stylegan2()
    rows = []
    for batch in (2, 8):
        w = G.mapping(torch.randn(batch, G.z_dim))
        rows.append(counted(lambda w=w: G.synthesis(w), "cuda")[1])
    assert rows[0].row() == rows[1].row()
    assert rows[0].syncs == rows[0].copies == 0


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_a_training_iteration_does_not_wait_for_the_device(domain):
    """Target <= 2 syncs at a step without a metric line: the losses stay on the device."""
    counts = gs.training_iteration(domain)
    assert counts.syncs <= 2, counts.sync_ops
    assert counts.copies == 0, counts.by_op  # no tensor made from host data inside the loop


def test_eval_and_invert_do_not_wait_per_batch_or_step():
    few, more = gs.eval_batches(videos=2), gs.eval_batches(videos=6)
    assert few.syncs == more.syncs <= 1, more.sync_ops  # the features' one flush, whatever the batches
    four, eight = gs.invert_steps(steps=4)
    assert eight.syncs == four.syncs, eight.sync_ops  # no sync per step: only the reports'
    assert eight.copies == four.copies


def test_render_copies_once_per_chunk_not_per_batch():
    """32 frames of 2 videos, 4 frames per forward: 16 forwards, and one copy to the host per chunk
    of trajectory steps (the first frame, then chunks of 16 steps)."""
    counts = gs.render_pass(frames=32, videos=2, batch=4)
    assert counts.syncs == counts.copies == 1 + math.ceil(31 / 16), counts.sync_ops


def test_a_diverged_loss_on_the_device_still_stops_the_run(tmp_path):
    """Losses as tensors are checked on log lines and before saving, with the step they diverged at."""
    from mocohd_cli import MocohdError
    from mocohd_cli.train import Dist
    from mocohd_cli.train.config import TrainConfig
    from mocohd_cli.train.run import Run, as_floats

    cfg = TrainConfig(data="-", image="-", log_every=4)
    run = Run(cfg=cfg, folder=tmp_path, dist=Dist(), emit=lambda *a: None, checkpoint=None)
    run.total = 100
    for step in (1, 2, 3):
        losses = {"a": torch.tensor(1.0), "b": torch.tensor(float("nan") if step == 2 else 2.0)}
        run.log_step(step, losses)
        run.check_finite(step, losses, hint="try a lower lr")  # not read yet: no log line
    assert as_floats({"x": torch.tensor(0.5), "y": 2}) == {"x": 0.5, "y": 2.0}
    losses = {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}
    run.log_step(4, losses)  # the log line is written, with the mean NaN
    with pytest.raises(MocohdError, match="diverged at step 2 .*try a lower lr"):
        run.check_finite(4, losses, hint="try a lower lr")
    assert run.losses["a"] == 1.0 and run.losses["b"] != run.losses["b"]


def test_no_float64_on_mps():
    """On the stand-in MPS, nothing computes in float64 on the device: BigGAN's mapping, StyleGAN2
    and StyleGAN3 synthesis, the oscillator bank, inversion (w statistics and steps)."""
    from mocohd_cli.invert import invert
    from mocohd_cli.motion import MotionGenerator
    from mocohd_cli.motion.generator import MotionConfig

    big = biggan()  # tiny, 32 px (tests/test_device_paths.py)
    G2, G3 = stylegan2(32), stylegan3()
    M = MotionGenerator(
        MotionConfig(w_dim=G2.w_dim, noise_dim=G2.w_dim, h_dim=8, n_pca=4, oscillators=2),
        torch.eye(G2.w_dim)[:4],
        torch.ones(4),
    ).eval()
    target = torch.rand(1, 3, 32, 32) * 2 - 1
    with ops.stand_in("mps"), torch.no_grad(), ShapeCounter(forbid_float64=True):
        big.mapping(torch.randn(2, big.z_dim))
        G2.synthesis(G2.mapping(torch.randn(2, G2.z_dim)))
        G3.synthesis(G3.mapping(torch.randn(2, G3.z_dim)))
        M(G2.mapping(torch.randn(2, G2.z_dim)), 4)
        invert(G2, target, steps=2, loss="pixel", w_avg_samples=16)


def test_config_f_at_1024_px_meets_the_target():
    """The 1024 px target, at full size on the meta device (real shapes, nothing computed): a
    StyleGAN2 config f forward at 1024 px, batch 8, <= 500 operators, 0 syncs, no copies."""
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    with torch.device("meta"):
        G = StyleGAN2Generator(StyleGAN2Config.preset("f", 1024)).eval().requires_grad_(False)
    counts = gs.synthesis_forward(G, 8, "cuda")
    assert counts.ops <= 500 and counts.convs == 42, counts.row()
    assert counts.syncs == counts.copies == 0
    assert gs.synthesis_forward(G, 8, "cpu").convs == 205  # the CPU keeps its per-sample path
