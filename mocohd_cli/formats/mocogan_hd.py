"""The official MoCoGAN-HD files: PCA folders and motion checkpoints.

    pca_stats/NAME/pca_comp.npy, pca_stdev.npy, ...    get_stats_pca.py's output (``read_official``)
    checkpoints/NAME/modelR_epoch_N.pth                 the motion generator's state dict
                                                        (``read_motion_checkpoint``)

Arrays are read with ``allow_pickle=False`` and checkpoints with
``torch.load(weights_only=True)``; shapes must fit together and values be
finite before anything is built. A motion checkpoint does not hold the PCA
basis it moves along nor its step weight lambda: ``loaders.motion_models.import_official``
joins it with its PCA folder into one self-contained motion model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import MocohdError, UsageError
from ..motion.generator import FAMILY, MotionConfig
from ..pca import PCABasis
from . import checks
from .torch_io import read_torch_file

OFFICIAL_FILES = {  # MoCoGAN-HD's get_stats_pca.py output -> our tensor names
    "pca_comp.npy": "components",
    "pca_stdev.npy": "stdev",
    "pca_var_ratio.npy": "var_ratio",
    "style_mean.npy": "mean",
    "style_var.npy": "var",
}
OFFICIAL_KEYS = ("enc_cell.weight_ih", "enc_cell.weight_hh", "cell.weight_ih", "w", "b", "fc1.weight", "fc2.weight")


# ----------------------------------------------------------------------------
# PCA folders


def _read_npy(p: Path) -> torch.Tensor:
    """One official .npy array as float32: numbers only (allow_pickle=False), data as long
    as its header says (memory-mapped, so a header that lies allocates nothing), all finite."""
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise MocohdError(f"{p}: holds {getattr(arr, 'dtype', 'no')} values, expected floating-point numbers")
        out = torch.from_numpy(np.array(arr, dtype=np.float32))
    except (ValueError, OSError, EOFError) as e:
        raise MocohdError(f"{p}: not a readable .npy array (damaged or truncated?): {checks.brief(e)}") from e
    if not checks.tensor_is_finite(out):
        raise MocohdError(f"{p}: holds NaN or infinite values (damaged file); refusing it")
    return out


def read_official(folder: str | os.PathLike) -> PCABasis:
    """MoCoGAN-HD's PCA folder: pca_comp.npy [n, w_dim] and pca_stdev.npy [n]
    (+ pca_var_ratio.npy [n], style_mean.npy and style_var.npy [w_dim] if present),
    checked for shapes that fit together, finite values, unit-length directions."""
    folder = Path(folder)
    if not folder.exists():
        raise MocohdError(f"{folder}: no such folder")
    if folder.is_file():
        folder = folder.parent
    arrays = {key: _read_npy(folder / fname) for fname, key in OFFICIAL_FILES.items() if (folder / fname).is_file()}
    if "components" not in arrays or "stdev" not in arrays:
        raise MocohdError(f"{folder}: expected pca_comp.npy and pca_stdev.npy (MoCoGAN-HD's get_stats_pca.py output)")
    comps, stdev = arrays["components"], arrays["stdev"]
    if comps.ndim != 2 or not 1 <= comps.shape[0] <= comps.shape[1]:
        raise MocohdError(f"{folder}: pca_comp.npy is {list(comps.shape)}, expected [n, w_dim] with n <= w_dim")
    n, d = comps.shape
    expected = {"stdev": [n], "var_ratio": [n], "mean": [d], "var": [d]}
    for key, fname in ((k, f) for f, k in OFFICIAL_FILES.items() if k in expected and k in arrays):
        if list(arrays[key].shape) != expected[key]:
            raise MocohdError(
                f"{folder}: {fname} is {list(arrays[key].shape)} but pca_comp.npy is {list(comps.shape)}: "
                f"expected {expected[key]} (files from different PCA runs?)"
            )
    if (stdev < 0).any() or ("var" in arrays and (arrays["var"] < 0).any()):
        raise MocohdError(f"{folder}: negative standard deviations or variances: not a PCA folder")
    norms = comps.double().norm(dim=1)
    off = ((norms - 1).abs() > 1e-2).nonzero()
    if len(off):
        k = int(off[0])
        raise MocohdError(
            f"{folder}: pca_comp.npy row {k} has length {float(norms[k]):.3g}; principal directions have length 1"
        )
    return PCABasis(
        comps,
        stdev,
        arrays.get("var_ratio"),
        arrays.get("mean"),
        arrays.get("var"),
        {"origin": "MoCoGAN-HD get_stats_pca.py"},
    )


# ----------------------------------------------------------------------------
# Motion checkpoints


def read_motion_checkpoint(
    path: str | os.PathLike, w_residual: float = MotionConfig.w_residual
) -> tuple[MotionConfig, dict[str, torch.Tensor]]:
    """An official ``modelR_epoch_N.pth`` -> (its motion config with step weight ``w_residual``,
    its state dict without PCA buffers). The sizes are read off the tensors, every tensor's
    shape must follow from them, and all values must be finite."""
    path = Path(path)
    sd = read_torch_file(path)
    if isinstance(sd, dict) and all(isinstance(k, str) for k in sd) and any(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}  # saved from a (Distributed)DataParallel wrapper
    if (
        not isinstance(sd, dict)
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
        or not all(k in sd for k in OFFICIAL_KEYS)
        or any(sd[k].ndim != 2 for k in ("enc_cell.weight_ih", "cell.weight_ih", "w"))
    ):
        raise MocohdError(f"{path}: unknown architecture: not a MoCoGAN-HD motion state dict (modelR_epoch_N.pth)")
    h4, w_dim = sd["enc_cell.weight_ih"].shape
    try:
        cfg = MotionConfig(
            w_dim=int(w_dim),
            noise_dim=int(sd["cell.weight_ih"].shape[1]),
            h_dim=int(h4) // 4,
            n_pca=int(sd["w"].shape[1]),
            w_residual=w_residual,
        )
    except UsageError as e:
        raise MocohdError(f"{path}: not a usable MoCoGAN-HD motion checkpoint: {e}") from e
    # Every tensor's shape must follow from those four sizes before the module is built;
    # the PCA buffers, if the file has them, are replaced by the folder's basis.
    shapes = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith("pca_")}
    shapes.update({k: v for k, v in cfg.state_shapes().items() if k.startswith("pca_")})
    checks.check_shapes("motion", FAMILY, cfg.to_dict(), shapes, path)
    checks.check_finite(sd, path)
    return cfg, {k: v for k, v in sd.items() if not k.startswith("pca_")}
