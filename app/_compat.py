"""Work around a reference-counting defect of PySide6 6.12 on CPython < 3.12.

Measured here (PySide6 6.12.0, CPython 3.11.7): every Python ``Signal.emit()`` releases one
reference to ``True`` it never took, and ``QApplication.processEvents()``, ``QTest.qWait()`` and
Qt signals delivered to Python slots each release one reference to ``None``. CPython 3.12 made these
singletons immortal, which hides the defect; on 3.11 the interpreter aborts ("Fatal Python error:
bool_dealloc / none_dealloc") once a few thousand signals have fired — minutes of painting.

:func:`protect_singletons` probes for the defect and, only when it is present, raises the reference
counts of ``None``, ``True`` and ``False`` by 2**40, making them as good as immortal (as they are on
3.12). Nothing else is touched. Prefer an interpreter ≥ 3.12 or a PySide6 without the defect.
"""
from __future__ import annotations

import ctypes
import sys

BOOST = 1 << 40
_done = False


def _leaks() -> bool:
    """True when emitting a Python-defined signal loses a reference to ``True``."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def protect_singletons() -> bool:
    """Apply the workaround when needed; returns True when it was applied (once per process)."""
    global _done
    if _done:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal singletons: nothing can reach zero
    if hasattr(sys, "getobjects") or not _leaks():
        return False  # a Py_TRACE_REFS build has another object layout; or nothing to fix
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object on non-free-threaded CPython builds;
        # check that before writing (getrefcount counts its own argument once)
        cell = ctypes.c_ssize_t.from_address(id(obj))
        if abs(cell.value - (sys.getrefcount(obj) - 1)) > 2:
            return False
        cell.value += BOOST
    _done = True
    return True
