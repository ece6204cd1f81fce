"""Device choice and dtype policy."""
from __future__ import annotations

import pytest
import torch

from engine import devices


def test_auto_picks_best_available_and_unavailable_falls_back(monkeypatch):
    monkeypatch.setattr(devices, "available_devices", lambda: ["cuda", "cpu"])
    assert devices.pick_device("auto").type == "cuda"
    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu"])
    assert devices.pick_device("auto").type == "cpu"
    assert devices.pick_device("cuda").type == "cpu"
    assert devices.pick_device("mps").type == "cpu"


def test_dtype_policy():
    cpu = torch.device("cpu")
    assert devices.autocast_dtype(cpu, "auto") is None  # float32 on CPU by default
    assert devices.autocast_dtype(cpu, "bfloat16") is torch.bfloat16
    assert devices.autocast_dtype(cpu, "float16") is torch.bfloat16  # no fp16 autocast on CPU
    assert devices.autocast_dtype(torch.device("mps"), "auto") is torch.float16
    with devices.precision_context(cpu, "bfloat16"):
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype is torch.bfloat16


def test_thread_cap(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert devices.configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(devices.os, "cpu_count", lambda: 8)
        monkeypatch.delenv("I2I_THREADS", raising=False)
        assert devices.configure_threads() == 7  # one core left for the GUI
    finally:
        torch.set_num_threads(before)


def test_oom_fallback_only_for_gpu_oom():
    calls = []

    def job(dev):
        calls.append(dev.type)
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        devices.run_with_oom_fallback(job, torch.device("cpu"))
    assert calls == ["cpu"]  # never retried on the same CPU

    def bad(dev):
        raise ValueError("not an OOM")

    with pytest.raises(ValueError):
        devices.run_with_oom_fallback(bad, torch.device("mps"))
