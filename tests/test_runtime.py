"""Device choice and allocator tuning."""

import pytest
import torch

from mocohd_cli import MocohdError, runtime


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


def test_allocator_tuning_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(runtime, "_allocator_tuned", False)
    monkeypatch.setenv("MOCOHD_MALLOC_TUNE", "0")
    assert runtime.tune_allocator() is False
    monkeypatch.delenv("MOCOHD_MALLOC_TUNE")
    applied = runtime.tune_allocator()
    assert applied == runtime.tune_allocator()  # idempotent
