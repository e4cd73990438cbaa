"""Faces: a photo aligned as FFHQ's images are, for ``mocohd invert --align``.

    faces = detect_landmarks(img)                      # uint8 [H, W, 3] -> [Face], left to right
    face = faces[largest(faces)]                       # Face(box, landmarks [68, 2], score)
    eyes, mouth = eyes_and_mouth(face.landmarks)       # [2, 2] each: eye centres, mouth corners
    quad = ffhq_quad(eyes, mouth)                      # [4, 2]: the rotated square to cut out
    aligned = align(img, quad, 1024)                   # uint8 [1024, 1024, 3], as FFHQ's images

The recipe is NVIDIA's, from the ffhq-dataset repository (``download_ffhq.py``,
``recreate_aligned_images``: how FFHQ's 1024 px images were cut from the Flickr photos,
"A Style-Based Generator Architecture for Generative Adversarial Networks", Karras et al.,
CVPR 2019), with its defaults (level eyes, padding on, no random shift):

- points: the centre of each eye (the mean of its six landmarks) and the two mouth corners;
- the square: e = the eyes' midpoint, d = from the left eye to the right one, m = from e to the
  mouth corners' midpoint; x = d - perp(m) (perp: a quarter turn, (a, b) -> (-b, a)), scaled to
  length max(2 |d|, 1.8 |m|); y = perp(x); centre c = e + 0.1 m; corners c - x - y, c - x + y,
  c + x + y, c + x - y (top left, bottom left, bottom right, top right); side 2 |x|;
- shrink: when the side is at least 4x the output size, the photo is resized (Lanczos) by the
  whole factor floor(side / size / 2), and the square with it;
- crop: to the square's bounding box plus a border of 10% of the side (at least 3 px);
- pad: when the square still leaves the photo by more than border - 4 px, the photo is
  reflected outwards by at least 30% of the side, and the added margin blurred (a Gaussian of
  sigma 2% of the side, fully 1/3 of the way out) and faded towards the photo's median colour;
- transform: the square, through a bilinear quad transform, onto ``transform_size`` px (4x the
  output, as the 4096 px of FFHQ's 1024), then resized to the output size (Lanczos).

Landmarks come from dlib (the ``faces`` extra: ``pip install 'mocohd-cli[faces]'``): its
HOG face detector and its 68-point shape predictor, the iBUG 300-W scheme, which is where
FFHQ's own landmarks came from (dlib, as the dataset's README says). Points 36-41 are the
photo's left eye (the person's right), 42-47 the other, 48 and 54 the mouth's left and right
corners. The predictor file ships inside the ``face_recognition_models`` package (found
without importing it: its ``__init__`` needs setuptools' old ``pkg_resources``). The model
was trained on iBUG 300-W, whose licence excludes commercial use: so is its use here.

Detection runs on a copy of the photo at most ``DETECT_SIZE`` px on its longer side, up-sampled
once (faces down to about 40 px of that copy), the landmarks on the photo itself. Faces are
listed left to right; ``largest`` is the default choice and ``pick_face`` checks a chosen one.
Without the extra, ``available()`` is False and ``detect_landmarks`` raises ``MISSING`` in one
line; ``ffhq_quad`` and ``align`` need nothing but numpy and Pillow.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import MocohdError, UsageError

try:  # the faces extra
    import dlib
except ImportError:  # the core runs without it; detect_landmarks says what to install
    dlib = None

EXTRA = "pip install 'mocohd-cli[faces]'"
MISSING = f"face alignment needs dlib and its 68-point landmark model: {EXTRA}"
PREDICTOR = ("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat")  # (package, file in it)
DETECT_SIZE = 2048  # the longer side of the copy faces are detected in
UPSAMPLE = 1  # dlib's detector up-samples its image once: faces down to about 40 px
TRANSFORM_FACTOR = 4  # the quad transform renders at 4x the output size (FFHQ: 4096 for 1024)

# The 68-point scheme (iBUG 300-W, dlib's predictor): the slices the recipe reads.
LEFT_EYE = slice(36, 42)  # in the photo; the person's right eye
RIGHT_EYE = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54  # the outer lip contour's first point and its seventh


@dataclass(frozen=True)
class Face:
    """A face found in a photo: its box (left, top, right, bottom) in pixels, its 68 landmarks
    [68, 2] (x, y) and the detector's score."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(right - left, 0) * max(bottom - top, 0)


def available() -> bool:
    """Whether the faces extra is installed: dlib and its 68-point landmark model."""
    return dlib is not None and _predictor_path() is not None


def _predictor_path() -> Path | None:
    """The 68-point model's file in its installed package (the package is not imported), or None."""
    package, name = PREDICTOR
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def _models():
    """dlib's face detector and 68-point shape predictor (about 1 s to load, once)."""
    if not available():
        raise MocohdError(MISSING)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_predictor_path()))


def _check_image(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise UsageError(f"the image must be uint8 [H, W, 3] (photos.read_frame), got {img.dtype} {list(img.shape)}")
    return np.ascontiguousarray(img)


def detect_landmarks(img, detect_size: int = DETECT_SIZE) -> list[Face]:
    """The faces in ``img`` (uint8 [H, W, 3], RGB), left to right, each with its box, 68
    landmarks and score; [] when there are none. A one-line ``MocohdError`` (``MISSING``)
    without the faces extra."""
    if isinstance(detect_size, bool) or not isinstance(detect_size, int) or detect_size < 1:
        raise UsageError(f"detect_size must be a whole number >= 1, got {detect_size!r}")
    detector, predictor = _models()
    img = _check_image(img)
    h, w = img.shape[:2]
    scale = min(1.0, detect_size / max(h, w))
    small = img
    if scale < 1:
        size = (max(round(w * scale), 1), max(round(h * scale), 1))
        small = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
    rects, scores, _ = detector.run(small, UPSAMPLE, 0.0)
    faces = []
    for r, score in zip(rects, scores, strict=True):
        box = tuple(round(v / scale) for v in (r.left(), r.top(), r.right(), r.bottom()))
        shape = predictor(img, dlib.rectangle(*box))
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box, landmarks, float(score)))
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


def largest(faces: list[Face]) -> int:
    """The index of the largest face (by its box's area; the first of equals)."""
    if not faces:
        raise UsageError("no faces to choose from")
    return max(range(len(faces)), key=lambda i: (faces[i].area, -i))


def pick_face(faces: list[Face], index: int | None = None, photo: str = "the photo") -> int:
    """The face to align: ``index`` (0-based, as listed), else the largest. One-line errors: no
    face at all (``MocohdError``), an ``index`` the photo has no face for (``UsageError``)."""
    if not faces:
        raise MocohdError(f"{photo}: no face found to align (a photo that is aligned already: --no-align)")
    if index is None:
        return largest(faces)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(faces):
        have = "1 face (--face 0)" if len(faces) == 1 else f"{len(faces)} faces (--face 0 to {len(faces) - 1})"
        raise UsageError(f"--face {index}: {photo} has {have}")
    return index


def eyes_and_mouth(landmarks) -> tuple[np.ndarray, np.ndarray]:
    """68 landmarks [68, 2] -> (eyes [2, 2]: the centres of the photo's left and right eye, the
    mean of each eye's six points; mouth [2, 2]: its left and right corner)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise UsageError(f"landmarks must be 68 finite (x, y) points [68, 2], got {list(lm.shape)}")
    eyes = np.stack([lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)])
    return eyes, lm[[MOUTH_LEFT, MOUTH_RIGHT]].copy()


def _perp(v: np.ndarray) -> np.ndarray:
    """``v`` turned a quarter (a, b) -> (-b, a): in image coordinates (y down), clockwise."""
    return np.array([-v[1], v[0]])


def ffhq_quad(eyes, mouth) -> np.ndarray:
    """The square FFHQ cuts for these eye centres and mouth corners ([2, 2] each, photo-left
    first): its corners [4, 2], top left, bottom left, bottom right, top right (module docstring)."""
    eyes, mouth = np.asarray(eyes, dtype=np.float64), np.asarray(mouth, dtype=np.float64)
    if eyes.shape != (2, 2) or mouth.shape != (2, 2) or not (np.isfinite(eyes).all() and np.isfinite(mouth).all()):
        raise UsageError("eyes and mouth must be two finite (x, y) points each, [2, 2]")
    eye_mid = (eyes[0] + eyes[1]) * 0.5
    eye_to_eye = eyes[1] - eyes[0]
    eye_to_mouth = (mouth[0] + mouth[1]) * 0.5 - eye_mid
    x = eye_to_eye - _perp(eye_to_mouth)
    length = np.hypot(*x)
    if not length > 0:
        raise UsageError("the eyes and mouth given make no square (they coincide)")
    x = x / length * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = _perp(x)
    centre = eye_mid + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def align(img, quad, size: int, transform_size: int | None = None) -> np.ndarray:
    """``img`` (uint8 [H, W, 3]) cut along ``quad`` ([4, 2], ``ffhq_quad``) as FFHQ's images are:
    uint8 [size, size, 3]. ``transform_size``: the quad transform's size (default 4x ``size``)."""
    img = _check_image(img)
    quad = np.array(quad, dtype=np.float64)
    if quad.shape != (4, 2) or not np.isfinite(quad).all():
        raise UsageError(f"quad must be 4 finite (x, y) corners [4, 2], got {list(quad.shape)}")
    for name, v in (("size", size), ("transform_size", transform_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16384):
            raise UsageError(f"{name} must be a whole number in 1..16384, got {v!r}")
    transform_size = transform_size or TRANSFORM_FACTOR * size
    side = np.hypot(*(quad[3] - quad[0]))  # 2 |x|
    if not side > 0:
        raise UsageError("quad has no size")
    photo = Image.fromarray(img)

    shrink = math.floor(side / size * 0.5)
    if shrink > 1:
        photo = photo.resize((round(photo.width / shrink), round(photo.height / shrink)), Image.Resampling.LANCZOS)
        quad /= shrink
        side /= shrink

    border = max(round(side * 0.1), 3)
    left, top, right, bottom = _bounds(quad)
    box = (max(left - border, 0), max(top - border, 0))
    box += (min(right + border, photo.width), min(bottom + border, photo.height))
    if box[2] - box[0] < photo.width or box[3] - box[1] < photo.height:
        photo = photo.crop(box)
        quad -= box[:2]

    left, top, right, bottom = _bounds(quad)
    pad = (max(border - left, 0), max(border - top, 0), max(right - photo.width + border, 0))
    pad += (max(bottom - photo.height + border, 0),)
    if max(pad) > border - 4:
        pad = tuple(max(p, round(side * 0.3), 1) for p in pad)  # (1: a quad of under 2 px)
        photo = Image.fromarray(_padded(np.asarray(photo), pad, side))
        quad += pad[:2]

    corners = tuple(float(v) for v in (quad + 0.5).flatten())
    out = photo.transform((transform_size, transform_size), Image.Transform.QUAD, corners, Image.Resampling.BILINEAR)
    if size < transform_size:
        out = out.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(out, dtype=np.uint8).copy()


def _bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    """The whole-pixel box around ``quad``: floor of its least x and y, ceil of its greatest."""
    return (
        math.floor(quad[:, 0].min()),
        math.floor(quad[:, 1].min()),
        math.ceil(quad[:, 0].max()),
        math.ceil(quad[:, 1].max()),
    )


def _padded(img: np.ndarray, pad: tuple[int, int, int, int], side: float) -> np.ndarray:
    """``img`` (uint8 [H, W, 3]) reflected outwards by ``pad`` (left, top, right, bottom), the
    margin blurred and faded to the median colour by how far out it lies: uint8."""
    left, top, right, bottom = pad
    a = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = a.shape[:2]
    xs = np.arange(w, dtype=np.float64)[None, :, None]
    ys = np.arange(h, dtype=np.float64)[:, None, None]
    # 0 inside the photo, rising to 1 at the outer edge of the margin (the nearer of the two sides)
    out_x = 1.0 - np.minimum(xs / left, (w - 1 - xs) / right)
    out_y = 1.0 - np.minimum(ys / top, (h - 1 - ys) / bottom)
    mask = np.maximum(out_x, out_y)
    a += (gaussian_blur(a, side * 0.02) - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``img`` [H, W, C] blurred along H and W by a Gaussian of std ``sigma`` px, cut at
    ``truncate`` sigmas and normalised, the edges mirrored (d c b a | a b c d): scipy.ndimage's
    ``gaussian_filter(img, [sigma, sigma, 0])`` with its defaults, as float32. Each axis is one
    convolution, done through the FFT (a kernel of hundreds of taps on a large photo)."""
    radius = int(truncate * sigma + 0.5)
    if radius < 1:
        return img.astype(np.float32)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * t * t)
    kernel /= kernel.sum()
    out = img.astype(np.float64)
    for axis in (0, 1):
        out = _convolve(out, kernel, radius, axis)
    return out.astype(np.float32)


def _convolve(a: np.ndarray, kernel: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """``a`` convolved along ``axis`` with the symmetric ``kernel`` (2 radius + 1 taps), mirrored edges."""
    widths = [(0, 0)] * a.ndim
    widths[axis] = (radius, radius)
    padded = np.pad(a, widths, mode="symmetric")
    n = padded.shape[axis] + 2 * radius  # the full linear convolution's length: no wrap-around
    shape = [1] * a.ndim
    shape[axis] = n // 2 + 1
    spectrum = np.fft.rfft(padded, n=n, axis=axis) * np.fft.rfft(kernel, n=n).reshape(shape)
    full = np.fft.irfft(spectrum, n=n, axis=axis)
    return np.take(full, np.arange(2 * radius, 2 * radius + a.shape[axis]), axis=axis)


__all__ = [
    "DETECT_SIZE",
    "EXTRA",
    "MISSING",
    "Face",
    "align",
    "available",
    "detect_landmarks",
    "eyes_and_mouth",
    "ffhq_quad",
    "gaussian_blur",
    "largest",
    "pick_face",
]
