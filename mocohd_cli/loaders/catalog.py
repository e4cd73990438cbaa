"""Importing, storing and describing models of every kind: the library calls behind
``mocohd import`` and ``mocohd info``.

    header = import_model("stylegan2-ffhq-config-f.pt", name="ffhq")
    info = describe("ffhq")

Names resolve through the store (``store.resolve``), files are read by
``formats``; each kind is checked by building it (``image_generators``,
``motion_models``, ``detector_models``) before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from ..detectors import FAMILIES as DETECTORS
from ..errors import MocohdError
from ..formats import ConvertedModel, canonical, checks, read_any, sniff
from ..motion import MotionConfig, oscillator_bank
from .detector_models import build_from as build_detector_model
from .encoder_models import build_encoder
from .image_generators import build_image_generator, identity, image_identity
from .motion_models import build_motion, import_official


def import_model(
    path: str | os.PathLike,
    name: str,
    *,
    kind: str | None = None,
    overwrite: bool = False,
    pca: str | os.PathLike | None = None,
    image: str | None = None,
    w_residual: float = MotionConfig.w_residual,
) -> canonical.ModelHeader:
    """Convert any supported file to the canonical format and put it in the store as ``name``.

    ``pca``: the PCA folder (pca_comp.npy, pca_stdev.npy) of an official motion
    checkpoint (``modelR_epoch_N.pth``), whose step weight lambda is not in the
    file (``w_residual``, official default 0.2). ``image``: the image generator a motion
    model or PCA basis belongs to, recorded as its identity (name + weights sha256).
    """
    store.check_name(name)
    if pca is not None:
        if kind not in (None, "motion"):
            raise MocohdError(
                f"a PCA folder (pca) goes with an official motion checkpoint (kind motion), not kind {kind!r}"
            )
        model = import_official(path, pca, w_residual=w_residual)
    else:
        model = read_any(path, kind=kind)
    if image is not None:
        if model.kind == "image":
            raise MocohdError(
                "image names the generator of a motion model or PCA basis; this file is itself an image generator"
            )
        ident = image_identity(image)
        if model.config.get("w_dim") not in (None, ident["w_dim"]):
            raise MocohdError(
                f"{image} has w size {ident['w_dim']}, this {model.kind} model {model.config.get('w_dim')}"
            )
        model.image = {"image_name": ident["name"], "image_sha256": ident["weights_sha256"]}
    header = store_model(model, name, str(path), overwrite)
    store.warn_shadowing(header.kind, name, header.source)
    return header


def store_model(model: ConvertedModel, name: str, origin: str, overwrite: bool = False) -> canonical.ModelHeader:
    """Check that a converted model builds and is finite, then write it to the store as ``name`` (atomically)."""
    checks.check_finite(model.tensors, origin)  # refuse before writing anything
    if model.kind == "image":
        build_image_generator(model, origin)
    elif model.kind == "motion":
        build_motion(model, origin)
    elif model.kind == "encoder":
        build_encoder(model, origin)
    elif model.kind in DETECTORS:
        build_detector_model(model, origin)
    else:
        checks.check_shapes(
            model.kind, model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
        )
    dest = store.store_path(model.kind, name)
    if dest.exists() and not overwrite:
        raise MocohdError(
            f"a {model.kind} model named '{name}' already exists in the store: pick another name, "
            "or replace it (overwrite=True, --force)"
        )
    store.kind_dir(model.kind, create=True)
    try:
        return canonical.save_model(
            dest,
            model.tensors,
            kind=model.kind,
            family=model.family,
            config=model.config,
            source=model.source,
            image=model.image,
        )
    except OSError as e:
        raise MocohdError(f"cannot write {dest}: {e.strerror}") from e


@dataclass
class ModelInfo:
    name: str
    origin: str  # path | store | shipped
    path: Path
    format: str  # mocohd | rosinality | nvidia-pickle
    kind: str
    family: str
    config: dict
    source: dict
    parameters: int
    weights_sha256: str
    file_sha256: str
    file_size: int
    image: dict  # motion / pca: the image generator's identity (image_name, image_sha256), {} if unknown
    oscillators: list = field(
        default_factory=list
    )  # motion: the bank's (period in frames, size in stdevs), largest first


def describe(name_or_path: str | os.PathLike, kind: str | None = None) -> ModelInfo:
    """Everything ``mocohd info`` shows about a model, without keeping it loaded."""
    r = store.resolve(name_or_path, kind=kind)
    fmt = sniff(r.path)
    # Read (and for a canonical file, verify) the weights: the hash shown is the tensors' own.
    m = read_any(r.path)
    params = sum(t.numel() for k, t in m.tensors.items() if not k.endswith(canonical.BUFFER_SUFFIXES))
    file_format = "mocohd" if fmt == "safetensors" else m.source.get("format", fmt)
    return ModelInfo(
        name=r.name,
        origin=r.origin,
        path=r.path,
        format=file_format,
        kind=m.kind,
        family=m.family,
        config=m.config,
        source=m.source,
        parameters=params,
        weights_sha256=identity(r.name, m)["weights_sha256"],
        file_sha256=canonical.file_sha256(r.path),
        file_size=r.path.stat().st_size,
        image=m.image,
        oscillators=oscillator_bank(m.tensors),
    )
