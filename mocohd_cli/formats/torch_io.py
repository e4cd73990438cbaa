"""Reading PyTorch checkpoints safely: ``torch.load(weights_only=True)`` only.

Whatever a ``.pt``/``.pth`` file holds, only tensors and plain containers
come out of it (PyTorch refuses anything else, unexecuted), errors are one
line, and no tensor in it may claim more data than the file holds
(``checks.check_storage``). Used by every reader of ``torch.save`` files
(rosinality, BigGAN-deep, MoCoGAN-HD) and for the storages of NVIDIA pickles.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from ..errors import MocohdError
from .checks import brief, check_storage


def read_torch_file(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` with one-line errors; refuses tensors that
    claim more data than the file holds (``checks.check_storage``)."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise MocohdError(f"{path}: no such file") from e
    except pickle.UnpicklingError as e:
        raise MocohdError(
            f"{path}: refused: the file holds objects other than tensors and plain containers "
            f"({weights_only_reason(e)}); nothing in it was executed"
        ) from e
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as e:
        raise MocohdError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): {brief(e)}") from e
    check_storage(obj, Path(path).stat().st_size, path)
    return obj


def weights_only_reason(e: Exception) -> str:
    """The useful part of torch.load's weights_only refusal (it also suggests weights_only=False, which we never do)."""
    text = str(e)
    m = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", text)
    if m:
        return f"it references {m.group(1)}"
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln and "documentation" not in ln
    ]
    return lines[0][:160] if lines else "unsupported content"
