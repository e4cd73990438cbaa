"""The training run: data, models, the loop, checkpoints, samples, metrics.

    from mocohd_cli.train import TrainConfig, train
    result = train(TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000))

A run lives in ``MOCOHD_HOME/runs/NAME/``:

    config.json          the run's settings (a resume reads them back)
    checkpoint.pt        the full state: motion generator, discriminators, EMA,
                         queue, optimisers, loss scalers, step, every rank's RNG
    metrics.jsonl        one JSON line per ``log_every`` steps (mean losses, it/s)
    samples/step_N.mp4   a grid of fixed-seed videos every ``sample_every`` steps

and the motion generator is exported to the store as the motion model NAME
at every checkpoint, so ``mocohd render --motion NAME`` works during
training. Checkpoints are written to a temporary file and renamed: a kill at
any moment loses at most the steps since the last one and never leaves a
corrupt checkpoint. Ctrl-C (SIGINT or SIGTERM) finishes the current
iteration, saves, and returns. A resume keeps the run's settings: only the
``TrainConfig.MUTABLE`` ones may change (see ``RunSettings``). A run that
stopped before its first checkpoint has nothing to keep and simply starts over.

A step is one iteration of the official schedule (``g_steps`` updates of the
motion generator, then one of each discriminator) on one global batch;
``epochs`` counts passes over the videos (one clip per video per epoch).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, ClassVar

import torch

from .. import store
from ..classes import parse_classes
from ..data import ClipDataset, EpochSampler, prepare, to_model_input
from ..errors import MocohdError, UsageError
from ..formats.canonical import atomic_write_bytes, atomic_writer, read_header
from ..frames import check_pair
from ..models import load_image_generator, store_model
from ..models.motion import load_motion, motion_model
from ..models.pca import pca_for
from ..motion import MotionConfig, MotionGenerator
from ..render import render_frames
from ..runtime import enable_tf32
from ..video import write_videos
from .distributed import Dist
from .steps import GANConfig, MotionGAN

CHECKPOINT_VERSION = 1


class RunSettings:
    """Base of the training configs (``TrainConfig``, ``ImageTrainConfig``).

    A config remembers which settings its caller gave (``given``): the
    constructor's arguments and any field assigned afterwards. A new run takes
    the dataclass defaults for the others; a resume takes the run's stored
    values for them, applies the given ones listed in ``MUTABLE`` and refuses
    any other given one that differs from the stored value. The values are
    checked (``validate``) on construction and again when a run starts."""

    MUTABLE: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        names = [f.name for f in fields(cls) if f.init]
        object.__setattr__(self, "_given", None)  # not tracked while __init__ fills in the defaults
        object.__setattr__(self, "_args", set(names[: len(args)]) | set(kwargs))
        return self

    def __post_init__(self):
        object.__setattr__(self, "_given", self.__dict__.pop("_args", set()))
        self.validate()

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        given = self.__dict__.get("_given")
        if given is not None and name in self.__dataclass_fields__:
            given.add(name)

    @property
    def given(self) -> frozenset[str]:
        """The settings the caller gave (a resume changes or checks only these)."""
        return frozenset(self.__dict__.get("_given") or ())

    def validate(self) -> None:
        raise NotImplementedError


def option(name: str) -> str:
    """The command-line option of a setting: ``log_every`` -> ``--log-every``."""
    return "--class" if name == "classes" else "--" + name.replace("_", "-")


def check_settings(cfg, whole: dict[str, int], positive: tuple = (), nonnegative: tuple = (),
                   choices: dict | None = None, optional: tuple = ()) -> None:
    """UsageError (one line) unless each ``whole`` setting is a whole number >= its bound,
    each ``positive`` / ``nonnegative`` one a finite number > 0 / >= 0 and each ``choices``
    one among its values. None passes for the settings whose default is None and ``optional``."""
    can_be_none = {f.name for f in fields(cfg) if f.default is None} | set(optional)
    for name, least in whole.items():
        v = getattr(cfg, name)
        if v is None and name in can_be_none:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
            raise UsageError(f"{option(name)} must be a whole number >= {least}, got {v!r}")
    for name in positive + nonnegative:
        v = getattr(cfg, name)
        if v is None and name in can_be_none:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (
                v == 0 and name in positive):
            raise UsageError(f"{option(name)} must be a finite number {'>' if name in positive else '>='} 0, got {v!r}")
    for name, allowed in (choices or {}).items():
        if getattr(cfg, name) not in allowed:
            raise UsageError(f"{option(name)} must be {', '.join(map(str, allowed[:-1]))} or {allowed[-1]}, "
                             f"got {getattr(cfg, name)!r}")


def _paths_as_text(cfg, *names: str) -> None:
    for name in names:  # a Path works as well as its text (and config.json stays JSON)
        if isinstance(getattr(cfg, name), os.PathLike):
            object.__setattr__(cfg, name, os.fspath(getattr(cfg, name)))


@dataclass
class TrainConfig(RunSettings):
    data: str | None = None  # folder of videos and/or frame folders
    image: str | None = None  # image generator (name, store entry or path)
    name: str | None = None  # run and exported motion model; default: the data folder's name
    domain: str = "cross"
    steps: int | None = None  # total steps; default: epochs x steps per epoch
    epochs: int = 5
    batch: int = 16  # global batch (clips), split across ranks
    lr: float = 1e-4
    frames: int = 16
    time_step: int = 2
    frame_size: int | None = None  # default: min(128, the generator's resolution)
    g_steps: int = 5
    n_pca: int | None = None  # default: min(384, w_dim)
    h_dim: int = 384
    w_residual: float = 0.2
    w_match: float = 1.0
    w_mutual: float = 1.0
    gp_weight: float = 10.0
    dv_channels: int = 64
    di_channels: int = 96
    proj_dim: int = 256
    queue: int = 4096
    moco_momentum: float = 0.999
    moco_temperature: float = 0.07
    init: str | None = None  # motion model to fine-tune from
    classes: list | None = None  # class-conditional generators (BigGAN): numbers or ImageNet names; None: all
    truncation: float = 1.0  # of the fake clips (BigGAN: also its batch-norm statistics)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on CUDA when supported, else fp32
    workers: int = 2
    save_every: int = 1000
    sample_every: int = 1000
    sample_videos: int = 4
    log_every: int = 10
    pca_samples: int = 1_000_000

    # what a resume may change; the others must stay as the run was started
    MUTABLE: ClassVar[tuple[str, ...]] = ("steps", "epochs", "device", "workers", "save_every", "sample_every",
                                          "log_every", "sample_videos")

    def validate(self) -> None:
        _paths_as_text(self, "data", "image", "init")
        if isinstance(self.classes, (str, int)):
            object.__setattr__(self, "classes", [self.classes])
        check_settings(self, dict(steps=1, epochs=1, batch=1, frames=2, time_step=1, frame_size=4, g_steps=1, n_pca=1,
                                  h_dim=1, dv_channels=1, di_channels=1, proj_dim=1, queue=1, seed=0, workers=0,
                                  save_every=1, sample_every=1, sample_videos=1, log_every=1, pca_samples=2),
                       positive=("lr", "w_residual", "moco_temperature", "truncation"),
                       nonnegative=("w_match", "w_mutual", "gp_weight", "moco_momentum"),
                       choices={"domain": ("cross", "in"), "precision": ("auto", "fp32", "bf16", "fp16")})
        if self.moco_momentum > 1:
            raise UsageError(f"--moco-momentum must be in [0, 1], got {self.moco_momentum}")
        if self.seed >= 2**32:
            raise UsageError(f"--seed must be below 2^32, got {self.seed}")


@dataclass
class TrainResult:
    run: Path
    motion: Path  # the exported motion model
    step: int
    total: int
    interrupted: bool = False
    losses: dict = field(default_factory=dict)
    writer: bool = True  # False on the ranks > 0 of a torchrun job (they print nothing)


def run_dir(name: str) -> Path:
    return store.kind_dir("runs", create=True) / store.check_name(name)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_writer(path) as f:
        torch.save(obj, f)


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def load_checkpoint(path: Path) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unreadable for any reason
        raise MocohdError(f"{path}: unreadable checkpoint ({type(e).__name__})") from e
    if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
        raise MocohdError(f"{path}: not a mocohd training checkpoint")
    return ck


class _StopFlag:
    """SIGINT / SIGTERM set a flag that the loop checks after each step."""

    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def _handle(self, signum, frame):
        if self.set:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def open_run(cfg: RunSettings, run: Path, resume: bool, force: bool, emit, what: str = "run",
             exports: str = "motion") -> dict | None:
    """Check a run folder before any work and return its checkpoint (or None: a fresh start).

    ``resume`` continues the run: its stored settings fill in those ``cfg`` was not
    given, the given ``cfg.MUTABLE`` ones apply and any other given one must equal
    the stored value. Without ``resume`` an existing run (one with a checkpoint) is
    refused unless ``force``. A run that stopped before its first checkpoint has
    nothing to lose: it starts over from step 0 (a resume keeps its stored settings).
    Fails fast on a data folder that does not exist, and records it as an absolute
    path (a resume may start from another folder)."""
    if resume and force:
        raise UsageError("--resume continues a run and --force starts it over: give one of them")
    ckpt, saved_cfg = run / "checkpoint.pt", run / "config.json"
    ck = None
    if ckpt.is_file() and resume:
        ck = load_checkpoint(ckpt)
        _take_stored(cfg, json.loads(ck["config"]), f"{what} '{cfg.name}'", emit)
    elif resume:
        if not saved_cfg.is_file():
            raise MocohdError(f"{what} '{cfg.name}' has no checkpoint to resume ({ckpt})")
        try:
            saved = json.loads(saved_cfg.read_text())
        except (OSError, ValueError) as e:
            raise MocohdError(f"{what} '{cfg.name}' has no checkpoint and an unreadable {saved_cfg}") from e
        _take_stored(cfg, saved, f"{what} '{cfg.name}'", emit)
        emit("note", {"text": f"{what} '{cfg.name}' stopped before its first checkpoint: "
                              "starting it from step 0 with its settings"})
    elif ckpt.exists() and not force:
        raise MocohdError(f"{what} '{cfg.name}' already exists ({run}): pass --resume to continue it "
                          "or --force to start over")
    elif not ckpt.exists() and run.is_dir() and any(run.iterdir()):
        emit("note", {"text": f"{what} '{cfg.name}' stopped before its first checkpoint: starting it over"})
    if ck is None and not force:
        _check_export_name(exports, cfg.name)
    if cfg.data is not None:
        if not Path(cfg.data).is_dir():
            raise MocohdError(f"{cfg.data}: not a folder of videos or images")
        cfg.data = str(Path(cfg.data).resolve())
    return ck


def _check_export_name(kind: str, name: str) -> None:
    """A new run exports its model to the store as ``name`` at every checkpoint: refuse
    to start when that would replace a ``kind`` model that did not come from this run
    (one imported, fetched or made by another run), unless the user passes --force."""
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
    raise MocohdError(f"the store already holds {kind} model '{name}' (from {origin}), which this run would replace "
                      "at its first checkpoint: pick another --name, or pass --force to replace it")


def _take_stored(cfg: RunSettings, saved: dict, run: str, emit) -> None:
    """A resume: the stored settings replace those not given; given ones must be
    ``MUTABLE`` or equal to the stored value (else one UsageError naming them all)."""
    given, refused, changed = cfg.given, [], []
    for f in fields(cfg):
        if f.name not in saved or f.name == "name":  # a setting newer than the run keeps its default
            continue
        new, old = getattr(cfg, f.name), saved[f.name]
        if f.name in given and not (new is None and f.default is None):  # None: 'automatic', as not given
            if _comparable(f.name, new) == _comparable(f.name, old):
                pass
            elif f.name in cfg.MUTABLE:
                changed.append(f"{option(f.name)} {old} -> {new}")
                continue
            else:
                refused.append(f.name)
                continue
        setattr(cfg, f.name, old)
    if refused:
        raise UsageError(f"cannot change {', '.join(map(option, refused))} when resuming {run} (it was started with "
                         + ", ".join(f"{option(n)} {saved[n]}" for n in refused)
                         + "): leave them out, or start a new run (another --name, or --force without --resume)")
    if changed:
        emit("note", {"text": f"resuming {run} with " + ", ".join(changed)})


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


def start_run_folder(run: Path, cfg, step: int, fresh: bool) -> None:
    """(Writer rank.) Create the run folder, clear what an earlier start left there
    when starting from step 0 (``fresh``) and the temporary files of a killed save,
    write config.json and drop metric lines past ``step``."""
    run.mkdir(parents=True, exist_ok=True)
    for tmp in run.glob(".*.tmp-*"):  # atomic writes cut by a kill
        tmp.unlink(missing_ok=True)
    if fresh:
        for old in ("checkpoint.pt", "metrics.jsonl"):
            (run / old).unlink(missing_ok=True)
        shutil.rmtree(run / "samples", ignore_errors=True)
    _atomic_text(run / "config.json", json.dumps(asdict(cfg), indent=1))
    _trim_metrics(run / "metrics.jsonl", step)


def restore_rng(generator: torch.Generator, states: list, dist: Dist, reseed: int, emit) -> None:
    """Each rank takes back its own random stream; with another number of
    processes the streams restart from ``reseed`` (models and optimisers stay exact)."""
    if len(states) == dist.world:
        generator.set_state(states[dist.rank])
    else:
        generator.manual_seed(reseed + dist.rank)
        emit("note", {"text": f"resumed with {dist.world} processes instead of {len(states)}: "
                              "random streams restart (the models and optimisers are exact)"})


def _ignore_interrupts(_worker_id: int) -> None:
    """Data workers ignore Ctrl-C (sent to the whole process group): the main
    process finishes its step and saves while they keep serving."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def train(cfg: TrainConfig, resume: bool = False, force: bool = False,
          on_event: Callable[[str, dict], None] | None = None) -> TrainResult:
    """Train (or resume) a motion generator. ``on_event(kind, info)`` reports
    progress on the writer rank: 'prepare' {done, total}, 'start' {...},
    'step' {step, total, losses; every ``log_every`` steps also mean (losses) and it_s},
    'sample' {path}, 'checkpoint' {step}, 'note' {text}.

    ``resume``: continue the run ``cfg.name`` from its checkpoint. The settings
    ``cfg`` was given (``cfg.given``) are checked against the run's: those in
    ``TrainConfig.MUTABLE`` (steps, epochs, device, workers, the ``*_every``,
    sample_videos) change, any other must be equal (else UsageError); the rest
    are the run's. ``force``: start an existing run over."""
    cfg.validate()  # again: fields may have been assigned since the config was made
    dist = Dist.from_env(cfg.device)
    emit = on_event if (on_event and dist.writer) else (lambda kind, info: None)
    try:
        # ---------------------------------------------------------------- the run folder
        if cfg.name is None:
            if cfg.data is None:
                raise UsageError("give --data (and --image), or --name of a run to --resume")
            cfg.name = Path(cfg.data).resolve().name
        store.check_name(cfg.name)
        run = run_dir(cfg.name)
        ckpt_path = run / "checkpoint.pt"
        ck = open_run(cfg, run, resume, force, emit)
        if cfg.data is None or cfg.image is None:
            raise UsageError("--data and --image are required for a new run")
        if ck is None and Path(cfg.image).is_file():  # a generator file: recorded absolute, like the data
            cfg.image = str(Path(cfg.image).resolve())
        if cfg.batch % dist.world:
            raise UsageError(f"--batch {cfg.batch} must be a multiple of the number of processes ({dist.world})")

        device = dist.device
        precision = _resolve_precision(cfg.precision, device)
        enable_tf32(device)

        # ---------------------------------------------------------------- models
        G = load_image_generator(cfg.image, device=device)
        frame_size = cfg.frame_size or min(128, G.resolution)
        if frame_size > G.resolution:
            raise UsageError(f"--frame-size {frame_size} exceeds the image generator's resolution ({G.resolution})")
        cfg.frame_size = frame_size
        labels = tuple(check_pair(None, G, cfg.classes, cfg.truncation)) or None  # the motion model's side below
        if G.c_dim:
            cfg.classes = list(labels) if labels else None
        if dist.writer:
            basis, _, computed = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
            if computed:
                emit("note", {"text": f"fitted the PCA basis of '{G.identity['name']}' ({cfg.pca_samples} samples)"})
        dist.barrier()
        if not dist.writer:
            basis, _, _ = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
        if cfg.init:
            M = load_motion(cfg.init, device="cpu")
            check_pair(M, G, labels, cfg.truncation)
            M = M.retarget(basis.components, basis.stdev)
            M.requires_grad_(True).train()
            cfg.n_pca, cfg.h_dim, cfg.w_residual = M.cfg.n_pca, M.cfg.h_dim, M.cfg.w_residual
        else:
            cfg.n_pca = cfg.n_pca or min(384, G.w_dim, basis.components.shape[0])
            torch.manual_seed(cfg.seed)  # the same initial weights on every rank (rank 0's are broadcast anyway)
            M = MotionGenerator(MotionConfig(w_dim=G.w_dim, noise_dim=G.w_dim, h_dim=cfg.h_dim, n_pca=cfg.n_pca,
                                             w_residual=cfg.w_residual), basis.components, basis.stdev)
        M.to(device)
        torch.manual_seed(cfg.seed + 1)
        gan = MotionGAN(G, M, GANConfig(
            domain=cfg.domain, frames=cfg.frames, frame_size=frame_size,
            g_steps=cfg.g_steps, lr=cfg.lr, gp_weight=cfg.gp_weight, w_match=cfg.w_match, w_mutual=cfg.w_mutual,
            dv_channels=cfg.dv_channels, di_channels=cfg.di_channels, proj_dim=cfg.proj_dim, queue=cfg.queue,
            moco_momentum=cfg.moco_momentum, moco_temperature=cfg.moco_temperature, world_batch=cfg.batch,
            precision=precision, classes=labels, truncation=cfg.truncation), dist, seed=cfg.seed)

        # ---------------------------------------------------------------- data
        span = (cfg.frames - 1) * cfg.time_step + 1
        if dist.writer:
            info = prepare(cfg.data, frame_size=frame_size, min_frames=span,
                           progress=lambda done, total: emit("prepare", {"done": done, "total": total}))
            emit("note", {"text": ("reused the clip cache: " if info.reused else "prepared: ") + info.summary()})
        dist.barrier()
        if not dist.writer:
            info = prepare(cfg.data, frame_size=frame_size, min_frames=span)
        dataset = ClipDataset(info.cache, frames=cfg.frames, time_step=cfg.time_step)
        sampler = EpochSampler(len(dataset), cfg.batch // dist.world, dist.rank, dist.world, cfg.seed)
        per_epoch = sampler.batches_per_epoch()
        total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
        if total < 1:
            raise MocohdError("--steps / --epochs must give at least one step")

        # ---------------------------------------------------------------- state
        step = 0
        if ck is not None:
            gan.load_state_dict(ck["gan"])
            step = int(ck["step"])
            restore_rng(gan.rng, ck["rng"], dist, cfg.seed * 7919 + 104729 * step, emit)
        if dist.writer:
            start_run_folder(run, cfg, step, fresh=ck is None)
        ident = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}

        def export() -> None:
            model = motion_model(gan.M, ident, {"format": "mocohd-train", "run": cfg.name, "step": step,
                                                "domain": cfg.domain, "data": Path(cfg.data).name,
                                                **({"classes": cfg.classes} if cfg.classes else {}),
                                                **({"truncation": cfg.truncation} if cfg.truncation != 1 else {})})
            store_model(model, cfg.name, str(run), overwrite=True)

        def save() -> None:
            states = dist.gather_objects(gan.rng.get_state())
            dist.check_in_sync(gan.M, gan.D_V, gan.D_I, step=step)
            if dist.writer:
                _atomic_torch_save({"version": CHECKPOINT_VERSION, "step": step, "config": json.dumps(asdict(cfg)),
                                    "gan": gan.state_dict(), "rng": states}, ckpt_path)
                export()
                emit("checkpoint", {"step": step})
            dist.barrier()

        def sample() -> None:
            if dist.writer:
                path = _write_samples(gan, G, run / "samples" / f"step_{step:07d}.mp4", cfg)
                emit("sample", {"path": path})

        sampler.epoch, sampler.start = divmod(step, per_epoch)  # resume mid-epoch
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler,
            num_workers=cfg.workers, pin_memory=device.type == "cuda", worker_init_fn=_ignore_interrupts,
            persistent_workers=False, multiprocessing_context="spawn" if cfg.workers and dist.enabled else None)
        emit("start", {"run": run, "step": step, "total": total, "per_epoch": per_epoch, "videos": len(dataset),
                       "device": str(device), "world": dist.world, "precision": precision, "domain": cfg.domain,
                       "n_pca": cfg.n_pca, "frame_size": frame_size})

        # ---------------------------------------------------------------- the loop
        loop = Loop(run, dist, cfg, per_epoch, emit, save, sample, "try a lower --lr or --precision fp32")
        with _StopFlag() as stop:
            batches = iter(loader)
            while step < total:
                x = to_model_input(next(batches), device)
                step += 1
                if loop.after(step, total, gan.iteration(x), stop):
                    break
            del batches
        loop.finish(step)
        last, interrupted = loop.last, loop.interrupted
        return TrainResult(run, store.store_path("motion", cfg.name), step, total, interrupted, last, dist.writer)
    finally:
        dist.close()


class Loop:
    """What a training loop does after each step, the same for every trainer:
    mean losses to metrics.jsonl every ``log_every`` steps, a 'step' event,
    a stop on a non-finite loss (keeping the last good checkpoint), sample output, a clean stop
    on Ctrl-C (every rank agrees), periodic and final checkpoints."""

    def __init__(self, run: Path, dist: Dist, cfg, per_epoch: int, emit, save, sample, hint: str):
        self.run, self.dist, self.cfg, self.per_epoch = run, dist, cfg, per_epoch
        self.emit, self.save, self.sample, self.hint = emit, save, sample, hint
        self.sums: dict[str, float] = {}
        self.count, self.t0, self.last, self.interrupted = 0, time.perf_counter(), {}, False

    def after(self, step: int, total: int, losses: dict[str, float], stop: "_StopFlag") -> bool:
        """Book-keeping after ``step``; True when the loop must stop (interrupted)."""
        cfg, dist = self.cfg, self.dist
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        event = {"step": step, "total": total, "losses": losses}
        if step % cfg.log_every == 0 or step == total:
            dt = time.perf_counter() - self.t0
            self.last = {k: v / self.count for k, v in self.sums.items()}
            event.update(mean=self.last, it_s=self.count / dt)
            if dist.writer:
                _append_metrics(self.run / "metrics.jsonl", {"step": step, "epoch": step / self.per_epoch,
                                                             "it_s": self.count / dt, **self.last})
            self.sums, self.count, self.t0 = {}, 0, time.perf_counter()
        self.emit("step", event)
        if dist.any(not all(math.isfinite(v) for v in losses.values())):  # the last checkpoint stays as it was
            raise MocohdError(f"training diverged at step {step} (a loss is not finite); {self.hint}, "
                              "and --resume from the last checkpoint")
        if step % cfg.sample_every == 0:
            self.sample()
        if dist.any(stop.set) and step < total:
            self.interrupted = True
            self.save()
            return True
        if step % cfg.save_every == 0 or step == total:
            self.save()
        return False

    def finish(self, step: int) -> None:
        if not self.interrupted and step % self.cfg.sample_every:
            self.sample()


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
    _atomic_text(path, "".join(line + "\n" for line in keep))


def _write_samples(gan: MotionGAN, G, path: Path, cfg: TrainConfig) -> Path:
    """A grid of ``sample_videos`` fixed-seed videos of 2 x frames steps."""
    M = gan.M
    was = M.training
    M.eval()
    try:
        frames = render_frames(M, G, frames=2 * cfg.frames, videos=cfg.sample_videos, seed=cfg.seed,
                               truncation=cfg.truncation, classes=gan.cfg.classes and list(gan.cfg.classes))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_videos(frames, path, "mp4", 8.0, cfg.sample_videos, grid=True)
    finally:
        M.train(was)
    return path
