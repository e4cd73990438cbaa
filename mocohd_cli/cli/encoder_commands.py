"""`mocohd train-encoder`: an image encoder for a frozen generator (the latents of photos in one
forward pass, the latent trajectories of a dataset). Its defaults are ``EncoderTrainConfig``'s."""

from __future__ import annotations

from pathlib import Path

import typer

from ..train.config import ENCODER_PRESETS, EncoderTrainConfig
from ..train.encoder_trainer import train_encoder as run_encoder_training
from .options import DEVICES, Image, LogEvery, Name, StartOver, TrainSeed, Workers, option as _opt
from .train_commands import Trainer, run_training

EncoderData = _opt(Path | None, "--data", help="Real frames to learn from too (a dataset folder; reconstruction only).")
Space = _opt(str, "--space", help="w+ (one w per layer, around one shared w) or w (one w for every layer).")
Preset = _opt(str, "--preset", help=f"The encoder's size: {' or '.join(ENCODER_PRESETS)} (small: minutes on a CPU).")
InputSize = _opt(int | None, "--resolution", help="The encoder's input size (default: min(256, the generator's)).")
EncSteps = _opt(int, "--steps", help="Training steps (one batch of generator samples, and of real frames).")
EncBatch = _opt(int, "--batch", help="Generator samples per step, split across processes.")
RealBatch = _opt(int, "--real-batch", help="Real frames per step (with --data).")
EncLR = _opt(float, "--lr", help="Adam learning rate.")
WLatent = _opt(float, "--w-latent", help="Weight of the latent regression on generator samples.")
WPixel = _opt(float, "--w-pixel", help="Weight of the pixel reconstruction (squared error + SSIM).")
WVGG = _opt(float, "--w-vgg", help="Weight of the VGG16 reconstruction (when the store holds vgg16).")
WOffsets = _opt(float, "--w-offsets", help="Weight that keeps w+'s per-layer offsets small.")
WSteps = _opt(
    float,
    "--w-steps",
    help="Weight of the step term: the answered step between two nearby frames of one video against the true one "
    "(smooth trajectories for prepare --encode).",
)
StepSize = _opt(float, "--step-size", help="The step term's frame distance, as a fraction of two samples' distance.")
EncTruncation = _opt(float, "--truncation", help="Truncation of the generator samples it learns from.")
EncResume = _opt(
    bool,
    "--resume",
    help="Continue the run from its checkpoint, with its settings; only --steps, --device, --workers and the "
    "--*-every options may change.",
)
EncDevice = _opt(str, "--device", help=f"{DEVICES} (under torchrun: one GPU per rank).")
EncSaveEvery = _opt(int, "--save-every", help="Steps between checkpoints (and exports).")
EncSampleEvery = _opt(int, "--sample-every", help="Steps between sample grids (held-out samples over their encoding).")

ENCODER = Trainer(
    EncoderTrainConfig,
    run_encoder_training,
    describe=lambda info: (
        f"encoder run [bold]{info['run'].name}[/bold]: {info['parameters']:,} parameters, "
        f"{'VGG16 and pixel' if info['perceptual'] else 'pixel'} reconstruction"
    ),
    shown=("latent", "pixel", "real_pixel"),
    model="encoder",
    next_step=lambda cfg: (
        f"next: mocohd invert PHOTO --image {cfg.image} --encoder {cfg.name}; "
        f"mocohd prepare --data DIR --encode {cfg.name}"
    ),
)


def train_encoder(
    ctx: typer.Context,
    image: Image("The frozen image generator (StyleGAN2 or StyleGAN3): name or path.") = None,
    data: EncoderData = None,
    name: Name("Exported encoder name (default: the generator's; its run folder is NAME-encoder).") = None,
    space: Space = EncoderTrainConfig.space,
    preset: Preset = EncoderTrainConfig.preset,
    resolution: InputSize = None,
    steps: EncSteps = EncoderTrainConfig.steps,
    batch: EncBatch = EncoderTrainConfig.batch,
    real_batch: RealBatch = EncoderTrainConfig.real_batch,
    lr: EncLR = EncoderTrainConfig.lr,
    w_latent: WLatent = EncoderTrainConfig.w_latent,
    w_pixel: WPixel = EncoderTrainConfig.w_pixel,
    w_vgg: WVGG = EncoderTrainConfig.w_vgg,
    w_offsets: WOffsets = EncoderTrainConfig.w_offsets,
    w_steps: WSteps = EncoderTrainConfig.w_steps,
    step_size: StepSize = EncoderTrainConfig.step_size,
    truncation: EncTruncation = EncoderTrainConfig.truncation,
    resume: EncResume = False,
    force: StartOver = False,
    seed: TrainSeed = EncoderTrainConfig.seed,
    device: EncDevice = EncoderTrainConfig.device,
    workers: Workers = EncoderTrainConfig.workers,
    save_every: EncSaveEvery = EncoderTrainConfig.save_every,
    sample_every: EncSampleEvery = EncoderTrainConfig.sample_every,
    log_every: LogEvery = EncoderTrainConfig.log_every,
):
    """Train an image encoder for a frozen generator: photos and video frames to its latents in one pass."""
    run_training(ctx, locals(), ENCODER)
