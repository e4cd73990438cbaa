"""Motion training (``mocohd train``): MoCoGAN-HD's motion generator learns to
walk a frozen image generator's latent space so that its clips look like the
videos of a data folder.

    from mocohd_cli.train import TrainConfig, train
    result = train(TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000))
    result.motion          # the exported motion model, also in the store as 'voxceleb'

A step is one iteration of the official schedule (``g_steps`` updates of the
motion generator, then one of each discriminator: ``steps.MotionGAN``) on one
global batch; ``epochs`` counts passes over the videos (one clip per video per
epoch). The run (its folder, checkpoints, resume, Ctrl-C, events) is
``run.open_run``'s; the run folder's samples are grids of fixed-seed videos.
With ``monitor`` each checkpoint also measures the motion against the real
clips (``monitor``: metrics.jsonl, 'monitor' events); with ``keep_best`` the
store keeps the best checkpoint by that measure (or fvd16) instead of the latest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import store
from ..data import ClipDataset, to_model_input
from ..errors import MocohdError, UsageError
from ..frames import check_pair
from ..loaders import load_image_generator, store_model
from ..loaders.detector_models import load_detector
from ..loaders.motion_models import load_motion, motion_model
from ..loaders.pca_bases import pca_for
from ..metrics.evaluate import DEFAULT_SIZE, check_real, evaluate, prepare_data
from ..motion import MotionConfig, MotionGenerator
from ..render import render_frames
from ..video import write_videos
from .config import MAX_FRAME_SIZE, TrainConfig, setting
from .monitor import KeepBest, Monitor
from .motion_gan import GANConfig, MotionGAN
from .run import Run, open_run


@dataclass
class TrainResult:
    run: Path
    motion: Path  # the exported motion model
    step: int
    total: int
    interrupted: bool = False
    losses: dict = field(default_factory=dict)
    writer: bool = True  # False on the ranks > 0 of a torchrun job (they print nothing)
    kept: dict | None = None  # --keep-best: the exported step {step, criterion, value} (None: the latest)
    config: TrainConfig | None = None  # the run's settings, every derived value filled in (its config.json)


def train(
    cfg: TrainConfig, resume: bool = False, force: bool = False, on_event: Callable[[str, dict], None] | None = None
) -> TrainResult:
    """Train (or resume) a motion generator. ``on_event(kind, info)`` reports progress on the
    writer rank; ``resume``, ``force`` and the events: ``run.open_run``."""
    with open_run(cfg, resume, force, on_event) as run:
        if run.checkpoint is None and Path(cfg.image).is_file():  # a generator file: recorded absolute, like the data
            cfg.image = str(Path(cfg.image).resolve())
        init = None
        if cfg.init:  # before any work: the model's architecture against the settings given
            init = load_motion(cfg.init, device="cpu")
            if run.checkpoint is None:
                cfg.take_init(init.cfg, cfg.init)
        G = load_image_generator(cfg.image, device=run.device)
        cfg.frame_size = cfg.frame_size or min(MAX_FRAME_SIZE, G.resolution)
        if cfg.frame_size > G.resolution:
            raise UsageError(
                f"{setting('frame_size')} must be at most the image generator's resolution "
                f"({G.resolution}), got {cfg.frame_size}"
            )
        labels = tuple(check_pair(None, G, cfg.classes, cfg.truncation)) or None  # the motion model's side below
        if G.c_dim:
            cfg.classes = list(labels) if labels else None
        M = _motion_generator(cfg, G, run, init).to(run.device)
        torch.manual_seed(cfg.seed + 1)
        gan = MotionGAN(
            G, M, GANConfig.from_train(cfg, precision=run.precision, classes=labels), run.dist, seed=cfg.seed
        )

        info = run.prepare(cfg.frame_size, min_frames=(cfg.frames - 1) * cfg.time_step + 1, cache="clip cache")
        dataset = ClipDataset(info.cache, frames=cfg.frames, time_step=cfg.time_step)
        loader = run.loader(dataset, cfg.batch // run.dist.world)
        per_epoch = loader.batch_sampler.batches_per_epoch()
        total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
        if total < 1:
            raise MocohdError("steps / epochs must give at least one step")
        step = run.restore(gan.rng, lambda ck: gan.load_state_dict(ck["gan"]))
        ident = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}

        # the weights sha256 of the last export, kept in the checkpoints: with --keep-best the store may hold
        # an earlier step than the checkpoint, and `mocohd eval` appends to a run only what it made
        exported = {"sha256": (run.checkpoint or {}).get("exported")}

        def export_model(step: int) -> None:
            source = {
                "format": "mocohd-train",
                "run": cfg.name,
                "step": step,
                "domain": cfg.domain,
                "data": Path(cfg.data).name,
                **({"classes": cfg.classes} if cfg.classes else {}),
                **({"truncation": cfg.truncation} if cfg.truncation != 1 else {}),
            }
            header = store_model(motion_model(gan.M, ident, source), cfg.name, str(run.folder), overwrite=True)
            exported["sha256"] = header.weights_sha256

        watch = cfg.monitor or cfg.keep_best
        monitor = keeper = None
        if watch and run.dist.writer:

            def note(text: str) -> None:
                run.emit("note", {"text": text})

            monitor = Monitor(
                gan,
                dataset,
                seed=cfg.seed,
                domain=cfg.domain,
                clips=cfg.monitor_clips,
                cache=run.folder / "monitor_real.json",
                note=note,
                progress=lambda done, total: run.emit("invert", {"done": done, "total": total}),
            )
            if cfg.keep_best:
                keeper = KeepBest(
                    run.folder / "best",
                    "fvd16" if cfg.eval_every else "monitor distance",
                    fresh=run.checkpoint is None,
                    note=note,
                )
        if watch:  # the real clips' statistics, once, before training (the other ranks wait)
            run.writer_first(lambda writer: monitor.prepare() if writer else None)
        if not cfg.keep_best and run.dist.writer:  # the store will hold the latest checkpoint
            (run.folder / "best").unlink(missing_ok=True)

        def export(step: int) -> None:
            """At every checkpoint (writer rank): the monitor's record, then the export (--keep-best:
            only a better step; with fvd16 as the criterion, the latest until the first evaluation)."""
            record = None
            if monitor is not None:
                record = monitor(step)
                run.report("monitor", step, record)
            if keeper is None or (keeper.criterion == "fvd16" and keeper.best is None):
                export_model(step)
            elif keeper.criterion == "monitor distance":
                keeper.offer(step, record["distance"], export_model)

        def sample(step: int) -> Path:
            return _write_samples(gan, G, run.folder / "samples" / f"step_{step:07d}.mp4", cfg)

        i3d = None
        if cfg.eval_every:  # a missing detector or data too short for fvd16: fail now, not at the first evaluation
            i3d = load_detector("i3d", device=run.device)
            size = min(G.resolution, DEFAULT_SIZE)
            check_real(prepare_data(cfg.data, size, run.dist), "fvd16", cfg.eval_videos, cfg.seed, where=cfg.data)

        def evaluate_now(step: int) -> dict:
            """fvd16 of the motion model as it is, against the run's data (real statistics cached)."""
            was = gan.M.training
            gan.M.eval()
            try:
                results = evaluate(
                    ["fvd16"],
                    cfg.data,
                    M=gan.M,
                    G=G,
                    videos=cfg.eval_videos,
                    seed=cfg.seed,
                    truncation=cfg.truncation,
                    device=run.device,
                    dist=run.dist,
                    classes=gan.cfg.classes and list(gan.cfg.classes),
                    detectors={"i3d": i3d},
                )
            finally:
                gan.M.train(was)
            values = {r.metric: r.value for r in results}
            if keeper is not None and keeper.criterion == "fvd16":
                keeper.offer(step, values.get("fvd16"), export_model)
            return values

        run.started(
            step, total, per_epoch, videos=len(dataset), domain=cfg.domain, n_pca=cfg.n_pca, frame_size=cfg.frame_size
        )
        loop = run.train(
            gan,
            loader,
            step,
            total,
            inputs=lambda batch: to_model_input(batch, run.device),
            state=lambda: {"gan": gan.state_dict(), "exported": exported["sha256"]},
            export=export,
            sample=sample,
            hint="try a lower lr or precision fp32",
            evaluate=evaluate_now if cfg.eval_every else None,
        )
        return TrainResult(
            run.folder,
            store.store_path("motion", cfg.name),
            loop.step,
            total,
            loop.interrupted,
            loop.last,
            run.dist.writer,
            keeper.best if keeper is not None else None,
            cfg,
        )


def _motion_generator(cfg: TrainConfig, G, run: Run, init: MotionGenerator | None = None) -> MotionGenerator:
    """The motion generator to train, in the PCA basis of ``G`` (fitted on the writer rank
    first when not cached): a new one (seeded: the same on every rank) or ``init``, the model
    of ``cfg.init``, re-expressed in that basis, whose sizes the run then takes (a new run has
    checked them against the settings given: ``TrainConfig.take_init``)."""

    def basis_of(writer: bool):
        basis, _, computed = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
        if writer and computed:
            run.emit("note", {"text": f"fitted the PCA basis of '{G.identity['name']}' ({cfg.pca_samples} samples)"})
        return basis

    basis = run.writer_first(basis_of)
    if init is not None:
        M = init
        check_pair(M, G, cfg.classes, cfg.truncation)
        M = M.retarget(basis.components, basis.stdev, basis.mean)
        cfg.n_pca, cfg.h_dim, cfg.w_residual = M.cfg.n_pca, M.cfg.h_dim, M.cfg.w_residual
        cfg.noise_dim, cfg.oscillators = M.cfg.noise_dim, M.cfg.oscillators
        return M.requires_grad_(True).train()
    cfg.n_pca = cfg.n_pca or min(MotionConfig.n_pca, G.w_dim, basis.components.shape[0])
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (rank 0's are broadcast anyway)
    cfg.noise_dim = cfg.noise_dim or max(G.w_dim, cfg.oscillators)  # the authors': w size
    return MotionGenerator(
        MotionConfig(
            w_dim=G.w_dim,
            noise_dim=cfg.noise_dim,
            h_dim=cfg.h_dim,
            n_pca=cfg.n_pca,
            w_residual=cfg.w_residual,
            oscillators=cfg.oscillators,
        ),
        basis.components,
        basis.stdev,
        basis.mean,
    )


def _write_samples(gan: MotionGAN, G, path: Path, cfg: TrainConfig) -> Path:
    """A grid of ``sample_videos`` fixed-seed videos of 2 x frames steps."""
    M = gan.M
    was = M.training
    M.eval()
    try:
        frames = render_frames(
            M,
            G,
            frames=2 * cfg.frames,
            videos=cfg.sample_videos,
            seed=cfg.seed,
            truncation=cfg.truncation,
            classes=gan.cfg.classes and list(gan.cfg.classes),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_videos(frames, path, "mp4", 8.0, cfg.sample_videos, grid=True)
    finally:
        M.train(was)
    return path
