"""``mocohd eval``: FVD and FID of generated videos against a dataset, by StyleGAN-V's protocol.

    results = evaluate(["fvd16", "fid"], data="./voxceleb", motion="voxceleb", image="ffhq-256")
    results = evaluate(["fvd16"], data="./voxceleb", fake="./other-system-videos")
    results[0].value, results[0].to_dict()

Fakes are rendered here, batch by batch, and never written: video ``i`` takes
its first w, motion noise, noise maps and class from its own generator seeded
by (seed, i), so the same seed gives the same videos whatever the batch size
or the number of processes. Under torchrun, process r renders and embeds
videos r, r + world, ...; real clips are shared out the same way; the feature
statistics (count, mean, centred second moment; ``FeatureStats``) are
gathered and merged, so every process ends with the statistics of one
process's run, to float rounding.

Real statistics are cached in the store (``eval-stats/``), keyed by the clip
cache's index, the protocol, the number of clips, the seed and the detector's
weights: evaluating again renders and embeds only the fakes. The index holds
every video's source signature (``mocohd_cli.data``) and is refreshed when the
dataset changes, so a changed dataset never meets statistics of its old self.

A folder of fakes (``fake``) is decoded into a scratch folder of the store that
is removed when the evaluation ends, however it ends; by default at the
videos' own size when they are squares of one size (up to ``DEFAULT_SIZE``),
else at ``DEFAULT_SIZE`` (``MetricResult.frame_size`` says which).

What each metric compares (``protocol.PROTOCOLS``):
- ``fvd16`` / ``fvd128``: 16 / 128 consecutive frames from each video's first
  frame (StyleGAN-V reads generated videos from frame 0), against one real
  clip per video at a seeded random offset; ``fvd128-sub8``: frames 0, 8, ...,
  120 (only those are rendered; the motion itself runs every step).
- ``fid``: frames. Real: every frame of the usable videos, or a seeded sample
  of N of them. Fake (OUR CHOICE): the 16 frames of ceil(N / 16) rendered
  videos, the first N of them; a folder of fakes is sampled like the data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .. import store
from ..data import PreparedData, prepare, probe_size, scan, square_resize
from ..detectors import InceptionV3
from ..distributed import Dist
from ..errors import MocohdError, UsageError
from ..formats.canonical import atomic_write_bytes, load_verified, read_header, weights_sha256
from ..frames import check_noise, check_pair, check_truncation, draw_classes, synthesize
from ..loaders import load_image_generator
from ..loaders.detector_models import load_detector
from ..loaders.motion_models import load_motion
from ..loaders.pca_bases import express
from ..runtime import check_deterministic, deterministic_process, precision
from ..video import process_alive, whole
from . import frechet_distance
from .feature_stats import FeatureStats
from .protocol import (
    MAX_CLIPS,
    MAX_FRAME_SIZE,
    MAX_SEED,
    PROTOCOLS,
    Protocol,
    RealClips,
    get_protocol,
    sample_real_clips,
    to_detector_input,
)

FID_FRAMES_PER_VIDEO = 16  # frames of each rendered video that FID takes (OUR CHOICE, see the docstring)
STATS_VERSION = 1  # bump when anything that real statistics depend on changes
DEFAULT_SIZE = 256  # frames are compared at most at this size by default (StyleGAN-V's datasets are 256 x 256)
MAX_BATCH_BYTES = 256 << 20  # uint8 frames of rendered videos held at once (per process)
FLUSH_BATCHES = 16  # embedded batches whose features go to the host together (one sync)

Progress = Callable[[str, int, int], None]  # (stage, done, total): "real fvd16", "fake fvd16", ...


@dataclass
class MetricResult:
    """One metric's value and what it was computed from."""

    metric: str
    value: float
    real: int  # real clips (frames for fid)
    fake: int
    skipped: int  # real videos too short for the protocol
    real_videos: int  # real videos used
    detector: dict  # name and weights_sha256
    seed: int
    real_cached: bool = False
    seconds: dict = field(default_factory=dict)  # real, fake (render + embed), total
    fake_skipped: int | None = None  # a folder of fakes: its videos too short for the protocol (None: rendered)
    frame_size: int = 0  # the square size both sides were compared at

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------
# Embedding


def embed(detector: torch.nn.Module, clips: torch.Tensor, to_host: bool = True) -> torch.Tensor:
    """uint8 clips [B, T, H, W, C] -> features [B, D] float32 on the CPU (``to_host``) or on the
    detector's device. Inception (FID) takes
    single frames (T = 1); I3D whole clips. Rescaling to [-1, 1] happens here; resizing to the
    detector's input size (224 / 299) in the detector, as the reference files do."""
    device = next(detector.parameters()).device
    x = to_detector_input(clips.to(device))
    if isinstance(detector, InceptionV3):
        x = x[:, :, 0]
    # float32 throughout: cuDNN's TF32 convolutions (on by default) would move features by ~1e-3
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        features = detector(x).float()
    return features.cpu() if to_host else features


def _embed_batches(
    detector,
    batches: Iterator[torch.Tensor],
    stats: FeatureStats,
    batch: int,
    tick: Callable[[int], None] | None = None,
) -> None:
    """Embed ``batches`` of clips ``batch`` at a time into ``stats``. The features stay on the
    detector's device and go to the host ``FLUSH_BATCHES`` batches at a time (and at the end):
    one host sync per flush, not per batch."""
    pending = []
    for clips in batches:
        for i in range(0, clips.shape[0], batch):
            part = clips[i : i + batch]
            pending.append(embed(detector, part, to_host=False))
            if len(pending) == FLUSH_BATCHES:
                stats.update(torch.cat(pending).cpu())
                pending = []
            if tick:
                tick(part.shape[0])
    if pending:
        stats.update(torch.cat(pending).cpu())


def gather_stats(stats: FeatureStats, dist: Dist) -> FeatureStats:
    """Every process's statistics merged in rank order (the same on every process)."""
    if not dist.enabled:
        return stats
    merged = FeatureStats()
    for state in dist.gather_objects(stats.state_dict()):
        merged.merge(FeatureStats.from_state_dict(state))
    return merged


# ----------------------------------------------------------------------------
# Real statistics, cached


def _stats_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return store.kind_dir("eval-stats") / f"{digest}.safetensors"


def _read_cached(path: Path, key: dict) -> tuple[FeatureStats, dict] | None:
    """Cached statistics for ``key``, or None (absent, unreadable, or another key: recomputed)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if json.loads(meta.get("mocohd.eval_key", "null")) != key:
                return None
            info = json.loads(meta["mocohd.eval_info"])
            state = {
                "count": int(info["count"]),
                "max_items": -1,
                "mean": f.get_tensor("mean"),
                "m2": f.get_tensor("m2"),
            }
        return FeatureStats.from_state_dict(state), info
    except Exception:  # noqa: BLE001 - a damaged or foreign cache file: recompute
        return None


def _write_cached(path: Path, key: dict, stats: FeatureStats, info: dict) -> None:
    state = stats.state_dict()
    data = st_save(
        {"mean": state["mean"].contiguous(), "m2": state["m2"].contiguous()},
        metadata={
            "mocohd.eval_key": json.dumps(key, sort_keys=True),
            "mocohd.eval_info": json.dumps({**info, "count": stats.count}),
        },
    )
    try:
        atomic_write_bytes(path, data)
    except OSError:  # a cache that cannot be written only costs time next run
        pass


def real_stats(
    real: RealClips,
    detector,
    dist: Dist,
    batch: int = 8,
    seed: int = 0,
    progress: Progress | None = None,
    cache: bool = True,
) -> tuple[FeatureStats, bool]:
    """Statistics of ``real``'s clips under ``detector`` (shared out over processes), from the
    store's cache when the same clips were embedded by the same detector before.
    Returns (stats, from_cache)."""
    p = real.protocol
    key = None
    if cache and real.source_digest is not None:
        key = {
            "version": STATS_VERSION,
            "data": real.source_digest,
            "protocol": p.name,
            "frames": p.frames,
            "step": p.step,
            "clips": real.count,
            "plan": _plan_digest(real.plan),
            "seed": seed,
            "detector": detector.identity["weights_sha256"] if hasattr(detector, "identity") else None,
        }
        if key["detector"] is not None:
            hit = _read_cached(_stats_path(key), key)
            if not dist.any(hit is None):  # every process uses the cache, or none does
                return hit[0], True
    stats = FeatureStats()
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(f"real {p.name}", min(done[0] * dist.world, real.count), real.count)

    if progress:
        progress(f"real {p.name}", 0, real.count)
    own = real.share(dist.rank, dist.world)
    _embed_batches(detector, iter(own), stats, batch, tick)
    stats = gather_stats(stats, dist)
    if key is not None and key["detector"] is not None and dist.writer:
        _write_cached(_stats_path(key), key, stats, {"skipped": real.skipped, "videos": real.videos})
    return stats, False


def _plan_digest(plan: Sequence[tuple[int, int]]) -> str:
    """sha256 of the plan's JSON (``json.dumps(list(plan))``), streamed: a plan is never listed."""
    h = hashlib.sha256(b"[")
    for i, (v, s) in enumerate(plan):
        h.update(f"{', ' if i else ''}[{v}, {s}]".encode())
    h.update(b"]")
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------
# Fake videos


def video_generator(seed: int, i: int) -> torch.Generator:
    """Video ``i``'s own random stream (first w, motion noise, noise maps, class)."""
    h = hashlib.sha256(f"mocohd-eval-fake:{seed}:{i}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") >> 1)


def fake_videos(
    M,
    G,
    indices: Sequence[int],
    frames: Sequence[int],
    seed: int = 0,
    truncation: float = 1.0,
    noise: str = "fixed",
    batch: int = 8,
    classes: list[int] | None = None,
    size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Rendered videos ``indices``, frames ``frames`` of each (trajectory steps from 0): uint8
    [V, len(frames), S, S, 3] on G's device (no host sync while rendering), a few videos at a
    time; S = ``size`` (frames resized with antialiasing, as the clip cache resizes real ones)
    or the generator's resolution. Video i is
    the same whatever else is rendered with it (``video_generator``). ``batch``: frames per
    synthesis call."""
    frames = list(frames)
    steps = max(frames) + 1
    device = next(G.parameters()).device
    M = M.to(device)
    per_video = len(frames) * G.resolution * G.resolution * 3
    group = max(1, min(len(indices) or 1, MAX_BATCH_BYTES // per_video, 64))
    pick = torch.tensor(frames, device=device)
    for g0 in range(0, len(indices), group):
        ids = indices[g0 : g0 + group]
        gens = [video_generator(seed, i) for i in ids]
        z = torch.cat([torch.randn(1, G.z_dim, generator=g) for g in gens])
        eps = torch.cat([M.draw_eps(1, steps - 1, g).cpu() for g in gens]).to(device)
        maps = [G.synthesis.make_noise(1, generator=g, device=device) for g in gens] if noise == "fixed" else None
        labels = None
        if G.c_dim:
            pool = classes or None
            labels = torch.cat([draw_classes(G, 1, g, pool) for g in gens])
        with torch.no_grad():
            w1 = G.mapping(z.to(device))
            ws, _, _, _ = M.unroll(M.start(w1), steps - 1, eps)
            ws = torch.cat([w1[:, None], ws], dim=1)[:, pick]  # [V, F, w_dim]
            V, F = ws.shape[:2]
            flat = ws.reshape(V * F, -1)
            # which video each frame is of: on the host for the host's draws, on the device for indexing
            video_of = [v for v in range(V) for _ in range(F)]
            video_of_dev = torch.arange(V, device=device).repeat_interleave(F)
            by_layer = [torch.cat(layer) for layer in zip(*maps, strict=True)] if maps is not None and maps[0] else None
            out = []
            for s in range(0, V * F, batch):
                part = video_of[s : s + batch]
                nz = None
                if noise == "random":  # a new map per frame, from the frame's own video's stream
                    maps_now = [G.synthesis.make_noise(1, generator=gens[v], device=device) for v in part]
                    nz = [torch.cat(layer) for layer in zip(*maps_now, strict=True)] or None
                elif by_layer is not None:
                    nz = [m.index_select(0, video_of_dev[s : s + batch]) for m in by_layer]
                cs = labels[part] if labels is not None else None
                img = synthesize(G, flat[s : s + batch], nz, cs, truncation)
                frames_u8 = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
                if size is not None and size != G.resolution:
                    frames_u8 = square_resize(frames_u8, size)
                out.append(frames_u8)
        yield torch.cat(out).reshape(V, F, *out[0].shape[1:])  # on G's device: the detector embeds them there


# ----------------------------------------------------------------------------
# The whole evaluation


def check_metrics(metrics: Sequence[str] | str) -> list[Protocol]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise UsageError(f"name at least one metric ({', '.join(PROTOCOLS)})")
    return [get_protocol(m) for m in dict.fromkeys(names)]


def evaluate(
    metrics: Sequence[str] | str,
    data: str | os.PathLike,
    *,
    motion: str | None = None,
    image: str | None = None,
    fake: str | os.PathLike | None = None,
    videos: int | None = None,
    fid_frames: int | str | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    noise: str = "fixed",
    device: str | torch.device = "auto",
    batch: int = 8,
    frame_size: int | None = None,
    i3d: str | None = None,
    inception: str | None = None,
    repeat: bool = False,
    cache: bool = True,
    progress: Progress | None = None,
    dist: Dist | None = None,
    M=None,
    G=None,
    classes: list[int] | None = None,
    detectors: dict | None = None,
    note: Callable[[str], None] | None = None,
    deterministic: bool = False,
) -> list[MetricResult]:
    """Compute ``metrics`` (names of ``protocol.PROTOCOLS``) of generated videos against ``data``.

    The fakes: ``motion`` + ``image`` (names or files; rendered here, never written), or ``fake``,
    a folder of videos (files or frame folders, read like training data). ``videos``: real and
    fake clips of the FVD metrics (default: the protocol's 2048); fewer usable real videos give
    fewer real clips (``repeat``: cycle through them instead). ``fid_frames``: frames of FID
    (default 50,000 or what the data has; 'all': every frame of the data). ``frame_size``: the
    square size both sides are compared at (real frames are prepared at it, rendered ones resized
    to it with the same antialiased resize; default: the generator's resolution up to 256, and
    for a folder the videos' own size when they are squares of one size, up to 256, else 256; at
    most ``MAX_FRAME_SIZE``, 1024). ``i3d`` / ``inception``: detector names or files (default:
    the store's, ``mocohd fetch i3d``). ``M``, ``G``, ``detectors`` ({'i3d': net}): already loaded
    models (training passes its own). ``classes``: class-conditional generators, the classes the
    fakes are drawn from (all when None). ``truncation``, ``noise``, ``classes`` and ``G`` are for
    rendered fakes: with ``fake`` they are refused (UsageError), not ignored. ``note(text)``:
    one-line notes for the user (the dataset's clip cache refreshed because the folder changed).
    Everything computes in exact float32 (no TF32); ``deterministic``: deterministic kernels only
    (bitwise repeatable on CUDA; ``runtime.precision``), False leaves the process's setting.

    ``seed`` is in 0..2^40 - 1 and ``videos`` / ``fid_frames`` at most 2^40; the fakes' indices
    and the clips of ``repeat`` are computed as they are read, so memory does not grow with them.
    A folder of fakes reports its videos too short for a metric (``MetricResult.fake_skipped``).
    """
    protocols = check_metrics(metrics)
    deterministic_process(check_deterministic(deterministic))  # before cuBLAS's first use
    seed = whole("seed", seed, 0, MAX_SEED)
    batch = whole("batch", batch, 1, MAX_CLIPS)
    if videos is not None:
        whole("videos", videos, 1, MAX_CLIPS)
    if fid_frames is not None and fid_frames != "all":
        whole("fid_frames", fid_frames, 1, MAX_CLIPS)
    if frame_size is not None:  # the detectors see 224 or 299 px frames: larger ones only cost
        whole("frame_size", frame_size, 8, MAX_FRAME_SIZE)
    check_noise(noise)
    truncation = check_truncation(truncation)
    rendered = fake is None
    if rendered and (M is None and motion is None or G is None and image is None):
        raise UsageError("give the fakes: a motion model and an image generator (motion, image), or a folder (fake)")
    if not rendered and (motion is not None or image is not None or M is not None):
        raise UsageError("give either a motion model and image generator, or a folder of fakes, not both")
    if not rendered:  # what only rendering uses would be ignored without a word
        unused = [
            name
            for name, value, default in (
                ("truncation", truncation, 1.0),
                ("noise", noise, "fixed"),
                ("classes", classes, None),
                ("G", G, None),
            )
            if value != default
        ]
        if unused:
            raise UsageError(
                f"{' and '.join(unused)} appl{'ies' if len(unused) == 1 else 'y'} only to fakes rendered "
                "here (motion, image), not to a folder of fakes (fake)"
            )
    if not Path(data).is_dir():
        raise MocohdError(f"{data}: no such dataset folder")
    if not rendered and not Path(fake).is_dir():
        raise MocohdError(f"{fake}: no such folder of videos")

    joined = dist is None  # this call joins the processes (torchrun), and parts them on every way out
    dist = dist or Dist.from_env(device if isinstance(device, str) else str(device), shared=store.home())
    scratch, finished = None, False
    try:
        dev = dist.device if isinstance(device, str) else torch.device(device)
        detectors = dict(detectors or {})
        for p in protocols:  # fail on a missing detector before any rendering
            if p.detector not in detectors:
                detectors[p.detector] = load_detector(p.detector, i3d if p.detector == "i3d" else inception, dev)
        if rendered:
            G = G if G is not None else load_image_generator(image, dev)
            if M is None:  # a motion model of another generator (any w size) moves in G's PCA basis
                M, _ = express(load_motion(motion, dev), G, image)
            classes = check_pair(M, G, classes, truncation) or None
            check_truncation(truncation, G)
        scratch = None if rendered else scratch_folder(dist)
        with precision(dev, deterministic=deterministic or None):  # exact float32 (runtime.precision)
            if rendered:
                size, fake_data = frame_size or min(G.resolution, DEFAULT_SIZE), None
            else:
                fake_data = prepare_fakes(fake, frame_size, dist, scratch)
                size = fake_data.frame_size
            real_data = prepare_data(data, size, dist)
            if note is not None and dist.writer and real_data.changed:
                note(f"{data}: {real_data.change_note()}")

            results = []
            for p in protocols:
                detector = detectors[p.detector]
                t0 = time.perf_counter()
                n = p.count if p.frames == 1 else (videos or p.count)
                if p.frames == 1 and fid_frames is not None:
                    n = MAX_CLIPS if fid_frames == "all" else fid_frames
                real = check_real(real_data, p, n, seed, batch, repeat, where=data)
                want = real.count if fid_frames == "all" and p.frames == 1 else n  # fakes: n, as StyleGAN-V's num_gen
                rstats, cached = real_stats(real, detector, dist, batch, seed, progress, cache)
                t_real = time.perf_counter() - t0
                t1 = time.perf_counter()
                fstats = FeatureStats(max_items=want)
                fake_skipped = None
                done = [0]

                def tick(k: int, name=p.name, total=want, done=done) -> None:
                    done[0] += k
                    if progress:
                        progress(f"fake {name}", min(done[0] * dist.world, total), total)

                if progress:
                    progress(f"fake {p.name}", 0, want)
                if rendered:
                    if p.frames == 1:
                        count = math.ceil(want / FID_FRAMES_PER_VIDEO)
                        frames = list(range(FID_FRAMES_PER_VIDEO))
                    else:
                        count, frames = want, list(range(0, p.span, p.step))
                    # the first ``want`` items in video order, shared out (a range: memory does not grow with the
                    # number of videos); FID keeps the first frames of the last video
                    mine = range(dist.rank, count, dist.world)
                    stream = fake_videos(M, G, mine, frames, seed, truncation, noise, batch, classes, size)
                    if p.frames == 1:
                        stream = _fid_frames(stream, mine, want)
                    _embed_batches(detector, stream, fstats, batch, tick)
                else:
                    fakes = _clips(fake_data, p, want, seed, batch, repeat, where=fake, random_offset=False)
                    fake_skipped = fakes.skipped
                    mine = fakes.share(dist.rank, dist.world)
                    _embed_batches(detector, iter(mine), fstats, batch, tick)
                fstats = gather_stats(fstats, dist)
                if fstats.count < 2:
                    raise MocohdError(
                        f"{fake or 'the rendered videos'}: {fstats.count} fake "
                        f"{'frame' if p.frames == 1 else 'clip'} for {p.name}; "
                        "a covariance needs at least 2"
                    )
                value = frechet_distance(rstats.mean, rstats.covariance(p.ddof), fstats.mean, fstats.covariance(p.ddof))
                t_fake = time.perf_counter() - t1
                results.append(
                    MetricResult(
                        p.name,
                        float(value),
                        rstats.count,
                        fstats.count,
                        real.skipped,
                        real.videos,
                        dict(detector.identity),
                        seed,
                        cached,
                        {"real": round(t_real, 3), "fake": round(t_fake, 3), "total": round(t_real + t_fake, 3)},
                        fake_skipped=fake_skipped,
                        frame_size=size,
                    )
                )
            finished = True
            return results
    finally:
        if scratch is not None and dist.writer:
            shutil.rmtree(scratch, ignore_errors=True)
        if joined:
            if finished:  # all leave together (gloo aborts a process whose peer closed mid-collective)
                dist.barrier()
            dist.close()


def score(
    metric: str,
    real,
    fake,
    detector: torch.nn.Module | str | None = None,
    n: int | None = None,
    seed: int = 0,
    batch: int = 8,
    frame_size: int = 256,
    device: str | torch.device = "cpu",
) -> float:
    """One metric between two sets of videos, each a folder or a list of uint8 videos [T, H, W, C]:

        fvd = score("fvd16", real_videos, fake_videos)
        fid = score("fid", "./data", "./fakes", n=10_000)

    Real clips start at seeded random offsets, fake ones at frame 0 (the protocol's rules);
    ``detector``: a loaded detector, a name or file, or None for the store's. A real folder is
    prepared into the clip cache (kept for the next score); a folder of fakes into a scratch
    folder removed at the end, as ``evaluate`` does."""
    p = get_protocol(metric)
    if not isinstance(detector, torch.nn.Module):
        detector = load_detector(p.detector, detector, device)
    n = p.count if n is None else whole("n", n)
    sets, scratch = [], None
    try:
        for what, videos, offset in (("real", real, True), ("fake", fake, False)):
            if (
                what == "fake"
                and isinstance(videos, (str, os.PathLike))
                and Path(videos).is_dir()
                and not (Path(videos) / "index.json").is_file()
            ):
                scratch = scratch_folder(Dist(device="cpu"))
                videos = prepare(videos, frame_size=frame_size, min_frames=1, cache=scratch)
            clips = sample_real_clips(videos, p, n, seed, batch=batch, frame_size=frame_size, random_offset=offset)
            stats = FeatureStats()
            _embed_batches(detector, iter(clips), stats, batch)
            if stats.count < 2:
                raise MocohdError(
                    f"{stats.count} {what} {'frame' if p.frames == 1 else 'clip'} for {p.name}; "
                    "a covariance needs at least 2"
                )
            sets.append(stats)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    (r, f) = sets
    return float(frechet_distance(r.mean, r.covariance(p.ddof), f.mean, f.covariance(p.ddof)))


def fvd(real, fake, frames: int = 16, detector=None, **kwargs) -> float:
    """FVD of two sets of videos (``score``): ``frames`` 16 or 128 consecutive frames per clip."""
    if frames not in (16, 128):
        raise UsageError(f"fvd: frames must be 16 or 128 (fvd128-sub8: score('fvd128-sub8', ...)), got {frames!r}")
    return score(f"fvd{frames}", real, fake, detector, **kwargs)


def fid(real, fake, detector=None, **kwargs) -> float:
    """FID of the frames of two sets of videos (``score``), pytorch-fid's covariance (ddof 1)."""
    return score("fid", real, fake, detector, **kwargs)


def prepare_data(folder: str | os.PathLike, frame_size: int, dist: Dist) -> PreparedData:
    """``folder`` decoded into the clip cache at ``frame_size`` (every video kept), process 0 first."""
    return dist.writer_first(lambda writer: prepare(folder, frame_size=frame_size, min_frames=1))


SCRATCH_PREFIX = ".eval-fakes-"  # then the machine's name and the process id: .eval-fakes-HOST-PID-XXXXXXXX


def _host() -> str:
    """This machine's name as a file name part (a store shared by several machines: each sweeps its own)."""
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64] or "host"


def scratch_folder(dist: Dist) -> Path:
    """A new, empty folder for decoded fakes, in the store's data folder (where clip caches go: the
    room for them is there, not always in /tmp): process 0's on every process. The caller removes it."""

    def make(writer: bool) -> str | None:
        if not writer:
            return None
        base = store.home() / "data"
        prefix = f"{SCRATCH_PREFIX}{_host()}-"
        try:
            base.mkdir(parents=True, exist_ok=True)
            for old in base.glob(f"{prefix}*"):  # left by an evaluation that was killed (SIGKILL, power loss)
                pid = old.name[len(prefix) :].split("-", 1)[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    shutil.rmtree(old, ignore_errors=True)
            return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base)
        except OSError as e:
            raise MocohdError(
                f"cannot create a scratch folder for the decoded fakes in {base}: {e.strerror} "
                "(set MOCOHD_HOME to a writable folder)"
            ) from e

    return Path(dist.gather_objects(dist.writer_first(make))[0])


def prepare_fakes(folder: str | os.PathLike, frame_size: int | None, dist: Dist, scratch: Path) -> PreparedData:
    """A folder of fake videos decoded into ``scratch`` at ``frame_size``, by default at the videos' own
    size when they are squares of one size (up to ``DEFAULT_SIZE``), else ``DEFAULT_SIZE``: the first
    video's size is tried, and the folder decoded again at ``DEFAULT_SIZE`` if another video differs.
    Process 0 decides and decodes; the others read what it wrote."""

    def decide(writer: bool) -> PreparedData | None:
        if not writer:
            return None
        own = _own_size(folder) if frame_size is None else None
        size = frame_size or min(own or DEFAULT_SIZE, DEFAULT_SIZE)
        info = prepare(folder, frame_size=size, min_frames=1, cache=scratch)
        if frame_size is None and size != DEFAULT_SIZE and info.sizes != [(own, own)]:  # they disagree
            info = prepare(folder, frame_size=DEFAULT_SIZE, min_frames=1, cache=scratch, force=True)
        return info

    info = dist.writer_first(decide)
    size = dist.gather_objects(info.frame_size if dist.writer else None)[0]
    return info if dist.writer else prepare(folder, frame_size=size, min_frames=1, cache=scratch)


def _own_size(folder: str | os.PathLike) -> int | None:
    """The side of the first readable video's frames under ``folder`` when they are square, else None."""
    for src in scan(folder)[0]:
        try:
            w, h = probe_size(src)
        except Exception:  # noqa: BLE001 - unreadable: the next one (prepare counts it)
            continue
        return w if w == h else None
    return None


def _clips(
    data: PreparedData,
    p: Protocol,
    n: int,
    seed: int,
    batch: int,
    repeat: bool,
    where: str | os.PathLike,
    random_offset: bool = True,
) -> RealClips:
    """``sample_real_clips`` of prepared ``data``, its errors naming the user's folder ``where``,
    not the cache's (a scratch folder, for fakes)."""
    try:
        return sample_real_clips(data, p, n, seed, batch=batch, repeat=repeat, random_offset=random_offset)
    except MocohdError as e:
        raise MocohdError(str(e).replace(str(data.cache), str(where), 1)) from e


def check_real(
    data: PreparedData,
    protocol: str | Protocol,
    n: int,
    seed: int = 0,
    batch: int = 8,
    repeat: bool = False,
    where: str | os.PathLike = "the data",
) -> RealClips:
    """The real clips of ``protocol`` in prepared ``data``; one line when there are fewer than 2."""
    p = get_protocol(protocol)
    real = _clips(data, p, n, seed, batch, repeat, where)
    if real.count < 2:
        raise MocohdError(
            f"{where}: {real.count} real {'frame' if p.frames == 1 else 'clip'} for {p.name}; "
            "a covariance needs at least 2"
        )
    return real


def _fid_frames(stream: Iterator[torch.Tensor], mine: list[int], want: int) -> Iterator[torch.Tensor]:
    """Rendered videos [V, F, ...] -> single frames [N, 1, ...], dropping the frames past ``want``
    (counted in global video order: video i holds items i * F .. i * F + F - 1)."""
    k = 0
    for videos in stream:
        V, F = videos.shape[:2]
        keep = []
        for v in range(V):
            first = mine[k + v] * F
            keep.append(videos[v, : max(0, min(F, want - first))])
        k += V
        frames = torch.cat(keep)
        if frames.shape[0]:
            yield frames[:, None]


# ----------------------------------------------------------------------------
# Training runs keep their evaluations


def run_of(motion: str, note: Callable[[str], None] | None = None) -> Path | None:
    """The training run folder that made the motion model ``motion`` (its metrics.jsonl gets the
    results), or None. The run is named in the model's metadata, which its weights hash does not
    cover: it is taken only as a plain run name under the store's runs, and only when that run's
    own files show it made these weights (``run_weights``). ``note`` hears, in one line, why a
    model that names a run is not appended to it (not for a shipped model, whose run is its authors')."""
    try:
        r = store.resolve(motion, kind="motion")
        header = read_header(r.path)
    except MocohdError:
        return None
    source, say = header.source, (note if note is not None and r.origin != "shipped" else lambda text: None)
    run = source.get("run")
    if source.get("format") != "mocohd-train" or run is None:
        return None
    if not isinstance(run, str) or not store.NAME_RE.match(run):  # a path, '..', a crafted value: never followed
        say(
            f"not appended to a run's metrics.jsonl: the motion model names the run {str(run)[:80]!r}, which is "
            "no run name"
        )
        return None
    folder = store.home() / "runs" / run
    if not (folder / "metrics.jsonl").is_file():
        return None
    sha = header.weights_sha256
    if not sha:  # a file from before the hash was recorded
        try:
            sha = load_verified(r.path, header)[1]
        except MocohdError:
            return None
    if sha not in run_weights(folder):
        say(
            f"not appended to the run '{run}' (metrics.jsonl): its checkpoint does not hold this motion model's "
            f"weights (sha256 {sha[:12]}); the run went on, started over, or is another one of that name"
        )
        return None
    return folder


def run_weights(folder: Path) -> set[str]:
    """The weights sha256 of the motion models the run ``folder`` made, as its checkpoint shows them:
    its motion generator's (with and without ``pca_mean``, as the exports of files that lack it) and
    the last export's it records (``--keep-best`` may have kept an earlier step). Read as data
    (``weights_only``, memory-mapped: only the motion generator's tensors are read); a missing,
    damaged or foreign checkpoint shows nothing."""
    out = set()
    try:
        ck = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True)
        tensors = {k: v for k, v in ck["gan"]["M"].items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            out |= {weights_sha256(tensors), weights_sha256({k: v for k, v in tensors.items() if k != "pca_mean"})}
        if isinstance(ck.get("exported"), str):
            out.add(ck["exported"])
    except Exception:  # noqa: BLE001 - unreadable for any reason: it shows nothing
        pass
    return out


def append_results(
    folder: Path, results: list[MetricResult], step: int | None = None, extra: dict | None = None
) -> None:
    """One line per evaluation in ``folder``/metrics.jsonl: {"eval": {metric: value}, ...}."""
    record = {
        "eval": {r.metric: r.value for r in results},
        "step": step,
        "seed": results[0].seed if results else None,
        "real": {r.metric: r.real for r in results},
        "fake": {r.metric: r.fake for r in results},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }
    with open(folder / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


__all__ = [
    "DEFAULT_SIZE",
    "FID_FRAMES_PER_VIDEO",
    "MetricResult",
    "append_results",
    "check_real",
    "embed",
    "evaluate",
    "fake_videos",
    "fid",
    "fvd",
    "gather_stats",
    "prepare_data",
    "prepare_fakes",
    "real_stats",
    "run_of",
    "run_weights",
    "scratch_folder",
    "score",
    "video_generator",
]
