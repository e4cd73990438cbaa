"""The training commands: `mocohd prepare` (the clip cache), `train` (a motion model) and
`train-image` (a StyleGAN2 image generator). Their defaults are the configs' (``TrainConfig``,
``ImageTrainConfig``): the command line shows them and passes only the options it was given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

from ..data import prepare as prepare_data
from ..data.trajectories import encode_dataset
from ..errors import UsageError
from ..loaders.encoder_models import load_encoder
from ..train import TrainConfig, train as train_motion
from ..train.image_trainer import ImageTrainConfig, train_image as train_images
from .console import out
from .options import (
    DEVICES,
    Deterministic,
    Device,
    Image,
    LogEvery,
    Name,
    StartOver,
    TrainSeed,
    Workers,
    given,
    option as _opt,
)
from .progress import Training, bar

# `mocohd prepare`
PrepareData = _opt(Path, "--data", help="Folder of videos and/or frame folders.")
PrepareSize = _opt(int, "--frame-size", help="Square frame size of the training clips.")
PrepareFrames = _opt(int, "--frames", help="Frames per clip (videos too short for one clip are skipped).")
PrepareStep = _opt(int, "--time-step", help="Take every n-th frame.")
Redecode = _opt(bool, "--force", help="Decode again even if the cache exists.")
Encode = _opt(
    str | None,
    "--encode",
    help="Also encode every frame with this image encoder (mocohd train-encoder): the latent trajectories that "
    "train --encoder reads.",
)
EncodeDevice = _opt(str, "--device", help=f"Where --encode runs: {DEVICES}.")


def prepare(
    data: PrepareData,
    frame_size: PrepareSize = 128,
    frames: PrepareFrames = 16,
    time_step: PrepareStep = 2,
    force: Redecode = False,
    encode: Encode = None,
    device: EncodeDevice = "auto",
):
    """Decode a video dataset once into the clip cache that training reads."""
    if frames < 1 or time_step < 1:
        raise UsageError("--frames and --time-step must be positive")
    E = load_encoder(encode, device=device) if encode else None  # a bad name fails before any decoding
    with bar("decoding videos", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("prepare", total=None)
        info = prepare_data(
            data,
            frame_size=frame_size,
            min_frames=(frames - 1) * time_step + 1,
            force=force,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    out.print(("reused the clip cache: " if info.reused else "prepared: ") + info.summary(), soft_wrap=True)
    if E is not None:
        _encode(data, E, force)


def _encode(data: Path, E, force: bool) -> None:
    """The dataset's latent trajectories (``data.trajectories``), with a progress bar and one line."""
    with bar("encoding frames", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("encode", total=None)
        cache = encode_dataset(
            data, E, force=force, progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    frames = sum(v["frames"] for v in cache.videos.values())
    what = cache.change_note() or "latent trajectories reused"
    out.print(
        f"{what}: {len(cache.videos)} videos, {frames} frames encoded by {E.name} (space {E.cfg.space}) "
        f"in {cache.folder}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


@dataclass(frozen=True)
class Trainer:
    """What `train` and `train-image` differ in: the config and trainer, the progress line (the
    ``describe(info)`` of the start event, the ``shown`` losses), the ``model`` it makes and the
    ``next_step(cfg)`` printed at the end."""

    config: type
    run: Callable
    describe: Callable[[dict], str]
    shown: tuple[str, ...]
    model: str
    next_step: Callable


def run_training(ctx: typer.Context, options: dict, trainer: Trainer) -> None:
    """Build the config of the options the command line gave, run the trainer with a progress
    display and print the result in two lines: where the model went, then how to continue an
    interrupted run or the next step."""
    settings = {k: v for k, v in given(ctx, options).items() if k not in ("resume", "force")}
    cfg = trainer.config(**settings)  # only what the command line gave: the library knows the defaults
    display = Training(trainer.describe, trainer.shown)
    try:
        result = trainer.run(cfg, resume=options["resume"], force=options["force"], on_event=display.on_event)
    finally:
        display.stop()
    if not result.writer:
        return
    cfg = result.config  # the run's own settings (a name taken from the data folder, a resume's values)
    how = "interrupted" if result.interrupted else "finished"
    say = partial(out.print, soft_wrap=True)  # one line each, also in a pipe
    kept = getattr(result, "kept", None)  # --keep-best
    kept = f" (kept step {kept['step']}: {kept['criterion']} {kept['value']:.4g})" if kept else ""
    say(
        f"{how} at step {result.step}/{result.total}; "
        f"{trainer.model} [bold]{cfg.name}[/bold] -> {getattr(result, cfg.EXPORTS)}{kept}"
    )
    say(
        f"continue with: mocohd {ctx.info_name} --name {cfg.name} --resume"
        if result.interrupted
        else trainer.next_step(cfg)
    )


# `mocohd train`, in the order of its --help
Data = _opt(Path | None, "--data", help="Folder of videos and/or frame folders (required for a new run).")
Domain = _opt(str, "--domain", help="cross (image generator trained on other data) or in.")
Steps = _opt(int | None, "--steps", help="Total steps (one step: --g-steps motion updates + one D update).")
Epochs = _opt(int, "--epochs", help="Passes over the videos, when --steps is not given.")
Batch = _opt(int, "--batch", help="Global batch of clips, split across processes.")
LR = _opt(float, "--lr", help="Adam learning rate of every network.")
Frames = _opt(int, "--frames", help="Frames per training clip.")
TimeStep = _opt(int, "--time-step", help="Take every n-th frame of the videos.")
FrameSize = _opt(int | None, "--frame-size", help="Training frame size (default: min(128, resolution)).")
GSteps = _opt(int, "--g-steps", help="Motion generator updates per discriminator update.")
NPCA = _opt(int | None, "--n-pca", help="PCA directions the motion moves along (default: min(384, w size)).")
HDim = _opt(int, "--h-dim", help="LSTM hidden size.")
NoiseDim = _opt(
    int | None,
    "--noise-dim",
    help="Size of the motion noise fed at each step (default: the generator's w size, as the authors).",
)
WResidual = _opt(float, "--w-residual", help="Step weight lambda (0 with --oscillators: only the oscillators move).")
Oscillators = _opt(
    int,
    "--oscillators",
    help="Oscillator bank of the motion model: K movements with learned periods and independent random phases "
    "(0: the authors' LSTM alone; see docs/training.md).",
)
OscBasis = _opt(
    str,
    "--osc-basis",
    help="The oscillator bank's movements: free (a vector each) or orthonormal (each its own direction of a "
    "learned orthonormal basis, so independent phases are independent directions; --oscillators at most "
    "--n-pca).",
)
OscInit = _opt(
    str,
    "--osc-init",
    help="The oscillator bank's first periods and movements: random, or data (the strongest rhythms of the real "
    "clips' encoded trajectories, one direction each; needs --encoder).",
)
OscFixedDirections = _opt(
    bool,
    "--osc-fixed-directions",
    help="Keep an orthonormal bank's directions as they start (with --osc-init data: the data's); only its "
    "sizes and periods train.",
)
WMatch = _opt(float, "--w-match", help="Feature-matching weight (cross-domain).")
WMutual = _opt(float, "--w-mutual", help="Motion-diversity (mutual information) weight.")
WSpectrum = _opt(
    float, "--w-spectrum", help="Temporal-spectrum matching weight (0: off, as the authors; an ablation lever)."
)
WCrossSpectrum = _opt(
    float,
    "--w-cross-spectrum",
    help="Cross-spectral density matching weight: what moves at which rhythm, against the real clips' pixels "
    "(0: off, as the authors).",
)
WBankEnergy = _opt(
    float,
    "--w-bank-energy",
    help="Prior on the oscillator bank's step energy: the smallest movements that make the video (needs a bank: "
    "--oscillators, or an --init model's; 0: off).",
)
WLatentCrossSpectrum = _opt(
    float,
    "--w-latent-cross-spectrum",
    help="Cross-spectral density matching on the PCA coordinates of latent trajectories, against the real "
    "clips' encoded ones: which directions move at which rhythm, and together (needs --motion-d latent or "
    "both; 0: off).",
)
WBankSpread = _opt(
    float,
    "--w-bank-spread",
    help="Prior that turns each oscillator's movement toward few PCA directions, without shrinking it (needs a "
    "bank: --oscillators, or an --init model's; 0: off).",
)
GPWeight = _opt(float, "--gp-weight", help="Gradient penalty weight of the video discriminator.")
DVChannels = _opt(int, "--dv-channels", help="Base channels of the PatchGAN discriminators.")
DVMbstd = _opt(int, "--dv-mbstd", help="Minibatch-stddev group of the video discriminator (0: none, as the authors).")
DIChannels = _opt(int, "--di-channels", help="Base channels of the cross-domain SN-ResNet D_I.")
Queue = _opt(int, "--queue", help="Contrastive queue length (cross-domain).")
PCASamples = _opt(int, "--pca-samples", help="Samples of the PCA fit, when the generator has no cached basis.")
Init = _opt(
    str | None,
    "--init",
    help="Fine-tune from this motion model; its architecture (--n-pca, --h-dim, --noise-dim, --w-residual, "
    "--oscillators, --osc-basis) stays: leave those out (a different value is refused).",
)
Classes = _opt(
    list[str] | None,
    "--class",
    help="BigGAN: the class(es) of the fake videos, numbers or ImageNet names (default: all classes).",
)
Truncation = _opt(float, "--truncation", help="Truncation of the fake clips (BigGAN: 0.4-1; render with the same).")
Resume = _opt(
    bool,
    "--resume",
    help="Continue the run --name (or the data folder's) from its checkpoint, with its settings; only --steps, "
    "--epochs, --device, --workers, --sample-videos, the --*-every options and --monitor, --monitor-clips, "
    "--keep-best, --deterministic may change.",
)
TrainDevice = _opt(str, "--device", help=f"{DEVICES} (under torchrun: one GPU per rank).")
Precision = _opt(str, "--precision", help="auto (bf16 on CUDA, else fp32), fp32, bf16 or fp16.")
SaveEvery = _opt(int, "--save-every", help="Steps between checkpoints (and motion exports).")
SampleEvery = _opt(int, "--sample-every", help="Steps between sample videos.")
SampleVideos = _opt(int, "--sample-videos", help="Videos in each sample grid.")
EvalEvery = _opt(
    int, "--eval-every", help="Steps between fvd16 evaluations on the run's data (0: none; needs `mocohd fetch i3d`)."
)
EvalVideos = _opt(int, "--eval-videos", help="Real and fake clips of each --eval-every evaluation.")
Monitor = _opt(
    bool,
    "--monitor/--no-monitor",
    help="Measure the motion against the real clips at every checkpoint (metrics.jsonl, progress line).",
)
MonitorClips = _opt(
    int,
    "--monitor-clips",
    help="In-domain, experimental: real clips inverted into w once, for the monitor's per-direction comparison "
    "(0: none).",
)
Encoder = _opt(
    str | None,
    "--encoder",
    help="The image generator's encoder (mocohd train-encoder): real clips' latent trajectories to train against; "
    "the fakes start at their first latents.",
)
MotionD = _opt(
    str | None,
    "--motion-d",
    help="What judges the motion: pixels (the authors' discriminators), latent (a discriminator of latent "
    "trajectories; no frame rendered) or both (default: pixels, with --encoder both).",
)
WLatentD = _opt(float, "--w-latent-d", help="Weight of the latent discriminator's term.")
DLChannels = _opt(int, "--dl-channels", help="Width of the latent discriminator.")
EncodeFakes = _opt(
    bool,
    "--encode-fakes/--no-encode-fakes",
    help="The latent discriminator sees the fake clips' frames through the encoder, as it sees the real ones "
    "(both sides carry the encoder's errors; the fakes are rendered).",
)
CalibrateEncoder = _opt(
    int,
    "--calibrate-encoder",
    help="Correct the real clips' encoded trajectories by the encoder's gain per direction, measured on N "
    "pairs of the generator's samples before training (at least --n-pca; needs --motion-d latent or both; "
    "0: off).",
)
CalibrationSide = _opt(
    str,
    "--calibration-side",
    help="With --calibrate-encoder: reals undoes the encoder's gain on the real clips' trajectories; fakes "
    "gives the fakes' trajectories the encoder's gain and error instead (nothing amplified); both gives the "
    "fakes the gain and error, then corrects both sides as reals does.",
)
LatentPool = _opt(
    int,
    "--latent-pool",
    help="Trajectories the latent cross-spectrum compares: the last N real clips' and N fakes drawn from their "
    "first latents at every motion update, no frame rendered (at least --batch; needs --w-latent-cross-spectrum; "
    "0: the batch's).",
)
KeepBest = _opt(
    bool,
    "--keep-best/--no-keep-best",
    help="Export the checkpoint closest to the real clips (monitor distance, or fvd16 with --eval-every) instead "
    "of the latest.",
)
MotionEMA = _opt(
    float,
    "--motion-ema",
    help="Export (and sample, monitor, evaluate) a moving average of the motion model's weights with this "
    "half-life in steps, as image GANs export G_ema (0: the model as it is).",
)

MOTION = Trainer(
    TrainConfig,
    train_motion,
    describe=lambda info: (
        f"run [bold]{info['run'].name}[/bold] ({info['run']}): {info['domain']}-domain, "
        f"{info['videos']} videos, {info['n_pca']} PCA directions, "
        f"{info['frame_size']} px frames, {info['per_epoch']} steps per epoch"
    ),
    shown=("G_video", "G_image", "D_video_real", "D_image_real", "mutual"),
    model="motion model",
    next_step=lambda cfg: f"render with: mocohd render --motion {cfg.name} --image {cfg.image} out.mp4",
)


def train(
    ctx: typer.Context,
    data: Data = None,
    image: Image("Image generator: name or path (required for a new run).") = None,
    name: Name("Run name and exported motion model (default: the data folder's name).") = None,
    domain: Domain = TrainConfig.domain,
    steps: Steps = None,
    epochs: Epochs = TrainConfig.epochs,
    batch: Batch = TrainConfig.batch,
    lr: LR = TrainConfig.lr,
    frames: Frames = TrainConfig.frames,
    time_step: TimeStep = TrainConfig.time_step,
    frame_size: FrameSize = None,
    g_steps: GSteps = TrainConfig.g_steps,
    n_pca: NPCA = None,
    h_dim: HDim = TrainConfig.h_dim,
    noise_dim: NoiseDim = None,
    w_residual: WResidual = TrainConfig.w_residual,
    oscillators: Oscillators = TrainConfig.oscillators,
    osc_basis: OscBasis = TrainConfig.osc_basis,
    osc_init: OscInit = TrainConfig.osc_init,
    osc_fixed_directions: OscFixedDirections = TrainConfig.osc_fixed_directions,
    w_match: WMatch = TrainConfig.w_match,
    w_mutual: WMutual = TrainConfig.w_mutual,
    w_spectrum: WSpectrum = TrainConfig.w_spectrum,
    w_cross_spectrum: WCrossSpectrum = TrainConfig.w_cross_spectrum,
    w_latent_cross_spectrum: WLatentCrossSpectrum = TrainConfig.w_latent_cross_spectrum,
    w_bank_energy: WBankEnergy = TrainConfig.w_bank_energy,
    w_bank_spread: WBankSpread = TrainConfig.w_bank_spread,
    gp_weight: GPWeight = TrainConfig.gp_weight,
    dv_channels: DVChannels = TrainConfig.dv_channels,
    dv_mbstd: DVMbstd = TrainConfig.dv_mbstd,
    di_channels: DIChannels = TrainConfig.di_channels,
    queue: Queue = TrainConfig.queue,
    pca_samples: PCASamples = TrainConfig.pca_samples,
    init: Init = None,
    classes: Classes = None,
    truncation: Truncation = TrainConfig.truncation,
    resume: Resume = False,
    force: StartOver = False,
    seed: TrainSeed = TrainConfig.seed,
    device: TrainDevice = TrainConfig.device,
    precision: Precision = TrainConfig.precision,
    deterministic: Deterministic = TrainConfig.deterministic,
    workers: Workers = TrainConfig.workers,
    save_every: SaveEvery = TrainConfig.save_every,
    sample_every: SampleEvery = TrainConfig.sample_every,
    sample_videos: SampleVideos = TrainConfig.sample_videos,
    log_every: LogEvery = TrainConfig.log_every,
    eval_every: EvalEvery = TrainConfig.eval_every,
    eval_videos: EvalVideos = TrainConfig.eval_videos,
    monitor: Monitor = TrainConfig.monitor,
    monitor_clips: MonitorClips = TrainConfig.monitor_clips,
    keep_best: KeepBest = TrainConfig.keep_best,
    motion_ema: MotionEMA = TrainConfig.motion_ema,
    encoder: Encoder = None,
    motion_d: MotionD = None,
    w_latent_d: WLatentD = TrainConfig.w_latent_d,
    dl_channels: DLChannels = TrainConfig.dl_channels,
    encode_fakes: EncodeFakes = TrainConfig.encode_fakes,
    calibrate_encoder: CalibrateEncoder = TrainConfig.calibrate_encoder,
    calibration_side: CalibrationSide = TrainConfig.calibration_side,
    latent_pool: LatentPool = TrainConfig.latent_pool,
):
    """Train a motion generator on videos (MoCoGAN-HD); torchrun runs it on many GPUs."""
    run_training(ctx, locals(), MOTION)


# `mocohd train-image`, in the order of its --help
ImageData = _opt(Path | None, "--data", help="Folder of images, frame folders and/or videos (required for a new run).")
Resolution = _opt(int | None, "--resolution", "-r", help="Image size, a power of two (required for a new run).")
ImageSteps = _opt(int, "--steps", help="Training steps (one D and one G update on one global batch).")
ImageBatch = _opt(int, "--batch", help="Global batch, split across processes.")
ImageLR = _opt(float, "--lr", help="Adam learning rate (betas 0, 0.99).")
R1Gamma = _opt(float | None, "--r1-gamma", help="R1 weight (default: 0.0002 x resolution^2 / batch).")
R1Every = _opt(int, "--r1-every", help="Steps between (lazy) R1 regularisations.")
EMAKimg = _opt(float, "--ema-kimg", help="Half-life of the generator average, in thousands of images.")
EMARampup = _opt(float, "--ema-rampup", help="Early half-life cap, as a fraction of the images seen (0: off).")
Augment = _opt(bool, "--augment/--no-augment", help="DiffAugment (colour, translation, cut-out).")
ChannelBase = _opt(int, "--channel-base", help="Channels at resolution r: min(base / r, max).")
ChannelMax = _opt(int, "--channel-max", help="Largest channel count.")
MappingLayers = _opt(int, "--mapping-layers", help="Depth of the mapping network.")
WDim = _opt(int, "--w-dim", help="Size of z and w.")
ImageResume = _opt(
    bool,
    "--resume",
    help="Continue the run from its checkpoint, with its settings; only --steps, --device, --workers and the "
    "--*-every options may change.",
)
ImagePrecision = _opt(str, "--precision", help="auto (bf16 on CUDA, else fp32), fp32 or bf16.")
ImageSaveEvery = _opt(int, "--save-every", help="Steps between checkpoints (and exports).")
ImageSampleEvery = _opt(int, "--sample-every", help="Steps between sample grids.")

IMAGE = Trainer(
    ImageTrainConfig,
    train_images,
    describe=lambda info: (
        f"image run [bold]{info['run'].name}[/bold]: {info['images']} images, "
        f"generator {info['parameters']:,} parameters, R1 gamma {info['gamma']:.4g}"
    ),
    shown=("D_real", "D_fake", "G"),
    model="image generator",
    next_step=lambda cfg: (
        f"next: mocohd pca --image {cfg.name}; mocohd train --data {cfg.data} --image {cfg.name} --domain in"
    ),
)


def train_image(
    ctx: typer.Context,
    data: ImageData = None,
    resolution: Resolution = None,
    name: Name("Run and exported generator name (default: the data folder's name).") = None,
    steps: ImageSteps = ImageTrainConfig.steps,
    batch: ImageBatch = ImageTrainConfig.batch,
    lr: ImageLR = ImageTrainConfig.lr,
    r1_gamma: R1Gamma = None,
    r1_every: R1Every = ImageTrainConfig.r1_every,
    ema_kimg: EMAKimg = ImageTrainConfig.ema_kimg,
    ema_rampup: EMARampup = ImageTrainConfig.ema_rampup,
    augment: Augment = ImageTrainConfig.augment,
    channel_base: ChannelBase = ImageTrainConfig.channel_base,
    channel_max: ChannelMax = ImageTrainConfig.channel_max,
    mapping_layers: MappingLayers = ImageTrainConfig.mapping_layers,
    w_dim: WDim = ImageTrainConfig.w_dim,
    resume: ImageResume = False,
    force: StartOver = False,
    seed: TrainSeed = ImageTrainConfig.seed,
    device: Device = ImageTrainConfig.device,
    precision: ImagePrecision = ImageTrainConfig.precision,
    workers: Workers = ImageTrainConfig.workers,
    save_every: ImageSaveEvery = ImageTrainConfig.save_every,
    sample_every: ImageSampleEvery = ImageTrainConfig.sample_every,
    log_every: LogEvery = ImageTrainConfig.log_every,
):
    """Train a StyleGAN2 image generator on images or video frames (in-domain work)."""
    run_training(ctx, locals(), IMAGE)
