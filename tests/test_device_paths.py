"""Every path that runs on an accelerator, on the device of ``MOCOHD_TEST_DEVICE`` (default
cpu), against the CPU with the same tiny weights: StyleGAN2 and BigGAN synthesis (fp32,
bf16, fp16), the motion generator, render_frames, the PCA fit, a MotionGAN iteration and a
train() step with the device's autocast precision, and device selection.

    MOCOHD_TEST_DEVICE=cuda python -m pytest -m device -q     # benchmarks/gpu_check.py runs this

On a CPU-only machine the comparisons are CPU against CPU: cheap smoke tests of the same code.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mocohd_cli import MocohdError, fit_pca, render_frames
from mocohd_cli.formats import canonical
from mocohd_cli.generators import BigGANConfig, BigGANGenerator, StyleGAN2Generator
from mocohd_cli.motion import MotionGenerator
from mocohd_cli.motion.generator import MotionConfig
from mocohd_cli.runtime import pick_device
from mocohd_cli.train import Dist, GANConfig, MotionGAN, TrainConfig, train
from mocohd_cli.train.run import as_floats

from .conftest import randomized_generator, tiny_config
from .support import devices

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("one_thread")]  # one thread: tiny forwards (conftest)

CPU = torch.device("cpu")


@pytest.fixture
def dev() -> torch.device:
    return devices.test_device()


def stylegan2(resolution: int = 16, seed: int = 0) -> StyleGAN2Generator:
    """A tiny StyleGAN2 whose every parameter matters (noise strengths, biases, w_avg)."""
    return randomized_generator(tiny_config(resolution), seed).requires_grad_(False)


def biggan(seed: int = 0) -> BigGANGenerator:
    """A tiny BigGAN-deep (32 px, 10 classes) with non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    cfg = BigGANConfig(
        resolution=32,
        z_dim=8,
        embed_dim=8,
        channel_width=8,
        num_classes=10,
        n_stats=5,
        attention=4,
        layers=[[False, 16, 16], [True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1], [True, 1, 1]],
    )
    G = BigGANGenerator(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for name, buf in G.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.3)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return G


def motion(G, seed: int = 0, oscillators: int = 0) -> MotionGenerator:
    """A motion generator in G's w space, moving along an orthonormal basis (with an oscillator bank of
    visible movements when ``oscillators``)."""
    torch.manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(G.w_dim, G.w_dim))
    M = MotionGenerator(
        MotionConfig(w_dim=G.w_dim, noise_dim=G.w_dim, h_dim=16, n_pca=8, oscillators=oscillators),
        q.T[:8].contiguous(),
        torch.linspace(2.0, 0.5, 8),
    )
    if oscillators:
        with torch.no_grad():
            M.osc_move.normal_(0, 0.5)
    return M.eval().requires_grad_(False)


def on(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return copy.deepcopy(module).to(device)


def close(out: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> None:
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    assert out.shape == ref.shape
    scale = max(1.0, ref.abs().max().item())
    err = (out - ref).abs().max().item()
    assert err <= rel * scale, f"max |device - cpu| = {err:.3g} (scale {scale:.3g})"


# ---------------------------------------------------------------------------- devices


def test_pick_device(dev):
    auto = pick_device("auto")
    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif mps is not None and mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto == CPU
    assert pick_device(str(dev)).type == dev.type
    assert pick_device("cpu") == CPU
    if not torch.cuda.is_available():
        with pytest.raises(MocohdError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(MocohdError, match="unknown device"):
        pick_device("tpu-of-dreams")


# ---------------------------------------------------------------------------- image generators


def test_stylegan2_synthesis_matches_cpu(dev):
    G = stylegan2(16)
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)), truncation_psi=0.7)
    noise = G.synthesis.make_noise(3, generator=torch.Generator().manual_seed(2))
    ref = G.synthesis(w, noise=noise)
    Gd = on(G, dev)
    wd, noised = w.to(dev), [n.to(dev) for n in noise]
    with devices.exact_fp32():
        close(Gd.synthesis(wd, noise=noised), ref)
        close(
            Gd.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)).to(dev), truncation_psi=0.7),
            w,
        )
    for dtype in (torch.bfloat16, torch.float16):
        out = Gd.synthesis(wd, noise=noised, dtype=dtype)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        assert devices.psnr(out, ref) >= 30, dtype


def test_biggan_synthesis_matches_cpu(dev):
    G = biggan()
    g = torch.Generator().manual_seed(1)
    w = G.mapping(torch.randn(3, G.z_dim, generator=g), truncation_psi=0.5)
    c = F.one_hot(torch.tensor([1, 4, 9]), G.c_dim).float()
    c[2] = 0.3 * c[2] + 0.7 * F.one_hot(torch.tensor(2), G.c_dim).float()  # a class mix
    ref = G.synthesis(w, c, truncation=0.5)
    Gd = on(G, dev)
    with devices.exact_fp32():
        close(Gd.synthesis(w.to(dev), c.to(dev), truncation=0.5), ref)
    out = Gd.synthesis(w.to(dev), c.to(dev), truncation=0.5, dtype=torch.bfloat16)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert devices.psnr(out, ref) >= 30


# ---------------------------------------------------------------------------- motion, rendering, PCA


@pytest.mark.parametrize("oscillators", [0, 4], ids=["authors", "bank"])
def test_motion_unroll_matches_cpu(dev, oscillators):
    G = stylegan2(16)
    M = motion(G, oscillators=oscillators)
    w1 = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3)))
    eps = M.draw_eps(2, 7, torch.Generator().manual_seed(4))
    ref, ref_eps, ref_rec = M(w1, 8, eps=eps, return_eps=True)
    with devices.exact_fp32():
        ws, eps_d, rec = on(M, dev)(w1.to(dev), 8, eps=eps.to(dev), return_eps=True)
    assert ws.device.type == dev.type and ws.shape == (2, 8, G.w_dim)
    close(ws, ref)
    close(rec, ref_rec)
    # the noise is drawn on the CPU: the same draws on any device
    close(on(M, dev).draw_eps(2, 7, torch.Generator().manual_seed(4)), eps, rel=0)


def test_render_frames_match_cpu(dev):
    G, M = stylegan2(16), None
    M = motion(G)
    ref = torch.stack(list(render_frames(on(M, CPU), on(G, CPU), frames=5, videos=2, seed=3, batch=4)))
    got = torch.stack(list(render_frames(on(M, dev), on(G, dev), frames=5, videos=2, seed=3, batch=4)))
    assert got.dtype == torch.uint8 and got.device == CPU and got.shape == ref.shape == (5, 2, 16, 16, 3)
    diff = (got.int() - ref.int()).abs()
    assert diff.max().item() <= 3 and diff.float().mean().item() <= 0.5
    bf16 = torch.stack(
        list(render_frames(on(M, dev), on(G, dev), frames=5, videos=2, seed=3, batch=4, dtype=torch.bfloat16))
    )
    assert (bf16.int() - ref.int()).abs().float().mean().item() <= 4


def test_fit_pca_matches_cpu(dev):
    G = stylegan2(16)
    ref = fit_pca(G, samples=3000, batch=1000)
    got = fit_pca(on(G, dev), samples=3000, batch=1000)
    assert got.components.shape == ref.components.shape
    close(got.stdev, ref.stdev, rel=1e-3)
    close(got.mean, ref.mean, rel=1e-3)
    # the leading directions (well separated eigenvalues) agree, sign convention included
    dots = (got.components[:3].double().cpu() * ref.components[:3].double()).sum(dim=1)
    assert (dots > 0.999).all(), dots


# ---------------------------------------------------------------------------- training


def gan(domain: str, device: torch.device, precision: str) -> MotionGAN:
    G = stylegan2(16).to(device)
    M = motion(G).requires_grad_(True).train().to(device)
    torch.manual_seed(1)
    cfg = GANConfig(
        domain=domain,
        frames=4,
        frame_size=16,
        g_steps=1,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=8,
        world_batch=2,
        precision=precision,
        w_cross_spectrum=0.5 if domain == "in" else 0.0,
    )  # in-domain also runs the cross-spectrum term
    return MotionGAN(G, M, cfg, Dist(device=device), seed=0)


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_motion_gan_iteration_on_device(dev, domain):
    x = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    # in fp32 the device computes the CPU's losses (same weights, same CPU-drawn randomness)
    ref = as_floats(gan(domain, CPU, "fp32").iteration(x))
    with devices.exact_fp32():
        got = as_floats(gan(domain, dev, "fp32").iteration(x.to(dev)))
    assert got.keys() == ref.keys() and all(math.isfinite(v) for v in got.values()), got
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=2e-2, abs=2e-3), k
    precision = devices.autocast_precision(dev)  # what training's 'auto' picks: bf16 autocast on CUDA
    if precision != "fp32":
        losses = as_floats(gan(domain, dev, precision).iteration(x.to(dev)))
        assert losses.keys() == ref.keys() and all(math.isfinite(v) for v in losses.values()), losses


def test_a_train_step_on_device(dev, tmp_path, monkeypatch):
    from mocohd_cli.data.procedural import write_dataset

    monkeypatch.setenv("MOCOHD_HOME", str(tmp_path / "home"))
    G = stylegan2(16)
    gpath = tmp_path / "g.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    data = write_dataset(tmp_path / "heads", videos=2, frames=8, size=16, seed=0)
    events = []
    cfg = TrainConfig(
        data=str(data),
        image=str(gpath),
        steps=1,
        batch=2,
        frames=4,
        time_step=2,
        h_dim=16,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=8,
        workers=0,
        pca_samples=500,
        sample_every=1000,
        sample_videos=1,
        log_every=1,
        device=str(dev),
        precision="auto",
    )
    r = train(cfg, on_event=lambda kind, info: events.append((kind, info)))
    start = next(info for kind, info in events if kind == "start")
    assert start["precision"] == devices.autocast_precision(dev)
    assert torch.device(start["device"]).type == dev.type
    assert r.step == 1 and r.losses and all(math.isfinite(v) for v in r.losses.values()), r.losses
    assert r.motion.is_file()
