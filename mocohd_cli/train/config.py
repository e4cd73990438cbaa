"""The settings of a training run: the one place their defaults live.

    TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000)    # motion training (``train``)
    ImageTrainConfig(data="./heads", resolution=64)                  # image training (``train_image``)

A config checks its values when it is built (``validate``: UsageError, one
line) and remembers the fields its caller gave (``given``): a resume changes
or checks only those. Messages name a setting as Python spells it, with its
command-line option when that is spelled otherwise: "batch must be ...",
"save_every (--save-every) must be ..." (``setting``).

The defaults of the MoCoGAN-HD recipe come from the networks that define
them (``discriminators``, ``motion``); ``motion_gan.GANConfig`` is derived from a
``TrainConfig``, the command line shows these defaults and passes only what
it was given.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

from ..dict_config import MAX_DIM
from ..discriminators import contrastive, patchgan, snresnet
from ..errors import UsageError
from ..generators import StyleGAN2Config
from ..motion import MotionConfig
from ..motion.generator import OSC_BASES
from ..runtime import check_deterministic

MAX_FRAME_SIZE = 128  # the training frame size when not given: min(this, the generator's resolution)
CALIBRATION_SIDES = ("reals", "fakes", "both")  # what --calibrate-encoder's gain is applied to
MAX_LATENT_POOL = 4096  # the latent cross-spectrum's trajectories: fakes drawn at every motion update
# The motion model's architecture: a fine-tuned model (``init``) keeps its own (``TrainConfig.take_init``).
ARCHITECTURE = ("n_pca", "h_dim", "noise_dim", "w_residual", "oscillators", "osc_basis")


def setting(name: str) -> str:
    """A setting as messages name it: ``batch``, ``save_every (--save-every)``, ``classes (--class)``."""
    flag = "--class" if name == "classes" else "--" + name.replace("_", "-")
    return name if flag == "--" + name else f"{name} ({flag})"


S = TypeVar("S", bound="RunSettings")  # typing.Self needs Python 3.11


@dataclass(kw_only=True)
class RunSettings:
    """What every training run has (the fields of ``TrainConfig`` and ``ImageTrainConfig`` after
    their own), and the book-keeping of which settings the caller gave (``given``).

    A new run takes the defaults for the settings not given; a resume takes the run's
    stored values for them, applies the given ones listed in ``MUTABLE`` and refuses any
    other given one that differs from the stored value (``run.open_run``). The values are
    checked (``validate``) on construction and again when a run starts."""

    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA when supported, else fp32
    deterministic: bool = False  # deterministic kernels only (``runtime.precision``): bitwise repeatable on CUDA
    workers: int = 2  # data loader processes per rank
    save_every: int = 1000  # steps between checkpoints (and exports to the store)
    sample_every: int = 1000
    log_every: int = 10

    MUTABLE: ClassVar[tuple[str, ...]] = ()  # what a resume may change
    KIND: ClassVar[str] = "run"  # how messages call such a run
    FOLDER_SUFFIX: ClassVar[str] = ""  # its folder: runs/NAME + this
    EXPORTS: ClassVar[str] = "motion"  # the store kind of the model it exports
    REQUIRED: ClassVar[tuple[str, ...]] = ("data",)  # the settings a new run needs

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        names = [f.name for f in fields(cls) if f.init and not f.kw_only]
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

    def replace(self: S, **changes) -> S:
        """A copy with ``changes``, which count as given, as an assignment would: a run settles its
        settings (a derived name, a resume's stored values, the sizes a model decides) in copies and
        leaves its caller's config as it was. Not checked again: some values only make sense together."""
        new = object.__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__dict__), **changes)
        new.__dict__["_given"] = set(self.given) | changes.keys()
        return new

    def validate(self) -> None:
        raise NotImplementedError

    def _validate_run(self, precisions: tuple[str, ...]) -> None:
        """The checks of the settings every run has."""
        check_settings(
            self, dict(seed=0, workers=0, save_every=1, sample_every=1, log_every=1), choices={"precision": precisions}
        )
        check_deterministic(self.deterministic)
        if self.seed >= 2**32:
            raise UsageError(f"seed must be below 2^32, got {self.seed}")


def check_settings(
    cfg,
    whole: dict[str, int],
    positive: tuple = (),
    nonnegative: tuple = (),
    choices: dict | None = None,
    optional: tuple = (),
) -> None:
    """UsageError (one line) unless each ``whole`` setting is a whole number >= its bound,
    each ``positive`` / ``nonnegative`` one a finite number > 0 / >= 0 and each ``choices``
    one among its values. None passes for the settings whose default is None and ``optional``."""
    can_be_none = {f.name for f in fields(cfg) if f.default is None} | set(optional)
    for name, least in whole.items():
        v = getattr(cfg, name)
        if v is None and name in can_be_none:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
            raise UsageError(f"{setting(name)} must be a whole number >= {least}, got {v!r}")
    for name in positive + nonnegative:
        v = getattr(cfg, name)
        if v is None and name in can_be_none:
            continue
        if (
            isinstance(v, bool)
            or not isinstance(v, numbers.Real)
            or not math.isfinite(v)
            or v < 0
            or (v == 0 and name in positive)
        ):
            bound = ">" if name in positive else ">="
            raise UsageError(f"{setting(name)} must be a finite number {bound} 0, got {v!r}")
    for name, allowed in (choices or {}).items():
        if getattr(cfg, name) is None and name in can_be_none:
            continue
        if getattr(cfg, name) not in allowed:
            raise UsageError(
                f"{setting(name)} must be {', '.join(map(str, allowed[:-1]))} or {allowed[-1]}, "
                f"got {getattr(cfg, name)!r}"
            )


def _paths_as_text(cfg, *names: str) -> None:
    for name in names:  # a Path works as well as its text (and config.json stays JSON)
        if isinstance(getattr(cfg, name), os.PathLike):
            object.__setattr__(cfg, name, os.fspath(getattr(cfg, name)))


@dataclass
class TrainConfig(RunSettings):
    """Motion training (``motion_trainer.train``): MoCoGAN-HD's recipe and its official values."""

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
    frame_size: int | None = None  # default: min(MAX_FRAME_SIZE, the generator's resolution)
    g_steps: int = 5
    n_pca: int | None = None  # default: min(MotionConfig.n_pca, w_dim)
    h_dim: int = MotionConfig.h_dim
    noise_dim: int | None = None  # size of the motion noise eps; default: the generator's w size (official)
    w_residual: float = MotionConfig.w_residual
    oscillators: int = MotionConfig.oscillators  # the motion model's oscillator bank (0: the authors' model)
    osc_basis: str = MotionConfig.osc_basis  # the bank's movements: free vectors, or along an orthonormal basis
    osc_init: str = "random"  # the bank's first periods and movements: random, or fitted to the real trajectories
    osc_fixed_directions: bool = (
        False  # an orthonormal bank's directions stay as they start (only sizes, periods train)
    )
    w_match: float = 1.0
    w_mutual: float = 1.0
    w_spectrum: float = 0.0  # temporal-spectrum matching of fake and real clips (0: off, as the official recipe)
    w_cross_spectrum: float = (
        0.0  # cross-spectral density matching: what moves at which rhythm (0: off, as the official recipe)
    )
    w_latent_cross_spectrum: float = 0.0  # the same matching on the PCA coordinates of encoded trajectories
    w_bank_energy: float = (
        0.0  # a prior on the oscillator bank's step energy: the smallest movements that make the video
    )
    w_bank_spread: float = 0.0  # a prior that turns each oscillator's movement toward few PCA directions
    gp_weight: float = 10.0
    dv_channels: int = patchgan.BASE_CHANNELS
    dv_mbstd: int = 0  # D_V's minibatch-stddev group (0: none, as the official model)
    di_channels: int = snresnet.CHANNELS
    proj_dim: int = snresnet.PROJ_DIM
    queue: int = contrastive.QUEUE
    moco_momentum: float = contrastive.MOMENTUM
    moco_temperature: float = contrastive.TEMPERATURE
    init: str | None = None  # motion model to fine-tune from
    classes: list | None = None  # class-conditional generators (BigGAN): numbers or ImageNet names; None: all
    truncation: float = 1.0  # of the fake clips (BigGAN: also its batch-norm statistics)
    sample_videos: int = 4
    pca_samples: int = 1_000_000
    eval_every: int = 0  # steps between fvd16 evaluations on the run's own data (0: none; needs the I3D detector)
    eval_videos: int = 256  # real and fake clips of each of those evaluations
    monitor: bool = True  # motion statistics against the real clips' at every checkpoint (``monitor``)
    monitor_clips: int = 0  # in-domain: real clips inverted into w for the monitor's latent statistics (0: none)
    keep_best: bool = False  # export the checkpoint closest to the real clips (fvd16 when evaluating); implies monitor
    motion_ema: float = 0.0  # export a moving average of the motion model's weights, this half-life in steps (0: off)
    encoder: str | None = None  # the generator's image encoder: the real clips' latent trajectories
    motion_d: str | None = None  # what judges motion: pixels, latent or both; default pixels, with an encoder both
    w_latent_d: float = 1.0  # the weight of the latent discriminator's term
    dl_channels: int = 64  # the latent discriminator's width
    encode_fakes: bool = False  # D_L judges the fakes' frames encoded (as the real ones are), not their w's
    calibrate_encoder: int = 0  # sample pairs that measure the encoder's gain per direction (0: off)
    calibration_side: str = "reals"  # reals: the gain undone on the real clips; fakes: given to the fakes; both
    latent_pool: int = 0  # trajectories the latent cross-spectrum compares: the last real ones (0: the batch)

    MUTABLE: ClassVar[tuple[str, ...]] = (
        "steps",
        "epochs",
        "device",
        "workers",
        "save_every",
        "sample_every",
        "log_every",
        "sample_videos",
        "eval_every",
        "eval_videos",
        "monitor",
        "monitor_clips",
        "keep_best",
        "deterministic",
    )
    REQUIRED: ClassVar[tuple[str, ...]] = ("data", "image")

    def validate(self) -> None:
        """The settings' checks (UsageError, one line). With ``init``, those that depend on the motion
        model's architecture (``ARCHITECTURE``) wait for the model when it decides them, that is when
        ``oscillators`` was not given (``take_init``)."""
        _paths_as_text(self, "data", "image", "init", "encoder")
        if isinstance(self.classes, (str, int)):
            object.__setattr__(self, "classes", [self.classes])
        bank_known = not self.init or "oscillators" in self.given  # else: the init model's bank
        check_settings(
            self,
            dict(
                steps=1,
                epochs=1,
                batch=1,
                frames=2,
                time_step=1,
                frame_size=4,
                g_steps=1,
                n_pca=1,
                h_dim=1,
                noise_dim=1,
                dv_channels=1,
                dv_mbstd=0,
                di_channels=1,
                proj_dim=1,
                queue=1,
                sample_videos=1,
                pca_samples=2,
                eval_every=0,
                eval_videos=2,
                monitor_clips=0,
                oscillators=0,
                dl_channels=1,
            ),
            positive=("lr", "moco_temperature", "truncation")
            + (() if self.oscillators or not bank_known else ("w_residual",)),
            nonnegative=(
                "w_match",
                "w_mutual",
                "w_spectrum",
                "w_cross_spectrum",
                "w_latent_cross_spectrum",
                "w_bank_energy",
                "w_bank_spread",
                "motion_ema",
                "gp_weight",
                "moco_momentum",
                "w_residual",
                "w_latent_d",
            ),
            choices={"domain": ("cross", "in"), "monitor": (True, False), "keep_best": (True, False)},
        )
        self._check_latent_motion()
        self._validate_run(("auto", "fp32", "bf16", "fp16"))
        self._check_frames()
        if self.moco_momentum > 1:
            raise UsageError(f"{setting('moco_momentum')} must be in [0, 1], got {self.moco_momentum}")
        self._check_motion_model(bank_known)

    def _check_latent_motion(self) -> None:
        """The latent discriminator judges the encoder's trajectories: it needs the encoder."""
        check_settings(self, {}, choices={"motion_d": ("pixels", "latent", "both"), "encode_fakes": (True, False)})
        if self.motion_d in ("latent", "both") and not self.encoder:
            raise UsageError(
                f"{setting('motion_d')} {self.motion_d} judges latent trajectories: it needs the generator's "
                f"{setting('encoder')} (mocohd train-encoder)"
            )
        check_settings(self, dict(calibrate_encoder=0, latent_pool=0), choices={"calibration_side": CALIBRATION_SIDES})
        latent_only = (  # the settings that act on what the latent discriminator sees
            ("encode_fakes", "changes what the latent discriminator sees"),
            ("calibrate_encoder", "corrects the real clips' encoded trajectories"),
            ("w_latent_cross_spectrum", "compares latent trajectories with the real clips' encoded ones"),
            ("latent_pool", "sets how many trajectories the latent cross-spectrum compares"),
        )
        for name, what in latent_only:
            if getattr(self, name) and (self.motion_d == "pixels" or not self.encoder):
                raise UsageError(
                    f"{setting(name)} {what}: it needs {setting('motion_d')} latent or both (and an "
                    f"{setting('encoder')})"
                )
        if self.latent_pool and not self.w_latent_cross_spectrum:
            raise UsageError(
                f"{setting('latent_pool')} sets how many trajectories the latent cross-spectrum compares: it "
                f"needs {setting('w_latent_cross_spectrum')} > 0"
            )
        if self.latent_pool and not self.batch <= self.latent_pool <= MAX_LATENT_POOL:
            raise UsageError(
                f"{setting('latent_pool')} must be 0 or in [{setting('batch')} {self.batch}, {MAX_LATENT_POOL}], "
                f"got {self.latent_pool}"
            )
        if self.motion_d == "latent" and (self.w_spectrum or self.w_cross_spectrum):
            raise UsageError(
                f"{setting('w_spectrum')} and {setting('w_cross_spectrum')} compare rendered clips: "
                f"{setting('motion_d')} latent renders none (use both)"
            )

    def _check_motion_model(self, bank_known: bool) -> None:
        """The checks of the motion model's sizes and of the priors on its oscillator bank (those on the
        bank wait for an ``init`` model's when it decides it: not ``bank_known``)."""
        for prior in ("w_bank_energy", "w_bank_spread"):
            if getattr(self, prior) and not self.oscillators and bank_known:
                raise UsageError(
                    f"{setting(prior)} is a prior on the oscillator bank: it needs {setting('oscillators')} > 0"
                )
        check_settings(
            self,
            {},
            choices={"osc_basis": OSC_BASES, "osc_init": ("random", "data"), "osc_fixed_directions": (True, False)},
        )
        if self.osc_init == "data" and not (self.encoder and self.oscillators):
            raise UsageError(
                f"{setting('osc_init')} data fits a new oscillator bank to the real clips' encoded trajectories: "
                f"it needs {setting('oscillators')} > 0 and an {setting('encoder')}"
            )
        if self.osc_init == "data" and self.init:
            raise UsageError(f"{setting('osc_init')} data fits a new bank: an init model keeps its own")
        if self.osc_fixed_directions and self.osc_basis != "orthonormal" and bank_known:
            raise UsageError(
                f"{setting('osc_fixed_directions')} keeps the directions of an orthonormal bank: it needs "
                f"{setting('osc_basis')} orthonormal"
            )
        if self.osc_basis != MotionConfig.osc_basis and not self.oscillators and bank_known:
            raise UsageError(f"{setting('osc_basis')} is the oscillator bank's: it needs {setting('oscillators')} > 0")
        if self.osc_basis == "orthonormal" and self.n_pca is not None and self.oscillators > self.n_pca and bank_known:
            raise UsageError(
                f"an orthonormal bank moves one direction per oscillator: {setting('oscillators')} must be at "
                f"most {setting('n_pca')}, got {self.oscillators} > {self.n_pca}"
            )
        if self.noise_dim is not None and self.oscillators > self.noise_dim and bank_known:
            raise UsageError(
                f"{setting('oscillators')} must be at most {setting('noise_dim')} (each oscillator's phase "
                f"comes from one noise value), got {self.oscillators} > {self.noise_dim}"
            )
        for name in ("oscillators", "noise_dim", "h_dim"):  # the motion model's sizes, named as the caller gave them
            if isinstance(getattr(self, name), int) and getattr(self, name) > MAX_DIM:
                raise UsageError(f"{setting(name)} must be at most {MAX_DIM}, got {getattr(self, name)}")

    def take_init(self, model: MotionConfig, name: str) -> TrainConfig:
        """Fine-tuning the motion model ``name`` (``init``) keeps its architecture: these settings with
        those of ``ARCHITECTURE`` not given taking the model's values (``model``: its config), checked
        again. A given one that differs is refused (UsageError naming both values), as is a bank prior
        when the model has no bank."""

        def differs(key: str) -> bool:
            mine, theirs = getattr(self, key), getattr(model, key)
            if mine is None:  # 'automatic': as not given
                return False
            return not math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=0.0) if key == "w_residual" else mine != theirs

        clash = [k for k in ARCHITECTURE if k in self.given and differs(k)]
        if clash:
            raise UsageError(
                f"the init model '{name}' has "
                + ", ".join(f"{k} {getattr(model, k)}" for k in clash)
                + ", not "
                + ", ".join(f"{setting(k)} {getattr(self, k)}" for k in clash)
                + ": fine-tuning keeps the model's architecture (leave those out, or train a new model "
                "without init)"
            )
        tuned = self.replace(**{key: getattr(model, key) for key in ARCHITECTURE})
        for prior in ("w_bank_energy", "w_bank_spread"):
            if getattr(tuned, prior) and not tuned.oscillators:
                raise UsageError(
                    f"{setting(prior)} is a prior on the oscillator bank, and the init model '{name}' "
                    "has none (oscillators 0)"
                )
        tuned.validate()
        return tuned

    def _check_frames(self) -> None:
        """Clips long enough for the video discriminator (``patchgan.shortest_clip``): in-domain it
        sees the frames - 1 pairs (frame 1, frame t) of a clip, cross-domain the frames themselves."""
        shortest = patchgan.shortest_clip()
        pairs = self.domain == "in"
        if self.frames - pairs < shortest:
            what = f"{shortest} (frame 1, frame t) pairs" if pairs else f"clips of {shortest} frames"
            raise UsageError(
                f"{setting('frames')} must be at least {shortest + pairs} {self.domain}-domain (the video "
                f"discriminator needs {what}), got {self.frames}"
            )


@dataclass
class ImageTrainConfig(RunSettings):
    """StyleGAN2 image training (``image_trainer.train_image``)."""

    data: str | None = None
    resolution: int | None = None
    name: str | None = None  # default: the data folder's name
    steps: int = 10000
    batch: int = 32  # global
    lr: float = 0.0025
    r1_gamma: float | None = None  # default: StyleGAN2's heuristic 0.0002 * resolution^2 / batch
    r1_every: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float | None = (
        0.05  # early on, the half-life is at most this fraction of the images seen; 0 or None: off
    )
    augment: bool = True
    channel_base: int = 16384
    channel_max: int = 512
    mapping_layers: int = 8
    w_dim: int = 512

    MUTABLE: ClassVar[tuple[str, ...]] = ("steps", "device", "workers", "save_every", "sample_every", "log_every")
    KIND: ClassVar[str] = "image run"
    FOLDER_SUFFIX: ClassVar[str] = "-image"
    EXPORTS: ClassVar[str] = "image"
    REQUIRED: ClassVar[tuple[str, ...]] = ("data", "resolution")

    def validate(self) -> None:
        _paths_as_text(self, "data")
        check_settings(
            self,
            dict(resolution=4, steps=1, batch=1, r1_every=1, channel_base=1, channel_max=1, mapping_layers=1, w_dim=1),
            positive=("lr",),
            nonnegative=("r1_gamma", "ema_kimg", "ema_rampup"),
            optional=("ema_rampup",),
            choices={"augment": (True, False)},
        )
        self._validate_run(("auto", "fp32", "bf16"))
        if self.resolution is not None:
            self.generator_config()

    def generator_config(self) -> StyleGAN2Config:
        """The StyleGAN2 architecture these settings describe."""
        try:
            return StyleGAN2Config(
                resolution=self.resolution,
                z_dim=self.w_dim,
                w_dim=self.w_dim,
                mapping_layers=self.mapping_layers,
                channel_base=self.channel_base,
                channel_max=self.channel_max,
            )
        except ValueError as e:
            raise UsageError(f"generator size: {e}") from e


# Encoder sizes: "small" trains in minutes on the 64 px demo on a CPU; "base" is pSp-sized for 256 px
# inputs (a 1024 px generator's frames are encoded at 256 px) on GPUs.
ENCODER_PRESETS = {
    "small": {"channel_base": 2048, "channel_max": 128, "hidden": 512},
    "base": {"channel_base": 16384, "channel_max": 512, "hidden": 1024},
}
MAX_ENCODER_INPUT = 256  # the encoder's input size when not given: min(this, the generator's resolution)


@dataclass
class EncoderTrainConfig(RunSettings):
    """Image encoder training (``encoder_trainer.train_encoder``): a network that answers the w's
    of an image, trained on the generator's own samples and, with ``data``, on real frames."""

    image: str | None = None  # the frozen generator (a name or a file)
    data: str | None = None  # optional: real frames (a dataset folder), reconstruction only
    name: str | None = None  # default: the generator's name + "-encoder"
    space: str = "w+"
    preset: str = "small"  # the encoder's size (ENCODER_PRESETS)
    resolution: int | None = None  # the encoder's input size; default min(256, the generator's)
    steps: int = 3000
    batch: int = 16  # generator samples per step, global
    real_batch: int = 8  # real frames per step, global (with data)
    lr: float = 1e-3
    w_latent: float = 1.0
    w_pixel: float = 1.0
    w_vgg: float = 1.0  # when the store holds vgg16 (mocohd fetch vgg16)
    w_offsets: float = 0.1
    w_steps: float = 0.0  # the answered step between two nearby frames of one video against the true one
    step_size: float = 0.1  # those frames' distance, as a fraction of the distance between two samples
    truncation: float = 1.0  # the psi of the samples it learns from

    MUTABLE: ClassVar[tuple[str, ...]] = ("steps", "device", "workers", "save_every", "sample_every", "log_every")
    KIND: ClassVar[str] = "encoder run"
    FOLDER_SUFFIX: ClassVar[str] = "-encoder"
    EXPORTS: ClassVar[str] = "encoder"
    REQUIRED: ClassVar[tuple[str, ...]] = ("image",)

    def validate(self) -> None:
        _paths_as_text(self, "data", "image")
        check_settings(
            self,
            dict(steps=1, batch=1, real_batch=1),
            positive=("lr", "truncation", "step_size"),
            nonnegative=("w_latent", "w_pixel", "w_vgg", "w_offsets", "w_steps"),
            choices={"space": ("w", "w+"), "preset": tuple(ENCODER_PRESETS)},
        )
        if self.resolution is not None:
            check_settings(self, dict(resolution=4))
            if self.resolution & (self.resolution - 1) or self.resolution > 4096:
                raise UsageError(f"resolution must be a power of two in 4..4096, got {self.resolution}")
        if self.truncation > 1:
            raise UsageError(f"truncation must be in (0, 1], got {self.truncation}")
        self._validate_run(("auto", "fp32"))
