"""Reading images: photos for ``invert``, and the frames of datasets, through one reader.

    img = read_photo("me.jpg", 256)                  # uint8 [256, 256, 3]
    img = read_photo("scan.png", 256, crop="none")   # the whole image, squeezed to a square
    frame = read_frame("clip/img_1.png")             # uint8 [H, W, 3], the whole image (mocohd_cli.data)

What comes in and what is done with it (``read_frame``; ``read_photo`` then crops and resizes):
- JPEG orientation (EXIF) is applied (Pillow's ``ImageOps.exif_transpose``), so a
  phone picture is upright;
- every Pillow mode becomes 8-bit RGB (``to_rgb``), always 3 channels: transparency
  (RGBA, LA, PA, palette or grey with a transparent colour, premultiplied RGBa / La)
  is composited on white; 1, L, P, CMYK, YCbCr, LAB, HSV are converted by Pillow;
  samples wider than 8 bits are scaled by their bit depth, never by the data's
  maximum (so a dark image stays dark): I;16 (16-bit grey PNG, TIFF) by 65535 -> 255,
  I by the same (Pillow keeps 16-bit samples there: PGM / PPM deeper than 8 bits), or
  by 2^31 - 1 -> 255 when the file says its samples are 32-bit integers (TIFF); F
  (float TIFF) is 0..1 -> 0..255, as float images are written (GIMP, Photoshop,
  ImageMagick); out-of-range values are clipped; of an animation, the first frame;
- ``crop='center'``: the centred square of side min(width, height) (as NVIDIA's
  projector crops); ``'none'``: the whole image (its aspect is not kept);
- resized with Pillow's antialiased Lanczos filter (the projector's).

Every failure is one line naming the file: missing, a folder, empty, not an
image, 0 x 0, larger than ``MAX_PIXELS`` (refused from the header, before anything
is decoded: Pillow's decompression-bomb guard, tightened), or damaged or truncated.
The whole image is decoded before it is used, so a cut-off file cannot pass for a
grey-bottomed one; and since Pillow silently leaves undecoded the pixels of a
well-formed file whose data simply stops early (a PNG whose compressed stream ends
after a few rows), the image is decoded into a buffer filled with a marker value:
pixels still holding it were never written (a second decode with another marker
tells them from real pixels of that value, only when the first marker is seen at
all, so almost every image is decoded once). GIF is exempt: its first frame may
rightly cover only part of the canvas.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
    im = Image.fromarray(read_frame(path))
    w, h = im.size
    if crop == "center":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.array(im, dtype=np.uint8, copy=True))


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path``, whole and upright, as uint8 RGB [H, W, 3] whatever its mode
    (see the module docstring); a one-line ``MocohdError`` naming the file when it cannot be."""
    path = Path(path)
    im, bits = _open_decoded(path)
    return to_rgb(im, bits, path)


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
        raise MocohdError(
            f"{path}: more pixels than the {MAX_PIXELS / 1e6:.0f} megapixel limit, refused before "
            f"decoding (a decompression-bomb guard; Pillow: {_brief(e).rstrip('.')}); resize it first"
        ) from e
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
        raise MocohdError(
            f"{path}: {w} x {h} pixels ({w * h / 1e6:.0f} megapixels) is more than the "
            f"{MAX_PIXELS / 1e6:.0f} megapixel limit (a decompression-bomb guard, checked before "
            "decoding); resize it first"
        )
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


def _open_decoded(path: Path) -> tuple[Image.Image, int | None]:
    """The image at ``path``, fully decoded (every pixel written by its decoder), upright (EXIF
    orientation applied), and the bits of its samples when the file says (``_sample_bits``)."""
    with _open(path) as im:
        bits = _sample_bits(im)
        marked = _markable(im)
        _load(im, path, _MARKS[0] if marked else None)
        unwritten = _holds(im, _MARKS[0]) if marked else None
        if unwritten is not None and unwritten.any():  # the marker, or real pixels of its value: decode again
            with _open(path) as again:
                _load(again, path, _MARKS[1])
                unwritten &= _holds(again, _MARKS[1])
            if unwritten.any():
                w, h = im.size
                raise MocohdError(
                    f"{path}: damaged or truncated image: its pixel data stops early "
                    f"({int(unwritten.sum())} of {w * h} pixels never decoded)"
                )
        try:
            out = ImageOps.exif_transpose(im) if _has_orientation(im) else im.copy()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as e:
            raise MocohdError(f"{path}: damaged or truncated image, cannot decode it ({_brief(e)})") from e
    return out, bits


# Two marker patterns an image buffer is filled with before decoding, per band of 8 bits, and for
# the wider modes; a pixel that holds the first after one decode and the second after another
# was never written by the decoder.
_MARKS = ((0x5A, 0xA5, 0x3C, 0xC3), (0xA5, 0x5A, 0xC3, 0x3C))
_WIDE_MARKS = {"I;16": (0x5A5A, 0xA5A5), "I": (-0x5A5A5A5A, 0x5A5A5A5A), "F": (-1.5e38, 1.5e38), "1": (0, 1)}


def _mark(mode: str, pattern: tuple[int, ...]) -> int | float | tuple[int, ...]:
    """The fill value of ``pattern`` (one of ``_MARKS``) for an image of ``mode``."""
    wide = _WIDE_MARKS.get("I;16" if mode.startswith("I;16") else mode)
    if wide is not None:
        return wide[_MARKS.index(pattern)]
    bands = Image.getmodebands(mode)
    return pattern[0] if bands == 1 else tuple(pattern[:bands])


def _markable(im: Image.Image) -> bool:
    """Whether ``im`` is still to be decoded into a buffer this module may fill first (not a GIF:
    its first frame may rightly leave the rest of the canvas as it was)."""
    return isinstance(im, ImageFile.ImageFile) and bool(im.tile) and im.format != "GIF"


def _load(im: Image.Image, path: Path, pattern: tuple[int, ...] | None) -> None:
    """Decode the whole of ``im`` (a truncated or damaged file fails here); unless ``pattern`` is
    None, into a buffer first filled with its marker (Pillow's loaders decode into the image's
    buffer, ``im.im``, when one of its mode and size is already there)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if pattern is not None:
                im.im = Image.core.fill(im.mode, im.size, _mark(im.mode, pattern))
            im.load()
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        MemoryError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        raise MocohdError(f"{path}: damaged or truncated image, cannot decode it ({_brief(e)})") from e


def _holds(im: Image.Image, pattern: tuple[int, ...]) -> np.ndarray:
    """[H, W] bool: the pixels of decoded ``im`` equal to ``pattern``'s marker in every band."""
    a = np.asarray(im)
    if a.ndim == 2:
        return a == np.asarray(_mark(im.mode, pattern), dtype=a.dtype)
    held = a[..., 0] == pattern[0]  # band by band: much faster than comparing pixels whole
    for band in range(1, a.shape[2]):
        held &= a[..., band] == pattern[band]
    return held


def _sample_bits(im: Image.Image) -> int | None:
    """32 when the still undecoded ``im`` (mode I) says its samples are 32-bit integers (its
    decoder's raw mode: TIFF's I;32S), else None (Pillow's I then holds 16-bit samples)."""
    if im.mode != "I" or not getattr(im, "tile", None):
        return None
    args = im.tile[0][3]
    raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
    return 32 if isinstance(raw, str) and "32" in raw else None


def _has_orientation(im: Image.Image) -> bool:
    """Whether the image's EXIF says to rotate or mirror it (an unreadable EXIF says nothing)."""
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)  # 0x0112: Orientation
    except Exception:  # noqa: BLE001 - a damaged EXIF block is ignored, the pixels are still good
        return False


def to_rgb(im: Image.Image, bits: int | None = None, path: str | os.PathLike = "image") -> np.ndarray:
    """Decoded ``im`` of any Pillow mode as uint8 RGB [H, W, 3]: alpha composited on white, samples
    wider than 8 bits scaled by their bit depth (``bits``: 32 for 32-bit integer samples in mode I),
    any other mode converted by Pillow (see the module docstring)."""
    mode = im.mode
    try:
        if mode.startswith("I;16") or mode in ("I", "F"):
            a = np.asarray(im, dtype=np.float64)
            if mode == "F":
                a = a * 255  # 0..1
            else:
                a = a * (255 / (2**31 - 1) if bits == 32 else 1 / 257)  # 65535 -> 255 (2^31 - 1 -> 255)
            grey = np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        if mode in ("RGBa", "La"):  # premultiplied: on white, value + (255 - alpha)
            a = np.asarray(im, dtype=np.int32)
            rgb = a[..., :1].repeat(3, axis=2) if mode == "La" else a[..., :3]
            return np.clip(rgb + 255 - a[..., -1:], 0, 255).astype(np.uint8)
        if mode in ("RGBA", "LA", "PA") or (mode in ("P", "L", "RGB") and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        return np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, TypeError) as e:
        raise MocohdError(f"{path}: cannot convert its {mode} pixels to RGB ({_brief(e)})") from e


def _brief(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text[:160]


__all__ = ["CROPS", "MAX_PIXELS", "check_crop", "photo_identity", "probe", "read_frame", "read_photo", "to_rgb"]
