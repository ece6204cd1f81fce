"""The CPU precision policy (issue 17): ``auto`` picks bfloat16 on a CPU only where it is native
and this machine's benchmark found it faster with PSNR ≥ 35 dB; never on an AVX2-only CPU."""
from __future__ import annotations

import json

import pytest
import torch

from engine import devices

CPU = torch.device("cpu")
AVX2_ONLY = frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
COOPER_LAKE = frozenset({"avx2", "avx512f", "avx512_bf16"})
SKYLAKE_X = frozenset({"avx2", "avx512f"})
PAYS = {"bf16_speedup": 1.8, "psnr_db": 41.0}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_cpu(monkeypatch, flags: frozenset[str], name: str = "Test CPU") -> None:
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    monkeypatch.setattr(devices, "cpu_name", lambda: name)


@pytest.mark.parametrize("flags, expected", [(AVX2_ONLY, False), (SKYLAKE_X, False),
                                             (COOPER_LAKE, True), (SAPPHIRE_RAPIDS, True)])
def test_native_bf16_needs_avx512_bf16_or_amx(flags, expected):
    assert devices.native_bf16(flags) is expected


def test_auto_never_picks_bf16_on_avx2_only_even_with_a_glowing_verdict(monkeypatch, cache_dir):
    fake_cpu(monkeypatch, AVX2_ONLY)
    devices.write_bf16_verdict(speedup=3.0, psnr_db=60.0)
    assert devices.cpu_bf16_pays(AVX2_ONLY, {"bf16_speedup": 3.0, "psnr_db": 60.0}) is False
    assert devices.autocast_dtype(CPU, "auto") is None


def test_auto_picks_bf16_where_native_and_measured_to_pay(monkeypatch, cache_dir):
    fake_cpu(monkeypatch, SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8480+")
    assert devices.autocast_dtype(CPU, "auto") is None  # native, but not measured here yet
    path = devices.write_bf16_verdict(speedup=1.9, psnr_db=40.2)
    assert path.parent == cache_dir
    assert json.loads(path.read_text())["cpu_flags"] == ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    assert devices.autocast_dtype(CPU, "auto") is torch.bfloat16
    assert devices.autocast_dtype(CPU, "float32") is None  # an explicit choice still wins


@pytest.mark.parametrize("verdict", [{"bf16_speedup": 0.9, "psnr_db": 45.0},   # slower
                                     {"bf16_speedup": 2.0, "psnr_db": 34.9},   # too lossy
                                     {}])
def test_auto_stays_float32_when_the_measurement_says_no(verdict):
    assert devices.cpu_bf16_pays(COOPER_LAKE, verdict) is False
    assert devices.cpu_bf16_pays(COOPER_LAKE, PAYS) is True


def test_a_verdict_from_another_cpu_does_not_count(monkeypatch, cache_dir):
    fake_cpu(monkeypatch, SAPPHIRE_RAPIDS, "CPU A")
    devices.write_bf16_verdict(speedup=2.0, psnr_db=40.0)
    fake_cpu(monkeypatch, SAPPHIRE_RAPIDS, "CPU B")
    assert devices.bf16_verdict() is None
    assert devices.autocast_dtype(CPU, "auto") is None


def test_unreadable_verdict_means_float32(monkeypatch, cache_dir):
    fake_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    cache_dir.mkdir(parents=True)
    (cache_dir / "precision.json").write_text("{not json")
    assert devices.autocast_dtype(CPU, "auto") is None


def test_this_machine_reports_its_flags():
    flags = devices.cpu_flags()
    assert isinstance(flags, frozenset)
    assert devices.cpu_name()
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        assert devices.autocast_dtype(CPU, "auto") is None
