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
* ``syncs``: reads of device data by the host, which wait for the device:
  ``aten._local_scalar_dense`` (``.item()``, ``float(t)``, ``int(t)``, ``bool(t)``, a
  tensor in an ``if``), data-dependent shapes (``nonzero``, ``masked_select``,
  ``unique``...), and, patched at the Python level because they do not dispatch on a
  CPU tensor, ``Tensor.tolist``, ``Tensor.numpy`` and ``Tensor.cpu``;
* ``copies``: blocking copies: tensors made from Python data (``aten.lift_fresh``:
  ``torch.tensor(..., device=...)`` is a host-to-device copy on a GPU) and
  ``Tensor.cpu`` (a device-to-host copy);
* ``host_draws``: random draws from a CPU ``torch.Generator`` (on a GPU each is then
  copied to the device; counted apart, they are the price of device-independent seeds);
* ``float64``: operators with a float64 tensor in or out that did not start from a
  tensor brought to the host with ``.cpu()`` (MPS has no float64).

Limits: a ``.to(device)`` of a CPU tensor is invisible (the stand-in device is the
CPU), so copies of host draws are counted as ``host_draws``; a ``.cpu()`` of a tensor
that is already on the host counts as a sync.
"""

from __future__ import annotations

import collections
import weakref
from dataclasses import dataclass, field

import torch
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
        return dict(ops=self.ops, convs=self.convs, syncs=self.syncs, copies=self.copies, host_draws=self.host_draws)


class ShapeCounter(TorchDispatchMode):
    """Counts ATen operators, convolutions, host syncs, blocking copies, CPU-generator
    draws and float64 operators of the work done inside the block (see the module)."""

    def __init__(self):
        super().__init__()
        self.counts = Counts()
        # id -> tensor, for tensors brought to the host and what came of them
        self._host: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._patched: dict[str, object] = {}

    def __enter__(self) -> Counts:
        super().__enter__()
        counter = self
        for name in ("tolist", "numpy", "cpu"):
            original = getattr(torch.Tensor, name)
            self._patched[name] = original

            def wrapper(t, *args, _original=original, _name=name, **kwargs):
                counter._host_read(_name)
                out = _original(t, *args, **kwargs)
                if _name == "cpu" and isinstance(out, torch.Tensor):
                    if out is t:  # already on the host: a distinct tensor object to mark
                        out = out.view_as(out)
                    counter._host[id(out)] = out
                return out

            setattr(torch.Tensor, name, wrapper)
        return self.counts

    def __exit__(self, *exc):
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)
        self._patched.clear()
        return super().__exit__(*exc)

    def _host_read(self, name: str) -> None:
        self.counts.syncs += 1
        self.counts.sync_ops[f"Tensor.{name}"] += 1
        if name == "cpu":
            self.counts.copies += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in IGNORED_OPS:
            return out
        c = self.counts
        c.by_op[packet.__name__] += 1
        if func.is_view:
            c.views += 1
        else:
            c.ops += 1
        if packet in CONV_OPS:
            c.convs += 1
        if packet in SYNC_OPS:
            c.syncs += 1
            c.sync_ops[packet.__name__] += 1
        if packet in COPY_OPS:
            c.copies += 1
        gen = kwargs.get("generator")
        if packet in RANDOM_OPS and gen is not None and gen.device.type == "cpu":
            c.host_draws += 1
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        on_host = bool(inputs) and all(self._host.get(id(t)) is t for t in inputs)
        if on_host:
            for t in outputs:
                self._host[id(t)] = t
        elif any(t.dtype == torch.float64 for t in inputs + outputs):
            c.float64.append(packet.__name__)
        return out


def count(fn, *args, **kwargs) -> Counts:
    """The counts of one call of ``fn`` (run it once before, outside, to warm caches)."""
    with ShapeCounter() as counts:
        fn(*args, **kwargs)
    return counts
