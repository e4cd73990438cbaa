"""Motion training (``mocohd train``): MoCoGAN-HD's motion generator learns to
walk a frozen image generator's latent space so that its clips look like the
videos of a data folder.

    from mocohd_cli.train import TrainConfig, train
    result = train(TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000))
    result.motion          # the exported motion model, also in the store as 'voxceleb'

A step is one iteration of the official schedule (``g_steps`` updates of the
motion generator, then one of each discriminator: ``motion_gan.MotionGAN``) on one
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
from ..data.trajectories import TrajectoryClips, encode_dataset
from ..errors import MocohdError, UsageError
from ..frames import check_pair
from ..loaders import load_image_generator, store_model
from ..loaders.detector_models import load_detector
from ..loaders.encoder_models import load_encoder
from ..loaders.motion_models import load_motion, motion_model
from ..loaders.pca_bases import pca_for
from ..metrics.evaluate import DEFAULT_SIZE, check_real, evaluate, prepare_data
from ..motion import MotionConfig, MotionGenerator
from ..render import render_frames
from ..stopping import GracefulStop
from ..video import write_videos
from .config import ARCHITECTURE, MAX_FRAME_SIZE, TrainConfig, setting
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
    writer rank; ``resume``, ``force`` and the events: ``run.open_run``. ``cfg`` stays as it was:
    the run's settings, every derived value filled in, are the result's ``config``."""
    with open_run(cfg, resume, force, on_event) as run:
        cfg, G, gan = _build(run)
        run.cfg = cfg  # settled: what config.json and the checkpoints record
        info = run.prepare(cfg.frame_size, min_frames=(cfg.frames - 1) * cfg.time_step + 1, cache="clip cache")
        dataset = _dataset(run, info.cache, G)
        loader = run.loader(dataset, cfg.batch // run.dist.world)
        per_epoch = loader.batch_sampler.batches_per_epoch()
        total = _total_steps(cfg, per_epoch)
        start = run.restore(gan.rng, lambda ck: gan.load_state_dict(ck["gan"]))
        if start == 0 and cfg.osc_init == "data":  # every rank fits the same bank from the same data
            run.note(gan.fit_bank(dataset.tiled()))
        exports = _exports(run, gan, G, dataset)
        i3d = _fvd16_detector(run, G) if cfg.eval_every else None
        run.started(
            start, total, per_epoch, videos=len(dataset), domain=cfg.domain, n_pca=cfg.n_pca, frame_size=cfg.frame_size
        )

        step, interrupted = start, False
        with GracefulStop() as stop:
            batches = run.batches(loader, start)
            for step in range(start + 1, total + 1):  # step: the iterations done once this one is
                losses = gan.iteration(*_inputs(next(batches), run.device))
                run.log_step(step, losses)
                run.check_finite(step, losses, hint="try a lower lr or precision fp32")
                if step % cfg.sample_every == 0:
                    _sample(run, gan, G, step)
                interrupted = run.dist.any(stop.requested) and step < total  # every rank stops at the same step
                if interrupted or step % cfg.save_every == 0 or step == total:
                    run.save_checkpoint(step, gan, {"gan": gan.state_dict(), "exported": exports.sha256})
                    if run.dist.writer:
                        exports.checkpoint(step)  # the monitor's record, the model to the store
                    run.checkpointed(step)
                if interrupted:
                    break
                if cfg.eval_every and step % cfg.eval_every == 0:
                    values = _fvd16(run, gan, G, i3d)
                    exports.evaluated(step, values)  # --keep-best by fvd16
                    run.report("eval", step, values)
            del batches  # its worker processes stop here, still under the graceful stop
        if not interrupted and step % cfg.sample_every:  # the samples of the last step
            _sample(run, gan, G, step)
        keeper = exports.keeper
        return TrainResult(
            run.folder,
            store.store_path("motion", cfg.name),
            step,
            total,
            interrupted,
            run.losses,
            run.dist.writer,
            keeper.best if keeper is not None else None,
            cfg,
        )


def _build(run: Run) -> tuple[TrainConfig, object, MotionGAN]:
    """The run's settings with every value derived from its models (a new copy: the caller's
    config stays as it was), the frozen image generator and the GAN to train."""
    cfg = run.cfg
    if run.checkpoint is None and Path(cfg.image).is_file():  # a generator file: recorded absolute, like the data
        cfg = cfg.replace(image=str(Path(cfg.image).resolve()))
    init = None
    if cfg.init:  # before any work: the model's architecture against the settings given
        init = load_motion(cfg.init, device="cpu")
        if run.checkpoint is None:
            cfg = cfg.take_init(init.cfg, cfg.init)
    G = load_image_generator(cfg.image, device=run.device)
    cfg = cfg.replace(frame_size=cfg.frame_size or min(MAX_FRAME_SIZE, G.resolution))
    if cfg.frame_size > G.resolution:
        raise UsageError(
            f"{setting('frame_size')} must be at most the image generator's resolution "
            f"({G.resolution}), got {cfg.frame_size}"
        )
    labels = tuple(check_pair(None, G, cfg.classes, cfg.truncation)) or None  # the motion model's side below
    if G.c_dim:
        cfg = cfg.replace(classes=list(labels) if labels else None)
    cfg, M = _motion_generator(cfg, G, run, init)
    if cfg.osc_fixed_directions:  # only the sizes and periods of the bank train
        M.osc_frame.requires_grad_(False)
    cfg = cfg.replace(motion_d=cfg.motion_d or ("both" if cfg.encoder else "pixels"))
    run.note(f"motion judged by {JUDGES[cfg.motion_d]}{ENCODED_FAKES if cfg.encode_fakes else ''}")
    M = M.to(run.device)
    torch.manual_seed(cfg.seed + 1)
    gan_cfg = GANConfig.from_train(cfg, precision=run.precision, classes=labels)
    # the fakes' frames encoded, or the encoder's gain measured
    E = load_encoder(cfg.encoder, G, device=run.device) if cfg.encode_fakes or cfg.calibrate_encoder else None
    return cfg, G, MotionGAN(G, M, gan_cfg, run.dist, seed=cfg.seed, encoder=E)


JUDGES = {
    "pixels": "the pixel discriminators (the authors' recipe)",
    "latent": "the latent discriminator, against the real clips' encoded trajectories",
    "both": "the pixel discriminators and the latent discriminator (the real clips' encoded trajectories)",
}
ENCODED_FAKES = "; the fakes' frames are encoded too"


def _dataset(run: Run, clips, G) -> ClipDataset:
    """The real clips; with an encoder, each with its frames' latent trajectory (encoded once, writer
    first, and cached beside the clips: ``data.trajectories``), and the fakes start where they do."""
    cfg = run.cfg
    if not cfg.encoder:
        return ClipDataset(clips, frames=cfg.frames, time_step=cfg.time_step)
    E = load_encoder(cfg.encoder, G, device=run.device)

    def work(writer: bool):
        progress = (lambda done, total: run.emit("prepare", {"done": done, "total": total})) if writer else None
        return encode_dataset(cfg.data, E, progress=progress)

    trajectories = run.writer_first(work)
    if trajectories.change_note():
        run.note(trajectories.change_note())
    return TrajectoryClips(clips, trajectories, frames=cfg.frames, time_step=cfg.time_step)


def _inputs(batch, device) -> tuple[torch.Tensor, ...]:
    """A loader's batch -> the GAN's inputs: the clips [B, T, 3, S, S] in [-1, 1] (and their trajectories)."""
    if isinstance(batch, (list, tuple)):
        return to_model_input(batch[0], device), batch[1].to(device)
    return (to_model_input(batch, device),)


def _total_steps(cfg: TrainConfig, per_epoch: int) -> int:
    """The step the run trains to: ``steps``, else ``epochs`` x ``per_epoch``."""
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    if total < 1:
        raise MocohdError("steps / epochs must give at least one step")
    return total


@dataclass
class _Exports:
    """The motion model's way to the store (writer rank). At every checkpoint the monitor's record
    (--monitor), then the export; with --keep-best only at a step better than the best so far, by
    the monitor's distance or by fvd16 (then the latest until the first evaluation)."""

    run: Run
    gan: MotionGAN
    image: dict  # the image generator's identity, recorded in the exported model
    monitor: Monitor | None
    keeper: KeepBest | None
    # the weights sha256 of the last export, kept in the checkpoints: with --keep-best the store may hold
    # an earlier step than the checkpoint, and `mocohd eval` appends to a run only what it made
    sha256: str | None

    def export(self, step: int) -> None:
        """The motion model as it is, to the store as the run's name."""
        cfg = self.run.cfg
        source = {
            "format": "mocohd-train",
            "run": cfg.name,
            "step": step,
            "domain": cfg.domain,
            "data": Path(cfg.data).name,
            **({"classes": cfg.classes} if cfg.classes else {}),
            **({"truncation": cfg.truncation} if cfg.truncation != 1 else {}),
        }
        model = motion_model(self.gan.exported, self.image, source)
        self.sha256 = store_model(model, cfg.name, str(self.run.folder), overwrite=True).weights_sha256

    def checkpoint(self, step: int) -> None:
        """At a checkpoint: the monitor's record (metrics.jsonl, a 'monitor' event), then the export."""
        record = None
        if self.monitor is not None:
            record = self.monitor(step)
            self.run.report("monitor", step, record)
        keeper = self.keeper
        if keeper is None or (keeper.criterion == "fvd16" and keeper.best is None):
            self.export(step)
        elif keeper.criterion == "monitor distance":
            keeper.offer(step, record["distance"], self.export)

    def evaluated(self, step: int, values: dict) -> None:
        """After an evaluation ({metric: value}): --keep-best by fvd16 exports a better step."""
        if self.keeper is not None and self.keeper.criterion == "fvd16":
            self.keeper.offer(step, values.get("fvd16"), self.export)


def _exports(run: Run, gan: MotionGAN, G, dataset: ClipDataset) -> _Exports:
    """The run's ``_Exports``: its monitor and keeper on the writer rank, with the real clips'
    statistics measured once, before training (the other ranks wait)."""
    cfg = run.cfg
    watch = cfg.monitor or cfg.keep_best
    monitor = keeper = None
    if watch and run.dist.writer:
        monitor = Monitor(
            gan,
            dataset,
            seed=cfg.seed,
            domain=cfg.domain,
            clips=cfg.monitor_clips,
            cache=run.folder / "monitor_real.json",
            note=run.note,
            progress=lambda done, total: run.emit("invert", {"done": done, "total": total}),
        )
        if cfg.keep_best:
            criterion = "fvd16" if cfg.eval_every else "monitor distance"
            keeper = KeepBest(run.folder / "best", criterion, fresh=run.checkpoint is None, note=run.note)
    if watch:
        run.writer_first(lambda writer: monitor.prepare() if writer else None)
    if not cfg.keep_best and run.dist.writer:  # the store will hold the latest checkpoint
        (run.folder / "best").unlink(missing_ok=True)
    image = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}
    return _Exports(run, gan, image, monitor, keeper, sha256=(run.checkpoint or {}).get("exported"))


def _fvd16_detector(run: Run, G):
    """--eval-every's I3D detector. A missing detector or data too short for fvd16 fail now,
    not at the first evaluation."""
    cfg = run.cfg
    i3d = load_detector("i3d", device=run.device)
    size = min(G.resolution, DEFAULT_SIZE)
    check_real(prepare_data(cfg.data, size, run.dist), "fvd16", cfg.eval_videos, cfg.seed, where=cfg.data)
    return i3d


def _fvd16(run: Run, gan: MotionGAN, G, i3d) -> dict:
    """fvd16 of the motion model as it is, against the run's data (real statistics cached), on every rank."""
    cfg = run.cfg
    M = gan.exported
    was = M.training
    M.eval()
    try:
        results = evaluate(
            ["fvd16"],
            cfg.data,
            M=M,
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
        M.train(was)
    return {r.metric: r.value for r in results}


def _motion_generator(
    cfg: TrainConfig, G, run: Run, init: MotionGenerator | None = None
) -> tuple[TrainConfig, MotionGenerator]:
    """The motion generator to train, in the PCA basis of ``G`` (fitted on the writer rank
    first when not cached), and the settings with its sizes: a new one (seeded: the same on every
    rank) or ``init``, the model of ``cfg.init``, re-expressed in that basis, whose sizes the run
    then takes (a new run has checked them against the settings given: ``TrainConfig.take_init``)."""

    def basis_of(writer: bool):
        basis, _, computed = pca_for(cfg.image, G=G, samples=cfg.pca_samples)
        if writer and computed:
            run.note(f"fitted the PCA basis of '{G.identity['name']}' ({cfg.pca_samples} samples)")
        return basis

    basis = run.writer_first(basis_of)
    if init is not None:
        check_pair(init, G, cfg.classes, cfg.truncation)
        M = init.retarget(basis.components, basis.stdev, basis.mean)
        cfg = cfg.replace(**{key: getattr(M.cfg, key) for key in ARCHITECTURE})
        return cfg, M.requires_grad_(True).train()
    cfg = cfg.replace(n_pca=cfg.n_pca or min(MotionConfig.n_pca, G.w_dim, basis.components.shape[0]))
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (rank 0's are broadcast anyway)
    cfg = cfg.replace(noise_dim=cfg.noise_dim or max(G.w_dim, cfg.oscillators))  # the authors': w size
    M = MotionGenerator(
        MotionConfig(
            w_dim=G.w_dim,
            noise_dim=cfg.noise_dim,
            h_dim=cfg.h_dim,
            n_pca=cfg.n_pca,
            w_residual=cfg.w_residual,
            oscillators=cfg.oscillators,
            osc_basis=cfg.osc_basis,
        ),
        basis.components,
        basis.stdev,
        basis.mean,
    )
    return cfg, M


def _sample(run: Run, gan: MotionGAN, G, step: int) -> None:
    """The samples of ``step`` (writer rank) and their 'sample' event."""
    if run.dist.writer:
        run.emit("sample", {"path": _write_samples(gan, G, run.sample_path(step, ".mp4"), run.cfg)})


def _write_samples(gan: MotionGAN, G, path: Path, cfg: TrainConfig) -> Path:
    """A grid of ``sample_videos`` fixed-seed videos of 2 x frames steps (of the exported model)."""
    M = gan.exported
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
