"""Run one batch of hostile cases in this process (see ``hostile.py``); write one result per case.

Usage: ``python -m tests.reliability.worker SPEC.json RESULTS.json``.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.reliability.hostile import MAX_RSS_MIB, MAX_SECONDS


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _files(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + dirnames:
            out.add(os.path.join(dirpath, n))
    return out


def _build(value: Any) -> Any:
    from engine import api

    if isinstance(value, dict):
        if "array" in value:
            arr = np.zeros(value["array"], dtype=value.get("dtype", "uint8"))
            if "fill" in value:
                arr[...] = value["fill"]
            return arr
        if "frozen" in value:
            return api.FrozenArray(_build(value["frozen"]))
        if "request" in value:
            return getattr(api, value["request"])(**{k: _build(v) for k, v in value["fields"].items()})
        if "float" in value:
            return float(value["float"])  # nan / inf / -inf, which JSON cannot carry
        if "tuple" in value:
            return tuple(_build(v) for v in value["tuple"])
        if "object" in value:
            cls = value["object"]
            module, _, name = cls.partition(":")
            return getattr(importlib.import_module(module), name)(**{k: _build(v) for k, v in value["fields"].items()})
        return {k: _build(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_build(v) for v in value]
    return value


def _run_request(request: Any) -> Any:
    from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    ctx = make_context(1, request, ModelStore(), LRUCache(4), CancelToken(), None)
    return run_request(request, ctx)


def _judge_cli(case: dict, rc: int, err: str) -> str:
    from engine.limits import printable

    if rc != 2:
        return f"exit status {rc}, expected 2; stderr: {err[-300:]!r}"
    if "Traceback" in err:
        return f"traceback on stderr: {err[-300:]!r}"
    lines = [ln for ln in err.splitlines() if ln.startswith("i2i: error")]
    if len(lines) != 1:
        return f"{len(lines)} error lines: {err[-300:]!r}"
    expect = [printable(e, 10_000) for e in case.get("expect", [])]
    if expect and not any(e in lines[0] for e in expect):
        return f"message does not name the input ({expect}): {lines[0]!r}"
    return ""


def _judge_call(case: dict, exc: BaseException | None) -> str:
    from engine.api import InputError, WeightsError
    from engine.limits import printable

    if exc is None:
        return "no error raised"
    if not isinstance(exc, (InputError, WeightsError)):
        return f"{type(exc).__name__} instead of InputError/WeightsError: {str(exc)[:300]!r}"
    text = str(exc)
    expect = case.get("expect", [])
    if expect and not any(e in text or printable(e, 10_000) in text for e in expect):
        return f"message does not name the input ({expect}): {text[:300]!r}"
    return ""


def run_case(case: dict, root: Path, allowed: list[Path], marker: Path, ignore: set[str]) -> dict:
    before = _files(root)
    saved_env = {k: os.environ.get(k) for k in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    _reset_peak()
    err = io.StringIO()
    reason = ""
    t0 = time.perf_counter()
    signal.alarm(MAX_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if case["kind"] == "cli":
                from engine.cli import main

                try:
                    rc = main(case["argv"])
                except SystemExit as exc:  # argparse --help / version: not a refusal
                    rc = exc.code if isinstance(exc.code, int) else 1
                reason = _judge_cli(case, rc, err.getvalue())
            else:
                module, _, name = case["call"].partition(":")
                fn = _run_request if case["call"] == "engine.tasks:run_request" else getattr(
                    importlib.import_module(module), name)
                caught: BaseException | None = None
                try:
                    fn(*_build(case.get("args", [])), **_build(case.get("kwargs", {})))
                except _Timeout:
                    raise
                except Exception as exc:  # judged below
                    caught = exc
                reason = _judge_call(case, caught)
    except _Timeout:
        reason = f"took more than {MAX_SECONDS} s"
    except Exception as exc:  # an escaped exception is the failure being tested for
        reason = f"escaped {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.alarm(0)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    peak = _peak_mib()
    if not reason and peak > MAX_RSS_MIB:
        reason = f"peak RSS {peak:.0f} MiB over {MAX_RSS_MIB} MiB"
    if not reason and marker.exists():
        reason = f"payload marker {marker} was created"
    created = [p for p in _files(root) - before
               if not any(Path(p).is_relative_to(a) for a in allowed) and Path(p).name not in ignore]
    if not reason and created:
        reason = f"created outside the output/weights folders: {sorted(created)[:3]}"
    return {"name": case["name"], "passed": not reason, "reason": reason, "seconds": round(seconds, 3),
            "peak_mib": round(peak, 1)}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    root = Path(spec["root"])
    allowed = [Path(a) for a in spec["allowed"]]
    marker = Path(spec["marker"])
    signal.signal(signal.SIGALRM, _alarm)
    import torch

    torch.set_num_threads(1)
    results = [run_case(c, root, allowed, marker, set(spec.get("ignore", []))) for c in spec["cases"]]
    Path(sys.argv[2]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
