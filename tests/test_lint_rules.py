"""Lint rules ruff cannot state: every ``# noqa`` names its codes and says why on the same line, in the
one form ``# noqa: CODE[,CODE] - reason``; and no ``# noqa`` outlives the violation it silenced."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("engine", "app", "tests", "bench", "scripts")

NOQA = re.compile(r"#\s*noqa\b", re.IGNORECASE)
# codes like E402, F401, B023, UP035; one or more, comma-separated; then " - " and a reason
WELL_FORMED = re.compile(r"#\s*noqa: [A-Z]+[0-9]+(?:,[A-Z]+[0-9]+)* - \S")


def noqa_problems(source: str) -> list[tuple[int, str]]:
    """(line, comment) of each ``# noqa`` comment not in the form ``# noqa: CODE[,CODE] - reason``.
    Only real comments count (a ``# noqa`` inside a string is text, not a directive)."""
    problems = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        match = NOQA.search(tok.string)
        if match and not WELL_FORMED.match(tok.string[match.start():]):
            problems.append((tok.start[0], tok.string))
    return problems


def python_files() -> list[Path]:
    fixtures = ROOT / "tests" / "data"  # third-party reference code kept verbatim (ruff excludes it too)
    return [p for top in SCANNED for p in sorted((ROOT / top).rglob("*.py")) if not p.is_relative_to(fixtures)]


@pytest.mark.parametrize("comment", [
    "x = 1  # noqa: E402 - after sys.path gets the repo root",
    "x = 1  # noqa: F401,F403 - re-exported",
    "x = 1  # a comment about noqa rules, not a directive",
    's = "# noqa"  # the string is not a comment',
])
def test_noqa_form_accepted(comment: str) -> None:
    assert noqa_problems(comment + "\n") == []


@pytest.mark.parametrize("comment", [
    "x = 1  # noqa",                       # no code
    "x = 1  # noqa: E402",                 # no reason
    "x = 1  # noqa: E402  reason",         # reason without the ' - ' separator
    "x = 1  # NOQA: E402 - reason",        # upper-case directive (ruff reads it too)
    "x = 1  # noqa:E402 - reason",         # no space after the colon
    "x = 1  # noqa: E402, F401 - reason",  # space inside the code list
    "x = 1  # noqa: E402 -",               # empty reason
])
def test_noqa_form_refused(comment: str) -> None:
    assert noqa_problems(comment + "\n") == [(1, comment.split("  ", 1)[1])]


def test_every_noqa_names_its_code_and_reason() -> None:
    offenders = []
    for path in python_files():
        for line, comment in noqa_problems(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {comment}")
    assert not offenders, ("write `# noqa: CODE[,CODE] - reason` (see README):\n" + "\n".join(offenders))


def test_no_unused_noqa() -> None:
    """ruff's RUF100: a ``# noqa`` for a code that no longer fires (or is not enabled) is removed."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--extend-select", "RUF100", "--exit-zero",
                           "--output-format", "json", *SCANNED], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    unused = [f"{Path(v['filename']).relative_to(ROOT)}:{v['location']['row']}: {v['message']}"
              for v in json.loads(proc.stdout) if v["code"] == "RUF100"]
    assert not unused, "\n".join(unused)
