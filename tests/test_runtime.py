"""Device choice and allocator tuning."""

import contextlib

import pytest
import torch

from mocohd_cli import MocohdError, runtime

from .conftest import run


def test_auto_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device("auto") == torch.device("cuda")


def test_unavailable_or_unknown_devices_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MocohdError, match="CUDA is not available"):
        runtime.pick_device("cuda:0")
    with pytest.raises(MocohdError, match="unknown device"):
        runtime.pick_device("tpu-ish")
    assert runtime.pick_device("cpu") == torch.device("cpu")


def test_a_cuda_index_that_does_not_exist_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(MocohdError, match=r"^device 'cuda:7' does not exist: 2 GPUs visible \(cuda:0 to cuda:1\)$"):
        runtime.pick_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(MocohdError, match=r"^device 'cuda:1' does not exist: 1 GPU visible \(cuda:0\)$"):
        runtime.pick_device("cuda:1")
    code, _, err = run(capsys, "eval", "--data", str(tmp_path), "--motion", "demo", "--device", "cuda:7")
    assert code == 1 and "device 'cuda:7' does not exist" in err and len(err.strip().splitlines()) == 1


def test_bf16_on_a_gpu_without_it_is_one_line(monkeypatch):
    """A pre-Ampere GPU (stood in for: torch.cuda's answers patched) asked for bf16: one line
    naming the GPU; fp16 and fp32 pass, and so does bf16 on a GPU that has it and on the CPU."""
    asked = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: asked.append(d) or contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (7, 0))
    gpu = torch.device("cuda", 1)
    with pytest.raises(MocohdError) as e:
        runtime.check_dtype_supported(torch.bfloat16, gpu)
    assert str(e.value) == (
        "bf16 asked but Tesla V100-SXM2-16GB (compute capability 7.0) has no bf16 arithmetic: use fp16 or fp32"
    )
    assert asked == [gpu]  # asked of that GPU, not of the current one
    for dtype in (torch.float16, torch.float32, None):
        runtime.check_dtype_supported(dtype, gpu)
    runtime.check_dtype_supported(torch.bfloat16, torch.device("cpu"))
    from mocohd_cli.train.run import resolve_precision

    assert resolve_precision("auto", gpu) == "fp32"
    with pytest.raises(MocohdError, match="has no bf16 arithmetic"):
        resolve_precision("bf16", gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    runtime.check_dtype_supported(torch.bfloat16, gpu)
    assert resolve_precision("auto", gpu) == "bf16"


class _FakeLibc:
    """Stands in for glibc: records each mallopt(param, value) call and returns ``result`` (1: success)."""

    def __init__(self, result=1):
        self.result, self.calls = result, []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def libc(monkeypatch):
    """tune_allocator as on a fresh Linux process, with ctypes handing it a _FakeLibc for the C library."""
    fake = _FakeLibc()
    monkeypatch.setattr(runtime, "_allocator_tuned", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(runtime.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: fake)
    return fake


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h


def test_allocator_tuning_turns_off_mmap_and_raises_the_trim_threshold(libc, monkeypatch):
    monkeypatch.delenv("MOCOHD_MALLOC_TUNE", raising=False)
    assert runtime.tune_allocator() is True
    assert libc.calls == [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 1 << 30)]
    assert runtime.tune_allocator() is True and len(libc.calls) == 2  # once per process


def test_allocator_tuning_can_be_switched_off(libc, monkeypatch):
    monkeypatch.setenv("MOCOHD_MALLOC_TUNE", "0")
    assert runtime.tune_allocator() is False
    assert libc.calls == []  # mallopt never called
    monkeypatch.setenv("MOCOHD_MALLOC_TUNE", "1")
    assert runtime.tune_allocator() is True and libc.calls == [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 1 << 30)]


def test_allocator_tuning_that_fails_or_has_no_mallopt_reports_false(libc, monkeypatch):
    monkeypatch.delenv("MOCOHD_MALLOC_TUNE", raising=False)
    libc.result = 0  # mallopt refused the first setting
    assert runtime.tune_allocator() is False and libc.calls
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: object())  # a C library without mallopt (musl)
    assert runtime.tune_allocator() is False
