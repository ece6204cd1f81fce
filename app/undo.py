"""Bounded undo/redo of canvas edits (Qt-free so the document tests need no widgets).

An :class:`Edit` is one user action (a stroke, a fill, a joint drag) that can undo and redo
itself; pushing a new edit clears the redo list; the history keeps at most ``limit`` edits.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol


class Edit(Protocol):
    label: str

    def undo(self) -> None: ...

    def redo(self) -> None: ...


class UndoStack:
    """Undo and redo lists with a bound; listeners are told after every change."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._undo: deque[Edit] = deque(maxlen=limit)
        self._redo: list[Edit] = []
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in self._listeners:
            fn()

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._undo = deque(self._undo, maxlen=self.limit)

    def push(self, edit: Edit) -> None:
        """Record an edit that has already been applied."""
        self._undo.append(edit)
        self._redo.clear()
        self._changed()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        edit = self._undo.pop()
        edit.undo()
        self._redo.append(edit)
        self._changed()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        edit = self._redo.pop()
        edit.redo()
        self._undo.append(edit)
        self._changed()
        return True

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._changed()

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def undo_label(self) -> str:
        return self._undo[-1].label if self._undo else ""


class CallbackEdit:
    """An edit given as two functions (used for small state changes such as a pose reset)."""

    def __init__(self, label: str, undo: Callable[[], None], redo: Callable[[], None]) -> None:
        self.label, self._undo, self._redo = label, undo, redo

    def undo(self) -> None:
        self._undo()

    def redo(self) -> None:
        self._redo()
