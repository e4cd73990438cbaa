"""The canonical model format: one ``.safetensors`` file per model.

Tensors keep the module's own state_dict names. String metadata:

    mocohd.format          integer version of this layout
    mocohd.kind            image | motion | pca | i3d | inception | vgg16 | latent
    mocohd.family          e.g. stylegan2
    mocohd.config          JSON: every hyper-parameter needed to rebuild the module
    mocohd.source          JSON provenance: original file, format, repo, revision, sha256
    mocohd.weights_sha256  sha256 over the tensors (names, dtypes, shapes, bytes):
                           the model's identity, unchanged by metadata edits;
                           checked against the tensors on every load
    mocohd.image           JSON, motion models, PCA bases and latents: the image generator
                           they belong to (image_name, image_sha256), when known. Files
                           written before this entry kept these keys in their config;
                           ``read_header`` reads them from there and takes them out

Files are written to a temporary name in the destination folder and renamed
into place, so a reader never sees a half-written model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from ..errors import MocohdError
from .checks import check_real, tensor_is_finite

FORMAT_VERSION = 1
KINDS = ("image", "motion", "pca", "i3d", "inception", "vgg16", "latent", "encoder")
# i3d, inception: the detectors of FVD and FID; vgg16: the perceptual distance of `invert`;
# latent: the w's (and noise maps) `invert` found for photos
SUFFIX = ".safetensors"
BUFFER_SUFFIXES = (
    "noise_const",
    "w_avg",
    "running_mean",
    "running_var",
)  # stored state that is not a learned parameter
IMAGE_KEYS = ("image_name", "image_sha256")  # the identity of the image generator of a motion model or PCA basis


@dataclass
class ModelHeader:
    """What a canonical file says about itself, read without loading tensors."""

    path: Path
    kind: str
    family: str
    config: dict
    source: dict
    weights_sha256: str
    format: int
    metadata: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    image: dict[str, str] = field(default_factory=dict)  # mocohd.image: IMAGE_KEYS, when known

    def parameter_count(self) -> int:
        """Elements of all tensors except buffers (noise maps, w_avg)."""
        return sum(_prod(s) for k, s in self.shapes.items() if not k.endswith(BUFFER_SUFFIXES))


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _hash_tensor(h, name: str, t: torch.Tensor) -> torch.Tensor:
    t = t.detach().to("cpu").contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the bytes in place, no copy
    return t


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Content hash of a state dict, independent of file layout and metadata."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        _hash_tensor(h, name, tensors[name])
    return h.hexdigest()


def verify_tensors(tensors: dict[str, torch.Tensor], recorded: str, origin) -> str:
    """Hash the tensors and look for NaN/inf in one pass over them; refuse a recorded
    hash that differs (an empty one, from a file that has none, is not compared).
    Returns the computed weights sha256 (cost: benchmarks/bench_load_checks.py)."""
    h = hashlib.sha256()
    bad = None
    for name in sorted(tensors):
        check_real(name, tensors[name], origin)
        t = _hash_tensor(h, name, tensors[name])
        if bad is None and not tensor_is_finite(t):
            bad = name
    digest = h.hexdigest()
    if recorded and recorded.lower() != digest:
        raise MocohdError(f"{origin}: its recorded weights sha256 does not match its tensors (damaged or edited file)")
    if bad is not None:
        raise MocohdError(
            f"{origin}: tensor {bad} holds NaN or infinite values (a diverged or damaged model); refusing it"
        )
    return digest


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike):
    """A binary file that becomes ``path`` only when the block completes: written
    to a temporary name in the same folder, synced, then renamed over ``path``.
    A failure (or a kill) never leaves a partial ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder + rename."""
    with atomic_writer(path) as f:
        f.write(data)


def save_model(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    *,
    kind: str,
    family: str,
    config: dict,
    source: dict | None = None,
    image: dict | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> ModelHeader:
    """Write a canonical model file atomically and return its header. ``image``: the
    identity (``IMAGE_KEYS``) of the image generator a motion model or PCA basis belongs to."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    digest = weights_sha256(tensors)
    metadata = {
        "mocohd.format": str(FORMAT_VERSION),
        "mocohd.kind": kind,
        "mocohd.family": family,
        "mocohd.config": json.dumps(config, sort_keys=True),
        "mocohd.source": json.dumps(source or {}, sort_keys=True),
        "mocohd.weights_sha256": digest,
    }
    if image:
        metadata["mocohd.image"] = json.dumps(image, sort_keys=True)
    metadata.update(extra_metadata or {})
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    return read_header(path)


def is_safetensors(path: str | os.PathLike) -> bool:
    """Cheap sniff: 8-byte little-endian header length followed by a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= n < (1 << 31)


def read_header(path: str | os.PathLike) -> ModelHeader:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError as e:
        raise MocohdError(f"{path}: no such file") from e
    except (SafetensorError, OSError, ValueError) as e:
        raise MocohdError(
            f"{path}: not a readable safetensors file (corrupt or truncated?): {str(e).splitlines()[0][:200]}"
        ) from e
    if "mocohd.kind" not in meta:
        raise MocohdError(
            f"{path}: a safetensors file without mocohd metadata; "
            "import its original checkpoint with `mocohd import` instead"
        )
    try:
        fmt = int(meta.get("mocohd.format", "0"))
        config = json.loads(meta.get("mocohd.config", "{}"))
        source = json.loads(meta.get("mocohd.source", "{}"))
        image = json.loads(meta.get("mocohd.image", "{}"))
    except (ValueError, RecursionError) as e:
        raise MocohdError(f"{path}: damaged mocohd metadata: {str(e)[:200]}") from e
    if fmt > FORMAT_VERSION:
        raise MocohdError(f"{path}: written by a newer mocohd (format {fmt}); upgrade mocohd to read it")
    if meta["mocohd.kind"] not in KINDS:
        raise MocohdError(f"{path}: damaged mocohd metadata: unknown model kind {meta['mocohd.kind'][:40]!r}")
    if not isinstance(config, dict) or not isinstance(source, dict) or not isinstance(image, dict):
        raise MocohdError(f"{path}: damaged mocohd metadata: its config, source and image must be JSON objects")
    older = {k: config.pop(k) for k in IMAGE_KEYS if k in config}  # written before mocohd.image: in the config
    image = {k: v for k, v in (image or older).items() if k in IMAGE_KEYS and isinstance(v, str) and v}
    return ModelHeader(
        path=path,
        kind=meta["mocohd.kind"],
        family=meta.get("mocohd.family", ""),
        config=config,
        source=source,
        weights_sha256=meta.get("mocohd.weights_sha256", ""),
        format=fmt,
        metadata=dict(meta),
        shapes=shapes,
        image=image,
    )


def load_verified(path: str | os.PathLike, header: ModelHeader | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, weights sha256) of a canonical file, after checking them against the
    header's recorded hash and for NaN/inf (``verify_tensors``). Run ``checks.check_shapes``
    on the header first: it refuses a config that does not fit the tensors without reading them."""
    header = header or read_header(path)
    tensors = load_tensors(path)
    return tensors, verify_tensors(tensors, header.weights_sha256, path)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    out = {}
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise MocohdError(
            f"{path}: could not read tensors (corrupt or truncated?): {str(e).splitlines()[0][:200]}"
        ) from e
    return out
