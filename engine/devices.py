"""Device choice, dtype policy, thread cap, and the CUDA out-of-memory fallback."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from .requests.base import DeviceName

T = TypeVar("T")

_threads_configured = False


def configure_threads(max_threads: int | None = None) -> int:
    """Cap torch's intra-op threads so a GUI keeps a core for itself.

    Default: all cores minus one when there are more than two, else all of them (a 2-core laptop
    would otherwise run previews on one core). ``I2I_THREADS`` overrides.
    """
    global _threads_configured
    env = os.environ.get("I2I_THREADS")
    if max_threads is None and env:
        max_threads = int(env)
    if max_threads is None:
        cores = os.cpu_count() or 1
        max_threads = cores - 1 if cores > 2 else cores
    max_threads = max(1, int(max_threads))
    torch.set_num_threads(max_threads)
    if not _threads_configured:
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
            torch.set_num_interop_threads(1)
        _threads_configured = True
    return max_threads


def user_cache_dir() -> Path:
    """``I2I_CACHE_DIR``, else the platform's per-user cache folder for i2i-studio."""
    env = os.environ.get("I2I_CACHE_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "i2i-studio"


def available_devices() -> list[str]:
    """Devices usable here, best first."""
    out: list[str] = []
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def pick_device(requested: DeviceName | str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for ``auto``; an explicit but unavailable device falls back to CPU."""
    avail = available_devices()
    if requested in ("auto", "", None):
        return torch.device(avail[0])
    name = str(requested).split(":")[0]
    if name not in avail:
        return torch.device("cpu")
    return torch.device(str(requested))


# CPU features that decide the precision policy and are recorded beside every benchmark.
CPU_FLAGS_OF_INTEREST: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
# bfloat16 must keep the output this close to float32 to be picked by ``auto``.
BF16_MIN_PSNR_DB = 35.0


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    try:
        return path.read_text() if path.exists() else ""
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; elsewhere what torch's dispatcher
    reports: ``avx2`` / ``avx512f``, which says nothing about native bfloat16)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    cap = torch.backends.cpu.get_cpu_capability().lower()
    return frozenset({"avx2"} if cap == "avx2" else {"avx2", "avx512f"} if cap.startswith("avx512") else set())


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model as the OS names it (e.g. "AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+")."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU computes bfloat16 natively (AVX-512-bf16 or AMX); on AVX2 alone a
    bfloat16 convolution is emulated and runs many times slower than float32."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_verdict_path() -> Path:
    return user_cache_dir() / "precision.json"


def bf16_verdict(flags: frozenset[str] | None = None) -> dict[str, Any] | None:
    """What ``i2i bench speed`` measured for bfloat16 on this CPU and torch version (speed-up over
    float32 and output PSNR), or None when it has not run here."""
    try:
        data = json.loads(bf16_verdict_path().read_text())
    except (OSError, ValueError):
        return None
    flags = cpu_flags() if flags is None else flags
    same = (data.get("cpu") == cpu_name() and data.get("torch") == torch.__version__
            and set(data.get("cpu_flags", [])) == {f for f in CPU_FLAGS_OF_INTEREST if f in flags})
    return data if same else None


def write_bf16_verdict(speedup: float, psnr_db: float) -> Path:
    """Record this machine's bfloat16 measurement for ``auto`` (called by the benchmark)."""
    path = bf16_verdict_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = cpu_flags()
    path.write_text(json.dumps({"cpu": cpu_name(), "torch": torch.__version__,
                                "cpu_flags": [f for f in CPU_FLAGS_OF_INTEREST if f in flags],
                                "bf16_speedup": speedup, "psnr_db": psnr_db}, indent=1))
    return path


def cpu_bf16_pays(flags: frozenset[str] | None = None, verdict: Mapping[str, Any] | None = None) -> bool:
    """``auto`` uses bfloat16 on a CPU only when it is native there *and* the benchmark run on this
    machine found it faster than float32 with output PSNR ≥ 35 dB. Never on an AVX2-only CPU."""
    flags = cpu_flags() if flags is None else flags
    if not native_bf16(flags):
        return False
    verdict = bf16_verdict(flags) if verdict is None else verdict
    return bool(verdict) and float(verdict.get("bf16_speedup", 0)) > 1.0 \
        and float(verdict.get("psnr_db", 0)) >= BF16_MIN_PSNR_DB


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a job, or None for plain float32.

    ``auto``: on CPU float32, or bfloat16 where :func:`cpu_bf16_pays`; bfloat16 on CUDA when
    supported, else fp16. An explicit ``bfloat16`` on CPU is honoured (slow without native support).
    """
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16":
        return torch.float16 if device.type != "cpu" else torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_bf16_pays() else None


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """Inference mode plus autocast according to :func:`autocast_dtype`."""
    dtype = autocast_dtype(device, precision)
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_oom_fallback(job: Callable[[torch.device], T], device: torch.device,
                          notify: Callable[[str], None] | None = None) -> T:
    """Run ``job(device)``; on a GPU out-of-memory error free the cache and rerun it on the CPU."""
    try:
        return job(device)
    except Exception as exc:
        if device.type == "cpu" or not is_out_of_memory(exc):
            raise
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if notify is not None:
        notify(f"{device.type.upper()} ran out of memory; this job was rerun on the CPU.")
    return job(torch.device("cpu"))
