"""Motion models by name: loading, saving and importing the official checkpoints.

    M = load_motion("voxceleb")               # name, store entry or path
    ws = M(w1, n_frames=32)                   # [B, 32, w_dim]
    save_motion("m.safetensors", M, image={"image_name": "ffhq", "image_sha256": ...})

A motion file (kind ``motion``) holds the weights, the PCA directions and
stdev it moves along (``pca_components``, ``pca_stdev``), its config, and
in its metadata (``mocohd.image``) the identity (name, weights sha256) of the
image generator it was trained with, when known: ``M.image``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import store
from ..dict_config import check_real
from ..errors import MocohdError, a
from ..formats import ConvertedModel, canonical, checks, read_any
from ..formats.mocogan_hd import read_motion_checkpoint, read_official
from ..motion import FAMILY, MotionConfig, MotionGenerator
from ..motion.generator import OPTIONAL
from ..runtime import pick_device


def build_motion(model: ConvertedModel, origin: str = "") -> MotionGenerator:
    if model.kind != "motion":
        raise MocohdError(f"{origin}: is {a(model.kind)} model, expected a motion model")
    if model.family != FAMILY:
        raise MocohdError(f"{origin}: unknown motion model family {model.family!r}")
    # shapes from the config alone must be the tensors' before anything is allocated
    checks.check_shapes(
        "motion", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    M = MotionGenerator(MotionConfig.from_dict(model.config))
    tensors = dict(model.tensors)
    for name in OPTIONAL:  # files written before these existed: the module's defaults stand in
        tensors.setdefault(name, M.state_dict()[name])
    checks.load_weights(M, tensors, "motion", origin)
    M.has_mean = "pca_mean" in model.tensors
    M.image, M.source = dict(model.image), dict(model.source)
    return M


def load_motion(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> MotionGenerator:
    """A motion generator in eval mode, parameters frozen, on ``device``.
    ``M.image`` is the identity of the image generator it was trained with ({} if unknown)."""
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    r = store.resolve(name_or_path, kind="motion")
    model = read_any(r.path, kind="motion")
    M = build_motion(model, str(r.path))
    M.requires_grad_(False)
    return M.eval().to(device)


def motion_model(M: MotionGenerator, image: dict | None = None, source: dict | None = None) -> ConvertedModel:
    """The canonical-file view of a motion generator (for saving); ``image``: the identity
    (image_name, image_sha256) of the image generator it goes with. A copy re-expressed for
    another w size (``retarget``) is refused: save the model it came from."""
    if M.input_map is not None:
        raise MocohdError(
            "this motion model was re-expressed for another w size and cannot be saved; save the model it came from"
        )
    tensors = {k: v.detach() for k, v in M.state_dict().items() if k != "pca_mean" or M.has_mean}
    return ConvertedModel("motion", FAMILY, M.cfg.to_dict(), tensors, source or {}, image=dict(image or {}))


def save_motion(path: str | os.PathLike, M: MotionGenerator, image: dict | None = None, source: dict | None = None):
    m = motion_model(M, image, source)
    return canonical.save_model(
        path, m.tensors, kind="motion", family=FAMILY, config=m.config, source=m.source, image=m.image
    )


def import_official(
    path: str | os.PathLike, pca_dir: str | os.PathLike, w_residual: float = MotionConfig.w_residual
) -> ConvertedModel:
    """An official ``modelR_epoch_N.pth`` state dict plus its PCA folder -> a motion model."""
    path, pca_dir = Path(path), Path(pca_dir)
    check_real(w_residual, "w_residual")
    if not pca_dir.exists():
        raise MocohdError(f"{pca_dir}: no such folder")
    cfg, sd = read_motion_checkpoint(path, w_residual)
    basis = read_official(pca_dir)
    if basis.w_dim != cfg.w_dim:
        raise MocohdError(
            f"{pca_dir}: the PCA basis is for a {basis.w_dim}-d w, but the motion checkpoint {path.name} "
            f"moves in a {cfg.w_dim}-d w"
        )
    if basis.components.shape[0] < cfg.n_pca:
        raise MocohdError(
            f"{pca_dir}: the PCA basis has {basis.components.shape[0]} directions, but the motion "
            f"checkpoint {path.name} needs {cfg.n_pca}"
        )
    M = MotionGenerator(cfg)
    M.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    M.set_basis(basis.components, basis.stdev, basis.mean)
    source = {
        "format": "mocogan-hd-pth",
        "file": path.name,
        "file_sha256": canonical.file_sha256(path),
        "pca": pca_dir.name,
    }
    return motion_model(M, source=source)


__all__ = ["build_motion", "import_official", "load_motion", "motion_model", "save_motion"]
