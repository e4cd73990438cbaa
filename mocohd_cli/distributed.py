"""Data-parallel training across processes (torchrun, one process per GPU or,
on CPU, per worker), and the same code on a single process.

    dist = Dist.from_env("auto")    # reads torchrun's RANK, WORLD_SIZE, LOCAL_RANK
    dist.average_grads(params)      # after backward, before the optimiser step
    everyone = dist.gather(t)       # [world * n, ...], rank order

Every rank holds a full copy of the models and computes gradients on its
share of the global batch; the gradients are averaged with one flattened
all-reduce per optimiser step, so the ranks take identical steps. This is
what DistributedDataParallel does, done explicitly: DDP's gradient hooks do
not support ``torch.autograd.grad`` (the gradient penalty), and motion
training runs several discriminator forwards per backward. Rank 0 is the only
writer (checkpoints, metrics, samples, the exported model).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as td

from .errors import MocohdError
from .runtime import pick_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> Dist:
        """Join the process group torchrun set up (``WORLD_SIZE`` > 1), or run alone.
        NCCL on CUDA (one GPU per local rank), gloo otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=pick_device(device))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        dev = pick_device(device)
        if dev.type == "cuda":
            if local >= torch.cuda.device_count():
                raise MocohdError(
                    f"local rank {local} has no GPU ({torch.cuda.device_count()} visible): "
                    "use --nproc_per_node <= the GPU count"
                )
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        elif dev.type == "mps":
            raise MocohdError("multi-process training on Apple MPS is not supported; use one process")
        if not td.is_initialized():
            td.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
        return cls(rank, world, local, dev)

    # ---------------------------------------------------------------- collectives

    def average_grads(self, params) -> None:
        """Average the gradients of ``params`` over ranks (missing ones count as zeros)."""
        if not self.enabled:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        td.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)  # disjoint views of one buffer
            offset += n

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate ``t`` from every rank (no gradient), in rank order."""
        if not self.enabled:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        td.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def gather_objects(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def check_in_sync(self, *modules: torch.nn.Module, step: int) -> None:
        """Every rank must hold the same parameters (a broken collective or a bug
        otherwise): compare checksums, and stop if they differ."""
        if not self.enabled:
            return
        h = hashlib.sha256()
        for m in modules:
            for p in m.parameters():
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        versions = set(self.gather_objects(h.hexdigest()))
        if len(versions) > 1:
            raise MocohdError(f"the processes' models differ at step {step} ({len(versions)} versions)")

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Make every rank's parameters and buffers rank 0's."""
        if not self.enabled:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            td.broadcast(t.data, 0)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (e.g. Ctrl-C on one)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def writer_first(self, work):
        """``work(True)`` on the writer rank, then ``work(False)`` on the others: the writer fills a
        cache (decoded data, a PCA basis) that the others then read. A ``MocohdError`` on the writer
        stops every rank (the others raise one line too) instead of leaving them at a barrier."""
        if not self.enabled:
            return work(True)
        failure = None
        if self.writer:
            try:
                out = work(True)
            except MocohdError as e:
                failure = e
        if self.any(failure is not None):  # also the barrier
            if failure is not None:
                raise failure
            raise MocohdError("process 0 failed (its error is above); this process stops too")
        if not self.writer:
            out = work(False)
        return out

    def barrier(self) -> None:
        if self.enabled:
            td.barrier()

    def close(self) -> None:
        if self.enabled and td.is_initialized():
            td.destroy_process_group()
