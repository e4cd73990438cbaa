"""Training's motion monitor: at every checkpoint, how the motion model moves
compared with the real clips (``mocohd train --monitor``; ``--keep-best``).

    mon = Monitor(gan, dataset, seed=cfg.seed, domain=cfg.domain, clips=cfg.monitor_clips,
                  cache=run.folder / "monitor_real.json", note=print, progress=lambda done, total: ...)
    mon.prepare()          # once, writer rank: the real clips' statistics (in-domain latents inverted, cached)
    record = mon(step)     # {"distance", "change", "drift", "motion": {...}, "real": {...}, "seconds"}

Every draw comes from private CPU generators seeded by the run's seed (the same
draws at every checkpoint, so the records form a curve), under a forked global
RNG: training's random streams are never touched, and a run with the monitor
trains exactly as one without it. The fields (``motion.stats``):

motion    64 trajectories of the clip length (``frames``) drawn by the motion
          model (no gradients), along the first K = min(8, n_pca) directions of
          its PCA basis: ``shares`` of the per-step displacement energy,
          ``on_span`` (their sum), ``periods`` (frames), ``step`` (rms |w_t+1 -
          w_t|), ``max_coherence`` (0: independent movements, 1: locked).
change,   ``pixel_stats`` of 8 fake clips rendered as training renders them
drift     (``MotionGAN.clips``, at the training frame size): mean |frame t+1 -
          frame t| and mean |last - first frame|, in [-1, 1] pixel units.
real      the same pixel statistics of 32 real clips (fixed videos and starts,
          kept in memory), and for in-domain runs ``motion``: the motion
          statistics of ``clips`` real clips (``monitor_clips``) whose frames
          were inverted into w (``invert``: pixel loss, space w,
          ``INVERT_STEPS`` steps, all frames of a frame index together), along
          the same directions; computed once and cached in ``monitor_real.json``.
          Experimental (``monitor_clips`` 0 by default): independent per-frame
          inversions jitter, so in development trials on the demo (not a
          benchmark) most of the inverted step energy fell off the K directions
          and these terms did not separate trained, untrained and overshooting
          models; periods of a known motion came back well, its split between
          directions did not. The inversion is slow on a CPU (``INVERT_STEPS``
          generator forwards and backwards per frame of every clip): a note says
          what it does and ``progress(done, total)`` counts its steps.

distance  |log(change / real change)| + |log(drift / real drift)|
          + sum_k |p_k - real p_k|                                (in-domain, real motion known)
          + sum_k real p_k |log(period_k / real period_k)|        (idem)
          where p_k = share_k / on_span, the shares as a distribution over the K
          directions: inversion puts much of a real clip's step energy off the
          span (independent per-frame solutions jitter along directions the
          image hardly depends on: a motion entirely on two directions measured
          on_span 0.2-0.3 after inversion, its periods within 2%), so raw shares
          would call every model too focused. 0 for identical statistics. A log
          term of 0.69 is a factor 2 off (too much or too little motion); the
          share term is the energy misplaced among the directions (at most 2);
          the period term is the relative period error weighted by the real
          motion's use of each direction.

``KeepBest`` keeps the exported model at the step with the smallest criterion
(this distance, or fvd16 when the run evaluates), recorded in the run folder's
``best`` file so that a resume goes on comparing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import to_model_input
from ..errors import MocohdError
from ..formats.canonical import atomic_write_bytes
from ..frames import draw_w1
from ..invert import check_generator, invert
from ..motion.stats import motion_stats, pixel_stats
from ..runtime import precision

TRAJECTORIES = 64  # generated latent trajectories per measurement
FAKE_CLIPS = 8  # generated clips rendered per measurement
REAL_CLIPS = 32  # real clips of the pixel statistics
CHUNK = 4  # clips rendered at once
DIRECTIONS = 8  # the first K PCA directions measured
INVERT_STEPS = 100  # inversion steps per real frame (in-domain latent statistics)
EPS = 1e-8  # floor of the statistics inside logs
SEED_OFFSET = 2**40  # the monitor's streams: far from training's (seed x 7919 + rank)


def distance(fake: dict, real: dict) -> float:
    """The monitor's distance (module docstring) between a record's statistics ``fake``
    ({change, drift, motion?}) and ``real`` ({change, drift, motion?})."""
    d = _log_ratio(fake["change"], real["change"]) + _log_ratio(fake["drift"], real["drift"])
    fm, rm = fake.get("motion"), real.get("motion")
    if fm and rm:
        fs, rs = _within_span(fm), _within_span(rm)
        # not strict: the real statistics may come from the run's cache file (read leniently, as before)
        d += sum(abs(a - b) for a, b in zip(fs, rs, strict=False))
        d += sum(s * _log_ratio(p, q) for s, p, q in zip(rs, fm["periods"], rm["periods"], strict=False))
    return float(d)


def _within_span(motion: dict) -> list[float]:
    """The shares as a distribution over the K directions (divided by ``on_span``)."""
    return [s / max(motion["on_span"], EPS) for s in motion["shares"]]


def _log_ratio(a: float, b: float) -> float:
    return abs(math.log(max(a, EPS) / max(b, EPS)))


def summary(record: dict) -> str:
    """The short part of a record the progress line shows: distance, fake/real change and drift."""
    real = record["real"]
    return (
        f"monitor {record['distance']:.3f} (change {record['change']:.3f}/{real['change']:.3f}, "
        f"drift {record['drift']:.3f}/{real['drift']:.3f})"
    )


@contextlib.contextmanager
def _private(device: torch.device, M: torch.nn.Module):
    """No gradients, exact float32 (no TF32: ``runtime.precision``), M in eval mode, and the global
    random state as it was afterwards."""
    was = M.training
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), precision(device):
        M.eval()
        try:
            yield
        finally:
            M.train(was)


class Monitor:
    """The motion monitor of a run (module docstring). ``gan``: the ``motion_gan.MotionGAN`` being
    trained; ``dataset``: its ``data.ClipDataset``; ``clips``: real clips inverted for the
    in-domain latent statistics (0: none); ``cache``: their file; ``note(text)``: one-line notes;
    ``progress(done, total)``: the inversion's steps (all frames of all clips together)."""

    def __init__(
        self,
        gan,
        dataset,
        *,
        seed: int,
        domain: str,
        clips: int,
        cache: Path | None,
        note: Callable[[str], None] = lambda text: None,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.gan, self.dataset, self.seed, self.domain, self.clips = gan, dataset, int(seed), domain, clips
        self.cache, self.note, self.progress = cache, note, progress
        self.device = gan.device
        self.real: dict | None = None

    def _gen(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(SEED_OFFSET + self.seed * 16 + stream)

    @property
    def directions(self) -> torch.Tensor:
        """[K, w_dim] the motion model's first K PCA directions."""
        comp = self.gan.M.pca_components
        return comp[: min(DIRECTIONS, comp.shape[0])].detach().float().cpu()

    # ------------------------------------------------------------------ the real clips

    def real_clips(self, n: int = REAL_CLIPS) -> torch.Tensor:
        """[n, T, 3, S, S] in [-1, 1]: item i is video perm[i mod videos] (a permutation seeded by the
        run's seed) from a start fixed by i; the first ones are distinct videos when there are enough."""
        return to_model_input(torch.stack([i[0] if isinstance(i, tuple) else i for i in self._real_items(n)]))

    def _real_items(self, n: int) -> list:
        videos = len(self.dataset)
        perm = torch.randperm(videos, generator=self._gen(0)).tolist()
        return [self.dataset[(perm[i % videos], SEED_OFFSET + self.seed * 1000 + i)] for i in range(n)]

    def prepare(self) -> dict:
        """The real statistics (once): pixel statistics, and the latent ones: the real clips' encoded
        trajectories when the run has an encoder, else in-domain ``clips`` clips inverted (cached)."""
        if self.real is None:
            with _private(self.device, self.gan.M):
                items = self._real_items(REAL_CLIPS)  # (clip, trajectory) pairs when the run has an encoder
                frames = [i[0] if isinstance(i, tuple) else i for i in items]
                real = pixel_stats(to_model_input(torch.stack(frames)))
                motion = self._encoded_motion(items)
                if motion is None and self.domain == "in" and self.clips > 0:
                    motion = self._real_motion()
                if motion is not None:
                    real["motion"] = motion
            self.real = real
        return self.real

    def _encoded_motion(self, items: list) -> dict | None:
        """The motion statistics of the real clips' encoded trajectories (a run with an encoder), else None."""
        if not isinstance(items[0], tuple):
            return None
        motion = motion_stats(torch.stack([ws for _, ws in items]).float(), self.directions).to_dict()
        self.note(f"monitor: the real clips' latent motion from their encoded trajectories: {_shares(motion)}")
        return motion

    def _key(self) -> dict:
        G, c = self.gan.G, self.gan.cfg
        videos = json.dumps(self.dataset.videos, sort_keys=True).encode()
        basis = self.directions.numpy().tobytes()
        return {
            "image_sha256": (getattr(G, "identity", None) or {}).get("weights_sha256"),
            "videos": hashlib.sha256(videos).hexdigest()[:16],
            "basis": hashlib.sha256(basis).hexdigest()[:16],
            "frames": c.frames,
            "time_step": self.dataset.time_step,
            "frame_size": c.frame_size,
            "seed": self.seed,
            "clips": self.clips,
            "steps": INVERT_STEPS,
        }

    def _real_motion(self) -> dict | None:
        """The motion statistics of ``clips`` inverted real clips: from the cache when it was made
        with the same settings, else computed (and cached); None when G cannot be inverted."""
        G, key = self.gan.G, self._key()
        if self.cache is not None and self.cache.is_file():
            try:
                cached = json.loads(self.cache.read_text())
                if cached.get("key") == key:
                    return cached["motion"]
            except (OSError, ValueError, KeyError):
                pass  # unreadable: computed again
        try:
            check_generator(G, "w")
        except MocohdError as e:
            self.note(f"monitor: no real latent statistics ({e})")
            return None
        clips = f"{self.clips} real clip" + ("s" if self.clips != 1 else "")
        frames = self.gan.cfg.frames
        self.note(
            f"monitor: inverting {clips} ({frames} frames each) into w, once, before training: "
            f"{INVERT_STEPS} steps per frame at {G.resolution} px, the clips together ({frames * INVERT_STEPS} "
            "steps)"
        )
        t0 = time.perf_counter()
        try:
            ws = self.invert_clips(self.real_clips(self.clips), progress=self.progress)
        except MocohdError as e:  # e.g. a diverged inversion: training goes on without them
            self.note(f"monitor: no real latent statistics ({e})")
            return None
        motion = motion_stats(ws, self.directions).to_dict()
        if self.cache is not None:
            atomic_write_bytes(self.cache, json.dumps({"key": key, "motion": motion}, indent=1).encode())
        seconds = time.perf_counter() - t0
        self.note(
            f"monitor: inverted {clips} into w in {seconds:.1f} s ({seconds / frames:.1f} s per frame; "
            f"their motion: {_shares(motion)})"
        )
        return motion

    def invert_clips(
        self, clips: torch.Tensor, steps: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> torch.Tensor:
        """[C, T, 3, S, S] real clips -> their w trajectories [C, T, w_dim]: frame t of every clip
        inverted together (photo i's noise and w-noise streams are the same at every frame, which
        keeps a clip's inversions alike), frames resized to G's resolution. ``progress(done, total)``
        after every step: T x ``steps`` in all."""
        G, c = self.gan.G, self.gan.cfg
        extra = {"classes": list(c.classes) if c.classes else None, "truncation": c.truncation} if G.c_dim else {}
        dtype = torch.bfloat16 if self.gan.amp is torch.bfloat16 else None
        steps = steps or INVERT_STEPS
        total = clips.shape[1] * steps
        ws = []
        for t in range(clips.shape[1]):
            frames = clips[:, t].to(self.device)
            if frames.shape[-1] != G.resolution:
                frames = F.interpolate(frames, size=(G.resolution, G.resolution), mode="bilinear", align_corners=False)
            step = None if progress is None else (lambda done, _steps, _dist, t=t: progress(t * steps + done, total))
            latent = invert(
                G,
                frames.clamp(-1, 1),
                steps=steps,
                space="w",
                loss="pixel",
                seed=self.seed,
                dtype=dtype,
                progress=step,
                **extra,
            )
            ws.append(latent.ws[:, 0])
        return torch.stack(ws, dim=1)

    # ------------------------------------------------------------------ a measurement

    def trajectories(self, n: int = TRAJECTORIES) -> torch.Tensor:
        """[n, frames, w_dim] the motion model's trajectories of fixed draws (CPU, float32)."""
        gan = self.gan
        gen = self._gen(1)
        w1 = draw_w1(gan.G, n, gen, self.device)
        M = gan.exported
        eps = M.draw_eps(n, gan.cfg.frames - 1, gen).to(self.device)
        return M(w1, gan.cfg.frames, eps=eps).float().cpu()

    def fake_clips(self, n: int = FAKE_CLIPS) -> torch.Tensor:
        """[n, T, 3, S, S] clips of fixed draws, rendered as training renders them, clamped to [-1, 1]."""
        gen, M = self._gen(2), self.gan.exported
        chunks = [self.gan.fake_clips(min(CHUNK, n - i), gen, model=M)[0] for i in range(0, n, CHUNK)]
        return torch.cat([c.float().clamp(-1, 1).cpu() for c in chunks])

    def __call__(self, step: int) -> dict:
        """The record of the motion model as it is now (module docstring)."""
        t0 = time.perf_counter()
        real = self.prepare()
        with _private(self.device, self.gan.exported):
            motion = motion_stats(self.trajectories(), self.directions).to_dict()
            record = {**pixel_stats(self.fake_clips()), "motion": motion}
        record = {
            "distance": _round(distance(record, real)),
            "change": _round(record["change"]),
            "drift": _round(record["drift"]),
            "motion": motion,
            "real": {k: v if k == "motion" else _round(v) for k, v in real.items()},
        }
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record


def _round(x: float) -> float:  # 7 significant digits in the JSON
    return float(f"{x:.7g}")


def _shares(motion: dict) -> str:
    return (
        "shares "
        + " ".join(f"{s:.2f}" for s in motion["shares"])
        + ", periods "
        + " ".join(f"{p:.1f}" for p in motion["periods"])
    )


# ---------------------------------------------------------------------------- --keep-best


class KeepBest:
    """--keep-best: export the model only at a step whose ``criterion`` value ('monitor distance' or
    'fvd16') is the smallest so far. The best is the run folder's ``best`` file, JSON {step, criterion,
    value}, written atomically after the export; a fresh run (``fresh``) starts without one, a
    resume goes on from it (unless the criterion changed: then it starts over, with a note)."""

    def __init__(self, path: Path, criterion: str, fresh: bool, note: Callable[[str], None] = lambda text: None):
        self.path, self.criterion, self.note = path, criterion, note
        self.best: dict | None = None
        if fresh:
            path.unlink(missing_ok=True)
        elif path.is_file():
            try:
                best = json.loads(path.read_text())
                float(best["value"]), int(best["step"])
            except (OSError, ValueError, KeyError, TypeError):
                note(f"{path}: unreadable, the best checkpoint is chosen again from here")
                return
            if best.get("criterion") == criterion:
                self.best = best
            else:
                note(
                    f"--keep-best now compares {criterion} (it compared {best.get('criterion')}): "
                    f"the best is chosen again from here"
                )

    def offer(self, step: int, value: float | None, export: Callable[[int], None]) -> bool:
        """Export ``step`` and record it when ``value`` beats the best so far; True if it did."""
        if value is None or not math.isfinite(value) or (self.best is not None and value >= self.best["value"]):
            return False
        export(step)
        self.best = {"step": step, "criterion": self.criterion, "value": value}
        atomic_write_bytes(self.path, json.dumps(self.best).encode())
        self.note(f"kept step {step} as the best ({self.criterion} {value:.4g})")
        return True


__all__ = ["KeepBest", "Monitor", "distance", "summary"]
