"""Latent trajectories of a dataset: every frame of every video encoded once into the w's of an
image generator (``mocohd prepare --encode E``), cached beside the clips.

    cache = encode_dataset("./heads", E)                  # E: loaders.load_encoder(name, G)
    ws = cache.clip(signature, start=0, span=31, step=2)  # [16, num_ws, w_dim] float32

The frames are those of the clip cache at the encoder's input size (``clips.prepare``); the
trajectories go in its folder, under ``trajectories-SHA12`` (the encoder's weights sha256): one
safetensors file per video (``ws`` [T, num_ws, w_dim], float32), named by the video's source
signature as its clip file is, and ``index.json`` (the encoder, its generator, each video's
signature and frame count). Encoding streams each video in batches of frames, so memory holds
one video's trajectory and one batch of frames whatever the dataset's size.

A trajectory is reused only when its video's signature and frame count are those of the clip
cache now and it was written by this encoder (the folder is the encoder's): a changed video is
encoded again, a removed one leaves, and the change is said in one line, as for the clips.
Files are written under a temporary name and renamed, the index last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ..errors import MocohdError
from .clips import ClipDataset, change_note, prepare, write_cache_file

TRAJECTORY_VERSION = 1
BATCH = 64  # frames per encoder forward
TRAJECTORIES = "trajectory cache"  # how error messages name it


@dataclass
class TrajectoryCache:
    folder: Path
    clips: Path  # the clip cache the frames came from
    videos: dict[str, dict]  # signature -> {file, frames, source}
    encoder: dict  # name, weights_sha256
    changed: dict[str, int] = field(default_factory=dict)  # encoded / re-encoded / removed -> videos

    def change_note(self) -> str:
        """'latent trajectories: 3 videos encoded, 1 removed', or '' when all were reused."""
        return change_note("latent trajectories", self.changed)

    def clip(self, signature: str, start: int, span: int, step: int = 1) -> torch.Tensor:
        """The w's of frames start, start + step, ... < start + span of a video: [n, num_ws, w_dim]."""
        v = self.videos.get(signature)
        if v is None:
            raise MocohdError(f"no latent trajectory for the video {signature[:12]} (run mocohd prepare --encode)")
        with safe_open(str(self.folder / v["file"]), framework="pt") as f:
            return f.get_slice("ws")[start : start + span][::step]

    def whole(self, signature: str) -> torch.Tensor:
        v = self.videos[signature]
        return self.clip(signature, 0, v["frames"])


def _shorter(v: dict) -> MocohdError:  # the two caches decoded the video to different lengths
    return MocohdError(f"{v['source']}: its latent trajectory is shorter than its clip: encode it again")


def trajectory_folder(clips: Path, encoder_sha256: str) -> Path:
    return Path(clips) / f"trajectories-{encoder_sha256[:12]}"


def encode_dataset(
    root: str | os.PathLike,
    E,
    *,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> TrajectoryCache:
    """Encode every video under ``root`` with ``E`` (an ``ImageEncoder`` from ``load_encoder``: its
    ``name`` and ``weights_sha256`` name the cache), reusing what the cache holds for unchanged
    videos (``force``: encode everything again). ``progress(done, total)`` per video."""
    info = prepare(root, frame_size=E.resolution, min_frames=1)
    clip_index = json.loads((info.cache / "index.json").read_text())
    sha = getattr(E, "weights_sha256", None)
    if not sha:
        raise MocohdError("the encoder has no weights sha256 (load it with load_encoder)")
    folder = trajectory_folder(info.cache, sha)
    old = {} if force else _read_index(folder / "index.json", sha)
    folder.mkdir(parents=True, exist_ok=True)
    device = next(E.parameters()).device
    videos, changed = {}, {"encoded": 0, "re-encoded": 0, "removed": 0}
    by_source = {v.get("source"): sig for sig, v in old.items()}
    for i, v in enumerate(clip_index["videos"]):
        sig = v["signature"]
        prev = old.pop(sig, None)
        if prev is not None and prev["frames"] == v["frames"] and (folder / prev["file"]).is_file():
            videos[sig] = prev
        else:  # new, changed (the same source, another signature) or its file gone
            was = prev is not None or old.pop(by_source.get(v["source"]), None) is not None
            changed["re-encoded" if was else "encoded"] += 1
            ws = _encode_video(info.cache / v["file"], E, batch, device)
            entry = {"file": f"{sig}.safetensors", "frames": int(ws.shape[0]), "source": v["source"]}
            write_cache_file(folder / entry["file"], st_save({"ws": ws.contiguous()}), TRAJECTORIES)
            videos[sig] = entry
        if progress:
            progress(i + 1, len(clip_index["videos"]))
    changed["removed"] = len(old)
    encoder = {"name": getattr(E, "name", None), "weights_sha256": sha}
    index = {"version": TRAJECTORY_VERSION, "encoder": encoder, "image": dict(getattr(E, "image", {}) or {})}
    index["videos"] = videos
    write_cache_file(folder / "index.json", json.dumps(index, indent=1).encode(), TRAJECTORIES)
    for f in folder.glob("*.safetensors"):  # the removed videos' trajectories, and older encodes
        if f.stem not in videos:
            f.unlink(missing_ok=True)
    changed = {k: n for k, n in changed.items() if n}
    return TrajectoryCache(folder, info.cache, videos, encoder, changed)


def load_trajectories(clips: Path, E_sha256: str) -> TrajectoryCache | None:
    """The trajectory cache of a clip cache and an encoder, if one was written (else None)."""
    folder = trajectory_folder(clips, E_sha256)
    index = _read_index(folder / "index.json", E_sha256, full=True)
    if not index:
        return None
    return TrajectoryCache(folder, Path(clips), index["videos"], index["encoder"])


def _encode_video(path: Path, E, batch: int, device) -> torch.Tensor:
    """[T, num_ws, w_dim] float32: the video's frames, ``batch`` at a time, through ``E``."""
    out = []
    with safe_open(str(path), framework="pt") as f, torch.no_grad():
        frames = f.get_slice("frames")
        total = frames.get_shape()[0]
        for start in range(0, total, batch):
            x = frames[start : start + batch].to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            out.append(E(x).float().cpu())
    return torch.cat(out)


def _read_index(path: Path, sha: str, full: bool = False) -> dict:
    """signature -> entry of a trajectory index written by the encoder ``sha`` ({} when absent, of
    another version or encoder, or damaged: everything is encoded again); the whole index with ``full``."""
    try:
        index = json.loads(path.read_text())
        ok = index["version"] == TRAJECTORY_VERSION and index["encoder"]["weights_sha256"] == sha
        videos = index["videos"]
        ok = ok and all(isinstance(v["file"], str) and isinstance(v["frames"], int) for v in videos.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    if not ok:
        return {}
    return index if full else dict(videos)


class TrajectoryClips(ClipDataset):
    """``ClipDataset`` whose items are (clip [frames, S, S, 3] uint8, its frames' w's [frames, w_dim]
    float32), the same start for both: the encoder's per-layer w's averaged into one w per frame
    (the motion generator walks one w)."""

    def __init__(self, cache: str | os.PathLike, trajectories: TrajectoryCache, frames: int = 16, time_step: int = 2):
        super().__init__(cache, frames=frames, time_step=time_step)
        missing = [v["source"] for v in self.videos if v["signature"] not in trajectories.videos]
        if missing:
            raise MocohdError(
                f"{len(missing)} video(s) have no latent trajectory (e.g. {missing[0]}): "
                "run mocohd prepare --encode again"
            )
        self.trajectories = trajectories

    def clip(self, i: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.videos[i]
        ws = self.trajectories.clip(v["signature"], start, self.span, self.time_step)
        if ws.shape[0] != self.frames:
            raise _shorter(v)
        return super().clip(i, start), ws.float().mean(dim=1)

    def tiled(self, limit: int = 4096) -> torch.Tensor:
        """The w's of the clips that tile every video from its first frame (starts 0, span, 2 span, ...),
        one w per frame: [clips, frames, w_dim]; at most ``limit`` clips, taken round-robin over the
        videos (every video's first clip, then every second one, ...), so memory stays bounded."""
        count = [(v["frames"] - self.span) // self.span + 1 for v in self.videos]
        order = sorted((k, i) for i, n in enumerate(count) for k in range(n))[:limit]  # round-robin
        taken: dict[int, list[int]] = {}
        for k, i in order:
            taken.setdefault(i, []).append(k)
        clips = {}
        for i, ks in taken.items():  # each video's trajectory read once
            v = self.videos[i]
            ws = self.trajectories.whole(v["signature"]).float().mean(dim=1)
            if ws.shape[0] < v["frames"]:
                raise _shorter(v)
            for k in ks:
                clips[k, i] = ws[k * self.span : (k + 1) * self.span : self.time_step]
        return torch.stack([clips[key] for key in order])
