"""Music: an audio file drives the motion (``render --audio``): loudness and onsets set the
speed of the learned motion, the energy of three bands moves chosen edit directions, and the
audio is muxed into the video in sync.

    samples, rate = read_audio("song.mp3")                       # mono float32, RATE Hz (ffmpeg)
    feats = audio_features(samples, rate, fps=24)                # one row per video frame
    feats.loudness, feats.onsets, feats.bands                    # [T], [T], [T, 3] in [0, 1]
    drive = audio_drive(G, feats, {"low": "sefa:0"}, strength=2)  # what render applies
    render("song.mp4", RenderConfig(audio="song.mp3", fps=24))    # the same from the top

Features (``audio_features``): the signal is cut into windows of ``N_FFT`` samples every
``HOP`` samples (zero-padded at both ends, Hann-windowed for the spectrum), computed in blocks
of ``BLOCK`` windows so that no intermediate grows with the length. Per window: the RMS
(loudness), the spectral flux of the log-magnitude spectrum (onsets: the summed rise of every
bin since the previous window) and the RMS amplitude of three bands (``BANDS``: low < 250 Hz,
mid 250-2000 Hz, high above). Video frame t covers [t / fps, (t + 1) / fps): it takes the mean
of its windows' loudness and bands and the largest of their onsets, so the features follow the
audio exactly at any fps (onsets are placed where the window that first hears them ends: never
early, at most ``HOP`` late). Each feature is divided by its 99th percentile over the track (at
least ``FLOOR``: silence stays zero, not amplified noise) and clipped to [0, 1]; a band's
divisor is at least ``BAND_SHARE`` of the loudest band's, so a band the music hardly has stays
small. Loudness and bands are then smoothed with a fast attack and a slow release
(``ATTACK``, ``RELEASE`` seconds); onsets decay with ``RELEASE``.

The drive (``AudioDrive``): frame t's motion step (w_t - w_{t-1} of the motion model's walk)
is multiplied by ``SPEED`` x loudness_t + ``KICK`` x onsets_t, so the motion stands still in
silence, goes about at the motion model's own pace at a typical level and jumps on beats; the
band mapped to a direction moves every frame along it by band_t x ``strength`` (in standard
deviations of w, as ``render --edit``'s strengths), on top of the edits.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from .edits import LatentEdit, check_edit_options, resolve_edits
from .errors import UsageError

RATE = 22050  # Hz: the audio is decoded to mono at this rate
N_FFT = 1024  # samples per analysis window (46 ms)
HOP = 256  # samples between windows (11.6 ms)
BLOCK = 4096  # windows analysed at once
BANDS = {"low": (0.0, 250.0), "mid": (250.0, 2000.0), "high": (2000.0, math.inf)}  # Hz
FLOOR = 1e-3  # the least divisor of a feature (RMS of -60 dBFS): silence stays silent
BAND_SHARE = 0.05  # a band's divisor is at least this share of the loudest band's
ATTACK, RELEASE = 0.03, 0.25  # seconds: smoothing as a level rises, as it falls (onsets: decay)
SPEED, KICK = 1.5, 1.0  # a motion step's factor per unit of loudness, of onset
DEFAULT_MAP = {"low": "sefa:0", "mid": "sefa:1", "high": "sefa:2"}  # StyleGAN2/3; none for BigGAN
FORMATS = ("mp4", "webm")  # outputs that carry an audio track
CODECS = {"mp4": ["-c:a", "aac", "-b:a", "192k"], "webm": ["-c:a", "libopus", "-b:a", "160k"]}


# ----------------------------------------------------------------------------
# Reading


def read_audio(path: str | os.PathLike, rate: int = RATE) -> tuple[np.ndarray, int]:
    """The audio of any file ffmpeg decodes (its first audio stream), as mono float32 samples
    [n] at ``rate`` Hz, and the rate. A UsageError (one line) when the file is missing, ffmpeg
    cannot decode it or it has no audio stream."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--audio {path}: {'is a folder' if p.is_dir() else 'no such file'}")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(p)]
    cmd += ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(int(rate)), "-f", "f32le", "-"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        text = r.stderr.decode("utf-8", "replace")
        if "matches no streams" in text or "Output file #0 does not contain any stream" in text:
            raise UsageError(f"--audio {path}: the file has no audio stream")
        lines = [s.strip() for s in text.splitlines() if s.strip()]
        raise UsageError(f"--audio {path}: ffmpeg cannot decode it ({lines[-1][:120] if lines else r.returncode})")
    samples = np.frombuffer(r.stdout, dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise UsageError(f"--audio {path}: the file has no audio samples")
    return samples, int(rate)


def frame_count(samples: np.ndarray, rate: int, fps: float) -> int:
    """Video frames that the audio lasts at ``fps``: floor(duration x fps), at least 1."""
    return max(1, math.floor(len(samples) * fps / rate))


# ----------------------------------------------------------------------------
# Features


@dataclass
class AudioFeatures:
    """Per video frame, in [0, 1]: loudness [T], onsets [T], band energies [T, 3] (``BANDS``)."""

    loudness: torch.Tensor
    onsets: torch.Tensor
    bands: torch.Tensor
    fps: float

    @property
    def frames(self) -> int:
        return self.loudness.shape[0]

    def band(self, name: str) -> torch.Tensor:
        return self.bands[:, list(BANDS).index(name)]


def _window_features(samples: np.ndarray, rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per analysis window (centred on sample k x HOP): RMS [H], flux [H], band RMS [H, 3]."""
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    hops = len(samples) // HOP + 1
    window = torch.hann_window(N_FFT)
    freqs = torch.fft.rfftfreq(N_FFT, 1.0 / rate)
    masks = torch.stack([(freqs >= lo) & (freqs < hi) for lo, hi in BANDS.values()]).float()  # [3, bins]
    gain = 2.0 / window.pow(2).sum()  # |X|^2 x gain: the power of a sine (its RMS^2 x 2 / 2)
    rms, flux, bands = [], [], []
    prev = None
    for start in range(0, hops, BLOCK):
        n = min(BLOCK, hops - start)
        lo = start * HOP - N_FFT // 2
        seg = x[max(lo, 0) : lo + (n - 1) * HOP + N_FFT]
        seg = torch.nn.functional.pad(seg, (max(-lo, 0), (n - 1) * HOP + N_FFT - len(seg) - max(-lo, 0)))
        frames = seg.unfold(0, N_FFT, HOP)  # [n, N_FFT]
        rms.append(frames.pow(2).mean(1).sqrt())
        power = torch.fft.rfft(frames * window).abs().pow(2) * gain  # [n, bins]
        bands.append((power @ masks.T).sqrt())
        logmag = torch.log1p(100.0 * power.sqrt())
        before = torch.cat([logmag[:1] if prev is None else prev, logmag[:-1]])
        flux.append((logmag - before).clamp_min(0).sum(1))
        prev = logmag[-1:]
    return torch.cat(rms), torch.cat(flux), torch.cat(bands)


def _per_frame(values: torch.Tensor, frame_of: torch.Tensor, frames: int, reduce: str) -> torch.Tensor:
    """Windows' ``values`` [H, ...] gathered into ``frames`` video frames ('mean' or 'amax');
    a frame with no window (beyond the audio) is zero."""
    keep = frame_of < frames
    values, frame_of = values[keep], frame_of[keep]
    shape = (frames, *values.shape[1:])
    index = frame_of.view(-1, *([1] * (values.ndim - 1))).expand_as(values)
    return torch.zeros(shape).scatter_reduce(0, index, values, reduce, include_self=False)


def _normalise(v: torch.Tensor, least: float) -> torch.Tensor:
    scale = torch.quantile(v, 0.99, dim=0).clamp_min(least) if v.numel() else torch.tensor(least)
    return (v / scale).clamp(0, 1)


def _smooth(v: torch.Tensor, fps: float, attack: float, release: float) -> torch.Tensor:
    """One-pole smoothing along frames [T, ...]: toward a rising value with time constant
    ``attack``, a falling one ``release`` (seconds)."""
    up, down = (1 - math.exp(-1 / (max(t, 1e-6) * fps)) for t in (attack, release))
    out, level = torch.empty_like(v), torch.zeros_like(v[0])
    for t in range(v.shape[0]):
        level = level + (v[t] - level) * torch.where(v[t] > level, up, down)
        out[t] = level
    return out


def audio_features(samples: np.ndarray, rate: int, fps: float, frames: int | None = None) -> AudioFeatures:
    """The features of ``samples`` [n] (mono, ``rate`` Hz) for a video at ``fps``, one row per
    frame: ``frames`` rows (default ``frame_count``: as long as the audio; frames past its end
    are silent)."""
    frames = frame_count(samples, rate, fps) if frames is None else int(frames)
    rms, flux, band = _window_features(samples, rate)
    at = torch.arange(rms.shape[0], dtype=torch.float64) * HOP  # the windows' centres (samples)
    frame_of = torch.floor(at * fps / rate).long()
    heard = torch.floor((at + N_FFT // 2) * fps / rate).long()  # onsets: when their newest sample is
    loud = _normalise(rms, FLOOR)
    flux = _normalise(flux, FLOOR * N_FFT / 2)
    scale = torch.quantile(band, 0.99, dim=0)
    scale = torch.maximum(scale, BAND_SHARE * scale.max()).clamp_min(FLOOR)
    band = (band / scale).clamp(0, 1)
    loudness = _smooth(_per_frame(loud, frame_of, frames, "mean"), fps, ATTACK, RELEASE)
    onsets = _smooth(_per_frame(flux, heard, frames, "amax"), fps, 0.0, RELEASE)
    bands = _smooth(_per_frame(band, frame_of, frames, "mean"), fps, ATTACK, RELEASE)
    return AudioFeatures(loudness, onsets, bands, float(fps))


# ----------------------------------------------------------------------------
# Driving a render


def parse_audio_map(spec: str | dict | None) -> dict[str, str] | None:
    """``--audio-map`` as {band: direction}: "low=pca:0,high=sefa:3" (BAND=DIRECTION, the bands of
    ``BANDS``, the directions of ``render --edit``: pca:K, sefa:K or a file), "none" (no band moves
    anything: {}) or None (``DEFAULT_MAP``, decided with the generator). A UsageError names the
    bad entry; direction files are read now."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        entries = list(spec.items())
    elif not isinstance(spec, str):
        raise UsageError(f"audio map must be BAND=DIRECTION,... (a string), got {spec!r}")
    elif spec.strip().lower() == "none":
        return {}
    else:
        entries = [part.partition("=")[::2] for part in spec.split(",")]
    out = {}
    for band, direction in entries:
        band, direction = str(band).strip().lower(), str(direction).strip()
        if band not in BANDS or not direction:
            raise UsageError(
                f"audio map entry {band}={direction}: expected BAND=DIRECTION, BAND one of {', '.join(BANDS)} "
                "and DIRECTION pca:K, sefa:K or a .npy/.safetensors file (e.g. low=pca:0,high=sefa:3)"
            )
        if band in out:
            raise UsageError(f"audio map: band {band} is mapped twice")
        check_edit_options([f"{direction}=1"])  # the direction's syntax, and a file read
        out[band] = direction
    return out


def check_audio_options(audio, audio_map, strength, fmt: str | None = None):
    """A render's audio settings, checked alone (UsageError, one line): (path or None, map or
    None, strength). ``fmt``: the output format, which must carry sound (``FORMATS``)."""
    if audio is None:
        if audio_map is not None:
            raise UsageError("--audio-map maps bands of the music: give --audio too")
        return None, None, float(strength)
    try:
        strength = float(strength)
    except (TypeError, ValueError):
        raise UsageError(f"audio strength must be a number, got {strength!r}") from None
    if not math.isfinite(strength) or abs(strength) > 1000:
        raise UsageError(f"audio strength must be a finite number within +-1000, got {strength:g}")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--audio needs a video with sound (.mp4 or .webm); {fmt} output has no audio track")
    return Path(audio), parse_audio_map(audio_map), strength


@dataclass
class AudioDrive:
    """What the music does to a render: ``speed`` [T] multiplies each frame's motion step, and
    ``levels`` [T, B] x ``offsets`` [B, num_ws, w_dim] (unit strength x ``strength``) move each
    frame's w's. ``summary``: one line saying so."""

    speed: torch.Tensor
    levels: torch.Tensor
    offsets: torch.Tensor | None
    summary: str = ""

    def follow(self, chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """A walk's chunks [V, t, w_dim] (frame 0 first) with every step scaled by ``speed``:
        out_t = out_{t-1} + speed_t (w_t - w_{t-1}); frame 0 stays where it is."""
        prev = out = None
        done = 0
        for ws in chunks:
            steps = []
            for k in range(ws.shape[1]):
                w = ws[:, k]
                out = w if prev is None else out + self.speed_at(done) * (w - prev)
                prev = w
                steps.append(out)
                done += 1
            yield torch.stack(steps, dim=1)

    def speed_at(self, t: int) -> float:
        return float(self.speed[t]) if t < self.speed.shape[0] else 0.0

    def edit(self, base: LatentEdit | None, frame: torch.Tensor) -> LatentEdit | None:
        """The ``LatentEdit`` of the frames ``frame`` [N]: ``base``'s, with the bands' offsets
        [N, num_ws, w_dim] added."""
        if self.offsets is None:
            return base
        level = self.levels[frame.clamp_max(self.levels.shape[0] - 1).cpu()]  # [N, B]
        moved = torch.einsum("nb,bkd->nkd", level, self.offsets)
        if base is not None and base.offset is not None:
            moved = moved + base.offset
        return LatentEdit(self.offsets.shape[1], moved, base.cutoff if base is not None else None, "")


def audio_drive(G, features: AudioFeatures, audio_map=None, strength: float = 1.0, layers=None, **kw) -> AudioDrive:
    """The ``AudioDrive`` of ``features`` for G: ``audio_map`` (``parse_audio_map``'s; None:
    ``DEFAULT_MAP`` for StyleGAN2/3, nothing for BigGAN) on the w's ``layers`` (``--edit-layers``)
    at ``strength``; ``kw`` (``image``, ``on_note``) go to ``edits.resolve_edits``."""
    audio_map = parse_audio_map(audio_map)
    if audio_map is None:
        audio_map = DEFAULT_MAP if getattr(G.synthesis, "style_affines", None) is not None else {}
    speed = SPEED * features.loudness + KICK * features.onsets
    offsets, levels, shown = [], [], []
    for band, direction in audio_map.items():
        edit = resolve_edits(G, [f"{direction}={strength}"], layers, **kw)
        offsets.append(edit.offset)  # [num_ws, w_dim]
        levels.append(features.band(band))
        shown.append(f"{band} -> {direction} x {strength:g}")
    summary = "music: loudness and onsets -> the motion's speed" + ("; " + ", ".join(shown) if shown else "")
    if not offsets:
        return AudioDrive(speed, torch.zeros(features.frames, 0), None, summary)
    return AudioDrive(speed, torch.stack(levels, 1), torch.stack(offsets), summary)


def mux_args(audio: Path, seconds: float, fmt: str) -> tuple[list[str], list[str]]:
    """ffmpeg arguments that add ``audio`` as a second input (before the output's options) and
    encode it as ``fmt``'s sound, cut or padded with silence to ``seconds`` (after them)."""
    inputs = ["-i", str(audio)]
    output = ["-map", "0:v:0", "-map", "1:a:0", *CODECS[fmt], "-ac", "2", "-af", "apad", "-t", f"{seconds:.6f}"]
    return inputs, output
