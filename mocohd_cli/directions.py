"""`mocohd directions`: an image generator's edit directions, listed with their statistics and
shown as GANSpace shows them: a grid with a row per direction and a column per strength, every
cell the same sample moved along its row's direction by its column's strength.

    result = directions("pca.png", DirectionsConfig(image="ffhq", method="sefa", count=6))
    result.rows            # index, stdev, and var_ratio (pca) or eigenvalue (sefa) of each
    grid = direction_grid(G, directions_for(G, "pca"), range(4), (-3, 0, 3))   # [4 S, 3 S, 3] uint8

Directions and strengths are those of ``render --edit`` (``edits``): ``pca:K`` and ``sefa:K``,
strength in standard deviations of w along the direction. The picture is written atomically
(a temporary name, then renamed); nothing is written when anything fails.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from .edits import MAX_STRENGTH, METHODS, Directions, LatentEdit, directions_for, edit_offset, parse_layers
from .errors import MocohdError, UsageError
from .formats.canonical import atomic_write_bytes
from .frames import VideoNoise, check_truncation, draw_w1, synthesize
from .loaders import load_image_generator
from .render import MAX_SEED, to_uint8
from .video import MAX_SIDE, whole, write_error

STRENGTHS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
MAX_STRENGTHS = 32  # columns
MAX_CELL = 1024


@dataclass(kw_only=True)
class DirectionsConfig:
    """The settings of ``directions``; checked when built (UsageError, one line), the ranges that
    depend on the generator (count, layers, cell, the picture's size) once it is loaded.

    ``count``: the first directions listed and shown. ``layers`` ("a-b", inclusive, or (a, b)):
    the w's the directions move (pca: default all; sefa: the w's factorised, default
    ``edits.SEFA_LAYERS``). ``strengths``: the picture's columns. ``seed``: its sample.
    ``truncation``: psi of that sample. ``cell``: pixels per cell (default the generator's
    resolution, at most 128; at most the resolution)."""

    image: str | os.PathLike = "demo"
    method: str = "pca"
    count: int = 8
    layers: str | tuple[int, int] | None = None
    strengths: Iterable[float] = STRENGTHS
    seed: int = 0
    truncation: float = 1.0
    cell: int | None = None
    device: str = "auto"

    def __post_init__(self):
        if self.method not in METHODS:
            raise UsageError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.count = whole("count", self.count)
        self.layers = parse_layers(self.layers)
        self.strengths = check_strengths(self.strengths)
        self.seed = whole("seed", self.seed, 0, MAX_SEED)
        self.truncation = check_truncation(self.truncation)
        if self.cell is not None:
            self.cell = whole("cell", self.cell, 4, MAX_CELL)


def check_strengths(strengths: Iterable[float]) -> tuple[float, ...]:
    """1 to MAX_STRENGTHS finite numbers within the edits' range, as a tuple (else a UsageError)."""
    try:
        values = tuple(float(s) for s in strengths if not isinstance(s, bool))
    except (TypeError, ValueError):
        raise UsageError(f"strengths must be numbers, got {strengths!r}") from None
    if not 1 <= len(values) <= MAX_STRENGTHS or any(not math.isfinite(s) or abs(s) > MAX_STRENGTH for s in values):
        raise UsageError(f"strengths must be 1 to {MAX_STRENGTHS} finite numbers within +-{MAX_STRENGTH:g}")
    return values


@dataclass
class DirectionRow:
    index: int
    stdev: float  # of w along the direction: a strength of 1 moves this far
    var_ratio: float | None = None  # pca: the fraction of w's variance along it
    eigenvalue: float | None = None  # sefa: of A^T A


@dataclass
class DirectionsResult:
    method: str
    layers: tuple[int, int]  # the w's the directions move
    rows: list[DirectionRow]
    path: Path | None = None  # the picture, when written
    size: tuple[int, int] | None = None  # its (height, width)
    cell: int | None = None


def direction_grid(
    G,
    directions: Directions,
    indices: Iterable[int],
    strengths: Iterable[float] = STRENGTHS,
    seed: int = 0,
    truncation: float = 1.0,
    cell: int | None = None,
    batch: int = 8,
) -> np.ndarray:
    """[len(indices) x cell, len(strengths) x cell, 3] uint8: the sample of ``seed`` (its z, then
    its noise maps, from one seeded stream; truncated by ``truncation``) moved along each
    direction of ``indices`` (rows) by each strength (columns, in stdevs of w), on
    ``directions.layers``; each image resized to ``cell`` pixels (default: as it is)."""
    indices, strengths = list(indices), check_strengths(strengths)
    res = G.resolution
    cell = res if cell is None else whole("cell", cell, 4, res)
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    w = draw_w1(G, 1, gen, device)  # [1, w_dim]
    noise = VideoNoise(G, 1, "fixed", gen, device)
    cells = []
    for k in indices:
        for s in strengths:
            offset = edit_offset(G.num_ws, directions.components[k], s * float(directions.stdev[k]), directions.layers)
            cells.append(LatentEdit(G.num_ws, offset)(w, G.mapping.w_avg, truncation))
    ws = torch.cat(cells)  # [cells, num_ws, w_dim]
    images = []
    with torch.no_grad():
        for i in range(0, len(ws), batch):
            part = ws[i : i + batch]
            img = synthesize(G, part, noise(torch.zeros(len(part), dtype=torch.long, device=device)))
            if cell != res:
                img = F.interpolate(img, size=(cell, cell), mode="area")
            images.append(to_uint8(img).cpu())
    grid = torch.cat(images).reshape(len(indices), len(strengths), cell, cell, -1)
    return grid.permute(0, 2, 1, 3, 4).reshape(len(indices) * cell, len(strengths) * cell, -1).numpy()


def check_picture(out: str | os.PathLike) -> Path:
    """``out`` as a PNG path that can be written, checked before any work: a .png name, not a
    folder, in a folder (or under one) that exists and is writable."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UsageError(f"the picture is a PNG file: name it with .png, got {str(out)!r}")
    if path.is_dir():
        raise MocohdError(f"cannot write '{path}': it is a folder; name a file")
    here = path.parent
    while not os.path.lexists(here) and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise MocohdError(f"cannot write '{path}': '{here}' is not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise MocohdError(f"cannot write '{path}': permission denied in '{here}'")
    return path


def directions(
    out: str | os.PathLike | None = None,
    config: DirectionsConfig | None = None,
    *,
    on_note: Callable[[str], None] | None = None,
) -> DirectionsResult:
    """List the first ``config.count`` directions of ``config.method`` for ``config.image`` and,
    with ``out`` (a .png), write their grid (``direction_grid``). Everything is checked before
    the directions are computed: the output, then, once the generator is loaded, the count (at
    most w_dim), the layers, the cell (at most the resolution) and the picture's size (at most
    ``video.MAX_SIDE`` pixels a side). ``on_note`` hears about a first, long PCA fit."""
    cfg = config if config is not None else DirectionsConfig()
    path = check_picture(out) if out is not None else None
    G = load_image_generator(cfg.image, device=cfg.device)
    if cfg.count > G.w_dim:
        raise UsageError(f"count {cfg.count}: '{G.identity['name']}' has {G.w_dim} directions (a {G.w_dim}-d w)")
    cell = cfg.cell if cfg.cell is not None else min(G.resolution, 128)
    if cell > G.resolution:
        raise UsageError(f"cell {cell} px: at most the generator's resolution, {G.resolution} px")
    height, width = cfg.count * cell, len(cfg.strengths) * cell
    if path is not None and max(height, width) > MAX_SIDE:
        raise UsageError(
            f"a picture of {cfg.count} x {len(cfg.strengths)} cells of {cell} px is {width}x{height} px; at most "
            f"{MAX_SIDE} a side: show fewer directions or strengths, or give a smaller cell"
        )
    d = directions_for(G, cfg.method, cfg.layers, cfg.image, on_note)
    count = min(cfg.count, d.components.shape[0])
    rows = [
        DirectionRow(
            k,
            float(d.stdev[k]),
            None if d.var_ratio is None else float(d.var_ratio[k]),
            None if d.eigenvalues is None else float(d.eigenvalues[k]),
        )
        for k in range(count)
    ]
    result = DirectionsResult(cfg.method, d.layers, rows)
    if path is None:
        return result
    grid = direction_grid(G, d, range(count), cfg.strengths, cfg.seed, cfg.truncation, cell)
    try:
        atomic_write_bytes(path, iio.imwrite("<bytes>", grid, extension=".png"))
    except OSError as e:
        raise write_error(path, e) from None
    result.path, result.size, result.cell = path, grid.shape[:2], cell
    return result
