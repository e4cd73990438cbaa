"""Semantic edits: every frame's w's moved along latent directions, on a range of layers, and the
truncation cutoff (``render --edit``, ``--edit-layers``, ``--truncation-cutoff``; ``mocohd
directions``).

    edits = [parse_edit("pca:2=3"), parse_edit("sefa:0=-2"), parse_edit("smile.npy=1.5")]
    edit = resolve_edits(G, edits, layers="4-7", cutoff=8)      # a LatentEdit (None: nothing to do)
    ws = edit(ws, G.mapping.w_avg, psi=0.7)   # [N, w_dim] or [N, num_ws, w_dim] -> [N, num_ws, w_dim]
    images = frames.synthesize(G, ws, noise, truncation=0.7, edit=edit)    # as render does

Directions (``DIRECTION=STRENGTH``):

    pca:K    the K-th principal direction of w (GANSpace: Härkönen et al., NeurIPS 2020) from the
             generator's PCA basis (``loaders.pca_bases.pca_for``: cached, fitted on first use);
             w moves by strength x stdev_K x V_K
    sefa:K   the K-th SeFa direction (``sefa``: Shen and Zhou, CVPR 2021) of the style layers the
             edit applies to; w moves by strength x the stdev of w along it (sampled), so strengths
             mean the same as for pca:K
    FILE     a .npy or .safetensors file holding one vector [w_dim] or [1, w_dim] (an InterFaceGAN
             boundary: Shen et al., CVPR 2020); w moves by strength x that vector as it is (an
             InterFaceGAN boundary is a unit normal: strength in units of w)

Layers: an edit moves the w's of layers a..b (0-based, inclusive: ``layers`` "a-b" or (a, b))
of the generator's ``num_ws`` per-layer w's; without ``layers``, pca and file edits move every
layer and sefa edits the layers ``SEFA_LAYERS`` that its directions factorise. The truncation
(psi toward the average w) applies first, to the first ``cutoff`` w's only when a cutoff is given
(NVIDIA's truncation_cutoff), then the edits, so an edit's strength does not depend on psi.

BigGAN has one latent, z ~ N(0, I), for all its layers: only file directions (boundaries in its
z space) apply to it; pca and sefa directions, layers and a cutoff are refused.

Arguments are checked as they arrive (UsageError, one line): the syntax, and a file's
readability, dtype and shape, when parsed (``parse_edit``, ``check_edit_options``); indices,
vector sizes and ranges against the generator before anything is computed (``check_edits``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from .errors import UsageError
from .loaders.pca_bases import find_cached, pca_for
from .loaders.sefa_bases import sefa_for

METHODS = ("pca", "sefa")
FILE_SUFFIXES = (".npy", ".safetensors")
SEFA_LAYERS = (0, 3)  # the w's SeFa factorises by default (fewer when the generator has fewer): the coarse layers
MAX_STRENGTH = 1000.0
MAX_W_DIM = 1 << 16
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}  # safetensors' names of the floating dtypes


# ----------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class Edit:
    """One edit: a direction (``pca:K``, ``sefa:K`` or a file), a strength, and for a file its vector."""

    direction: str  # as given: "pca:3", "sefa:0", "smile.npy"
    strength: float
    method: str  # "pca", "sefa" or "file"
    index: int | None = None  # pca and sefa
    vector: torch.Tensor | None = field(default=None, compare=False, repr=False)  # a file's, float32 [d]

    def __str__(self) -> str:
        return f"{self.direction}={self.strength:+g}"


def parse_edit(spec: str | Edit) -> Edit:
    """``DIRECTION=STRENGTH`` (``pca:K``, ``sefa:K`` or a .npy/.safetensors file, then a number) as
    an ``Edit``; a file is read now (``read_direction``). An ``Edit`` is returned as it is."""
    if isinstance(spec, Edit):
        return spec
    if not isinstance(spec, str):
        raise UsageError(f"an edit is DIRECTION=STRENGTH (a string), got {spec!r}")
    direction, eq, value = spec.rpartition("=")
    if not eq or not direction:
        raise UsageError(
            f"edit {spec!r}: expected DIRECTION=STRENGTH, DIRECTION being pca:K, sefa:K or a .npy or "
            ".safetensors file, e.g. pca:0=2"
        )
    strength = _strength(spec, value)
    method, colon, index = direction.partition(":")
    if colon and method.lower() in METHODS:
        if not index.isdigit() or not index.isascii():
            raise UsageError(f"edit {spec!r}: the index of a {method.lower()} direction is a whole number >= 0")
        return Edit(direction, strength, method.lower(), index=int(index))
    if Path(direction).suffix.lower() in FILE_SUFFIXES:
        return Edit(direction, strength, "file", vector=read_direction(direction))
    raise UsageError(
        f"edit {spec!r}: unknown direction {direction!r}: use pca:K, sefa:K or a .npy or .safetensors file"
    )


def _strength(spec: str, value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise UsageError(f"edit {spec!r}: the strength must be a number, got {value!r}") from None
    if not math.isfinite(s) or abs(s) > MAX_STRENGTH:
        raise UsageError(f"edit {spec!r}: the strength must be a finite number within +-{MAX_STRENGTH:g}")
    return s


def read_direction(path: str | os.PathLike) -> torch.Tensor:
    """The vector of a direction file, float32 [d]: a .npy (numpy, never unpickling) or .safetensors
    file holding one floating-point array [d] or [1, d], finite and not all zeros. Its shape and
    dtype are checked before its data are read. Anything else is a UsageError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"direction file {path}: {'is a folder' if p.is_dir() else 'no such file'}")
    try:
        if p.suffix.lower() == ".npy":
            data = _read_npy(p)
        else:
            data = _read_safetensors(p)
    except (OSError, ValueError, EOFError, SafetensorError) as e:
        why = (getattr(e, "strerror", None) or str(e) or type(e).__name__).splitlines()[0][:160]
        raise UsageError(f"direction file {path}: unreadable ({why})") from None
    vector = torch.from_numpy(np.array(data, dtype=np.float32)) if isinstance(data, np.ndarray) else data.float()
    vector = vector.reshape(-1)
    if not bool(torch.isfinite(vector).all()):
        raise UsageError(f"direction file {path}: holds NaN or infinite values")
    if not bool(vector.any()):
        raise UsageError(f"direction file {path}: holds only zeros, which is no direction")
    return vector


def _check_vector_shape(path: Path, shape: tuple[int, ...]) -> None:
    if not (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)) or not 1 <= shape[-1] <= MAX_W_DIM:
        raise UsageError(
            f"direction file {path}: holds an array of shape {list(shape)}; expected one vector [w_dim] or [1, w_dim]"
        )


def _read_npy(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)  # the header first; an object array is refused
    if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
        arr.close()
        raise UsageError(f"direction file {path}: an .npz archive, not one .npy array")
    if arr.dtype.kind != "f":
        raise UsageError(f"direction file {path}: holds {arr.dtype} numbers; expected floating point (float16/32/64)")
    _check_vector_shape(path, arr.shape)
    return np.array(arr)


def _read_safetensors(path: Path) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        if len(names) != 1:
            raise UsageError(f"direction file {path}: holds {len(names)} tensors; expected one vector")
        part = f.get_slice(names[0])
        if part.get_dtype() not in FLOAT_DTYPES:
            raise UsageError(
                f"direction file {path}: holds {part.get_dtype()} numbers; expected floating point "
                "(F16, BF16, F32, F64)"
            )
        _check_vector_shape(path, tuple(part.get_shape()))
        return f.get_tensor(names[0])


def parse_layers(layers) -> tuple[int, int] | None:
    """``layers`` "a-b" or "a" (0-based, inclusive) or (a, b) as (a, b) with 0 <= a <= b; None stays
    None. The upper bound is the generator's (``check_edits``)."""
    if layers is None:
        return None
    if isinstance(layers, str):
        first, dash, last = layers.strip().partition("-")
        parts = (first, last if dash else first)
        if not all(p.strip().isdigit() and p.strip().isascii() for p in parts):
            raise UsageError(
                f"edit layers must be A-B (the w's A to B, 0-based, inclusive; e.g. 0-3) or A, got {layers!r}"
            )
        layers = tuple(int(p) for p in parts)
    try:
        first, last = layers
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (first, last)):
            raise TypeError
    except (TypeError, ValueError):
        raise UsageError(f"edit layers must be two whole numbers (first, last), got {layers!r}") from None
    if not 0 <= first <= last:
        raise UsageError(f"edit layers {first}-{last}: the first must be >= 0 and at most the last")
    return first, last


def parse_cutoff(cutoff) -> int | None:
    """A truncation cutoff: None, or a whole number >= 1 (the upper bound is the generator's ``num_ws``)."""
    if cutoff is None:
        return None
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 1:
        raise UsageError(f"truncation cutoff must be a whole number >= 1 (the w's truncated), got {cutoff!r}")
    return cutoff


def check_edit_options(
    edits: Iterable[str | Edit] | str | Edit | None, layers=None, cutoff=None
) -> tuple[list[Edit] | None, tuple[int, int] | None, int | None]:
    """The edit options of a render, parsed and checked alone (files read): (edits or None, layers, cutoff)."""
    if isinstance(edits, (str, Edit)):
        edits = [edits]
    parsed = [parse_edit(e) for e in edits] if edits else None
    return parsed, parse_layers(layers), parse_cutoff(cutoff)


# ----------------------------------------------------------------------------
# Against a generator


def is_layered(G) -> bool:
    """Whether G has per-layer w's and style layers (StyleGAN2, StyleGAN3), not one latent (BigGAN)."""
    return getattr(G.synthesis, "style_affines", None) is not None


def _name(G) -> str:
    name = (getattr(G, "identity", None) or {}).get("name")
    return f"'{name}'" if name else f"the {G.family} generator"


def sefa_layers(G, layers: tuple[int, int] | None = None) -> tuple[int, int]:
    """The w's a sefa direction is factorised on and moves: ``layers``, else ``SEFA_LAYERS`` within G's."""
    return layers if layers is not None else (SEFA_LAYERS[0], min(SEFA_LAYERS[1], G.num_ws - 1))


def check_edits(G, edits: list[Edit] | None, layers: tuple[int, int] | None, cutoff: int | None) -> None:
    """Everything about the edits that G decides, before anything is computed (UsageError, one line):
    the family (BigGAN: file directions only), the layer range and cutoff within G's w's, each
    direction's index below w_dim and each file's vector of w_dim numbers."""
    edits = edits or []
    if not is_layered(G):
        if layers is not None or cutoff is not None:
            raise UsageError(
                f"edit layers and a truncation cutoff are for StyleGAN2 and StyleGAN3; {_name(G)} ({G.family}) "
                "has one latent for all its layers"
            )
        for e in edits:
            if e.method != "file":
                _refuse_method(G, e.method, f"edit {e}: ")
    _check_range(G, layers)
    if cutoff is not None and cutoff > G.num_ws:
        raise UsageError(f"truncation cutoff {cutoff} is out of range: {_name(G)} has {G.num_ws} w's (1-{G.num_ws})")
    for e in edits:
        if e.method in METHODS and e.index >= G.w_dim:
            raise UsageError(f"edit {e}: no direction {e.index}: {_name(G)} has {G.w_dim} (0-{G.w_dim - 1})")
        if e.method == "file" and e.vector.numel() != G.w_dim:
            raise UsageError(
                f"direction file {e.direction}: holds {e.vector.numel()} numbers; {_name(G)} has a {G.w_dim}-d w"
            )


def _refuse_method(G, method: str, prefix: str = "") -> None:
    raise UsageError(
        f"{prefix}{method} directions are for StyleGAN2 and StyleGAN3; {_name(G)} ({G.family}) moves in "
        f"z ~ N(0, I), which has no principal or style directions: give a boundary file of {G.w_dim} numbers"
    )


def _check_range(G, layers: tuple[int, int] | None) -> None:
    if layers is not None and layers[1] >= G.num_ws:
        raise UsageError(
            f"edit layers {layers[0]}-{layers[1]} are out of range: {_name(G)} has {G.num_ws} w's (0-{G.num_ws - 1})"
        )


@dataclass
class Directions:
    """A generator's directions of one method: unit rows, what a strength of 1 moves along each, and
    the statistics ``mocohd directions`` shows."""

    method: str  # "pca" or "sefa"
    components: torch.Tensor  # [k, w_dim], unit rows, most significant first
    stdev: torch.Tensor  # [k]: w's standard deviation along each: a strength of 1 moves this far
    layers: tuple[int, int]  # the w's the directions move by default
    var_ratio: torch.Tensor | None = None  # pca: the fraction of w's variance along each
    eigenvalues: torch.Tensor | None = None  # sefa: of A^T A


def directions_for(
    G,
    method: str,
    layers: tuple[int, int] | None = None,
    image: str | os.PathLike | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Directions:
    """G's ``method`` directions: pca (its PCA basis, from the store or fitted and stored;
    ``image``: G's name or path, for the store, default G's name) or sefa (factorised on the w's
    ``layers``, default ``SEFA_LAYERS``). ``on_note`` hears about a first, long PCA fit."""
    if method not in METHODS:
        raise UsageError(f"direction method must be one of {', '.join(METHODS)}, got {method!r}")
    if not is_layered(G):
        _refuse_method(G, method)
    layers = parse_layers(layers)
    _check_range(G, layers)
    if method == "sefa":
        basis, _ = sefa_for(G, sefa_layers(G, layers))
        return Directions("sefa", basis.components, basis.stdev, basis.layers, eigenvalues=basis.eigenvalues)
    ident = getattr(G, "identity", None) or {}
    if on_note and ident.get("weights_sha256") and find_cached(ident["weights_sha256"]) is None:
        on_note(f"fitting the PCA basis of {_name(G)} (first use; `mocohd pca` fits it alone, and it is stored) ...")
    basis, _, _ = pca_for(image if image is not None else ident.get("name", "image"), G=G)
    return Directions("pca", basis.components, basis.stdev, layers or (0, G.num_ws - 1), var_ratio=basis.var_ratio)


# ----------------------------------------------------------------------------
# Applying them


@dataclass(frozen=True)
class LatentEdit:
    """What happens to every frame's w's before synthesis: the truncation (on the first ``cutoff``
    w's only, when given), then ``offset`` added (the edits, summed: zero outside their layers)."""

    num_ws: int
    offset: torch.Tensor | None = None  # [num_ws, w_dim], or [N, num_ws, w_dim]: one per w given (render --audio)
    cutoff: int | None = None
    summary: str = ""  # one line: what the edits are

    def __call__(self, ws: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """[N, w_dim] or [N, num_ws, w_dim] -> [N, num_ws, w_dim] ([N, w_dim] for a one-latent
        generator, BigGAN), truncated toward ``w_avg`` [w_dim] by ``psi`` and moved by the edits."""
        if ws.ndim == 2 and self.num_ws > 1:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if psi != 1:
            if self.cutoff is None or ws.ndim == 2:
                ws = w_avg.lerp(ws, psi)
            else:
                ws = torch.cat([w_avg.lerp(ws[:, : self.cutoff], psi), ws[:, self.cutoff :]], dim=1)
        if self.offset is not None:
            ws = ws + (self.offset[..., 0, :] if ws.ndim == 2 else self.offset).to(ws)
        return ws

    def check(self, G) -> None:
        """A UsageError unless the edit was made for G's w's."""
        if self.offset is not None and tuple(self.offset.shape) != (self.num_ws, G.w_dim):
            raise UsageError(
                f"the edit moves [{self.num_ws}, {self.offset.shape[-1]}] w's; {_name(G)} has a {G.w_dim}-d w"
            )
        if self.num_ws != (G.num_ws if is_layered(G) else 1):
            raise UsageError(f"the edit was made for {self.num_ws} w's per image; {_name(G)} has {G.num_ws}")


def edit_offset(num_ws: int, vector: torch.Tensor, strength: float, layers: tuple[int, int]) -> torch.Tensor:
    """[num_ws, w_dim]: ``strength`` x ``vector`` on the w's ``layers`` (inclusive), zero elsewhere."""
    offset = torch.zeros(num_ws, vector.shape[-1])
    offset[layers[0] : layers[1] + 1] = strength * vector.float().cpu()
    return offset


def resolve_edits(
    G,
    edits: Iterable[str | Edit] | None = None,
    layers: str | tuple[int, int] | None = None,
    cutoff: int | None = None,
    *,
    image: str | os.PathLike | None = None,
    on_note: Callable[[str], None] | None = None,
) -> LatentEdit | None:
    """The ``LatentEdit`` of ``edits`` (``DIRECTION=STRENGTH`` strings or ``Edit``s) on the w's
    ``layers`` with the truncation ``cutoff``, for G; None when there is nothing to do. Everything
    is checked (``check_edit_options``, ``check_edits``) before a basis is loaded or computed;
    ``image`` names G in the store (its PCA basis), default G's name; ``on_note`` hears about a
    first PCA fit."""
    edits, layers, cutoff = check_edit_options(edits, layers, cutoff)
    check_edits(G, edits, layers, cutoff)
    if not edits and cutoff is None:
        return None
    num_ws = G.num_ws if is_layered(G) else 1
    offset, shown = None, []
    bases: dict[tuple, Directions] = {}
    for e in edits or []:
        if e.method == "file":
            vector, scale, span = e.vector, 1.0, layers or (0, num_ws - 1)
        else:
            span = sefa_layers(G, layers) if e.method == "sefa" else layers
            if (e.method, span) not in bases:
                bases[e.method, span] = directions_for(G, e.method, span, image, on_note)
            d = bases[e.method, span]
            if e.index >= d.components.shape[0]:
                raise UsageError(f"edit {e}: the {e.method} basis of {_name(G)} has {d.components.shape[0]} directions")
            vector, scale, span = d.components[e.index], float(d.stdev[e.index]), d.layers
        moved = edit_offset(num_ws, vector, e.strength * scale, span)
        offset = moved if offset is None else offset + moved
        shown.append(str(e) if num_ws == 1 else f"{e} (w's {span[0]}-{span[1]})")
    summary = "edits: " + ", ".join(shown) if shown else ""
    if cutoff is not None:
        summary += ("; " if summary else "") + f"truncation on w's 0-{cutoff - 1} of {num_ws}"
    return LatentEdit(num_ws, offset, cutoff, summary)
