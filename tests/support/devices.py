"""The device of the device-sensitive tests (marked ``device``).

    MOCOHD_TEST_DEVICE=cuda python -m pytest -m device     # what benchmarks/gpu_check.py runs on a GPU

``test_device()`` reads ``MOCOHD_TEST_DEVICE`` (default ``cpu``) and fails the calling test
when that device is not available here. By default the marked tests compare the CPU with
itself (smoke tests); on a GPU machine, with the variable set, the GPU with the CPU.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import pytest
import torch

ENV = "MOCOHD_TEST_DEVICE"


def available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps and mps.is_available())
    return False


def test_device() -> torch.device:
    """The device asked for by ``MOCOHD_TEST_DEVICE`` (default cpu). A device that was asked
    for and is not there fails the test: a run meant for a GPU must never pass by skipping."""
    name = os.environ.get(ENV, "").strip() or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        pytest.fail(f"{ENV}={name!r} is not a device name", pytrace=False)
    if not available(device):
        pytest.fail(f"{ENV}={name}: that device is not available here", pytrace=False)
    return device


test_device.__test__ = False  # a helper, not a test, wherever it is imported


def autocast_precision(device: torch.device) -> str:
    """The precision training's 'auto' picks: bf16 autocast on CUDA (when supported), fp32 elsewhere."""
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


@contextmanager
def exact_fp32():
    """TF32 off for CUDA matmuls and convolutions (restored after), so fp32 results compare with the CPU's."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR (dB) of ``out`` against ``ref``, with ``ref``'s range as the peak."""
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    mse = (out - ref).square().mean().item()
    peak = (ref.max() - ref.min()).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)
