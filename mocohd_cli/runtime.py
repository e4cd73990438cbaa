"""Process-level settings: device choice, the CPU memory allocator and torch's numerics (``precision``)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import sys
from collections.abc import Iterator

import torch

from .errors import MocohdError, UsageError

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


def check_dtype_supported(dtype: torch.dtype | None, device: torch.device) -> None:
    """bf16 asked of a GPU without it (before Ampere: compute capability under 8.0) is one line, not a
    slow emulation or a kernel error deep in the run. Other dtypes and devices pass."""
    if dtype == torch.bfloat16 and device.type == "cuda":
        with torch.cuda.device(device):  # is_bf16_supported asks the current device
            supported = torch.cuda.is_bf16_supported(including_emulation=False)
        if not supported:
            name = torch.cuda.get_device_name(device)
            major, minor = torch.cuda.get_device_capability(device)
            raise MocohdError(
                f"bf16 asked but {name} (compute capability {major}.{minor}) has no bf16 arithmetic: use fp16 or fp32"
            )


# ---------------------------------------------------------------------------- numerics

# How torch names an op without a deterministic kernel: "<op> does not have a deterministic implementation, ..."
_NOT_DETERMINISTIC = re.compile(r"^\s*(\S+) does not have a deterministic implementation")
CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs to be deterministic (read at its first use)


def deterministic_process(on: bool = True) -> None:
    """With ``on``, set ``CUBLAS_WORKSPACE_CONFIG`` for the whole process (a command with --deterministic,
    at its start): cuBLAS reads it at its first use, which may come before a ``precision`` block."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def check_deterministic(value) -> bool:
    """``value`` if it is True or False, else a UsageError (a library's ``deterministic`` argument)."""
    if not isinstance(value, bool):
        raise UsageError(f"deterministic must be True or False, got {value!r}")
    return value


def _flags() -> tuple:
    b = torch.backends
    return (
        torch.get_float32_matmul_precision(),
        b.cudnn.allow_tf32,
        b.cudnn.benchmark,
        b.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )


def _set_flags(matmul: str, cudnn_tf32: bool, benchmark: bool, cudnn_deterministic: bool, algorithms, warn_only):
    if torch.get_float32_matmul_precision() != matmul:
        if matmul in ("high", "highest"):  # the CUDA flag alone: the CPU's oneDNN setting stays as it is
            torch.backends.cuda.matmul.allow_tf32 = matmul == "high"
        else:
            torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = cudnn_deterministic
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)


def _nondeterministic_op(message: str) -> str | None:
    """The op a deterministic-mode RuntimeError names, or None for any other error."""
    found = _NOT_DETERMINISTIC.match(message)
    if found:
        return found.group(1)
    if "CUBLAS_WORKSPACE_CONFIG" in message:  # cuBLAS was first used before the variable was set
        return f"cuBLAS without CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE} before its first use"
    return None


@contextlib.contextmanager
def precision(
    device: torch.device | str, *, tf32: bool = False, benchmark: bool = False, deterministic: bool | None = None
) -> Iterator[None]:
    """Torch's process-wide numerics for a block, restored when it ends: each command picks its own.

    ``tf32`` (CUDA only): float32 matmuls and convolutions in TF32, whose products keep a 10-bit
    mantissa (about 3 decimal digits); off, they are exact float32. ``benchmark`` (CUDA only): cuDNN
    times its algorithms for each input shape and keeps the fastest, which may differ from run to
    run. ``deterministic``: True allows deterministic kernels only (cuDNN's too, without autotuning;
    on CUDA ``CUBLAS_WORKSPACE_CONFIG`` is set for the process if unset: ``deterministic_process``)
    and an op that has none raises
    MocohdError naming it; False allows any kernel; None keeps what is in force (so a measurement
    inside a deterministic training run stays deterministic).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    saved = _flags()
    if deterministic is None:
        deterministic = saved[4] and not saved[5]
    deterministic_process(deterministic and cuda)
    fast = tf32 and cuda
    try:
        benchmark = benchmark and cuda and not deterministic
        _set_flags("high" if fast else "highest", fast, benchmark, deterministic, deterministic, False)
        yield
    except RuntimeError as e:
        op = _nondeterministic_op(str(e)) if deterministic else None
        if op is None:
            raise
        raise MocohdError(f"--deterministic: {op} has no deterministic implementation on {device}") from None
    finally:
        _set_flags(*saved)
