"""A dependency-free text progress bar for the CLI, trainers and data recipes."""
from __future__ import annotations

import sys
import time
from typing import TextIO, TypeVar

T = TypeVar("T")

# Streams whose last write was a refreshed ("\r…") line without its newline; anything else printed
# there (an error, a note) must first end that line, or it is glued to the bar.
_open_lines: set[int] = set()


def write_refreshed(stream: TextIO, text: str) -> None:
    """Overwrite the current terminal line with ``text`` (left open for the next refresh)."""
    stream.write("\r" + text)
    stream.flush()
    _open_lines.add(id(stream))


def end_line(stream: TextIO | None = None) -> None:
    """End a refreshed line left open on ``stream`` (stderr by default); no-op otherwise."""
    stream = stream or sys.stderr
    if id(stream) in _open_lines:
        _open_lines.discard(id(stream))
        stream.write("\n")
        stream.flush()


class ProgressBar:
    """``[#####.....] 50/100  12.3 it/s  eta 4s  loss_g=1.23`` on one refreshed stderr line.

    On a non-terminal stream (CI logs) it prints a plain line every ``log_every`` seconds instead.
    """

    def __init__(self, total: int | None, desc: str = "", stream: TextIO | None = None,
                 width: int = 28, log_every: float = 10.0, initial: int = 0) -> None:
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.n = initial
        self._start_n = initial
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.log_every = log_every
        self.postfix: dict[str, float | str] = {}
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    @property
    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return (self.n - self._start_n) / dt if dt > 0 else 0.0

    def set(self, **values: float | str) -> None:
        self.postfix.update(values)

    def update(self, k: int = 1, **values: float | str) -> None:
        self.n += k
        if values:
            self.postfix.update(values)
        now = time.perf_counter()
        if now - self._last >= (0.1 if self._tty else self.log_every) or (self.total and self.n >= self.total):
            self._last = now
            self._render()

    def line(self) -> str:
        rate = self.rate
        if self.total:
            frac = min(1.0, self.n / self.total)
            bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            head = f"{self.desc} [{bar}] {self.n}/{self.total} {rate:6.2f} it/s eta {eta:5.0f}s"
        else:
            head = f"{self.desc} {self.n} {rate:6.2f} it/s"
        post = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        return f"{head}  {post}".rstrip()

    def _render(self) -> None:
        if self._tty:
            write_refreshed(self.stream, self.line()[:200])
        else:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        self._render()
        end_line(self.stream)
