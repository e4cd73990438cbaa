"""A procedural stand-in for talking-head videos: stylised faces that blink,
talk and turn their heads, with random shapes and colours. Deterministic from
a seed; the demo's training data and a realistic fixture for tests.

    video = talking_head(seed=3, frames=64, size=64)      # [64, 64, 64, 3] uint8
    write_dataset("./heads", videos=200, frames=64, size=64, seed=0)   # one PNG folder per video

Every face is drawn with soft (anti-aliased) edges from signed distances on
a pixel grid, all frames of a video at once:

- appearance (per video): background gradient, skin, hair (colour, volume,
  fringe height), face width and height, eye spacing, size and iris colour,
  brow thickness, mouth width, lip colour;
- motion (per frame): blinks (eyelids close over ~3 frames every 0.8-3 s),
  speech (the mouth opens with a sum of random syllable-rate sinusoids,
  with pauses), head turn (yaw: features slide sideways and the far half of
  the face narrows) and nod (pitch: features move up and down), both slow
  random sinusoids.

Times are in frames at 25 fps.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch


def _u(g: torch.Generator, low: float, high: float, n: int | None = None) -> torch.Tensor | float:
    x = torch.rand(n if n is not None else 1, generator=g, dtype=torch.float64) * (high - low) + low
    return x if n is not None else float(x)


def _soft(d: torch.Tensor, width: float) -> torch.Tensor:
    """Coverage of a shape from its signed distance d (negative inside), edge ``width`` pixels."""
    return torch.sigmoid(-d / width)


def _ellipse(x, y, cx, cy, rx, ry):
    """Signed distance to an ellipse, to first order: (r - 1) / |grad r| with r the
    normalised radius (exact on circles, good near the outline of flat ones)."""
    rx, ry = torch.as_tensor(rx, dtype=torch.float64), torch.as_tensor(ry, dtype=torch.float64)
    dx, dy = x - cx, y - cy
    r = torch.sqrt((dx / rx) ** 2 + (dy / ry) ** 2).clamp(min=1e-9)
    grad = torch.sqrt((dx / rx**2) ** 2 + (dy / ry**2) ** 2).clamp(min=1e-9) / r
    return (r - 1) / grad


def _smooth_signal(g: torch.Generator, t: torch.Tensor, periods: tuple[float, float], parts: int = 3) -> torch.Tensor:
    """A slow random signal in [-1, 1]: a normalised sum of ``parts`` sinusoids."""
    s = torch.zeros_like(t)
    for _ in range(parts):
        s += _u(g, 0.5, 1.0) * torch.sin(2 * math.pi * t / _u(g, *periods) + _u(g, 0, 2 * math.pi))
    return s / s.abs().max().clamp(min=1e-6)


def _blinks(g: torch.Generator, frames: int) -> torch.Tensor:
    """Eyelid closure in [0, 1] per frame: short blinks at random intervals."""
    closed = torch.zeros(frames, dtype=torch.float64)
    t = _u(g, 0, 40)
    while t < frames:
        centre = t
        for k in range(frames):
            closed[k] = max(float(closed[k]), math.exp(-(((k - centre) / 1.2) ** 2)))
        t += _u(g, 20, 75)
    return closed


def _speech(g: torch.Generator, t: torch.Tensor) -> torch.Tensor:
    """Mouth opening in [0, 1]: syllables (4-6 Hz at 25 fps) gated by phrases and pauses."""
    syll = torch.sin(2 * math.pi * t / _u(g, 4.0, 6.5) + _u(g, 0, 2 * math.pi)).clamp(min=0)
    syll = syll * (0.6 + 0.4 * torch.sin(2 * math.pi * t / _u(g, 9, 15) + _u(g, 0, 2 * math.pi)).abs())
    phrase = (torch.sin(2 * math.pi * t / _u(g, 40, 90) + _u(g, 0, 2 * math.pi)) > _u(g, -0.6, 0.1)).double()
    return (syll * phrase).clamp(0, 1)


def talking_head(seed: int, frames: int = 64, size: int = 64) -> np.ndarray:
    """One video, [frames, size, size, 3] uint8, a pure function of (seed, frames, size)."""
    g = torch.Generator().manual_seed(int(seed))
    T = frames
    t = torch.arange(T, dtype=torch.float64)
    # ---------------------------------------------------------------- appearance
    bg_top, bg_bottom = torch.rand(3, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64)
    skin_tones = torch.tensor(
        [[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.66, 0.46, 0.33], [0.45, 0.30, 0.20], [0.98, 0.87, 0.77]],
        dtype=torch.float64,
    )
    skin = skin_tones[int(torch.randint(len(skin_tones), (), generator=g))] * _u(g, 0.9, 1.05)
    hair = torch.rand(3, generator=g, dtype=torch.float64) * _u(g, 0.2, 0.9)
    iris = torch.rand(3, generator=g, dtype=torch.float64) * 0.6
    lips = skin * torch.tensor([0.85, 0.45, 0.45], dtype=torch.float64)
    face_rx, face_ry = _u(g, 0.26, 0.34), _u(g, 0.34, 0.42)
    eye_dx, eye_y, eye_r = _u(g, 0.10, 0.14), _u(g, -0.06, 0.0), _u(g, 0.035, 0.055)
    mouth_w, mouth_y = _u(g, 0.07, 0.12), _u(g, 0.16, 0.22)
    hair_volume, fringe = _u(g, 1.05, 1.3), _u(g, -0.22, -0.12)
    brow = _u(g, 0.008, 0.02)
    # ---------------------------------------------------------------- motion
    yaw = 0.55 * _smooth_signal(g, t, (60, 160)) * _u(g, 0.4, 1.0)  # -1..1: looking left..right
    pitch = 0.5 * _smooth_signal(g, t, (50, 120)) * _u(g, 0.3, 1.0)
    blink = _blinks(g, T)
    talk = _speech(g, t)
    # ---------------------------------------------------------------- drawing, all frames at once
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5  # [-0.5, 0.5]
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    x, y = x[None], y[None]  # [1, S, S]
    px = 1.0 / size  # one pixel
    sh = lambda v: v[:, None, None]  # noqa: E731 - per-frame scalars broadcast over pixels
    cx = sh(0.0 + 0.06 * yaw)  # the head shifts a little with yaw
    cy = sh(0.03 + 0.03 * pitch)
    # features slide further than the outline: a turned head shows more of one cheek
    fx = cx + sh(0.09 * yaw)
    fy = cy + sh(0.05 * pitch)
    squash = 1 - 0.25 * sh(yaw.abs())
    img = bg_top[:, None, None, None] * (0.5 - y) + bg_bottom[:, None, None, None] * (0.5 + y)  # [3, 1, S, S]
    img = img.expand(3, T, size, size).clone()

    def paint(mask, colour):
        nonlocal img
        img = img * (1 - mask[None]) + colour[:, None, None, None] * mask[None]

    # hair behind the head
    paint(_soft(_ellipse(x, y, cx, cy - 0.04, face_rx * hair_volume, face_ry * hair_volume * 0.95), px), hair)
    # face: the side turned away is narrower
    rx = torch.where(x - cx > 0, face_rx * (1 - 0.2 * sh(yaw).clamp(min=0)), face_rx * (1 + 0.2 * sh(yaw).clamp(max=0)))
    paint(_soft(_ellipse(x, y, cx, cy, rx, torch.full_like(rx, face_ry)), px), skin)
    # fringe: hair covering the top of the face
    fringe_mask = _soft(_ellipse(x, y, cx, cy - 0.04, face_rx * hair_volume, face_ry * hair_volume * 0.95), px)
    paint(fringe_mask * _soft(y - (cy + fringe), px), hair)
    # eyes: white, iris looking where the head turns, lids closing on blinks
    open_ = 1 - 0.92 * sh(blink)
    for side in (-1, 1):
        ex = fx + side * eye_dx * squash
        ey = fy + eye_y
        # the lids cut a band out of the full eye (flattening the ellipse would smear it sideways)
        lids = _soft((y - ey).abs() - eye_r * 0.8 * open_, px * 0.5)
        white = (
            _soft(_ellipse(x, y, ex, ey, torch.full_like(ex, eye_r * 1.3), torch.full_like(ex, eye_r * 0.8)), px * 0.7)
            * lids
        )
        paint(white, torch.tensor([0.97, 0.97, 0.95], dtype=torch.float64))
        pupil = _soft(
            _ellipse(
                x, y, ex + sh(0.012 * yaw), ey, torch.full_like(ex, eye_r * 0.65), torch.full_like(ex, eye_r * 0.65)
            ),
            px * 0.7,
        )
        paint(pupil * white, iris)
        lid_line = _soft((y - (ey - eye_r * 0.8 * open_)).abs() - px * 0.6, px * 0.5) * _soft(
            (x - ex).abs() - eye_r * 1.3, px
        )
        paint(lid_line, skin * 0.45)
        brow_y = ey - eye_r * 1.9 - 0.01 * sh(talk)  # brows rise a little when talking
        paint(_soft((y - brow_y).abs() - brow, px * 0.6) * _soft((x - ex).abs() - eye_r * 1.4, px), hair * 0.8)
    # nose: a small shaded wedge following the yaw
    nose = _soft(
        _ellipse(x, y, fx + sh(0.015 * yaw), fy + 0.08, torch.full_like(fx, 0.022), torch.full_like(fx, 0.045)), px
    )
    paint(nose * 0.35, skin * 0.6)
    # mouth: opens with speech
    mh = 0.008 + 0.05 * sh(talk)
    mw = mouth_w * squash * (1 - 0.15 * sh(talk))
    outline = _ellipse(x, y, fx, fy + mouth_y, mw, torch.full_like(mw, 0.058))
    mouth = _soft(outline, px * 0.7) * _soft((y - fy - mouth_y).abs() - mh, px * 0.5)
    paint(mouth, lips * 0.35)
    lip_ring = _soft(outline - 0.01, px * 0.7) * _soft((y - fy - mouth_y).abs() - mh - 0.01, px * 0.5) * (1 - mouth)
    paint(lip_ring, lips)
    video = img.clamp(0, 1).permute(1, 2, 3, 0)  # [T, S, S, 3]
    return (video * 255).round().to(torch.uint8).numpy()


def write_dataset(
    folder: str | os.PathLike, videos: int = 200, frames: int = 64, size: int = 64, seed: int = 0, progress=None
) -> Path:
    """Write ``videos`` procedural talking heads as frame folders (``video_0000/0000.png``, ...).
    Video i uses seed ``seed * 1_000_003 + i``; existing complete folders are kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        out = folder / f"video_{i:04d}"
        if not (out / f"{frames - 1:04d}.png").is_file():
            tmp = folder / f".video_{i:04d}.tmp"
            tmp.mkdir(exist_ok=True)
            for k, frame in enumerate(talking_head(seed * 1_000_003 + i, frames, size)):
                iio.imwrite(tmp / f"{k:04d}.png", frame)
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        if progress:
            progress(i + 1, videos)
    return folder
