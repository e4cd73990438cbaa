"""Reading photos for ``invert``: any file Pillow reads, as a square RGB image of one size.

    img = read_photo("me.jpg", 256)                  # uint8 [256, 256, 3]
    img = read_photo("scan.png", 256, crop="none")   # the whole image, squeezed to a square

What comes in and what is done with it:
- JPEG orientation (EXIF) is applied (Pillow's ``ImageOps.exif_transpose``), so a
  phone picture is upright;
- transparency (RGBA, LA, palette with a transparent colour) is composited on white;
  grey, palette, CMYK and the like become RGB; 16-bit grey PNGs are scaled to 8 bits;
  of an animation, the first frame;
- ``crop='center'``: the centred square of side min(width, height) (as NVIDIA's
  projector crops); ``'none'``: the whole image (its aspect is not kept);
- resized with Pillow's antialiased Lanczos filter (the projector's).

Every failure is one line naming the file: missing, a folder, empty, not an
image, 0 x 0, larger than ``MAX_PIXELS`` (refused from the header, before anything
is decoded: Pillow's decompression-bomb guard, tightened), or damaged or truncated
(the whole image is decoded before it is used, so a cut-off file cannot pass for
a grey-bottomed one).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MocohdError, UsageError
from .formats.canonical import file_sha256

CROPS = ("center", "none")
MAX_PIXELS = 50_000_000  # 50 megapixels: far above any photo; a bomb file claims billions
MAX_SIZE = 4096  # the largest output size


def check_crop(crop: str) -> str:
    if crop not in CROPS:
        raise UsageError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    return crop


def read_photo(path: str | os.PathLike, size: int, crop: str = "center") -> torch.Tensor:
    """The photo at ``path`` as a uint8 tensor [size, size, 3] (see the module docstring)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise UsageError(f"size must be a whole number in 1..{MAX_SIZE}, got {size!r}")
    check_crop(crop)
    path = Path(path)
    im = _open_decoded(path)
    im = _to_rgb(im, path)
    w, h = im.size
    if crop == "center":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.array(im, dtype=np.uint8, copy=True))


def probe(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the photo at ``path`` from its header alone, with the same one-line
    errors as ``read_photo`` for a missing file, a folder, not an image, 0 x 0 and too many
    pixels (a damaged body is only found by decoding it: ``read_photo``)."""
    path = Path(path)
    with _open(path) as im:
        return im.size


def photo_identity(path: str | os.PathLike) -> dict:
    """{'file': its name, 'sha256': of its bytes}: what a latent records of its photo."""
    path = Path(path)
    return {"file": path.name, "sha256": file_sha256(path)}


def _open(path: Path) -> Image.Image:
    """The image at ``path``, opened (its header read, nothing decoded) and its size checked."""
    if not path.exists():
        raise MocohdError(f"{path}: no such file")
    if path.is_dir():
        raise MocohdError(f"{path}: is a folder, expected a photo")
    try:
        if path.stat().st_size == 0:
            raise MocohdError(f"{path}: empty file, expected a photo")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
    except MocohdError:
        raise
    except UnidentifiedImageError as e:
        if _zero_size(path):
            raise MocohdError(f"{path}: an empty image (0 pixels wide or high)") from e
        raise MocohdError(f"{path}: not an image (not a format Pillow can read)") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise MocohdError(f"{path}: more pixels than the {MAX_PIXELS / 1e6:.0f} megapixel limit, refused before "
                          f"decoding (a decompression-bomb guard; Pillow: {_brief(e).rstrip('.')}); resize it first") from e
    except OSError as e:
        raise MocohdError(f"{path}: cannot read: {e.strerror or _brief(e)}") from e
    except (SyntaxError, ValueError, EOFError) as e:  # Pillow's plugins raise these on damaged headers
        raise MocohdError(f"{path}: damaged image header ({_brief(e)})") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise MocohdError(f"{path}: an empty image ({w} x {h} pixels)")
    if w * h > MAX_PIXELS:
        im.close()
        raise MocohdError(f"{path}: {w} x {h} pixels ({w * h / 1e6:.0f} megapixels) is more than the "
                          f"{MAX_PIXELS / 1e6:.0f} megapixel limit (a decompression-bomb guard, checked before "
                          "decoding); resize it first")
    return im


def _zero_size(path: Path) -> bool:
    """Whether a PNG or GIF header says 0 pixels wide or high (Pillow refuses those unnamed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return False
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big") == 0 or int.from_bytes(head[20:24], "big") == 0
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(head[6:8], "little") == 0 or int.from_bytes(head[8:10], "little") == 0
    return False


def _open_decoded(path: Path) -> Image.Image:
    """The image at ``path``, fully decoded, upright (EXIF orientation applied)."""
    with _open(path) as im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.load()  # the whole image: a truncated or damaged file fails here
                out = ImageOps.exif_transpose(im) if _has_orientation(im) else im.copy()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError,
                Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise MocohdError(f"{path}: damaged or truncated image, cannot decode it ({_brief(e)})") from e
    return out


def _has_orientation(im: Image.Image) -> bool:
    """Whether the image's EXIF says to rotate or mirror it (an unreadable EXIF says nothing)."""
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)  # 0x0112: Orientation
    except Exception:  # noqa: BLE001 - a damaged EXIF block is ignored, the pixels are still good
        return False


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB: alpha composited on white, 16-bit grey scaled to 8 bits, any other mode converted."""
    mode = im.mode
    try:
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            a = np.asarray(im, dtype=np.float64)
            if mode == "F":
                a = a * 255 if np.nanmax(a, initial=0) <= 1 else a
            else:
                a = a / 257 if np.nanmax(a, initial=0) > 255 else a  # 16-bit: 65535 -> 255
            grey = Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "L")
            return grey.convert("RGB")
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info) \
                or (mode in ("L", "RGB") and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im if mode == "RGB" else im.convert("RGB")
    except (OSError, ValueError, TypeError) as e:
        raise MocohdError(f"{path}: cannot convert its {mode} pixels to RGB ({_brief(e)})") from e


def _brief(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text[:160]


__all__ = ["CROPS", "MAX_PIXELS", "check_crop", "photo_identity", "probe", "read_photo"]
