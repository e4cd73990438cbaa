"""Process-level settings: device choice and the CPU memory allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from .errors import MocohdError

_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS (glibc only).

    glibc serves large blocks with mmap and unmaps them on free, so every
    frame's multi-megabyte activations are page-faulted in afresh; profiling
    showed 50-75% of CPU synthesis time in page faults. Turning mmap off for
    malloc and raising the trim threshold makes the second frame reuse the
    first frame's memory. Peak memory is unchanged; it is just not given back.
    Set MOCOHD_MALLOC_TUNE=0 to leave the allocator alone. Returns whether it
    was applied.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if os.environ.get("MOCOHD_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    _allocator_tuned = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
    return _allocator_tuned


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; anything else must be available (cuda:N: one of
    the visible GPUs)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise MocohdError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MocohdError(f"device {name!r} requested but CUDA is not available (use device cpu or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        names = "cuda:0" if n == 1 else f"cuda:0 to cuda:{n - 1}"
        raise MocohdError(f"device {name!r} does not exist: {n} GPU{'s' * (n != 1)} visible ({names})")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MocohdError(f"device {name!r} requested but Apple MPS is not available")
    return device


def enable_tf32(device: torch.device) -> None:
    """On CUDA, let float32 matmuls and convolutions use TF32 and let cuDNN pick
    the fastest algorithms (training: inputs keep one shape)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
