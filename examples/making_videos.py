"""The picture strips of docs/making-videos.md, made with the library API from the embedded demo
models (motion "demo", image "demo"), on the CPU, from fixed seeds: the same run, the same PNGs.

  loop.png       `render -n 48 --loop`: the last 5 frames, then the first 5, the seam between
                 them marked; below, the same frames of the open render, which jumps there
  keyframes.png  `render --keyframes 3,17,42`: a spline through three seeds, 5 frames a segment,
                 each keyframe's frame outlined
  edits.png      `render -n 32 --edit pca:0=S`: one row per strength S, -3 to 3, of every 4th
                 frame (the middle row is the unedited render)

    python examples/making_videos.py                     # into examples/ (docs/assets/ links there)
    python examples/making_videos.py --out /tmp/strips --small        # the same grids, in seconds

The PCA basis is fitted here as `mocohd pca` fits it (1,000,000 samples, seed 0) and not read
from the store, so the pictures do not depend on what the store holds, and nothing is added to
it. Each picture is palette-quantised (256 colours) to stay small, and written under a temporary
name, then renamed (through a link, when the name is one): a failed run leaves the old pictures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SEED = 6  # render --seed of loop.png and edits.png
SEAM = 5  # loop.png: frames n - 5 .. n - 1, then 0 .. 4
KEYS, PER_SEGMENT = (3, 17, 42), 5  # keyframes.png: (3 - 1) x 5 + 1 = 11 frames
STRENGTHS, EDIT_CELLS = (-3, -2, -1, 0, 1, 2, 3), 8  # edits.png: pca:0, 8 frames a row
MARK = np.array([255, 48, 0], dtype=np.uint8)  # the seam and the keyframes
# cell px, loop frames, edited render's frames, PCA samples; --small: the same grids in seconds
FULL = dict(cell=64, loop_frames=48, edit_frames=32, samples=1_000_000)
SMALL = dict(cell=16, loop_frames=12, edit_frames=16, samples=20_000)


def sizes(cell: int) -> dict[str, tuple[int, int]]:
    """Each picture's (height, width) in pixels for cells of ``cell`` px."""
    return {
        "loop.png": (2 * cell, 2 * SEAM * cell),
        "keyframes.png": (cell, ((len(KEYS) - 1) * PER_SEGMENT + 1) * cell),
        "edits.png": (len(STRENGTHS) * cell, EDIT_CELLS * cell),
    }


def frames_of(M, G, cell: int, seed: int = SEED, **options) -> list[np.ndarray]:
    """Every frame of one video rendered by ``render_frames``, as [cell, cell, 3] uint8."""
    import torch
    import torch.nn.functional as F

    from mocohd_cli import render_frames

    out = []
    for step in render_frames(M, G, seed=seed, **options):  # [1, H, W, 3] uint8
        img = step[0]
        if img.shape[0] != cell:
            x = F.interpolate(img.permute(2, 0, 1)[None].float(), size=(cell, cell), mode="area")
            img = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
        out.append(img.numpy())
    return out


def outline(img: np.ndarray, width: int) -> np.ndarray:
    """``img`` with a MARK-coloured border ``width`` px wide drawn inside it."""
    img = img.copy()
    for edge in (np.s_[:width], np.s_[-width:]):
        img[edge] = MARK
        img[:, edge] = MARK
    return img


def loop_strip(M, G, cell: int, frames: int) -> np.ndarray:
    """Two rows around the seam: the loop's frames n - 5 .. n - 1 and 0 .. 4, then the open render's."""
    rows = []
    for loop in (True, False):
        f = frames_of(M, G, cell, frames=frames, loop=loop)
        rows.append(np.concatenate(f[-SEAM:] + f[:SEAM], axis=1))
    strip = np.concatenate(rows, axis=0)
    half = max(1, cell // 32)  # the seam: a bar across the boundary between the halves
    strip[:, SEAM * cell - half : SEAM * cell + half] = MARK
    return strip


def keyframe_strip(M, G, cell: int) -> np.ndarray:
    """Every frame of the spline path through KEYS, the keyframes' frames outlined."""
    from mocohd_cli.paths import KeyframePath, read_keyframes

    path = KeyframePath(keys=list(KEYS), path="spline", seconds=1.0)
    track = path.track(G, read_keyframes(path), fps=PER_SEGMENT)  # 1 s at 5 fps: 5 frames a segment
    f = frames_of(M, G, cell, seed=0, frames=track.frames, track=track)  # render's default --seed
    for k in track.keyframe_frames:
        f[k] = outline(f[k], max(1, cell // 32))
    return np.concatenate(f, axis=1)


def edit_strip(M, G, cell: int, frames: int, samples: int) -> np.ndarray:
    """One row per strength S of pca:0=S, as `render --edit` makes it: the first principal
    direction of w, S standard deviations along it on every w; every (frames / 8)-th frame."""
    from mocohd_cli import fit_pca
    from mocohd_cli.edits import LatentEdit, edit_offset

    basis = fit_pca(G, samples=samples, seed=0)
    rows = []
    for s in STRENGTHS:
        offset = edit_offset(G.num_ws, basis.components[0], s * float(basis.stdev[0]), (0, G.num_ws - 1))
        f = frames_of(M, G, cell, frames=frames, edit=LatentEdit(G.num_ws, offset, summary=f"pca:0={s}"))
        rows.append(np.concatenate(f[:: frames // EDIT_CELLS], axis=1))
    return np.concatenate(rows, axis=0)


def write_png(path: Path, img: np.ndarray) -> None:
    """``img`` as a 256-colour PNG at ``path`` (through a link, so docs/assets' links stay links),
    atomically."""
    import io

    from PIL import Image

    from mocohd_cli.formats.canonical import atomic_write_bytes

    data = io.BytesIO()
    quantize = Image.fromarray(img).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    quantize.save(data, format="PNG", optimize=True)
    atomic_write_bytes(path.resolve(), data.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "examples", help="folder for the PNGs (default examples/)")
    ap.add_argument("--small", action="store_true", help="16 px cells, shorter renders, a smaller PCA fit")
    args = ap.parse_args()
    size = SMALL if args.small else FULL
    cell = size["cell"]
    try:  # before the models load: a wrong --out is told in a moment
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.exit(f"making_videos.py: cannot make --out: {e}")
    sys.path.insert(0, str(ROOT))
    from mocohd_cli import MocohdError, load_image_generator, load_motion

    try:  # every picture is made before any is written
        G, M = load_image_generator("demo", device="cpu"), load_motion("demo", device="cpu")
        pictures = {
            "loop.png": loop_strip(M, G, cell, size["loop_frames"]),
            "keyframes.png": keyframe_strip(M, G, cell),
            "edits.png": edit_strip(M, G, cell, size["edit_frames"], size["samples"]),
        }
        for name, img in pictures.items():
            assert img.shape[:2] == sizes(cell)[name], (name, img.shape)
            write_png(args.out / name, img)
            print(f"wrote {args.out / name}: {img.shape[1]}x{img.shape[0]} px")
    except (MocohdError, OSError) as e:
        sys.exit(f"making_videos.py: {e}")


if __name__ == "__main__":
    main()
