"""``i2i doctor`` and ``i2i bench``."""
from __future__ import annotations

import argparse
import platform
import runpy
import sys
from pathlib import Path

import numpy
import torch

from ..devices import available_devices, pick_device
from ..weights import Manifest
from .common import CliError, CliGroups

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cmd_doctor(args: argparse.Namespace) -> int:
    print(f"python      {platform.python_version()} ({platform.machine()})")
    print(f"torch       {torch.__version__}   threads {torch.get_num_threads()}")
    try:
        import torchvision
        print(f"torchvision {torchvision.__version__}")
    except Exception as exc:  # doctor reports a broken torchvision, it does not fail
        print(f"torchvision unavailable: {exc}")
    print(f"numpy       {numpy.__version__}")
    print(f"devices     {', '.join(available_devices())} (auto picks {pick_device('auto')})")
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(f"bf16 CPU    {'yes' if 'avx512_bf16' in cpu_flags or 'amx_bf16' in cpu_flags else 'no'}")
    m = Manifest()
    print(f"weights     {m.path}")
    for e in m.entries.values():
        r = m.verify(e)
        print(f"  {r.status:<11} {e.name} ({e.family}/{e.config_name})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    bench_dir = REPO_ROOT / "bench"
    names = sorted(p.stem for p in bench_dir.glob("bench_*.py"))
    if args.list:
        print("benchmarks:", ", ".join(n.removeprefix("bench_") for n in names) or "none")
        return 0
    name = args.name or "speed"  # the same-run eager-vs-ours comparison
    target = bench_dir / f"bench_{name}.py"
    if not target.exists():
        raise CliError(f"no benchmark {name!r}; available: {', '.join(n.removeprefix('bench_') for n in names)}")
    sys.argv = [str(target), *(["--quick"] if args.quick else []), *args.rest]
    runpy.run_path(str(target), run_name="__main__")
    return 0


def register(groups: CliGroups) -> None:
    p = groups.top.add_parser("bench", help="run a benchmark from bench/ (no name: ours vs plain eager, same run)")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    p.add_argument("--quick", action="store_true", help="the benchmark's quick mode")
    p.add_argument("name", nargs="?")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=_cmd_bench)
    groups.top.add_parser("doctor", help="devices, versions and weights status").set_defaults(func=_cmd_doctor)
