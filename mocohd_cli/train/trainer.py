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
iteration, saves, and returns.

A step is one iteration of the official schedule (``g_steps`` updates of the
motion generator, then one of each discriminator) on one global batch;
``epochs`` counts passes over the videos (one clip per video per epoch).
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch

from .. import store
from ..errors import MocohdError
from ..runtime import enable_tf32
from .distributed import Dist
from .steps import GANConfig, MotionGAN

CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
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
    from ..formats.canonical import atomic_writer

    with atomic_writer(path) as f:
        torch.save(obj, f)


def _atomic_text(path: Path, text: str) -> None:
    from ..formats.canonical import atomic_write_bytes

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


def open_run(cfg, run: Path, resume: bool, force: bool, mutable: tuple[str, ...], what: str = "run") -> dict | None:
    """Check a run folder before any work: with ``resume``, load its checkpoint and
    take the run's settings into ``cfg`` (except the ``mutable`` ones given);
    otherwise refuse to overwrite an existing run unless ``force``. Fails fast on
    a data folder that does not exist, and records it as an absolute path (a
    resume may start from another folder). Returns the checkpoint, or None."""
    ckpt = run / "checkpoint.pt"
    ck = None
    if resume:
        if not ckpt.is_file():
            raise MocohdError(f"{what} '{cfg.name}' has no checkpoint to resume ({ckpt})")
        ck = load_checkpoint(ckpt)
        saved = json.loads(ck["config"])
        for f in fields(cfg):
            if f.name in saved and (f.name not in mutable or getattr(cfg, f.name) is None):
                setattr(cfg, f.name, saved[f.name])
    elif ckpt.exists() and not force:
        raise MocohdError(f"{what} '{cfg.name}' already exists ({run}): pass --resume to continue it "
                          "or --force to start over")
    if cfg.data is not None:
        if not Path(cfg.data).is_dir():
            raise MocohdError(f"{cfg.data}: not a folder of videos or images")
        cfg.data = str(Path(cfg.data).resolve())
    return ck


def start_run_folder(run: Path, cfg, step: int, fresh: bool) -> None:
    """(Writer rank.) Create the run folder, clear an old run's files when starting over
    (``fresh``), write config.json and drop metric lines past ``step``."""
    run.mkdir(parents=True, exist_ok=True)
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
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise MocohdError("--precision must be auto, fp32, bf16 or fp16")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def train(cfg: TrainConfig, resume: bool = False, force: bool = False,
          on_event: Callable[[str, dict], None] | None = None) -> TrainResult:
    """Train (or resume) a motion generator. ``on_event(kind, info)`` reports
    progress on the writer rank: 'prepare' {done, total}, 'start' {...},
    'step' {step, total, losses, it_s}, 'sample' {path}, 'checkpoint' {step},
    'note' {text}."""
    from ..data import ClipDataset, EpochSampler, prepare, to_model_input
    from ..models import load_image_generator
    from ..motion import MotionConfig, MotionGenerator, load_motion, motion_model
    from ..pca import pca_for

    dist = Dist.from_env(cfg.device)
    emit = on_event if (on_event and dist.writer) else (lambda kind, info: None)
    try:
        # ---------------------------------------------------------------- the run folder
        if cfg.name is None:
            if cfg.data is None:
                raise MocohdError("give --data (and --image), or --name of a run to --resume")
            cfg.name = Path(cfg.data).resolve().name
        store.check_name(cfg.name)
        run = run_dir(cfg.name)
        ckpt_path = run / "checkpoint.pt"
        ck = open_run(cfg, run, resume, force, ("steps", "epochs", "device", "workers", "save_every", "sample_every",
                                                 "log_every", "sample_videos"))
        if cfg.data is None or cfg.image is None:
            raise MocohdError("--data and --image are required for a new run")
        if ck is None and Path(cfg.image).exists():  # a generator file: recorded absolute, like the data
            cfg.image = str(Path(cfg.image).resolve())
        if cfg.domain not in ("cross", "in"):
            raise MocohdError("--domain must be cross or in")
        if cfg.batch < 1 or cfg.batch % dist.world:
            raise MocohdError(f"--batch {cfg.batch} must be a positive multiple of the number of processes ({dist.world})")
        if cfg.frames < 2 or cfg.time_step < 1 or cfg.g_steps < 1:
            raise MocohdError("--frames must be >= 2, --time-step and --g-steps >= 1")

        device = dist.device
        precision = _resolve_precision(cfg.precision, device)
        enable_tf32(device)

        # ---------------------------------------------------------------- models
        G = load_image_generator(cfg.image, device=device)
        frame_size = cfg.frame_size or min(128, G.resolution)
        if frame_size > G.resolution:
            raise MocohdError(f"--frame-size {frame_size} exceeds the image generator's resolution ({G.resolution})")
        cfg.frame_size = frame_size
        labels = None
        if G.c_dim:
            from ..generators.biggan import parse_classes

            labels = tuple(parse_classes(cfg.classes, G.c_dim)) or None
            cfg.classes = list(labels) if labels else None
            if not 0 < cfg.truncation <= 1:
                raise MocohdError(f"--truncation must be in (0, 1] for {G.family}, got {cfg.truncation}")
        elif cfg.classes:
            raise MocohdError(f"--class is for class-conditional generators (BigGAN); '{cfg.image}' is unconditional")
        if cfg.truncation <= 0:
            raise MocohdError("--truncation must be positive")
        if dist.writer:
            basis, _, computed = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
            if computed:
                emit("note", {"text": f"fitted the PCA basis of '{G.identity['name']}' ({cfg.pca_samples} samples)"})
        dist.barrier()
        if not dist.writer:
            basis, _, _ = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
        if cfg.init:
            M = load_motion(cfg.init, device="cpu")
            M = M.retarget(basis.components, basis.stdev)
            M.requires_grad_(True).train()
            cfg.n_pca, cfg.h_dim, cfg.w_residual = M.cfg.n_pca, M.cfg.h_dim, M.cfg.w_residual
            if M.cfg.w_dim != G.w_dim:
                raise MocohdError(f"--init {cfg.init} moves in a {M.cfg.w_dim}-d space, '{cfg.image}' has a {G.w_dim}-d w")
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
            start_run_folder(run, cfg, step, fresh=ck is None and force)
        ident = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}

        def export() -> None:
            from ..models import store_model

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
        if step % cfg.log_every == 0 or step == total:
            dt = time.perf_counter() - self.t0
            self.last = {k: v / self.count for k, v in self.sums.items()}
            if dist.writer:
                _append_metrics(self.run / "metrics.jsonl", {"step": step, "epoch": step / self.per_epoch,
                                                             "it_s": self.count / dt, **self.last})
            self.sums, self.count, self.t0 = {}, 0, time.perf_counter()
        self.emit("step", {"step": step, "total": total, "losses": losses})
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
    from ..render import render_frames, write_videos

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
