"""A stand-in GPU: count what a piece of work would launch and wait for on a device,
without one.

    with ops.stand_in("cuda"), ShapeCounter() as counts:
        G.synthesis(ws)
    counts.ops, counts.convs, counts.syncs, counts.copies

Why a stand-in and not a fake device: the code's per-device choices (batched modulated
convolutions, no sub-batching, float32 instead of float64 on MPS) all go through
``ops.device_kind``, which ``ops.stand_in`` forces, so the CUDA (or MPS) path runs on
CPU tensors with CPU kernels and gives the same numbers as on the CPU. What the GPU
would pay for is then visible at the ATen level, through a ``TorchDispatchMode`` that
sees every operator below autograd (forward and backward):

* ``ops``: every ATen operator call that may launch a kernel (on a GPU, about one launch
  each); views (``view``, ``t``, ``select``, ``expand``...: metadata only) are left out
  and counted as ``views``;
* ``convs``: ``aten.convolution`` and its backward;
* ``syncs``: reads of device data by the host, which wait for the device (reads of host
  data are not: draws from a CPU generator, an optimizer's step counts (on the CPU unless it
  is capturable or fused), what comes of them only):
  ``aten._local_scalar_dense`` (``.item()``, ``float(t)``, ``int(t)``, ``bool(t)``, a
  tensor in an ``if``), data-dependent shapes (``nonzero``, ``masked_select``,
  ``unique``...), and, patched at the Python level because they do not dispatch on a
  CPU tensor, ``Tensor.tolist``, ``Tensor.numpy`` and ``Tensor.cpu``;
* ``copies``: blocking copies: tensors made from Python data (``aten.lift_fresh``:
  ``torch.tensor(..., device=...)`` is a host-to-device copy on a GPU) and
  ``Tensor.cpu`` (a device-to-host copy);
* ``host_draws``: random draws from a CPU ``torch.Generator`` (on a GPU each is then
  copied to the device; counted apart, they are the price of device-independent seeds);
* ``float64``: operators with a float64 tensor in or out that are not on the host (host
  tensors: brought there with ``.cpu()``, made by a ``torch`` factory called without a
  device, drawn from a CPU generator, and what comes only of them; MPS has no float64).

Limits: a ``.to(device)`` of a CPU tensor is invisible (the stand-in device is the
CPU), so copies of host draws are counted as ``host_draws``; a ``.cpu()`` of a tensor
that is already on the host counts as a sync.
"""

from __future__ import annotations

import collections
import weakref
from dataclasses import dataclass, field

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten

CONV_OPS = {aten.convolution, aten.convolution_backward, aten._convolution}
SYNC_OPS = {
    aten._local_scalar_dense,
    aten.nonzero,
    aten.masked_select,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.equal,
    aten.repeat_interleave,
}
COPY_OPS = {aten.lift_fresh, aten.lift_fresh_copy}
RANDOM_OPS = {
    aten.randn,
    aten.rand,
    aten.randint,
    aten.randperm,
    aten.normal,
    aten.normal_,
    aten.uniform_,
    aten.bernoulli,
    aten.bernoulli_,
    aten.multinomial,
    aten.random_,
}
FACTORIES = ("zeros", "ones", "full", "empty", "arange", "linspace", "eye")  # torch.* given no device: host
IGNORED_OPS = {aten.detach}  # bookkeeping, no kernel


@dataclass
class Counts:
    ops: int = 0
    views: int = 0
    convs: int = 0
    syncs: int = 0
    copies: int = 0
    host_draws: int = 0
    float64: list[str] = field(default_factory=list)
    by_op: collections.Counter = field(default_factory=collections.Counter)
    sync_ops: collections.Counter = field(default_factory=collections.Counter)

    def row(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("ops", "views", "convs", "syncs", "copies", "host_draws")}


class ShapeCounter(TorchDispatchMode):
    """Counts ATen operators, convolutions, host syncs, blocking copies, CPU-generator
    draws and float64 operators of the work done inside the block (see the module)."""

    def __init__(self, forbid_float64: bool = False):
        super().__init__()
        self.counts = Counts()
        self.forbid_float64 = forbid_float64  # raise at the first float64 operator (MPS has none)
        # id -> tensor, for tensors brought to the host and what came of them
        self._host: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._patched: dict[str, object] = {}
        self._factories: dict[str, object] = {}

    def __enter__(self) -> Counts:
        super().__enter__()
        counter = self

        def mark_steps(opt, args, kwargs):  # the step counts an optimizer made, before and after each step
            self.host_optimizer_steps(opt)

        self._hooks = [
            register_optimizer_step_pre_hook(mark_steps),
            register_optimizer_step_post_hook(mark_steps),
        ]
        for name in ("tolist", "numpy", "cpu"):
            original = getattr(torch.Tensor, name)
            self._patched[name] = original

            def wrapper(t, *args, _original=original, _name=name, **kwargs):
                counter._host_read(_name, t)
                out = _original(t, *args, **kwargs)
                if _name == "cpu" and isinstance(out, torch.Tensor):
                    if out is t:  # already on the host: a distinct tensor object to mark
                        out = out.view_as(out)
                    counter._host[id(out)] = out
                return out

            setattr(torch.Tensor, name, wrapper)
        for name in FACTORIES:  # made without a device: on the host (the dispatcher sees device=cpu either way)
            original = getattr(torch, name)
            self._factories[name] = original

            def factory(*args, _original=original, **kwargs):
                out = _original(*args, **kwargs)
                if kwargs.get("device") is None and isinstance(out, torch.Tensor):
                    counter._host[id(out)] = out
                return out

            setattr(torch, name, factory)
        return self.counts

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)
        self._patched.clear()
        for name, original in self._factories.items():
            setattr(torch, name, original)
        self._factories.clear()
        return super().__exit__(*exc)

    def host(self, *tensors: torch.Tensor) -> None:
        """Mark tensors that live on the host on a GPU too (an optimizer's step counts): reading
        them, and what comes only of them, is no sync."""
        for t in tensors:
            self._host[id(t)] = t

    def host_optimizer_steps(self, *optimizers: torch.optim.Optimizer) -> None:
        """``host`` of the optimizers' step counts (on the CPU unless capturable or fused)."""
        for opt in optimizers:
            for state in opt.state.values():
                step = state.get("step")
                if isinstance(step, torch.Tensor) and not (opt.defaults.get("capturable") or opt.defaults.get("fused")):
                    self.host(step)

    def _host_read(self, name: str, t: torch.Tensor) -> None:
        if self._host.get(id(t)) is t:
            return
        self.counts.syncs += 1
        self.counts.sync_ops[f"Tensor.{name}"] += 1
        if name == "cpu":
            self.counts.copies += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in IGNORED_OPS:
            if isinstance(out, torch.Tensor) and self._host.get(id(args[0])) is args[0]:
                self._host[id(out)] = out
            return out
        c = self.counts
        c.by_op[packet.__name__] += 1
        if func.is_view:
            c.views += 1
        else:
            c.ops += 1
        if packet in CONV_OPS:
            c.convs += 1
        if packet in COPY_OPS:
            c.copies += 1
        gen = kwargs.get("generator")
        host_draw = packet in RANDOM_OPS and gen is not None and gen.device.type == "cpu"
        if host_draw:
            c.host_draws += 1
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        # on the host: a CPU generator's draws, what comes only of host tensors
        on_host = host_draw or (bool(inputs) and all(self._host.get(id(t)) is t for t in inputs))
        if packet in SYNC_OPS and not on_host:
            c.syncs += 1
            c.sync_ops[packet.__name__] += 1
        if on_host:
            for t in outputs:
                self._host[id(t)] = t
        elif inputs and any(t.dtype == torch.float64 for t in inputs + outputs):  # a factory: judged where used
            c.float64.append(packet.__name__)
            if self.forbid_float64:
                raise AssertionError(f"float64 operator on the device: aten.{packet.__name__} (MPS has no float64)")
        return out


def count(fn, *args, **kwargs) -> Counts:
    """The counts of one call of ``fn`` (run it once before, outside, to warm caches)."""
    with ShapeCounter() as counts:
        fn(*args, **kwargs)
    return counts


# ---------------------------------------------------------------------------- workloads
#
# What the tests (tiny sizes) and benchmarks/gpu_shape.py (full sizes) count. Each returns the
# counts of one unit of work (a forward, an iteration, a batch, a step) in steady state: the
# work runs once before counting, so caches are warm, as they are in a long run.


def stand_in(kind: str):
    """``ops.stand_in(kind)``; a no-op on code without device levers (the 'before' of a benchmark:
    such code took the same path on every device)."""
    import contextlib

    from mocohd_cli import ops

    return ops.stand_in(kind) if hasattr(ops, "stand_in") else contextlib.nullcontext()


def tiny_stylegan2(resolution: int = 16, channels: int = 8, seed: int = 0):
    """A StyleGAN2 with z and w 32, 2 mapping layers, at most ``channels`` channels."""
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(seed)
    cfg = StyleGAN2Config(
        resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=channels * 4, channel_max=channels
    )
    G = StyleGAN2Generator(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.uniform_(0.1, 0.5)
    return G


def tiny_motion(G, h_dim: int = 16, n_pca: int = 8, seed: int = 0):
    from mocohd_cli.motion import MotionGenerator
    from mocohd_cli.motion.generator import MotionConfig

    torch.manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(G.w_dim, G.w_dim))
    cfg = MotionConfig(w_dim=G.w_dim, noise_dim=G.w_dim, h_dim=h_dim, n_pca=n_pca)
    return MotionGenerator(cfg, q.T[:n_pca].contiguous(), torch.linspace(2.0, 0.5, n_pca))


def synthesis_forward(G, batch: int, kind: str = "cuda") -> Counts:
    """One synthesis forward of ``batch`` w's (G may live on the meta device: nothing is computed)."""
    device = next(G.parameters()).device
    ws = torch.zeros(batch, G.num_ws, G.w_dim, device=device)
    with stand_in(kind), torch.no_grad():
        G.synthesis(ws)
        with ShapeCounter() as counts:
            G.synthesis(ws)
    return counts


def training_iteration(domain: str, kind: str = "cuda", batch: int = 2, frames: int = 4, size: int = 16) -> Counts:
    """One motion training iteration with the loop's book-keeping (``Run.log_step`` and
    ``Run.check_finite``) at a step where no metric line is due: a tiny StyleGAN2 at ``size``."""
    import tempfile
    from pathlib import Path

    from mocohd_cli.train import Dist, GANConfig, MotionGAN
    from mocohd_cli.train.config import TrainConfig
    from mocohd_cli.train.run import Run

    G = tiny_stylegan2(size)
    M = tiny_motion(G).train()
    cfg = GANConfig(
        domain=domain,
        frames=frames,
        frame_size=size,
        g_steps=1,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=4 * batch,
        world_batch=batch,
    )
    x = torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with stand_in(kind), tempfile.TemporaryDirectory() as tmp:
        gan = MotionGAN(G, M, cfg, Dist(), seed=0)
        run = Run(
            cfg=TrainConfig(data="-", image="-", log_every=1000),
            folder=Path(tmp),
            dist=Dist(),
            emit=lambda kind, info: None,
            checkpoint=None,
        )
        run.total = 1000

        def step(i: int) -> None:
            losses = gan.iteration(x)
            run.log_step(i, losses)
            run.check_finite(i, losses, hint="")

        step(1)
        step(2)
        with ShapeCounter() as counts:
            step(3)
    return counts


def eval_batches(kind: str = "cuda", videos: int = 4, frames: int = 4, batch: int = 4, resolution: int = 16) -> Counts:
    """``metrics.evaluate``'s rendering and embedding of ``videos`` fake videos of ``frames`` frames
    (``fake_videos`` then ``_embed_batches``, ``batch`` at a time), with a stand-in detector: a
    3-D convolution and a mean (the detector's own forward is the same on every path)."""
    from mocohd_cli.metrics import evaluate as ev
    from mocohd_cli.metrics.feature_stats import FeatureStats

    G = tiny_stylegan2(resolution)
    M = tiny_motion(G).eval().requires_grad_(False)
    detector = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3), torch.nn.Flatten(2)).eval()

    def work():
        stream = ev.fake_videos(M, G, range(videos), range(frames), seed=0, batch=batch)
        ev._embed_batches(_Mean(detector), stream, FeatureStats(), batch)

    with stand_in(kind), torch.no_grad():
        work()
        with ShapeCounter() as counts:
            work()
    return counts


class _Mean(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):  # [B, C, T, H, W] -> [B, D]
        return self.inner(x).mean(dim=2)


def invert_steps(kind: str = "cuda", steps: int = 4, resolution: int = 16, images: int = 2) -> tuple[Counts, Counts]:
    """Counts of ``invert.invert`` (pixel loss, progress reported every step) with ``steps`` and
    with 2 * ``steps`` steps: their difference / ``steps`` is one step."""
    from mocohd_cli.invert import invert

    G = tiny_stylegan2(resolution)
    target = torch.rand(images, 3, resolution, resolution, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = []
    with stand_in(kind):
        invert(G, target, steps=2, loss="pixel", w_avg_samples=64)
        for n in (steps, 2 * steps):
            with ShapeCounter() as counts:
                invert(G, target, steps=n, loss="pixel", w_avg_samples=64, progress=lambda *a: None)
            out.append(counts)
    return out[0], out[1]


def render_pass(kind: str = "cuda", frames: int = 8, videos: int = 2, batch: int = 4, resolution: int = 16) -> Counts:
    """``render.render_frames`` of ``videos`` videos of ``frames`` frames, ``batch`` frames per forward."""
    from mocohd_cli.render import render_frames

    G = tiny_stylegan2(resolution)
    M = tiny_motion(G).eval().requires_grad_(False)

    def work():
        for _ in render_frames(M, G, frames=frames, videos=videos, seed=0, batch=batch):
            pass

    with stand_in(kind), torch.no_grad():
        work()
        with ShapeCounter() as counts:
            work()
    return counts
