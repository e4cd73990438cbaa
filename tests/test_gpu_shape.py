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
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mocohd_cli import ops
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator

from .conftest import randomized_generator, tiny_config
from .support.gpu_shape import ShapeCounter

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
