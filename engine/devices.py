"""Device choice, dtype policy, thread cap, and the CUDA out-of-memory fallback."""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, TypeVar

import torch

from .api.base import DeviceName

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


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a job, or None for plain float32.

    ``auto``: float32 on CPU (exact and predictable), bfloat16 on CUDA when supported, else fp16.
    ``bfloat16`` on CPU is honoured (fast on AVX-512-bf16/AMX CPUs).
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
    return None


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
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is an OOM on a GPU
        if device.type == "cpu" or not is_out_of_memory(exc):
            raise
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if notify is not None:
        notify(f"{device.type.upper()} ran out of memory; this job was rerun on the CPU.")
    return job(torch.device("cpu"))
