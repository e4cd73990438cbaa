"""One training iteration of MoCoGAN-HD (ICLR 2021; github.com/snap-research/MoCoGAN-HD): ``g_steps`` motion
generator updates, then one update of each discriminator.

    gan = MotionGAN(G, M, GANConfig.from_train(cfg, precision="bf16"), dist)    # cfg: a TrainConfig
    losses = gan.iteration(x)          # x: real clips [B, T, 3, S, S] in [-1, 1]
    run.as_floats(losses)              # the losses, 0-d tensors on the device, read in one transfer

Fake clips: z ~ N(0, I) -> w_1 = G.mapping(z) -> the motion generator's
trajectory -> frozen G.synthesis, with one noise map per layer drawn per
video and shared by its frames -> average-pooled to the training frame size.
The trajectory becomes frames through ``frames.synthesize``, the function
rendering uses: training sees exactly the frames rendering makes.

Video discriminator D_V (both domains): relativistic-average LSGAN on clips
(each clip batch flipped in time with probability 1/2), gradient penalty.
In-domain, D_V sees (frame 1, frame t) channel pairs for t = 2..T, and D_I,
a 2D multi-scale PatchGAN, sees (frame 1, frame t) pairs of real and fake
clips. Cross-domain, D_I never sees real videos: it learns to tell the first
generated frame (the image generator's quality) from a later one, hinge loss
plus twice the InfoNCE loss of two augmentations against the EMA queue, and
the motion generator gets a feature-matching term (-cos of the projections
of frame 1 and frame t, weight ``w_match``).

All random draws (z, eps, noise maps, frame indices, flips, augmentations,
interpolation weights) come from one CPU generator per rank, saved in
checkpoints: a resumed run continues exactly.

An iteration does not wait for the device: its losses stay there (read them on log
lines), the contrastive queue's position is known on the host, and the host's random
draws go to the device without a sync.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .. import losses
from ..augment import warp
from ..discriminators import (
    ContrastiveDiscriminator,
    MultiscaleImageDiscriminator,
    MultiscaleVideoDiscriminator,
    SNResNetDiscriminator,
)
from ..discriminators.trajectory import TrajectoryDiscriminator, pca_coordinates
from ..distributed import Dist
from ..errors import UsageError
from ..frames import VideoNoise, draw_classes, draw_w1, synthesize
from ..motion.stats import rhythms
from .config import CALIBRATION_SIDES, MAX_FRAME_SIZE, TrainConfig

PRECISIONS = ("fp32", "bf16", "fp16")
MOTION_DS = ("pixels", "latent", "both")


@dataclass
class GANConfig:
    """The recipe's settings. A run derives them from its ``TrainConfig`` (``from_train``):
    the fields of the same name, its global batch, and what the run resolved (the frame
    size, the precision, the classes). The defaults are ``TrainConfig``'s."""

    domain: str = TrainConfig.domain  # "cross" | "in"
    frames: int = TrainConfig.frames
    frame_size: int = MAX_FRAME_SIZE
    g_steps: int = TrainConfig.g_steps
    lr: float = TrainConfig.lr
    beta1: float = 0.5
    beta2: float = 0.999
    gp_weight: float = TrainConfig.gp_weight
    w_match: float = TrainConfig.w_match
    w_mutual: float = TrainConfig.w_mutual  # motion diversity (mutual information on eps)
    w_spectrum: float = TrainConfig.w_spectrum  # temporal-spectrum matching against the real clips
    w_cross_spectrum: float = TrainConfig.w_cross_spectrum  # cross-spectral density matching against them
    w_latent_cross_spectrum: float = TrainConfig.w_latent_cross_spectrum  # the same on PCA coordinates
    w_bank_energy: float = TrainConfig.w_bank_energy  # the prior on the oscillator bank's step energy
    w_bank_spread: float = TrainConfig.w_bank_spread  # the prior on how many directions each oscillator moves
    dv_channels: int = TrainConfig.dv_channels  # D_V (and in-domain D_I) base channels
    dv_mbstd: int = TrainConfig.dv_mbstd  # D_V's minibatch-stddev group (0: none)
    di_channels: int = TrainConfig.di_channels  # cross-domain D_I (SN-ResNet) base channels
    proj_dim: int = TrainConfig.proj_dim
    queue: int = TrainConfig.queue
    moco_momentum: float = TrainConfig.moco_momentum
    moco_temperature: float = TrainConfig.moco_temperature
    world_batch: int = TrainConfig.batch  # the global batch: the contrastive queue holds whole ones
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (resolved: no "auto")
    classes: tuple[int, ...] | None = None  # class-conditional G: each video's class is drawn from these (None: all)
    truncation: float = TrainConfig.truncation  # trajectories lerped toward w_avg (and BigGAN's batch-norm statistics)
    motion_d: str = "pixels"  # what judges motion: "pixels" (D_V, D_I), "latent" (D_L on trajectories) or "both"
    w_latent_d: float = TrainConfig.w_latent_d  # the weight of D_L's term in the motion generator's loss
    dl_channels: int = TrainConfig.dl_channels  # D_L's width
    encode_fakes: bool = TrainConfig.encode_fakes  # D_L sees the fakes' frames through the encoder, as the real ones
    calibrate_encoder: int = TrainConfig.calibrate_encoder  # pairs measuring the encoder's gain (0: off)
    calibration_side: str = TrainConfig.calibration_side  # reals: gain undone; fakes: given to them; both: each
    latent_pool: int = TrainConfig.latent_pool  # trajectories the latent cross-spectrum compares (0: the batch's)
    motion_ema: float = TrainConfig.motion_ema  # half-life in steps of the exported model's average (0: none)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be fp32, bf16 or fp16 (resolved), got {self.precision!r}")
        if self.motion_d not in MOTION_DS:
            raise UsageError(f"motion_d must be {', '.join(MOTION_DS)}, got {self.motion_d!r}")
        if self.calibration_side not in CALIBRATION_SIDES:
            raise UsageError(
                f"calibration_side must be one of {', '.join(CALIBRATION_SIDES)}, got {self.calibration_side!r}"
            )
        if not self.motion_ema >= 0:
            raise UsageError(f"motion_ema must be >= 0 (steps), got {self.motion_ema}")
        if self.encode_fakes and not self.latent:
            raise UsageError("encode_fakes changes what the latent discriminator sees: motion_d must be latent or both")

    @property
    def pixels(self) -> bool:  # the authors' discriminators of frames
        return self.motion_d in ("pixels", "both")

    @property
    def latent(self) -> bool:  # the discriminator of latent trajectories
        return self.motion_d in ("latent", "both")

    @property
    def renders(self) -> bool:  # the fakes' frames are made (for D_V and D_I, or for the encoder)
        return self.pixels or self.encode_fakes

    @classmethod
    def from_train(cls, cfg: TrainConfig, **resolved) -> GANConfig:
        """The recipe's settings of a run: ``cfg``'s fields of the same names (but None, 'automatic':
        the default), ``cfg.batch`` as the global batch, then ``resolved`` (the frame size, precision
        and classes the run settled on)."""
        shared = {f.name: getattr(cfg, f.name) for f in fields(cls) if getattr(cfg, f.name, None) is not None}
        return cls(**{**shared, "world_batch": cfg.batch, **resolved})


def _amp_dtype(precision: str):
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def encoder_gain(
    G,
    E,
    components: torch.Tensor,
    stdev: torch.Tensor,
    pairs: int,
    truncation: float = 1.0,
    seed: int = 0,
    scale: float = 0.5,
    batch: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """How the encoder reports a step: (A [K, K], S [K, K]) with e = A d + n, n ~ (0, S), for a step of
    d stdevs along G's K principal directions (``components`` [K, w_dim], ``stdev`` [K]) and the step e
    the encoder reports between the frames before and after it (in the coordinates D_L sees).

    An encoder trained on single images answers uncertain latents near the average, and so reports
    a part of each movement only, a different part along each direction, and leaks some into other
    directions; a discriminator matching the encoded real trajectories then teaches those proportions
    (``docs/research/motion-recovery.md``). A is fitted by least squares on ``pairs`` samples of G: w
    and w + d, d ~ N(0, scale^2) per direction, rendered with the same noise at ``truncation``,
    quantised to 8 bits as video frames are, both encoded; S is the covariance of what A leaves."""
    k = components.shape[0]
    if pairs < k + 1:
        raise UsageError(f"calibrate_encoder needs more pairs than directions ({k}), got {pairs}")
    device = components.device
    E = E.eval()
    g = torch.Generator().manual_seed(seed * 104729 + 17)
    steps, seen = [], []
    with torch.no_grad():
        for start in range(0, pairs, batch):
            n = min(batch, pairs - start)
            w = draw_w1(G, n, g, device)
            d = torch.randn(n, k, generator=g).to(device) * scale
            noise = VideoNoise(G, n, "fixed", g, device)(torch.arange(n, device=device))
            labels = draw_classes(G, n, g) if G.c_dim else None
            ends = []
            for ws in (w, w + (d * stdev) @ components):
                img = synthesize(G, ws, noise, labels, truncation).clamp(-1, 1)
                img = (img * 127.5 + 127.5).round() / 127.5 - 1  # 8-bit frames, as the real clips are
                ends.append(E(img).float().mean(dim=1))
            steps.append(d)
            seen.append(((ends[1] - ends[0]) @ components.t()) / stdev)
        d, e = torch.cat(steps).cpu().double(), torch.cat(seen).cpu().double()  # float64 on the host (MPS has none)
        gain = torch.linalg.lstsq(d, e).solution.t()  # e ~ gain @ d
        left = e - d @ gain.t()
        cov = left.t() @ left / (left.shape[0] - k)
    return gain.float().to(device), cov.float().to(device)


def frame_error(cov: torch.Tensor) -> torch.Tensor:
    """L with L L^T the covariance of one frame's error, from ``encoder_gain``'s S, the covariance of a
    step's (the difference of two frames' independent errors: half of it each)."""
    eye = torch.eye(cov.shape[0], dtype=torch.float64)
    return torch.linalg.cholesky(0.5 * cov.cpu().double() + 1e-6 * eye).float().to(cov.device)


def inverse_gain(gain: torch.Tensor, ridge: float = 0.01) -> torch.Tensor:
    """C with C A ~ I: the ridge-regularised inverse (A^T A + ridge I)^-1 A^T of ``encoder_gain``'s A,
    which undoes the gain on the real clips' coordinates; directions the encoder hardly sees are not
    amplified past 1 / (2 sqrt(ridge))."""
    a = gain.cpu().double()
    eye = torch.eye(a.shape[0], dtype=torch.float64)
    return torch.linalg.solve(a.t() @ a + ridge * eye, a.t()).float().to(gain.device)


class TrajectoryPool(torch.nn.Module):
    """The last ``size`` real clips' trajectories as the latent cross-spectrum compares them: their
    coordinates [N, n_pca, T] (as D_L sees them) and first latents [N, w_dim], added a global batch at a
    time (every rank's clips, so every rank holds the same pool), the oldest replaced first. Its one
    counter, the clips added so far, stays on the CPU: reading it never waits for the device."""

    def __init__(self, size: int, n_pca: int, frames: int, w_dim: int, device: torch.device):
        super().__init__()
        self.register_buffer("coords", torch.zeros(size, n_pca, frames, device=device))
        self.register_buffer("w1", torch.zeros(size, w_dim, device=device))
        self.register_buffer("added", torch.zeros((), dtype=torch.long))

    def add(self, coords: torch.Tensor, w1: torch.Tensor) -> None:
        added, size = int(self.added), self.coords.shape[0]
        at = ((added + torch.arange(coords.shape[0])) % size).to(self.coords.device)
        self.coords[at] = coords.detach().float()
        self.w1[at] = w1.detach().float()
        self.added.fill_(added + coords.shape[0])

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(coordinates [n, n_pca, T], first latents [n, w_dim]) of the clips held (n: at most N)."""
        n = min(int(self.added), self.coords.shape[0])
        return self.coords[:n], self.w1[:n]


class MovingAverage(torch.nn.Module):
    """A moving average of a model's weights (the G_ema of image GANs): after each ``update`` every
    weight moves toward the model's by 1 - 0.5 ** (1 / h), h = ``half_life`` steps, or half the
    steps taken before this one when that is fewer (the first update copies the model). Buffers
    are copied as they are."""

    RAMPUP = 0.5  # the half-life is at most this fraction of the steps taken

    def __init__(self, model: torch.nn.Module, half_life: float):
        super().__init__()
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.half_life = float(half_life)
        self.steps = 0  # on the host (no device sync per step), saved as the module's extra state

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        half = min(self.half_life, self.RAMPUP * self.steps)
        keep = 0.5 ** (1.0 / half) if half > 0 else 0.0
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - keep)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
        self.steps += 1

    def get_extra_state(self) -> dict:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])


class MotionGAN:
    def __init__(self, G, M, cfg: GANConfig, dist: Dist | None = None, seed: int = 0, encoder=None):
        """``encoder``: the frozen image encoder of ``G`` (needed with ``cfg.encode_fakes``)."""
        if cfg.encode_fakes and encoder is None:
            raise UsageError("encode_fakes needs the image generator's encoder")
        if cfg.calibrate_encoder and (encoder is None or not cfg.latent):
            raise UsageError("calibrate_encoder needs the image generator's encoder and motion_d latent or both")
        self.G, self.M, self.cfg = G, M, cfg
        self.E = encoder.eval().requires_grad_(False) if encoder is not None and cfg.encode_fakes else None
        self.dist = dist or Dist()
        self.device = self.dist.device
        c = cfg
        pair = 2 if c.domain == "in" else 1
        self.D_V = MultiscaleVideoDiscriminator(
            3 * pair, c.frames - (c.domain == "in"), base_channels=c.dv_channels, mbstd_group=c.dv_mbstd
        )
        if c.domain == "in":
            self.D_I = MultiscaleImageDiscriminator(6, base_channels=c.dv_channels)
            di_betas, di_eps = (c.beta1, c.beta2), 1e-8
        else:
            D = SNResNetDiscriminator(c.frame_size, c.di_channels, c.proj_dim)
            self.D_I = ContrastiveDiscriminator(
                D, c.proj_dim, c.queue, c.moco_momentum, c.moco_temperature, c.world_batch
            )
            di_betas, di_eps = (0.0, 0.999), 1e-6  # the official contrastive D_I optimiser
        self.D_V.to(self.device)
        self.D_I.to(self.device)
        self.dist.broadcast_module(self.M)
        self.dist.broadcast_module(self.D_V)
        self.dist.broadcast_module(self.D_I)
        self.opt_M = torch.optim.Adam(M.parameters(), c.lr, betas=(c.beta1, c.beta2))
        self.opt_V = torch.optim.Adam(self.D_V.parameters(), c.lr, betas=(c.beta1, c.beta2))
        self.opt_I = torch.optim.Adam(self._di_params(), c.lr, betas=di_betas, eps=di_eps)
        if c.latent:  # the latent trajectories' discriminator, on M's PCA coordinates
            self.D_L = TrajectoryDiscriminator(M.cfg.n_pca, width=c.dl_channels).to(self.device)
            self.dist.broadcast_module(self.D_L)
            self.opt_L = torch.optim.Adam(self.D_L.parameters(), c.lr, betas=(c.beta1, c.beta2))
        self.amp = _amp_dtype(c.precision)
        scaled = c.precision == "fp16"
        # loss scaling only for fp16 (a disabled scaler is a no-op, made for the CPU so any device accepts it)
        where = self.device.type if scaled else "cpu"
        self.scalers = {k: torch.amp.GradScaler(where, enabled=scaled) for k in ("M", "V", "I", "L")}
        self.rng = torch.Generator().manual_seed(int(seed) * 7919 + self.dist.rank)
        self.calibration = self.fake_gain = self.fake_noise = None
        if c.calibrate_encoder:  # the same seed on every rank: the same matrices
            gain, cov = encoder_gain(
                G, encoder, M.pca_components, M.pca_stdev, c.calibrate_encoder, c.truncation, seed=int(seed)
            )
            if c.calibration_side in ("reals", "both"):
                self.calibration = inverse_gain(gain)
            if c.calibration_side in ("fakes", "both"):
                self.fake_gain, self.fake_noise = gain, frame_error(cov)
        # the model a run exports, samples, monitors and evaluates: M itself, or its moving average
        self.M_ema = MovingAverage(M, c.motion_ema).to(self.device) if c.motion_ema else None
        self.pool = None
        if c.latent and c.latent_pool:
            w_dim = M.pca_components.shape[-1]
            self.pool = TrajectoryPool(c.latent_pool, M.cfg.n_pca, c.frames, w_dim, self.device)

    @property
    def exported(self) -> torch.nn.Module:
        """The motion model a run exports (and samples, monitors, evaluates): M's moving average
        with ``motion_ema``, else M."""
        return self.M if self.M_ema is None else self.M_ema.model

    def networks(self) -> tuple[torch.nn.Module, ...]:
        """What training changes (every rank must hold the same)."""
        ema = (self.M_ema,) if self.M_ema is not None else ()
        return (self.M, self.D_V, self.D_I) + ((self.D_L,) if self.cfg.latent else ()) + ema

    def _di_params(self):
        return self.D_I.D.parameters() if isinstance(self.D_I, ContrastiveDiscriminator) else self.D_I.parameters()

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    # ------------------------------------------------------------------ sampling

    def _randint(self, low: int, high: int) -> int:  # inclusive, from the run's generator
        return int(torch.randint(low, high + 1, (), generator=self.rng))

    def _flip_time(self, clips: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W]
        return clips.flip(2) if self._randint(0, 1) == 0 else clips

    def fake_clips(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        w1: torch.Tensor | None = None,
        model: torch.nn.Module | None = None,
    ):
        """(clips [B, T, 3, S, S], eps [B, T-1, d], reconstructed eps), differentiable w.r.t. M:
        the draws (w_1, eps, per-video noise, classes) from ``generator`` (default: the run's),
        then ``clips``. ``w1``: the videos' first latents (the encoded first frames of real clips);
        ``model``: the motion model that moves them (default M; the monitor's: ``exported``)."""
        w1, eps, noise, labels = self.draws(batch, generator, w1)
        return self.clips(w1, eps, noise, labels, model)

    def draws(self, batch: int, generator: torch.Generator | None = None, w1: torch.Tensor | None = None):
        """What makes ``batch`` fake videos: (w_1, eps, noise, classes), drawn in this order."""
        c, G = self.cfg, self.G
        rng = self.rng if generator is None else generator
        w1 = draw_w1(G, batch, rng, self.device) if w1 is None else w1.to(self.device)
        eps = self.M.draw_eps(batch, c.frames - 1, rng).to(self.device)
        noise = VideoNoise(G, batch, "fixed", rng, self.device)  # one draw per video, shared by its frames
        labels = draw_classes(G, batch, rng, c.classes) if G.c_dim else None  # one class per video
        return w1, eps, noise, labels

    def fake_trajectories(self, w1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(trajectories [B, T, w_dim], eps, reconstructed eps) of M from the first latents ``w1``,
        no frame rendered (the latent discriminator's fakes when it judges alone)."""
        eps = self.M.draw_eps(w1.shape[0], self.cfg.frames - 1, self.rng).to(self.device)
        return self.M(w1.to(self.device), self.cfg.frames, eps=eps, return_eps=True)

    def coordinates(self, ws: torch.Tensor) -> torch.Tensor:
        """D_L's input: trajectories [B, T, w_dim] -> their PCA coordinates, channels first [B, n_pca, T]."""
        return pca_coordinates(ws.float(), self.M.pca_components, self.M.pca_stdev).transpose(1, 2)

    def real_coordinates(self, real_ws: torch.Tensor) -> torch.Tensor:
        """The real clips' encoded trajectories as D_L sees them: their coordinates, with the encoder's
        gain undone (``calibration_side`` reals: ``inverse_gain``)."""
        coords = self.coordinates(real_ws)
        if self.calibration is None:
            return coords
        return torch.einsum("kj,bjt->bkt", self.calibration, coords)

    def fit_bank(self, real_ws: torch.Tensor) -> str:
        """Fit the motion model's oscillator bank to real trajectories [B, T, w_dim] (``osc_init`` data):
        the strongest rhythms of their coordinates as D_L sees them (``stats.rhythms``), one oscillator
        each, strongest first. Returns a note on the largest."""
        coords = self.real_coordinates(real_ws.to(self.device)).transpose(1, 2).double().cpu()  # [B, T, n_pca]
        found = rhythms(coords, self.M.cfg.oscillators)
        self.M.set_bank(1.0 / found.frequencies.clamp(min=1e-6), found.directions, found.amplitudes)
        shown = ", ".join(
            f"{1 / f:.3g}: {a:.2f}" for f, a in zip(found.frequencies[:4], found.amplitudes[:4], strict=True)
        )
        what = f"{len(coords)} real clips' trajectories"
        return f"oscillator bank fitted to {what}, largest (period in frames: size in stdevs) {shown}"

    def fake_coordinates(self, fake_ws: torch.Tensor) -> torch.Tensor:
        """The fakes' trajectories as D_L sees them: their coordinates, or (``calibration_side`` fakes) as
        the encoder would report them: its gain applied and its error drawn for each frame, the first
        frame's subtracted as the coordinates' origin is (a linear stand-in for ``encode_fakes``, with no
        frame rendered). both: reported so, then corrected as the real clips are (``real_coordinates``),
        so the two sides carry the same distortion, what the correction leaves of the gain and its
        amplified error, while a fake's own motion reaches D_L at about its size."""
        coords = self.coordinates(fake_ws)
        if self.fake_gain is None:
            return coords
        b, k, t = coords.shape
        err = torch.randn(b, t, k, generator=self.rng).to(coords.device) @ self.fake_noise.t()
        err = (err - err[:, :1]).transpose(1, 2)
        reported = torch.einsum("kj,bjt->bkt", self.fake_gain, coords) + err
        if self.calibration is None:
            return reported
        return torch.einsum("kj,bjt->bkt", self.calibration, reported)

    def clips(self, w1: torch.Tensor, eps: torch.Tensor, noise: VideoNoise, labels=None, model=None):
        """The clips of given draws: w_1 [B, w_dim], eps [B, T-1, d], the videos' noise and
        classes [B] -> the motion model's trajectories (``model``'s, default M's) ->
        ``frames.synthesize`` (as rendering does) -> the training frame size. Returns (clips, eps,
        reconstructed eps)."""
        ws, eps, eps_rec = (self.M if model is None else model)(w1, self.cfg.frames, eps=eps, return_eps=True)
        return self.render(ws, noise, labels), eps, eps_rec

    def render(self, ws: torch.Tensor, noise: VideoNoise, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Trajectories [B, T, w_dim] -> clips [B, T, 3, S, S] at the training frame size."""
        return self.to_frame_size(self.synthesize(ws, noise, labels))

    def synthesize(self, ws: torch.Tensor, noise: VideoNoise, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Trajectories [B, T, w_dim] -> the generator's frames [B * T, 3, R, R], video-major. In bf16
        (fp16) the synthesis runs as ``render --dtype bf16`` runs it (``dtype``: styles, demodulation and
        the image in float32), not under a blanket autocast: the frames are rendering's."""
        c, G = self.cfg, self.G
        batch = ws.shape[0]
        video_of = torch.arange(batch, device=self.device).repeat_interleave(c.frames)  # video-major: clip b's frames
        classes = None if labels is None else labels.repeat_interleave(c.frames)
        return synthesize(G, ws.reshape(batch * c.frames, -1), noise(video_of), classes, c.truncation, dtype=self.amp)

    def to_frame_size(self, img: torch.Tensor) -> torch.Tensor:
        """``synthesize``'s frames [B * T, 3, R, R] -> clips [B, T, 3, S, S] at the training frame size."""
        size = self.cfg.frame_size
        if img.shape[-1] != size:
            img = F.interpolate(img, size=(size, size), mode="area")
        return img.reshape(-1, self.cfg.frames, *img.shape[1:])

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """``synthesize``'s frames [B * T, 3, R, R] -> their trajectories through the encoder [B, T, w_dim]
        (its per-layer w's averaged, as the real clips' are: ``data.trajectories``)."""
        with self.autocast():
            ws = self.E(img.clamp(-1, 1)).float().mean(dim=1)
        return ws.reshape(-1, self.cfg.frames, ws.shape[-1])

    def fakes(self, batch: int, w1: torch.Tensor | None) -> tuple:
        """The fakes of one update: (trajectories [B, T, w_dim], eps, reconstructed eps, clips at the
        training frame size or None, the trajectories D_L judges or None). No frame is rendered
        when only the fakes' w's are judged."""
        c = self.cfg
        if not c.renders:
            ws, eps, eps_rec = self.fake_trajectories(w1)
            return ws, eps, eps_rec, None, ws
        w1, eps, noise, labels = self.draws(batch, None, w1)
        ws, eps, eps_rec = self.M(w1, c.frames, eps=eps, return_eps=True)
        img = self.synthesize(ws, noise, labels)
        clips = self.to_frame_size(img) if c.pixels else None
        judged = (self.encode(img) if c.encode_fakes else ws) if c.latent else None
        return ws, eps, eps_rec, clips, judged

    def video_input(self, clips: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> D_V's input [B, C', T', H, W] (in-domain: (frame 1, frame t) pairs)."""
        if self.cfg.domain == "in":
            first = clips[:, :1].expand(-1, clips.shape[1] - 1, -1, -1, -1)
            clips = torch.cat([first, clips[:, 1:]], dim=2)
        return clips.transpose(1, 2)

    # ------------------------------------------------------------------ steps

    def _step(self, key: str, opt, loss: torch.Tensor, params) -> None:
        params = [p for p in params if p.requires_grad]  # a frozen one (osc_fixed_directions) keeps no gradient
        scaler = self.scalers[key]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(inputs=params)
        self.dist.average_grads(params)  # averaged while still scaled: every rank sees the same inf/nan
        scaler.step(opt)
        scaler.update()

    def g_step(self, x: torch.Tensor, real_ws: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One motion generator update. ``real_ws`` [B, T, w_dim]: the real clips' latent trajectories
        (with an encoder); the fakes then start at their first latents."""
        c = self.cfg
        w1 = None if real_ws is None else real_ws[:, 0]
        out = {}
        ws, eps, eps_rec, fake, judged = self.fakes(x.shape[0], w1)
        loss, pixel_terms = self._pixel_terms(x, fake, out) if c.pixels else (0.0, {})
        l_mutual = losses.motion_diversity(eps_rec, eps)
        loss = loss + c.w_mutual * l_mutual
        # what D_L sees, once for the terms that compare trajectories (the fakes' drawn error included)
        fake_c, real_c = (self.fake_coordinates(judged), self.real_coordinates(real_ws)) if c.latent else (None, None)
        # optional terms beyond the authors' recipe (weight 0: not computed, not logged)
        for name, weight, term in (
            ("spectrum", c.w_spectrum, lambda: losses.spectrum_matching(fake, x)),
            ("cross_spectrum", c.w_cross_spectrum, lambda: losses.cross_spectrum_matching(fake, x)),
            ("latent_cross_spectrum", c.w_latent_cross_spectrum, lambda: self._latent_cross_spectrum(fake_c, real_c)),
            ("bank_energy", c.w_bank_energy, self.M.bank_step_energy),
            ("bank_spread", c.w_bank_spread, self.M.bank_spread),
            ("G_latent", c.w_latent_d if c.latent else 0.0, lambda: self._latent_g_term(fake_c, real_c)),
        ):
            if weight:
                value = term()
                loss = loss + weight * value
                out[name] = _item(value)
        self._step("M", self.opt_M, loss, self.M.parameters())
        out.update(**pixel_terms, mutual=_item(l_mutual))
        return out

    def _pixel_terms(self, x: torch.Tensor, fake: torch.Tensor, out: dict) -> tuple[torch.Tensor, dict]:
        """The authors' terms of the motion generator's loss: D_V's and D_I's (and, cross-domain, the
        feature matching, logged in ``out``), and the values of the first two."""
        c = self.cfg
        t = self._randint(1, c.frames - 1)
        with self.autocast():
            if c.domain == "cross":
                warped_later, warped_first = warp(fake[:, t], self.rng), warp(fake[:, 0], self.rng)
                with torch.no_grad():
                    p_first = self.D_I.ema(warped_first, proj_only=True).float()
                    p_later = self.D_I.ema(warped_later, proj_only=True).float()
                    self.D_I.enqueue(self.dist.gather(p_first), self.dist.gather(p_later))
                scores, proj = self.D_I.D(torch.cat([warped_later, warped_first]))
            else:
                d_fake = self.D_I(torch.cat([fake[:, 0], fake[:, t]], dim=1))
                d_real = self.D_I(torch.cat([x[:, 0], x[:, t]], dim=1))
            v_real = self.D_V(self._flip_time(self.video_input(x)))
            v_fake = self.D_V(self._flip_time(self.video_input(fake)))
        # the losses in float32, outside autocast
        if c.domain == "cross":
            p_l, p_f = proj.float().chunk(2)
            l_match = -F.cosine_similarity(p_l, p_f, dim=1).mean()
            g_img = losses.hinge_generator(scores[: x.shape[0]].float())
            out["match"] = _item(l_match)
        else:
            d_fake, d_real = _float(d_fake), _float(d_real)
            g_img = 0.5 * (losses.ralsgan(d_fake, d_real, 1.0) + losses.ralsgan(d_real, d_fake, 0.0))
            l_match = 0.0
        v_real, v_fake = _float(v_real), _float(v_fake)
        g_vid = 0.5 * (losses.ralsgan(v_fake, v_real, 1.0) + losses.ralsgan(v_real, v_fake, 0.0))
        return g_vid + g_img + c.w_match * l_match, {"G_video": _item(g_vid), "G_image": _item(g_img)}

    def _latent_cross_spectrum(self, fake_c: torch.Tensor, real_c: torch.Tensor) -> torch.Tensor:
        """``losses.cross_spectrum_matching`` on the coordinates D_L sees ([B, n_pca, T]): the batch's
        fakes and real clips, or with a pool (``_pooled``) the pool's. Which directions move at which
        rhythm, and which move together (two directions locked at one phase make cross terms
        independent movements lack)."""
        fake_c, real_c = self._pooled(fake_c, real_c)
        return losses.cross_spectrum_matching(fake_c.transpose(1, 2), real_c.transpose(1, 2))

    def _pooled(self, fake_c: torch.Tensor, real_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the latent cross-spectrum compares: the batch's coordinates, or with ``latent_pool`` the
        pool's real clips and as many fakes drawn now from their first latents (no frame rendered). A
        batch's B clips show the cross terms of independent movements at about 1/sqrt(B) of their
        powers, as large as the locking to be seen."""
        if self.pool is None:
            return fake_c, real_c
        pooled, w1 = self.pool.contents()
        return self.fake_coordinates(self.fake_trajectories(w1)[0]), pooled

    def _latent_g_term(self, fake_c: torch.Tensor, real_c: torch.Tensor) -> torch.Tensor:
        """D_L's relativistic term for the motion generator: the fakes' coordinates against the real ones'."""
        with self.autocast():
            l_fake, l_real = self.D_L(fake_c), self.D_L(real_c)
        l_fake, l_real = _float(l_fake), _float(l_real)
        return 0.5 * (losses.ralsgan(l_fake, l_real, 1.0) + losses.ralsgan(l_real, l_fake, 0.0))

    def d_step(self, x: torch.Tensor, real_ws: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One update of each discriminator (``real_ws``: as ``g_step``)."""
        c = self.cfg
        w1 = None if real_ws is None else real_ws[:, 0]
        out = {}
        with torch.no_grad():
            _, _, _, fake, judged = self.fakes(x.shape[0], w1)
        if c.pixels:
            out.update(self._video_d_step(x, fake))
            out.update(self._image_d_step(x, fake))
        if c.latent:
            out.update(self._latent_d_step(judged, real_ws))
        return out

    def _video_d_step(self, x: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.cfg
        real_in, fake_in = self.video_input(x), self.video_input(fake)
        with self.autocast():
            v_fake = _float(self.D_V(self._flip_time(fake_in)))
            v_real = _float(self.D_V(self._flip_time(real_in)))
        d_real = losses.ralsgan(v_real, v_fake, 1.0)
        d_fake = losses.ralsgan(v_fake, v_real, 0.0)
        # the penalty runs in fp32 whatever the precision: its input gradients would overflow fp16
        gp = losses.gradient_penalty(self.D_V, real_in, fake_in, c.gp_weight, self.rng)
        self._step("V", self.opt_V, 0.5 * (d_real + d_fake) + gp, self.D_V.parameters())
        return {"D_video_real": _item(d_real), "D_video_fake": _item(d_fake), "gp": _item(gp)}

    def _image_d_step(self, x: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.cfg
        t = self._randint(1, c.frames - 1)
        if c.domain == "cross":
            first2, first = warp(fake[:, 0], self.rng), warp(fake[:, 0], self.rng)
            later2, later = warp(fake[:, t], self.rng), warp(fake[:, t], self.rng)
            with self.autocast():
                scores, proj = self.D_I.D(torch.cat([first, first2, later, later2]))
            scores, proj = scores.float(), proj.float()
            s_first, _, s_later, _ = scores.chunk(4)
            cntr = self.D_I.loss(*proj.chunk(4))
            l_real, l_fake = losses.hinge_discriminator(s_later, s_first)
            self._step("I", self.opt_I, l_real + l_fake + 2.0 * cntr, self._di_params())
            self.D_I.update_ema()
            return {"D_image_real": _item(l_real), "D_image_fake": _item(l_fake), "contrastive": _item(cntr)}
        with self.autocast():
            d_r = _float(self.D_I(torch.cat([x[:, 0], x[:, t]], dim=1)))
            d_f = _float(self.D_I(torch.cat([fake[:, 0], fake[:, t]], dim=1)))
        l_real, l_fake = losses.ralsgan(d_r, d_f, 1.0), losses.ralsgan(d_f, d_r, 0.0)
        self._step("I", self.opt_I, 0.5 * (l_real + l_fake), self._di_params())
        return {"D_image_real": _item(l_real), "D_image_fake": _item(l_fake)}

    def _latent_d_step(self, fake_ws: torch.Tensor, real_ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """D_L: relativistic-average LSGAN on real and fake trajectories' coordinates, gradient penalty."""
        real_in, fake_in = self.real_coordinates(real_ws), self.fake_coordinates(fake_ws)
        with self.autocast():
            l_real, l_fake = _float(self.D_L(real_in)), _float(self.D_L(fake_in))
        d_real, d_fake = losses.ralsgan(l_real, l_fake, 1.0), losses.ralsgan(l_fake, l_real, 0.0)
        gp = losses.gradient_penalty(self.D_L, real_in, fake_in, self.cfg.gp_weight, self.rng)
        self._step("L", self.opt_L, 0.5 * (d_real + d_fake) + gp, self.D_L.parameters())
        return {"D_latent_real": _item(d_real), "D_latent_fake": _item(d_fake), "gp_latent": _item(gp)}

    def iteration(self, x: torch.Tensor, real_ws: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``g_steps`` G_M updates on the same real batch, then one D update (the official schedule).
        ``real_ws`` [B, T, w_dim]: the real clips' latent trajectories (needed when D_L judges).
        Returns the losses as 0-d float32 tensors on the device (``run.as_floats`` reads them)."""
        if self.cfg.latent and real_ws is None:
            raise UsageError("the latent discriminator needs the real clips' latent trajectories")
        if self.pool is not None:
            self.pool.add(self.dist.gather(self.real_coordinates(real_ws)), self.dist.gather(real_ws[:, 0].float()))
        for _ in range(self.cfg.g_steps):
            g = self.g_step(x, real_ws)
        if self.M_ema is not None:
            self.M_ema.update(self.M)
        return {**g, **self.d_step(x, real_ws)}

    # ------------------------------------------------------------------ state

    STATE = ("M", "D_V", "D_I", "opt_M", "opt_V", "opt_I")  # what a checkpoint holds, under these names
    LATENT_STATE = ("D_L", "opt_L")  # and with the latent discriminator (and "pool" with a latent_pool)

    @property
    def state_names(self) -> tuple[str, ...]:
        pool = ("pool",) if self.pool is not None else ()
        ema = ("M_ema",) if self.M_ema is not None else ()
        return self.STATE + ema + (self.LATENT_STATE + pool if self.cfg.latent else ())

    def state_dict(self) -> dict:
        return {
            **{k: getattr(self, k).state_dict() for k in self.state_names},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def load_state_dict(self, sd: dict) -> None:
        for k in self.state_names:
            getattr(self, k).load_state_dict(sd[k])
        for k, s in self.scalers.items():
            if sd.get("scalers", {}).get(k):
                s.load_state_dict(sd["scalers"][k])


def _float(outputs):
    return [[f.float() for f in scale] for scale in outputs]


def _item(x) -> torch.Tensor | float:
    """A loss to report: detached, left on the device (``run.as_floats`` reads a step's losses at once)."""
    return x.detach().float() if isinstance(x, torch.Tensor) else float(x)
