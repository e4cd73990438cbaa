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

Rank 0's slow set-up (decoding the data, a PCA basis, the monitor's inversions:
``writer_first``) can take longer than the process group's timeout, past which
NCCL's watchdog aborts a collective that is still waiting. So the others do not
wait in a collective: they poll a key rank 0 sets in the launcher's key-value
store (the TCP store of the rendezvous), which has no watchdog. The collectives
of training keep the 30-minute timeout, where a wait that long is a fault.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as td

from .errors import MocohdError
from .runtime import pick_device

TIMEOUT = timedelta(minutes=30)  # of a collective (NCCL's watchdog aborts one that waits longer)
_joined = False  # whether this process joined a torchrun process group (``from_env``)


def joined() -> bool:
    """Whether this process joined a process group (``Dist.from_env`` under torchrun): the command
    line then leaves by ``os._exit`` (``cli.entry.main``)."""
    return _joined


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    # the launcher's key-value store, under a prefix of ours (``writer_first``); None alone
    store: td.Store | None = field(default=None, repr=False, compare=False)
    owner: bool = field(default=False, repr=False, compare=False)  # made the process group: ``close`` ends it
    _turns: int = field(default=0, repr=False, compare=False)  # ``writer_first`` calls so far

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto", shared: Path | None = None) -> Dist:
        """Join the process group torchrun set up (``WORLD_SIZE`` > 1), or run alone.
        NCCL on CUDA (one GPU per local rank: ``device`` is cuda or auto, never cuda:N, which
        would name one GPU for every process), gloo otherwise. On CUDA the process's current
        device becomes its GPU before anything is allocated there (pinned memory, NCCL).
        ``shared``: a folder rank 0 writes and every process reads (the store's home), checked
        to be one folder for all of them (``check_shared``)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        dev = pick_device(device)
        if world <= 1:
            if dev.type == "cuda" and dev.index is not None:
                torch.cuda.set_device(dev)
            return cls(device=dev)
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if dev.type == "cuda":
            if dev.index is not None:
                raise MocohdError(
                    f"device {device!r} under torchrun: each process uses the GPU of its local rank; "
                    "give cuda or auto (choose the GPUs with CUDA_VISIBLE_DEVICES)"
                )
            if local >= torch.cuda.device_count():
                raise MocohdError(
                    f"local rank {local} has no GPU ({torch.cuda.device_count()} visible): "
                    "use --nproc_per_node <= the GPU count"
                )
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        elif dev.type == "mps":
            raise MocohdError("multi-process training on Apple MPS is not supported; use one process")
        if td.is_initialized():
            return cls(rank, world, local, dev)
        # the rendezvous init_process_group would make, kept: its store serves writer_first
        store, rank, world = next(td.rendezvous("env://", rank, world, timeout=TIMEOUT))
        store.set_timeout(TIMEOUT)
        td.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            store=store,
            rank=rank,
            world_size=world,
            timeout=TIMEOUT,
            device_id=dev if dev.type == "cuda" else None,
        )
        global _joined
        _joined = True
        dist = cls(rank, world, local, dev, store=td.PrefixStore("mocohd", store), owner=True)
        try:
            if shared is not None:
                dist.check_shared(shared)
        except BaseException:
            dist.close()
            raise
        return dist

    def check_shared(self, folder: Path, name: str = "MOCOHD_HOME") -> None:
        """Rank 0 writes a file into ``folder`` and every process must read it back: on several
        machines ``folder`` must be one shared folder (rank 0 alone decodes the data and fits the
        PCA basis there, and the others read them). One line on every process if not."""
        if not self.enabled:
            return
        folder = Path(folder)
        mark, error = f".shared-{secrets.token_hex(8)}", None
        if self.writer:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / mark).write_text(mark)
            except OSError as e:
                error = f"{name} ({folder}): cannot write there: {e.strerror}"
        # rank 0's: the file is there before anyone looks
        mark, error, where = self.gather_objects((mark, error, str(folder)))[0]
        if error is None:
            seen = _sees(folder / mark)
            hosts = self.gather_objects((seen, socket.gethostname()))
            if self.writer:
                (folder / mark).unlink(missing_ok=True)
            self.barrier()  # the marker is gone before any process goes on
            blind = [host for ok, host in hosts if not ok]
            if blind:
                error = (
                    f"{name} ({where}) is not shared: {len(blind)} of {self.world} processes (on "
                    f"{', '.join(sorted(set(blind)))}) do not see what process 0 (on {hosts[0][1]}) writes "
                    f"there; set {name} to a folder every node mounts at the same path"
                )
        if error is not None:
            raise MocohdError(error)

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

    def writer_first(self, work, poll: float = 1.0):
        """``work(True)`` on the writer rank, then ``work(False)`` on the others: the writer fills a
        cache (decoded data, a PCA basis) that the others then read. The others wait without a
        collective (they poll the launcher's store every ``poll`` seconds at most), so the writer
        may take longer than the process group's timeout. If the writer fails, every rank
        stops: the others with one line (the writer's error is above theirs)."""
        if not self.enabled:
            return work(True)
        if self.store is None:  # a process group made elsewhere: its collectives, under their timeout
            return self._writer_first_collective(work)
        self._turns += 1
        key = f"writer_first/{self._turns}"
        if self.writer:
            try:
                out = work(True)
            except BaseException:
                self._tell_failure(key)
                raise
            self.store.set(key, "done")
            return out
        self._wait_for(key, poll)
        if self.store.get(key) != b"done":
            self.store.add(f"{key}/told", 1)
            raise MocohdError("process 0 failed (its error is above); this process stops too")
        return work(False)

    def _tell_failure(self, key: str, limit: float = 60.0) -> None:
        """(Writer.) Mark ``key`` failed and wait, ``limit`` seconds at most, until every other
        process has read it: the store may live in this process, and end with it."""
        try:
            self.store.set(key, "failed")
            deadline = time.monotonic() + limit
            while self.store.add(f"{key}/told", 0) < self.world - 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        except td.DistError:
            pass  # the store is gone: the others stop on that

    def _writer_first_collective(self, work):
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

    def _wait_for(self, key: str, poll: float) -> None:
        """Until ``key`` is set in the store: checks at growing intervals, up to ``poll`` seconds."""
        delay = 0.01
        try:
            while not self.store.check([key]):
                time.sleep(delay)
                delay = min(2 * delay, poll)
        except td.DistError as e:  # the store went away: process 0's node stopped
            raise MocohdError(f"lost the launcher's store while process 0 prepared ({e}); this process stops") from e

    def barrier(self) -> None:
        if self.enabled:
            td.barrier()

    def close(self) -> None:
        """End the process group this ``Dist`` made (``from_env``); one made elsewhere stays."""
        if self.owner and td.is_initialized():
            td.destroy_process_group()
        self.owner = False


def _sees(path: Path, tries: int = 4, wait: float = 0.5) -> bool:
    """Whether the file at ``path`` holds its own name; a network file system may show a new file
    a moment late, so a missing one is looked for again ``tries`` times, ``wait`` seconds apart."""
    for attempt in range(tries + 1):
        try:
            return path.read_text() == path.name
        except FileNotFoundError:
            if attempt < tries:
                time.sleep(wait)
        except OSError:
            return False
    return False
