"""Shared machinery of the hostile-input suite: a case format, a worker that runs a batch of cases
in one subprocess, and the counters every module adds to (``record``), printed at session end.

A case is a JSON-able dict:

- ``{"name", "kind": "cli", "argv": [...], "expect": [...]}``: ``engine.cli.main(argv)`` must return
  2 and write exactly one ``i2i: error:`` line (no traceback) that contains one of ``expect`` (the
  input it is about).
- ``{"name", "kind": "call", "call": "module:function", "args": [...], "expect": [...]}``: the call
  must raise ``InputError`` or ``WeightsError`` whose message contains one of ``expect``. An arg
  ``{"array": [shape...], "dtype": "uint8"}`` becomes ``np.zeros``; ``{"frozen": {...}}`` a
  ``FrozenArray`` of one; ``{"request": "ClassName", "fields": {...}}`` an ``engine.api`` request,
  which the call ``engine.tasks:run_request`` runs in a fresh context.
- Either kind may carry ``"env": {...}``, set for that case only (e.g. ``I2I_WEIGHTS_DIR``).

For every case the worker also checks: peak RSS (``VmHWM``, reset before each case through
``/proc/self/clear_refs``) under :data:`MAX_RSS_MIB`, wall time under :data:`MAX_SECONDS`, no file
created under ``root`` outside the allowed folders, and the payload ``marker`` never created.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MAX_RSS_MIB = 1536
MAX_SECONDS = 20

_tried = 0
_passed = 0
_failures: list[str] = []


def record(case_name: str, passed: bool, reason: str = "") -> None:
    """Count one hostile case (any module of the suite adds to the same totals)."""
    global _tried, _passed
    _tried += 1
    _passed += bool(passed)
    if not passed:
        _failures.append(f"{case_name}: {reason}")


def totals() -> tuple[int, int]:
    """(cases tried, cases passed) so far in this session."""
    return _tried, _passed


def failures() -> list[str]:
    return list(_failures)


def run_batch(cases: list[dict[str, Any]], *, root: Path, allowed: list[Path], marker: Path,
              env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 240) -> list[dict]:
    """Run ``cases`` in one worker subprocess; record and return one result per case."""
    spec = root / f".batch-{os.getpid()}-{id(cases)}.json"
    out = root / f".results-{os.getpid()}-{id(cases)}.json"
    spec.write_text(json.dumps({"cases": cases, "root": str(root), "allowed": [str(a) for a in allowed],
                                "marker": str(marker), "ignore": [spec.name, out.name]}))
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.worker", str(spec), str(out)],
                          cwd=str(cwd or root), env=full_env, capture_output=True, text=True, timeout=timeout)
    results = json.loads(out.read_text()) if out.exists() else []
    done = {r["name"] for r in results}
    for case in cases:  # a case the worker never reported (it died) counts as failed
        if case["name"] not in done:
            results.append({"name": case["name"], "passed": False,
                            "reason": f"worker died (rc {proc.returncode}): {proc.stderr[-400:]}"})
    for r in results:
        record(r["name"], r["passed"], r.get("reason", ""))
    spec.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    return results
