"""The evaluation protocol of StyleGAN-V (Skorokhodov et al., CVPR 2022), as data, and its real clips.

    p = PROTOCOLS["fvd16"]
    real = sample_real_clips("./voxceleb", p, seed=0, frame_size=256)
    real.skipped                              # videos too short for p, counted
    for clips in real:                        # uint8 [B, T, H, W, C], B <= batch
        x = to_detector_input(clips)          # float [B, C, T, H, W] in [-1, 1]

Where each choice comes from (StyleGAN-V's code: ``src/metrics/metric_main.py``,
``frechet_video_distance.py``, ``metric_utils.py``, ``src/training/dataset.py``):
- Metrics: ``fvd2048_16f`` = 16 consecutive frames, ``fvd2048_128f`` = 128,
  ``fvd2048_128f_subsample8f`` = 16 frames every 8th (``subsample_factor=8``);
  2048 real and 2048 fake clips (``max_real``, ``num_gen``). FID: frames, 50,000.
- Too-short videos are discarded (``discard_short_videos=True``) when they
  have fewer than ``frames * step`` frames (128 for fvd128-sub8, although a
  clip spans only 121): StyleGAN-V's rule, kept so the same videos count.
- The offset of a real clip is uniform over every start whose clip fits:
  0 .. length - ((frames - 1) * step + 1), both ends included (StyleGAN-V's
  ``random.randint(0, len - n * f + f - 1)``, the same range). StyleGAN-V
  draws it from Python's global ``random`` in data-loader workers, so its real
  statistics change from run to run (github.com/universome/stylegan-v issues #23, #37, #46). OUR CHOICE:
  clip k's offset comes from its own generator seeded with (seed, k), so the
  same seed gives the same clips whatever the batch size or process count.
- One clip per video, the first ``min(n, videos)`` videos in dataset order
  (StyleGAN-V: ``max_items = min(len(dataset), max_real)``, items 0, 1, ...):
  a dataset with fewer usable videos than ``n`` gives fewer real clips, not
  an error (``RealClips.count`` says how many). OUR CHOICE: ``repeat=True``
  instead cycles through the videos with fresh offsets until ``n`` clips,
  for small datasets; it is off by default, as the protocol has it. Taking
  the first videos (not a random subset) follows StyleGAN-V too, and biases
  class-sorted datasets (UCF-101) toward their first classes.
- Fakes (``random_offset=False``): StyleGAN-V reads generated videos from
  their first frame (``load_n_consecutive_random_offset=False``).
- Covariance: StyleGAN-V's FeatureStats divides by n (``ddof=0``) for FVD;
  FID follows pytorch-fid, ``np.cov`` (``ddof=1``), so our FID compares with its numbers.
- FID frames, OUR CHOICE: all frames of the usable videos when they are at
  most ``n``, else a seeded uniform sample of ``n`` of them without
  replacement, read in dataset order (StyleGAN-V's ``fid50k_full`` reads every
  real frame; 50,000 is pytorch-fid's and StyleGAN2's usual count).
- Frames come from mocohd's clip cache (``mocohd_cli.data.prepare``): square
  centre crops resized with antialiasing to ``frame_size`` (StyleGAN-V's
  datasets are pre-resized squares). A folder is prepared with
  ``min_frames=1`` so that no video a protocol could use is dropped (the
  cache keeps every video with a frame, whoever prepared it), and refreshed
  when the folder changed since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Sequence, Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import ClipDataset, PreparedData, prepare
from ..errors import MocohdError, UsageError

MAX_SEED = 2**40 - 1  # seeds of the clips' offsets (and of the fakes): 0 .. 2^40 - 1, as render's
MAX_CLIPS = 2**40  # clips (frames for fid) one evaluation may ask for: more than could ever be embedded
MAX_FRAME_SIZE = 1024  # frames compared at most at this size: the detectors see 224 (I3D) or 299 (Inception) px


@dataclass(frozen=True)
class Protocol:
    name: str
    frames: int  # frames per clip given to the detector (1: single frames, FID)
    step: int  # every step-th frame
    count: int  # default number of real and of fake clips (frames for FID)
    detector: str  # "i3d" | "inception"
    ddof: int  # covariance estimator: 0 StyleGAN-V, 1 numpy.cov / pytorch-fid

    @property
    def span(self) -> int:
        """Source frames one clip covers."""
        return (self.frames - 1) * self.step + 1

    @property
    def min_length(self) -> int:
        """Shorter videos are skipped (StyleGAN-V: ``frames * subsample_factor``)."""
        return self.frames * self.step


PROTOCOLS: dict[str, Protocol] = {
    "fvd16": Protocol("fvd16", frames=16, step=1, count=2048, detector="i3d", ddof=0),
    "fvd128": Protocol("fvd128", frames=128, step=1, count=2048, detector="i3d", ddof=0),
    "fvd128-sub8": Protocol("fvd128-sub8", frames=16, step=8, count=2048, detector="i3d", ddof=0),
    "fid": Protocol("fid", frames=1, step=1, count=50_000, detector="inception", ddof=1),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except (KeyError, TypeError):
        raise UsageError(f"unknown metric {protocol!r} (known: {', '.join(PROTOCOLS)})") from None


class _CacheVideos:
    """Videos of a prepared clip cache, read through ``ClipDataset`` (memory-mapped, frames on demand)."""

    def __init__(self, cache: Path, p: Protocol):
        try:
            raw = (cache / "index.json").read_bytes()
            self.digest = hashlib.sha256(raw).hexdigest()  # the cache's identity (cached real statistics)
            self.index = json.loads(raw)
            lengths = [int(v["frames"]) for v in self.index["videos"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MocohdError(f"{cache}: not a prepared clip cache (run `mocohd prepare`)") from e
        self.prepared_min_frames = int(self.index.get("min_frames", 1))
        dropped = int(self.index.get("skipped", {}).get("too short", 0))
        self.usable = [i for i, n in enumerate(lengths) if n >= p.min_length]
        self.lengths = [lengths[i] for i in self.usable]
        self.skipped = len(lengths) - len(self.usable) + dropped
        self.ds_index = []
        if self.usable:  # ClipDataset keeps the videos of at least ``span`` frames: find ours among them
            self.ds = ClipDataset(cache, frames=p.frames, time_step=p.step)
            pos = {v["file"]: k for k, v in enumerate(self.ds.videos)}
            self.ds_index = [pos[self.index["videos"][i]["file"]] for i in self.usable]

    def clip(self, k: int, start: int) -> torch.Tensor:
        return self.ds.clip(self.ds_index[k], start)


class _MemoryVideos:
    """Videos given as uint8 arrays or tensors [T, H, W, C]."""

    prepared_min_frames = 1
    digest = None  # no identity: statistics of videos in memory are never cached

    def __init__(self, videos: Sequence, p: Protocol):
        self.step, self.span = p.step, p.span
        tensors = []
        for i, v in enumerate(videos):
            t = torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
            if t.dtype != torch.uint8 or t.ndim != 4:
                raise UsageError(f"video {i}: expected uint8 [T, H, W, C], got {t.dtype} {list(t.shape)}")
            tensors.append(t)
        self.usable = [i for i, t in enumerate(tensors) if t.shape[0] >= p.min_length]
        self.videos = [tensors[i] for i in self.usable]
        self.lengths = [int(t.shape[0]) for t in self.videos]
        self.skipped = len(tensors) - len(self.usable)

    def clip(self, k: int, start: int) -> torch.Tensor:
        return self.videos[k][start : start + self.span : self.step]


class ClipPlan(SequenceABC):
    """The (video, start) of clips ``ks`` (a range of clip numbers), each computed when asked: clip k
    is from usable video k % V, at its own seeded offset (or 0). Slices are plans too, so neither
    sharing out nor batching ever lists the clips: memory does not grow with their number."""

    def __init__(self, ks: range, lengths: list[int], span: int, seed: int, random_offset: bool):
        self.ks, self.lengths, self.span, self.seed, self.random_offset = ks, lengths, span, seed, random_offset

    def __len__(self) -> int:
        return len(self.ks)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ClipPlan(self.ks[i], self.lengths, self.span, self.seed, self.random_offset)
        k = self.ks[i]
        v = k % len(self.lengths)
        return v, (_clip_start(self.seed, k, self.lengths[v] - self.span + 1) if self.random_offset else 0)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, SequenceABC)
            and len(self) == len(other)
            and all(a == tuple(b) for a, b in zip(self, other, strict=True))
        )

    def __repr__(self) -> str:
        return f"ClipPlan({len(self)} clips of {len(self.lengths)} videos)"


@dataclass
class RealClips:
    """The clips of one protocol from one dataset: iterate for uint8 batches [B, T, H, W, C].

    ``plan``: (video, start) per clip, video numbered among the usable ones
    (``sources[video]`` is its number in the dataset); ``skipped``: videos too
    short for the protocol. Only the plan is held; frames are read batch by
    batch, so memory does not grow with the number of clips."""

    protocol: Protocol
    plan: Sequence[tuple[int, int]]  # a list (fid) or a ClipPlan (the clips' (video, start), computed when read)
    skipped: int
    videos: int  # usable videos
    sources: list[int]
    prepared_min_frames: int
    batch: int
    _reader: object
    source_digest: str | None = None  # sha256 of the clip cache's index (None: videos given in memory)

    @property
    def count(self) -> int:
        return len(self.plan)

    def __len__(self) -> int:
        return len(self.plan)

    def share(self, rank: int, world: int) -> RealClips:
        """Process ``rank``'s clips of ``world`` (every world-th, from the rank-th), the rest alike."""
        return dataclasses.replace(self, plan=self.plan[rank::world])

    def __iter__(self) -> Iterator[torch.Tensor]:
        for b in range(0, len(self.plan), self.batch):
            yield torch.stack([self._reader.clip(k, s) for k, s in self.plan[b : b + self.batch]])


def _clip_start(seed: int, k: int, high: int) -> int:
    """Clip k's offset in [0, high): its own generator, seeded by (seed, k)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + k)
    return int(torch.randint(high, (), generator=g))


def sample_real_clips(
    source: str | os.PathLike | PreparedData | Sequence,
    protocol: str | Protocol,
    n: int | None = None,
    seed: int = 0,
    *,
    batch: int = 16,
    frame_size: int = 128,
    repeat: bool = False,
    random_offset: bool = True,
) -> RealClips:
    """The clips ``protocol`` compares, from ``source``: a dataset folder (prepared into the clip cache
    at ``frame_size`` if it is not yet), a clip cache folder, a ``PreparedData``, or a list of uint8
    videos [T, H, W, C]. ``n``: clips (frames for fid), the protocol's count by default. See the
    module docstring for where each rule comes from. Raises ``MocohdError`` when no video is long
    enough."""
    p = get_protocol(protocol)
    n = p.count if n is None else n
    for name, value, high in (("n", n, MAX_CLIPS), ("batch", batch, None), ("frame_size", frame_size, MAX_FRAME_SIZE)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"sample_real_clips: {name} must be a positive integer, got {value!r}")
        if high is not None and value > high:
            raise UsageError(f"sample_real_clips: {name} must be in 1..{high}, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"sample_real_clips: seed must be in 0..{MAX_SEED}, got {seed!r}")

    if isinstance(source, PreparedData):
        reader, where = _CacheVideos(source.cache, p), str(source.cache)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            raise MocohdError(f"{path}: no such dataset folder")
        cache = path if (path / "index.json").is_file() else prepare(path, frame_size=frame_size, min_frames=1).cache
        reader, where = _CacheVideos(cache, p), str(path)
    else:
        reader, where = _MemoryVideos(source, p), "the videos given"
    if not reader.usable:
        raise MocohdError(
            f"{where}: no video has the {p.min_length} frames {p.name} needs ({reader.skipped} too short)"
        )

    if p.frames == 1:  # single frames: all of them, or a seeded sample in dataset order
        ends = np.cumsum(reader.lengths)
        total = int(ends[-1])
        if n >= total:
            flat = np.arange(total)
        else:
            g = torch.Generator().manual_seed(seed)
            flat = np.sort(torch.randperm(total, generator=g)[:n].numpy())
        video = np.searchsorted(ends, flat, side="right")
        starts = flat - np.concatenate([[0], ends[:-1]])[video]
        plan = [(int(v), int(s)) for v, s in zip(video, starts, strict=True)]
    else:  # --repeat asks for any number of clips: they are computed when read, never listed
        count = n if repeat else min(n, len(reader.lengths))
        plan = ClipPlan(range(count), reader.lengths, p.span, seed, random_offset)
    return RealClips(
        p,
        plan,
        reader.skipped,
        len(reader.usable),
        list(reader.usable),
        reader.prepared_min_frames,
        batch,
        reader,
        reader.digest,
    )


def to_detector_input(clips: torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, C] -> float32 [B, C, T, H, W] in [-1, 1] (x / 127.5 - 1), on the clips' device.
    Resizing to the detector's input size (224 for I3D, 299 for Inception) is the detector's job."""
    if not isinstance(clips, torch.Tensor) or clips.dtype != torch.uint8 or clips.ndim != 5:
        what = f"{clips.dtype} {list(clips.shape)}" if isinstance(clips, torch.Tensor) else type(clips).__name__
        raise UsageError(f"to_detector_input: expected uint8 clips [B, T, H, W, C], got {what}")
    return clips.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)
