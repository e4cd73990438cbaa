"""Training videos: scanning, one-time preparation into a clip cache, and clips.

    info = prepare("./voxceleb", frame_size=128)        # decode once: cache of square uint8 frames
    ds = ClipDataset(info.cache, frames=16, time_step=2)
    clip = ds[0]                                          # [16, 128, 128, 3] uint8, a random clip of video 0
    x = to_model_input(batch, device)                     # [B, 16, 3, 128, 128] float in [-1, 1]

A dataset folder holds video files (mp4, avi, mov, mkv, webm, gif; decoded
with ffmpeg) and/or frame folders (a folder of images is one video, frames
in natural order: img_2.png before img_10.png). Frames are read by invert's
photo reader (``mocohd_cli.photos.read_frame``): every Pillow mode becomes RGB,
16-bit grey scaled by its bit depth, transparency composited on white, a file
whose pixel data stops early refused. Every frame is centre-cropped to a square
and resized (antialiased) to ``frame_size``. Unreadable files (and frame
folders with an unreadable frame or frames of different sizes) and videos
too short for one clip are skipped and counted, never fatal.

The cache is one safetensors file per video (``frames``: [T, S, S, 3] uint8)
plus ``index.json``, under ``MOCOHD_HOME/data/``: training reads just the
frames of each clip from memory-mapped files, so decoding never starves the
accelerator. Each file is written under a temporary name and renamed, the
index last; a failed or interrupted first preparation leaves no folder.

A changed folder is never served from an old decode. The index holds each
video's signature: for a file, its path in the folder, size, modification
and status-change times (ns); for a frame folder, the same of every frame,
hashed. Every ``prepare`` scans the folder again and compares: only videos
whose signature changed (or that are new) are decoded again, removed ones
leave the cache, and ``PreparedData.changed`` says what changed in one line.
Why the file system's metadata and not the content: a signature is one
``stat`` per file, and 100,000 of them take about half a second (measured on
a local disk, warm, a busy 2-core machine: 0.45 s; the whole rescan of a
100,000-frame folder, walk and natural sort included, about 2 s:
``benchmarks/bench_cache_check.py``), whereas
hashing the content would read every byte of the dataset (tens of GB) on
every run, longer than the decode it guards in most cases. Writing a file
changes its modification and status-change times (the latter cannot be set
back by ``touch`` or ``cp -p``), and replacing it changes its size or times,
so every edit is seen; a status-change without an edit (``chmod``, a new hard
link) costs one needless decode of that video. ``force`` decodes everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as st_save

from .. import store
from ..errors import MocohdError, UsageError
from ..formats.canonical import atomic_write_bytes
from ..photos import probe as probe_image, read_frame

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CACHE_VERSION = 2  # 2: each video's source signature, the unusable ones, the frames' own size
FOLDER_KEY = 1  # in the cache folder's name (so an older index is found there, and decoded again)
MAX_FRAME_SIZE = 4096  # the largest cached frame: 4 x 1024 px, far above any generator's training size


def natural_key(name: str) -> list:
    """'img_2.png' < 'img_10.png': digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass
class VideoSource:
    path: Path
    kind: str  # "file" | "frames"
    frames: list[Path] = field(default_factory=list)  # for frame folders, in natural order


def scan(root: str | os.PathLike) -> tuple[list[VideoSource], list[Path]]:
    """(videos, other files) under ``root``, recursively, in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise MocohdError(f"{root}: not a folder of videos")
    videos, others = [], []
    for folder, dirs, files in os.walk(root):  # every prepare scans: names compared as text, one Path each
        dirs.sort(key=natural_key)
        base = Path(folder)
        ext = {f: os.path.splitext(f)[1].lower() for f in files}
        images = sorted((f for f in files if ext[f] in IMAGE_EXTS), key=natural_key)
        if images:
            videos.append(VideoSource(base, "frames", [base / f for f in images]))
        for f in sorted((f for f in files if ext[f] not in IMAGE_EXTS), key=natural_key):
            if ext[f] in VIDEO_EXTS:
                videos.append(VideoSource(base / f, "file"))
            elif not f.startswith("."):
                others.append(base / f)
    videos.sort(key=lambda v: natural_key(str(v.path.relative_to(root))))
    return videos, others


def square_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """[N, H, W, 3] uint8 -> centre-cropped square, resized to [N, size, size, 3] uint8 (antialiased)."""
    n, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = frames[:, top : top + s, left : left + s].permute(0, 3, 1, 2).float()
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _frame_batches(src: VideoSource, batch: int = 64) -> Iterator[np.ndarray]:
    """Decoded RGB frames of one video, ``batch`` at a time, [n, H, W, 3] uint8 (every frame
    of a frame folder the same size, else ValueError)."""
    if src.kind == "frames":
        shape = None
        for i in range(0, len(src.frames), batch):
            imgs = [read_frame(p) for p in src.frames[i : i + batch]]
            shape = shape or imgs[0].shape
            if any(im.shape != shape for im in imgs):
                raise ValueError("frames of different sizes")
            yield np.stack(imgs)
        return
    reader = imageio_ffmpeg.read_frames(str(src.path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        w, h = meta["size"]
        buf = []
        for raw in reader:
            buf.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
            if len(buf) == batch:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)
    finally:
        reader.close()


def probe_size(src: VideoSource) -> tuple[int, int]:
    """(width, height) of a video's frames, from the first frame's header or ffmpeg's; raises
    ``MocohdError`` (a frame) or another exception (ffmpeg) when it cannot be read."""
    if src.kind == "frames":
        return probe_image(src.frames[0])
    reader = imageio_ffmpeg.read_frames(str(src.path), pix_fmt="rgb24")
    try:
        return tuple(next(reader)["size"])
    finally:
        reader.close()


def _stat(path: Path) -> list:
    """[size, mtime_ns, ctime_ns] of a file, or [the error's name] (a signature that stays the same)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return [type(e).__name__]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def signature(root: Path, src: VideoSource) -> str:
    """What a video's decode depends on, from ``stat`` alone (see the module docstring): 32 hex digits."""
    rel = src.path.relative_to(root).as_posix()
    if src.kind == "file":
        parts = ["file", rel, _stat(src.path)]
    else:
        parts = ["frames", rel, [[os.path.basename(p), *_stat(p)] for p in src.frames]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@dataclass
class PreparedData:
    cache: Path
    videos: int
    frames: int
    frame_size: int
    skipped: dict[str, int]  # reason -> count
    reused: bool = False  # the cache was there and nothing in the folder had changed
    changed: dict[str, int] = field(default_factory=dict)  # added / changed / removed -> videos, since the last prepare
    sizes: list[tuple[int, int]] = field(default_factory=list)  # the usable videos' own frame sizes (w, h), distinct

    def summary(self) -> str:
        s = f"{self.videos} videos, {self.frames} frames at {self.frame_size} px in {self.cache}"
        if any(self.skipped.values()):
            s += "; skipped " + ", ".join(f"{n} {why}" for why, n in self.skipped.items() if n)
        if self.changed:
            s += f"; {self.change_note()}"
        return s

    def change_note(self) -> str:
        """'clip cache refreshed: 3 videos changed, 2 removed', or '' when nothing changed."""
        return change_note("clip cache refreshed", self.changed)


def change_note(what: str, changed: dict[str, int]) -> str:
    """'WHAT: 3 videos changed, 2 removed' of counts of videos by change, or '' when all are 0."""
    parts = [f"{n} {how}" for how, n in changed.items() if n]
    if not parts:
        return ""
    n = next(n for n in changed.values() if n)
    parts[0] = parts[0].replace(" ", f" video{'s' if n != 1 else ''} ", 1)
    return f"{what}: " + ", ".join(parts)


def cache_dir(root: Path, frame_size: int) -> Path:
    key = hashlib.sha256(f"{root.resolve()}|{frame_size}|{FOLDER_KEY}".encode()).hexdigest()[:12]
    return store.home() / "data" / f"{re.sub(r'[^A-Za-z0-9._-]', '-', root.resolve().name)}-{frame_size}px-{key}"


def prepare(
    root: str | os.PathLike,
    *,
    frame_size: int = 128,
    min_frames: int = 31,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cache: str | os.PathLike | None = None,
) -> PreparedData:
    """Decode every video under ``root`` into the clip cache, reusing what is there for the videos
    whose source has not changed (everything is decoded again with ``force``).

    ``min_frames``: shorter videos are skipped (one clip of 16 frames every 2nd
    frame needs 31): counted, and not in the returned counts. The cache itself
    keeps every video with a frame, so that later users with other needs (an
    image generator's frames, an evaluation protocol) find them all.
    ``progress(done, total)`` is called per video. ``cache``: the folder to
    decode into instead of the store's (a scratch folder the caller removes).
    """
    if isinstance(frame_size, bool) or not isinstance(frame_size, int) or not 4 <= frame_size <= MAX_FRAME_SIZE:
        raise UsageError(f"frame_size must be a whole number in 4..{MAX_FRAME_SIZE}, got {frame_size!r}")
    root = Path(root)
    videos, others = scan(root)
    out = Path(cache) if cache is not None else cache_dir(root, frame_size)
    index_path = out / "index.json"
    current = _read_index(index_path, root, frame_size)
    old = None if force else current
    known = {v["source"]: v for v in old["videos"] + old["unusable"]} if old else {}
    old_files = {v["file"] for v in current["videos"]} if current else set()  # a failure leaves these
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MocohdError(
            f"cannot create the clip cache folder {out}: {e.strerror} (set MOCOHD_HOME to a writable folder)"
        ) from e
    entries, unusable, written, indexed = [], [], [], False
    changed = {"added": 0, "changed": 0, "re-decoded": 0, "removed": 0}
    try:
        for i, src in enumerate(videos):
            rel, sig = src.path.relative_to(root).as_posix(), signature(root, src)
            prev = known.pop(rel, None)
            if prev is not None and prev["signature"] == sig and ("file" not in prev or (out / prev["file"]).is_file()):
                (entries if "file" in prev else unusable).append(prev)
            else:
                if old is not None:  # re-decoded: the source is the same, its cache file went missing
                    changed["added" if prev is None else "changed" if prev["signature"] != sig else "re-decoded"] += 1
                entry = _decode(src, rel, sig, out, frame_size, written)
                (entries if "file" in entry else unusable).append(entry)
            if progress:
                progress(i + 1, len(videos))
        changed["removed"] = len(known)
        counts = {"unreadable": 0, "too short": 0}
        for v in unusable:
            counts[v["reason"]] += 1
        index = {
            "version": CACHE_VERSION,
            "root": str(root.resolve()),
            "frame_size": frame_size,
            "min_frames": 1,
            "videos": entries,
            "unusable": unusable,
            "skipped": {**counts, "not videos": len(others)},
            "found": len(videos),
        }
        if not entries:  # nothing usable: no cache (an old one of this folder holds nothing of it now)
            _clear(out)
        elif index != old:
            write_cache_file(index_path, json.dumps(index, indent=1).encode())
            indexed = True
            _remove_unlisted(out, {v["file"] for v in entries})
    except BaseException:  # an error or Ctrl-C: leave the cache as it was (none, if there was none)
        if indexed:
            raise
        if created:
            _clear(out)
        else:
            for f in written:
                if f.name not in old_files:
                    f.unlink(missing_ok=True)
        raise
    changed = {k: n for k, n in changed.items() if n}
    return _usable(root, out, index, min_frames, reused=old is not None and not changed, changed=changed)


def _decode(src: VideoSource, rel: str, sig: str, out: Path, frame_size: int, written: list[Path]) -> dict:
    """One video decoded into ``out``: its index entry, with a ``file`` when it has frames, else
    a ``reason`` (unreadable, too short). ``written`` gets the file's path before it is written."""
    size = None
    try:
        frames = []
        for b in _frame_batches(src):
            size = size or (int(b.shape[2]), int(b.shape[1]))
            frames.append(square_resize(torch.from_numpy(b), frame_size))
    except Exception:  # noqa: BLE001 - any decoding failure: junk, counted and skipped
        return {"source": rel, "signature": sig, "reason": "unreadable"}
    if not frames:
        return {"source": rel, "signature": sig, "reason": "too short"}
    t = torch.cat(frames)
    fname = f"{sig}.safetensors"  # named by the signature: never the name of another state's decode
    written.append(out / fname)
    write_cache_file(out / fname, st_save({"frames": t}))
    return {"file": fname, "source": rel, "signature": sig, "frames": int(t.shape[0]), "size": list(size)}


def _read_index(path: Path, root: Path, frame_size: int) -> dict | None:
    """The cache's index when it is of this version, folder and size and well formed, else None
    (absent, older, damaged or edited: decoded again)."""
    try:
        idx = json.loads(path.read_text())
        if (
            idx.get("version") != CACHE_VERSION
            or idx.get("root") != str(root.resolve())
            or idx.get("frame_size") != frame_size
            or not all(map(_is_video, idx["videos"]))
            or not all(map(_is_unusable, idx["unusable"]))
        ):
            return None
        return idx
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _is_video(v: dict) -> bool:
    """A well-formed entry of a decoded video: its file named by its signature, its counts numbers."""
    return (
        isinstance(v["source"], str)
        and isinstance(v["signature"], str)
        and v["file"] == f"{v['signature']}.safetensors"
        and type(v["frames"]) is int
        and v["frames"] > 0
        and len(v["size"]) == 2
        and all(type(n) is int for n in v["size"])
    )


def _is_unusable(v: dict) -> bool:
    return (
        isinstance(v["source"], str) and isinstance(v["signature"], str) and v["reason"] in ("unreadable", "too short")
    )


def _remove_unlisted(out: Path, keep: set[str]) -> None:
    """Remove the cache's video files the index no longer lists (older decodes, interrupted ones)."""
    for f in out.glob("*.safetensors"):
        if f.name not in keep:
            f.unlink(missing_ok=True)


def _clear(out: Path) -> None:
    """Remove the cache's own files (index, videos, temporaries) and the folder when that empties it."""
    for f in out.iterdir() if out.is_dir() else ():
        if (
            f.name == "index.json"
            or f.suffix == ".safetensors"
            or ".safetensors.tmp-" in f.name
            or ".json.tmp-" in f.name
        ):
            f.unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:
        pass  # something else is in it: not ours to remove


def _usable(
    root: Path, out: Path, index: dict, min_frames: int, reused: bool, changed: dict[str, int] | None = None
) -> PreparedData:
    """What a cache offers a caller that needs ``min_frames`` frames per video: the
    shorter ones are counted as too short (they stay in the cache for others)."""
    usable = [v for v in index["videos"] if v["frames"] >= min_frames]
    skipped = dict(index["skipped"])
    skipped["too short"] = skipped.get("too short", 0) + len(index["videos"]) - len(usable)
    if not usable:
        found = int(index.get("found", len(index["videos"]) + skipped.get("unreadable", 0) + skipped["too short"]))
        raise MocohdError(_nothing_usable(root, found, skipped, min_frames))
    sizes = sorted({tuple(v["size"]) for v in usable})
    return PreparedData(
        out,
        len(usable),
        sum(v["frames"] for v in usable),
        int(index["frame_size"]),
        skipped,
        reused=reused,
        changed=changed or {},
        sizes=sizes,
    )


def write_cache_file(path: Path, data: bytes, cache: str = "clip cache") -> None:
    """``data`` to ``path`` atomically; a failure names the cache file in one line."""
    try:
        atomic_write_bytes(path, data)
    except OSError as e:  # disk full, read-only: name the cache file, never its temporary name
        raise MocohdError(f"cannot write the {cache} file {path}: {e.strerror or e}") from e


def _nothing_usable(root: Path, found: int, skipped: dict[str, int], min_frames: int) -> str:
    """One line on why a dataset folder gave no video: none found, or why each was skipped."""
    if not found:
        kinds = ", ".join(sorted(e.lstrip(".") for e in VIDEO_EXTS))
        ignored = f"; {skipped['not videos']} other file(s) ignored" if skipped.get("not videos") else ""
        return f"{root}: no usable videos: no video files ({kinds}) or folders of images in it{ignored}"
    why = ", ".join(f"{n} {reason}" for reason, n in skipped.items() if n and reason != "not videos")
    need = (
        f"; each needs at least {min_frames} frame{'s' if min_frames != 1 else ''}" if skipped.get("too short") else ""
    )
    return f"{root}: no usable videos ({found} found: {why}){need}"


class ClipDataset(torch.utils.data.Dataset):
    """Item i: a clip of video i, ``frames`` frames every ``time_step`` frames,
    from a random start (or the first ``start``), [frames, S, S, 3] uint8."""

    def __init__(self, cache: str | os.PathLike, frames: int = 16, time_step: int = 2):
        self.cache = Path(cache)
        try:
            self.index = json.loads((self.cache / "index.json").read_text())
        except (OSError, ValueError) as e:
            raise MocohdError(f"{cache}: not a prepared clip cache (run `mocohd prepare`)") from e
        self.frames, self.time_step = frames, time_step
        self.span = (frames - 1) * time_step + 1
        self.videos = [v for v in self.index["videos"] if v["frames"] >= self.span]
        if not self.videos:
            raise MocohdError(f"{cache}: no video has the {self.span} frames a clip needs")

    def __len__(self) -> int:
        return len(self.videos)

    def clip(self, i: int, start: int) -> torch.Tensor:
        v = self.videos[i]
        with safe_open(str(self.cache / v["file"]), framework="pt") as f:
            block = f.get_slice("frames")[start : start + self.span]
        return block[:: self.time_step]

    def __getitem__(self, i) -> torch.Tensor:
        """``i``: a video index (a random clip of it), or ``(index, key)``: the
        clip start is drawn from a generator seeded with ``key``, so the same
        key always gives the same clip (what makes training resume exactly)."""
        key = None
        if isinstance(i, (tuple, list)):
            i, key = i
        high = self.videos[i]["frames"] - self.span + 1
        g = torch.Generator().manual_seed(int(key)) if key is not None else None
        return self.clip(i, int(torch.randint(high, (), generator=g).item()))


class EpochSampler(torch.utils.data.Sampler):
    """Batches of ``(video, key)`` items for one rank, epoch after epoch.

    Epoch e is a permutation of the videos seeded by (seed, e), repeated when
    there are fewer videos than one global batch, cut to whole global batches;
    rank r takes items r, r + world, ... of it. ``start`` skips that many
    batches of the first epoch (resuming mid-epoch). Every item carries a key
    unique to (seed, epoch, position) that fixes its clip.
    """

    def __init__(
        self, n_videos: int, batch: int, rank: int = 0, world: int = 1, seed: int = 0, epoch: int = 0, start: int = 0
    ):
        self.n, self.batch, self.rank, self.world = n_videos, batch, rank, world
        self.seed, self.epoch, self.start = seed, epoch, start

    def batches_per_epoch(self) -> int:
        return max(1, self.n // (self.batch * self.world))

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        need = self.batches_per_epoch() * self.batch * self.world
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(-(-need // self.n))])[:need]
        base = (self.seed * 1_000_003 + epoch) * need
        mine = [(int(order[k]), base + k) for k in range(self.rank, need, self.world)]
        return [mine[b : b + self.batch] for b in range(0, len(mine), self.batch)]

    def __iter__(self):
        epoch, start = self.epoch, self.start
        while True:
            yield from self.epoch_batches(epoch)[start:]
            epoch, start = epoch + 1, 0


def to_model_input(batch: torch.Tensor, device=None) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, T, 3, H, W] float in [-1, 1] (converted on ``device``)."""
    x = batch.to(device, non_blocking=True) if device is not None else batch
    return x.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0)
