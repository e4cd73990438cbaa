"""The services of a training run, the same for the motion GAN (``motion_trainer.train``) and
StyleGAN2 (``image_trainer.train_image``). A trainer writes its loop and calls them:

    with open_run(cfg, resume, force, on_event) as run:   # settings, folder and processes, before any work
        cfg = run.cfg                                     # the run's copy (a trainer settles more: run.cfg = ...)
        gan = ...                                         # the recipe: iteration(batch), state_dict(), rng, networks()
        info = run.prepare(frame_size, min_frames, "clip cache")   # the writer rank decodes the data first
        loader = run.loader(dataset, batch_per_rank)
        start = run.restore(gan.rng, load)                # a resume's state and random streams; config.json
        run.started(start, total, per_epoch, ...)         # the 'start' event
        step, interrupted = start, False
        with GracefulStop() as stop:                      # Ctrl-C: stop after this step
            batches = run.batches(loader, start)          # a resume goes on mid-epoch
            for step in range(start + 1, total + 1):
                losses = gan.iteration(inputs(next(batches)))
                run.log_step(step, losses)                # 'step' event; metrics.jsonl every log_every steps
                run.check_finite(step, losses, hint)      # a diverged run stops before it saves
                if step % cfg.sample_every == 0:
                    sample(step)                          # writer: run.sample_path(step, ".png"), a 'sample' event
                interrupted = run.dist.any(stop.requested) and step < total   # every rank stops at the same step
                if interrupted or step % cfg.save_every == 0 or step == total:
                    run.save_checkpoint(step, gan, gan.state_dict())
                    if run.dist.writer:
                        export(step)                      # the model to the store
                    run.checkpointed(step)                # the 'checkpoint' event; the ranks wait for the writer
                if interrupted:
                    break
                ...                                       # measurements: run.report("eval", step, values)
            del batches
        if not interrupted and step % cfg.sample_every:
            sample(step)                                  # the last step's samples
        return Result(..., step, total, interrupted, run.losses, config=cfg)

A run lives in ``MOCOHD_HOME/runs/NAME/`` (an image run in ``NAME-image/``):

    config.json          the run's settings (a resume reads them back)
    checkpoint.pt        the full state: the recipe's ``state_dict``, the step, every rank's RNG
    metrics.jsonl        one JSON line per ``log_every`` steps (mean losses, it/s)
    samples/step_N.*     what the run shows every ``sample_every`` steps
    best                 motion runs with --keep-best: the exported step (``monitor.KeepBest``)
    monitor_real.json    in-domain motion runs with --monitor: the real clips' latent motion (a cache)

and its model is exported to the store as NAME at every checkpoint. Checkpoints
are written to a temporary file and renamed: a kill at any moment loses at most
the steps since the last one and never leaves a corrupt checkpoint. Ctrl-C
(SIGINT or SIGTERM) finishes the current step, saves, and returns. A resume
keeps the run's settings: only ``MUTABLE`` ones may change. A run that stopped
before its first checkpoint has nothing to keep and simply starts over. The run
settles its settings (a name from the data folder, a resume's stored values, the
sizes its models decide) in copies: the config a caller passes stays as it was.

``on_event(kind, info)`` reports progress on the writer rank: 'prepare' {done,
total}, 'invert' {done, total} (motion runs: the monitor inverting real clips, in
steps, before training), 'start' {run, step, total, per_epoch, device, world, precision, ...},
'step' {step, total, losses; every ``log_every`` steps also mean and it_s},
'sample' {path}, 'checkpoint' {step}, 'note' {text}, and the measurements a trainer
``report``s: 'eval' {step, values} (fvd16), 'monitor' {step, values} (motion statistics).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import torch

from .. import store
from ..classes import parse_classes
from ..data import EpochSampler, prepare
from ..distributed import Dist
from ..errors import MocohdError, UsageError
from ..formats.canonical import atomic_write_bytes, atomic_writer, read_header
from ..runtime import check_dtype_supported, precision
from ..stopping import ignore_interrupts
from .config import RunSettings, setting

CHECKPOINT_VERSION = 1
T = TypeVar("T")


def run_dir(name: str) -> Path:
    return store.kind_dir("runs", create=True) / store.check_name(name)


def load_checkpoint(path: Path) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable for any reason
        raise MocohdError(f"{path}: unreadable checkpoint ({type(e).__name__})") from e
    if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
        raise MocohdError(f"{path}: not a mocohd training checkpoint")
    return ck


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': bf16 on CUDA when ``device`` supports it, else fp32; any other value as it is."""
    if precision == "auto" and device.type == "cuda":
        with torch.cuda.device(device):  # is_bf16_supported asks the current device
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    if precision == "bf16":
        check_dtype_supported(torch.bfloat16, device)
    return "fp32" if precision == "auto" else precision


# ---------------------------------------------------------------------------- opening a run


@contextlib.contextmanager
def open_run(
    cfg: RunSettings, resume: bool = False, force: bool = False, on_event: Callable[[str, dict], None] | None = None
) -> Iterator[Run]:
    """Check the settings and the run folder before any work, join the other processes
    (torchrun) and give the ``Run``; the processes part when the block ends. The run's
    settings (``Run.cfg``) are a copy of ``cfg`` with its name and data folder settled.

    ``resume``: continue the run ``cfg.name`` from its checkpoint. The settings ``cfg``
    was given (``cfg.given``) are checked against the run's: those in ``cfg.MUTABLE``
    change, any other must be equal (else UsageError); the rest are the run's.
    ``force``: start an existing run over."""
    cfg = cfg.replace()  # the run's own copy: what it derives never changes the caller's config
    cfg.validate()  # again: fields may have been assigned since the config was made
    dist = Dist.from_env(cfg.device, shared=store.home())
    emit = on_event if (on_event and dist.writer) else (lambda kind, info: None)
    try:
        if cfg.name is None:
            if cfg.data is None:
                raise UsageError(
                    f"give data (and {cfg.REQUIRED[-1]}) for a new {cfg.KIND}, or the name of one to resume"
                )
            cfg = cfg.replace(name=Path(cfg.data).resolve().name)
        store.check_name(cfg.name)
        folder = run_dir(cfg.name + cfg.FOLDER_SUFFIX)
        cfg, checkpoint = _resume_or_start(cfg, folder, resume, force, emit)
        if any(getattr(cfg, name) is None for name in cfg.REQUIRED):
            verb = "is" if len(cfg.REQUIRED) == 1 else "are"
            raise UsageError(f"{' and '.join(map(setting, cfg.REQUIRED))} {verb} required for a new {cfg.KIND}")
        if cfg.batch % dist.world:
            raise UsageError(f"batch ({cfg.batch}) must be a multiple of the number of processes ({dist.world})")
        # the hot loop's numerics: TF32 and cuDNN autotuning on CUDA unless fp32 or deterministic; what
        # measures inside it (PCA, the monitor, fvd16) takes exact float32 for its own block
        fast = resolve_precision(cfg.precision, dist.device) != "fp32"
        with precision(dist.device, tf32=fast, benchmark=True, deterministic=cfg.deterministic):
            yield Run(cfg, folder, dist, emit, checkpoint)
        # A run that ended well: every process leaves together. One that closed gloo while
        # process 0 still wrote its last sample was aborted ("terminate called without an
        # active exception"); on an error no barrier, a stopped peer would never reach it.
        dist.barrier()
    finally:
        dist.close()


def _resume_or_start(
    cfg: RunSettings, folder: Path, resume: bool, force: bool, emit
) -> tuple[RunSettings, dict | None]:
    """The run's settings (a resume's stored ones taken in) and the checkpoint a resume
    continues from, or None: a fresh start (see ``open_run``).
    Without ``resume`` an existing run (one with a checkpoint) is refused unless ``force``.
    A run that stopped before its first checkpoint has nothing to lose: it starts over
    from step 0 (a resume keeps its stored settings). Fails fast on a data folder that
    does not exist, and records it as an absolute path (a resume may start from another folder)."""
    if resume and force:
        raise UsageError("resume continues a run and force starts it over: give one of them")
    run = f"{cfg.KIND} '{cfg.name}'"
    ckpt, saved_cfg = folder / "checkpoint.pt", folder / "config.json"
    ck = None
    if ckpt.is_file() and resume:
        ck = load_checkpoint(ckpt)
        cfg = _take_stored(cfg, json.loads(ck["config"]), run, emit)
    elif resume:
        if not saved_cfg.is_file():
            raise MocohdError(f"{run} has no checkpoint to resume ({ckpt})")
        try:
            saved = json.loads(saved_cfg.read_text())
        except (OSError, ValueError) as e:
            raise MocohdError(f"{run} has no checkpoint and an unreadable {saved_cfg}") from e
        cfg = _take_stored(cfg, saved, run, emit)
        emit("note", {"text": f"{run} stopped before its first checkpoint: starting it from step 0 with its settings"})
    elif ckpt.exists() and not force:
        raise MocohdError(f"{run} already exists ({folder}): give resume to continue it, or force to start it over")
    elif not ckpt.exists() and folder.is_dir() and any(folder.iterdir()):
        emit("note", {"text": f"{run} stopped before its first checkpoint: starting it over"})
    if ck is None and not force:
        _check_export_name(cfg.EXPORTS, cfg.name)
    if cfg.data is not None:
        if not Path(cfg.data).is_dir():
            raise MocohdError(f"{cfg.data}: not a folder of videos or images")
        cfg = cfg.replace(data=str(Path(cfg.data).resolve()))
    return cfg, ck


def _check_export_name(kind: str, name: str) -> None:
    """A new run exports its model to the store as ``name`` at every checkpoint: refuse
    to start when that would replace a ``kind`` model that did not come from this run
    (one imported, fetched or made by another run), unless forced."""
    path = store.store_path(kind, name)
    if not path.is_file():
        return
    try:
        source = read_header(path).source
    except MocohdError:
        source = {}
    if str(source.get("format", "")).startswith("mocohd-train") and source.get("run") == name:
        return  # this run's own export, from an earlier start
    origin = source.get("file") or source.get("repo") or source.get("run") or "elsewhere"
    raise MocohdError(
        f"the store already holds {kind} model '{name}' (from {origin}), which this run would replace "
        "at its first checkpoint: pick another name, or give force to replace it"
    )


def _take_stored(cfg: RunSettings, saved: dict, run: str, emit) -> RunSettings:
    """A resume: the settings with the stored ones in place of those not given; given ones
    must be ``MUTABLE`` or equal to the stored value (else one UsageError naming them all)."""
    given, refused, changed, stored = cfg.given, [], [], {}
    for f in fields(cfg):
        if f.name not in saved or f.name == "name":  # a setting newer than the run keeps its default
            continue
        new, old = getattr(cfg, f.name), saved[f.name]
        if f.name in given and not (new is None and f.default is None):  # None: 'automatic', as not given
            if _comparable(f.name, new) == _comparable(f.name, old):
                pass
            elif f.name in cfg.MUTABLE:
                changed.append(f"{setting(f.name)} {old} -> {new}")
                continue
            else:
                refused.append(f.name)
                continue
        stored[f.name] = old
    if refused:
        raise UsageError(
            f"cannot change {', '.join(map(setting, refused))} when resuming {run} (it was started with "
            + ", ".join(f"{n} {saved[n]}" for n in refused)
            + "): leave them out, or start a new run (another name, or force without resume)"
        )
    if changed:
        emit("note", {"text": f"resuming {run} with " + ", ".join(changed)})
    return cfg.replace(**stored)


def _comparable(name: str, value):
    """A setting as a resume compares it with the stored one: paths as they were
    recorded, classes as numbers, no EMA ramp-up as None."""
    if value is None:
        return None
    if name == "data":
        return str(Path(value).resolve())
    if name == "image" and Path(value).is_file():
        return str(Path(value).resolve())
    if name == "classes":
        try:
            return parse_classes(value, 1000)
        except MocohdError:
            return [str(v) for v in value]
    if name == "ema_rampup":
        return value or None
    return value


# ---------------------------------------------------------------------------- the run


def as_floats(values: dict) -> dict[str, float]:
    """Losses (floats or 0-d tensors on the run's device) as floats, read from the device in one
    transfer: one host sync for the whole dict, not one per loss."""
    keys = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if keys:
        read = torch.stack([values[k].detach().float().reshape(()) for k in keys]).tolist()
        out.update(zip(keys, read, strict=True))
    return {k: out[k] for k in values}


class _Meter:
    """The losses and the time since the last log line (sums of tensors stay on the device)."""

    def __init__(self):
        self.sums: dict = {}
        self.count, self.t0 = 0, time.perf_counter()

    def add(self, losses: dict) -> None:
        for k, v in losses.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            self.sums[k] = v if k not in self.sums else self.sums[k] + v
        self.count += 1

    def mean(self, also: dict | None = None) -> tuple[dict[str, float], float, dict[str, float]]:
        """The mean losses and the steps per second since the meter started, and ``also`` as
        floats (read in the same transfer)."""
        dt = time.perf_counter() - self.t0
        also = also or {}
        means = {("mean", k): v / self.count for k, v in self.sums.items()}
        read = as_floats({**means, **{("now", k): v for k, v in also.items()}})
        mean = {k: v for (kind, k), v in read.items() if kind == "mean"}
        now = {k: v for (kind, k), v in read.items() if kind == "now"}
        return mean, self.count / dt, now


@dataclass
class Run:
    """An opened run (``open_run``): its settings, folder, processes and events, the checkpoint
    a resume continues from (None: a fresh start), and the services a trainer's loop calls.

    ``cfg`` is the run's copy of the settings; a trainer that settles more of them (sizes its
    models decide) puts its settled copy here before ``restore``, which records them."""

    cfg: RunSettings
    folder: Path
    dist: Dist
    emit: Callable[[str, dict], None]
    checkpoint: dict | None
    total: int = field(default=0, init=False)  # the loop's last step (``started``)
    per_epoch: int = field(default=1, init=False)  # steps per epoch (``started``)
    losses: dict = field(default_factory=dict, init=False)  # the mean losses of the last log line
    _meter: _Meter = field(default_factory=_Meter, init=False, repr=False)
    _shown: dict = field(default_factory=dict, init=False, repr=False)  # the losses of the last log line's step
    # losses given as tensors: the first step whose losses were not all finite (-1: none), on the device
    _first_bad: torch.Tensor | None = field(default=None, init=False, repr=False)
    _hint: str = field(default="", init=False, repr=False)

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def precision(self) -> str:
        return resolve_precision(self.cfg.precision, self.device)

    def note(self, text: str) -> None:
        self.emit("note", {"text": text})

    def writer_first(self, work: Callable[[bool], T]) -> T:
        """``work(True)`` on the writer rank, then ``work(False)`` on the others (``Dist.writer_first``):
        the writer fills a cache (the decoded data, the PCA basis) that the others then read."""
        return self.dist.writer_first(work)

    def prepare(self, frame_size: int, min_frames: int, cache: str):
        """The data folder decoded into its ``cache`` (``data.prepare``), writer first,
        with 'prepare' progress events and a summary note."""

        def work(writer: bool):
            if not writer:
                return prepare(self.cfg.data, frame_size=frame_size, min_frames=min_frames)
            info = prepare(
                self.cfg.data,
                frame_size=frame_size,
                min_frames=min_frames,
                progress=lambda done, total: self.emit("prepare", {"done": done, "total": total}),
            )
            self.note((f"reused the {cache}: " if info.reused else "prepared: ") + info.summary())
            return info

        return self.writer_first(work)

    def loader(self, dataset, per_rank: int) -> torch.utils.data.DataLoader:
        """This rank's batches of ``per_rank`` items, epoch after epoch (an ``EpochSampler``:
        ``loader.batch_sampler.batches_per_epoch()`` steps per epoch)."""
        cfg, dist = self.cfg, self.dist
        return torch.utils.data.DataLoader(
            dataset,
            batch_sampler=EpochSampler(len(dataset), per_rank, dist.rank, dist.world, cfg.seed),
            num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_interrupts,
            persistent_workers=False,
            multiprocessing_context="spawn" if cfg.workers and dist.enabled else None,
        )

    def restore(self, rng: torch.Generator, load: Callable[[dict], None]) -> int:
        """The step to start from. A resume loads its checkpoint into the recipe (``load``)
        and takes back each rank's random stream (``rng``); then the writer (re)starts the folder."""
        step = 0
        if self.checkpoint is not None:
            load(self.checkpoint)
            step = int(self.checkpoint["step"])
            restore_rng(rng, self.checkpoint["rng"], self.dist, self.cfg.seed * 7919 + 104729 * step, self.emit)
        if self.dist.writer:
            start_run_folder(self.folder, self.cfg, step, fresh=self.checkpoint is None)
        return step

    def started(self, step: int, total: int, per_epoch: int, **info) -> None:
        """The 'start' event: where the run stands, and what else the trainer tells (``info``).
        The loop runs to step ``total``; the time of the first log line counts from here."""
        self.total, self.per_epoch = total, per_epoch
        self.emit(
            "start",
            {
                "run": self.folder,
                "step": step,
                "total": total,
                "per_epoch": per_epoch,
                "device": str(self.device),
                "world": self.dist.world,
                "precision": self.precision,
                **info,
            },
        )
        self._meter = _Meter()

    def batches(self, loader: torch.utils.data.DataLoader, step: int) -> Iterator:
        """The loader's batches from ``step`` on: a resume continues mid-epoch, with the batches
        a run without a stop would have had."""
        sampler = loader.batch_sampler
        sampler.epoch, sampler.start = divmod(step, sampler.batches_per_epoch())
        return iter(loader)

    def log_step(self, step: int, losses: dict) -> None:
        """The 'step' event {step, total, losses}; every ``log_every`` steps and at the last one also
        the mean losses and speed since the previous such step, in the event (mean, it_s) and
        (writer rank) as a metrics.jsonl line. ``losses`` keeps the last mean.

        ``losses`` may be floats or 0-d tensors on the device: tensors are summed on the device
        and read on log lines only (one transfer), so a step without a log line does not wait
        for the device; its event then carries the losses of the last log line's step."""
        self._meter.add(losses)
        if step % self.cfg.log_every == 0 or step == self.total:
            self.losses, it_s, self._shown = self._meter.mean(also=losses)
            event = {"step": step, "total": self.total, "losses": self._shown, "mean": self.losses, "it_s": it_s}
            if self.dist.writer:
                _append_metrics(
                    self.folder / "metrics.jsonl",
                    {"step": step, "epoch": step / self.per_epoch, "it_s": it_s, **self.losses},
                )
            self._meter = _Meter()  # after the write: the next line's time starts here
        elif all(not isinstance(v, torch.Tensor) for v in losses.values()):
            event = {"step": step, "total": self.total, "losses": dict(losses)}
        else:
            event = {"step": step, "total": self.total, "losses": self._shown}
        self.emit("step", event)

    def check_finite(self, step: int, losses: dict, hint: str) -> None:
        """MocohdError when a loss of any rank is not finite: the run stops before it saves, so the
        last checkpoint stays the last good one; ``hint`` says what to change. Float losses are
        checked at once; tensors on the device are flagged there and read on log lines and before
        every checkpoint (``save_checkpoint``), without a host sync at other steps."""
        self._hint = hint
        tensors = [v.detach() for v in losses.values() if isinstance(v, torch.Tensor)]
        floats = [v for v in losses.values() if not isinstance(v, torch.Tensor)]
        if tensors:
            bad = ~torch.isfinite(torch.stack([t.float().reshape(()) for t in tensors])).all()
            if self._first_bad is None:
                self._first_bad = torch.full((), -1, dtype=torch.long, device=tensors[0].device)
            self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)
            if step % self.cfg.log_every == 0 or step == self.total:
                self._raise_if_diverged()
        if self.dist.any(not all(math.isfinite(v) for v in floats)):
            self._diverged(step)

    def _raise_if_diverged(self) -> None:
        """Read the device's flag of non-finite losses (one host sync) and stop if one was seen."""
        if self._first_bad is None:
            return
        first = int(self._first_bad)
        if self.dist.any(first >= 0):
            self._diverged(first if first >= 0 else None)

    def _diverged(self, step: int | None) -> None:
        at = f"at step {step}" if step is not None else "on another process"
        raise MocohdError(
            f"training diverged {at} (a loss is not finite); {self._hint}, and resume from the last checkpoint"
        )

    def sample_path(self, step: int, suffix: str) -> Path:
        """Where the samples of ``step`` go: samples/step_N``suffix``."""
        return self.folder / "samples" / f"step_{step:07d}{suffix}"

    def report(self, kind: str, step: int, values: dict) -> None:
        """Measurements of ``kind`` ('eval', 'monitor') at ``step``: a metrics.jsonl line
        {"step", kind: values} (writer rank) and a ``kind`` event {step, values}."""
        if self.dist.writer:
            _append_metrics(self.folder / "metrics.jsonl", {"step": step, kind: values})
        self.emit(kind, {"step": step, "values": values})

    def save_checkpoint(self, step: int, gan, entries: dict) -> None:
        """checkpoint.pt at ``step``, written by the writer rank (atomically): the recipe's ``entries``,
        the settings and every rank's random stream (``gan.rng``), once the ranks' networks
        (``gan.networks()``) are checked to agree and the losses since the last check are finite.
        Every rank calls it, then ``checkpointed``."""
        self._raise_if_diverged()
        states = self.dist.gather_objects(gan.rng.get_state())
        self.dist.check_in_sync(*gan.networks(), step=step)
        if self.dist.writer:
            _atomic_torch_save(
                {
                    "version": CHECKPOINT_VERSION,
                    "step": step,
                    "config": json.dumps(asdict(self.cfg)),
                    **entries,
                    "rng": states,
                },
                self.folder / "checkpoint.pt",
            )

    def checkpointed(self, step: int) -> None:
        """The 'checkpoint' event, once the writer has saved (and exported) ``step``; every rank waits
        here for the writer."""
        self.emit("checkpoint", {"step": step})
        self.dist.barrier()


def restore_rng(generator: torch.Generator, states: list, dist: Dist, reseed: int, emit) -> None:
    """Each rank takes back its own random stream; with another number of
    processes the streams restart from ``reseed`` (models and optimisers stay exact)."""
    if len(states) == dist.world:
        generator.set_state(states[dist.rank])
    else:
        generator.manual_seed(reseed + dist.rank)
        emit(
            "note",
            {
                "text": f"resumed with {dist.world} processes instead of {len(states)}: "
                "random streams restart (the models and optimisers are exact)"
            },
        )


def start_run_folder(run: Path, cfg, step: int, fresh: bool) -> None:
    """(Writer rank.) Create the run folder, clear what an earlier start left there
    when starting from step 0 (``fresh``) and the temporary files of a killed save,
    write config.json and drop metric lines past ``step``."""
    run.mkdir(parents=True, exist_ok=True)
    for tmp in [*run.rglob(".*.tmp-*"), *run.rglob(".*.partial-*")]:  # checkpoint or sample writes cut by a kill
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    # config.json first: a kill between the two steps leaves the new settings, never the old ones without a checkpoint
    atomic_write_bytes(run / "config.json", json.dumps(asdict(cfg), indent=1).encode())
    if fresh:
        for old in ("checkpoint.pt", "metrics.jsonl"):
            (run / old).unlink(missing_ok=True)
        shutil.rmtree(run / "samples", ignore_errors=True)
    _trim_metrics(run / "metrics.jsonl", step)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_writer(path) as f:
        torch.save(obj, f)


def _append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the metric lines of steps <= ``step`` (a resumed run rewrites what came after)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill
    atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())
