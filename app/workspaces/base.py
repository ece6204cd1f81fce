"""Workspace base: model/weights bar, seed and "vary", live-preview scheduling, output view,
result routing from the engine bridge, project state, export."""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.settings import Settings
from engine.api import Failure, InputError, Quality, Request, Result

from ..engine_bridge import EngineBridge
from ..undo import UndoStack
from ..views import ImageView
from ..weights_panel import WeightsPanel

NO_MODEL_HINT = "No model to run: the note under Model says which weights to import."
VARY_TIP = "New random seed (Ctrl+R)"
STALE_LIVE_OFF = "Live is off: the output is from earlier inputs (press Generate)."


class InputsColumn(QScrollArea):
    """The inputs column scrolls vertically rather than setting the window's minimum height (the
    studio must fit a 1366×768 screen); it keeps the width its contents need."""

    def __init__(self, contents: QWidget) -> None:
        super().__init__()
        self.setWidget(contents)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _width(self, inner: QSize) -> int:
        return inner.width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:
        return QSize(self._width(self.widget().minimumSizeHint()), 120)

    def sizeHint(self) -> QSize:
        inner = self.widget().sizeHint()
        return QSize(self._width(inner), inner.height())


class Workspace(QWidget):
    """One task. Subclasses fill ``self.inputs`` (left column) and ``self.center`` (canvas area),
    implement :meth:`make_request`, and save/restore their state."""

    key = "workspace"
    title = "Workspace"
    family = ""
    description = ""
    import_config = ""  # released config named in the "how to import" hint

    statusMessage = Signal(str)
    resultShown = Signal(object)

    def __init__(self, bridge: EngineBridge, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.settings = settings
        self.result: Result | None = None
        self.shown_request_ids: list[int] = []
        self.history: deque[Result] = deque(maxlen=8)  # recent full-size outputs (export grid)
        self._interacting = False
        self._live_paused = False
        self.awaiting = False  # submitted, no result yet (possibly superseded by another workspace)
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)

        # --- top bar: model + status, seed, vary, live, generate
        top = QHBoxLayout()
        self.weights = WeightsPanel(self.family, bridge.session, accept=self.accept_entry, config=self.import_config)
        self.weights.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.weights.modelChanged.connect(self._model_changed)
        top.addWidget(self.weights, 3)
        top.addWidget(QLabel("Seed"))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed of the style / noise")
        self.seed.valueChanged.connect(lambda _=0: self.schedule("full"))
        top.addWidget(self.seed)
        self.vary_button = QPushButton("Vary")
        self.vary_button.setToolTip(VARY_TIP)
        self.vary_button.clicked.connect(self.vary)
        top.addWidget(self.vary_button)
        self.live = QCheckBox("Live")
        self.live.setToolTip("Regenerate after every edit")
        self.live.setChecked(bool(settings.get("live_preview")))
        self.live.clicked.connect(self._live_toggled)  # the user's click, not restore()
        top.addWidget(self.live)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Render at full size (Ctrl+Return)")
        self.generate_button.clicked.connect(lambda: self.schedule("full", force=True))
        top.addWidget(self.generate_button)
        self.compare = QComboBox()
        self.compare.addItems(["Output", "Before/after", "Side by side"])
        self.compare.setToolTip("Compare the output with the input")
        self.compare.currentIndexChanged.connect(self._compare_mode)
        top.addWidget(self.compare)
        root.addLayout(top)

        # --- body: inputs | canvas | output
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.inputs = QWidget()
        self.inputs_layout = QVBoxLayout(self.inputs)
        self.inputs_layout.setContentsMargins(0, 0, 0, 0)
        self.center = QWidget()
        self.center_layout = QVBoxLayout(self.center)
        self.center_layout.setContentsMargins(0, 0, 0, 0)
        out = QWidget()
        out_lay = QVBoxLayout(out)
        out_lay.setContentsMargins(0, 0, 0, 0)
        self.output = ImageView(self.placeholder_text())
        out_lay.addWidget(self.output, 1)
        self.aux_row = QHBoxLayout()
        out_lay.addLayout(self.aux_row)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #d9a441;")
        self.hint.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        out_lay.addWidget(self.hint)
        self.splitter.addWidget(InputsColumn(self.inputs))
        self.splitter.addWidget(self.center)
        self.splitter.addWidget(out)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        root.addWidget(self.splitter, 1)

        bridge.resultReady.connect(self._on_result)
        bridge.failed.connect(self._on_failure)
        bridge.started.connect(self._on_started)
        bridge.busyChanged.connect(self._on_busy)

    # ------------------------------------------------------------------ to override
    def accept_entry(self, entry: Any) -> str:
        """'' when a manifest entry can serve this task, else the reason it cannot."""
        return ""

    def make_request(self) -> Request:
        """The request for the current inputs; InputError names what is missing."""
        raise NotImplementedError

    def before_image(self) -> np.ndarray | None:
        """What "before" shows in the compare modes."""
        return None

    def show_aux(self, result: Result) -> None:
        """Show auxiliary outputs (warped exemplar, ...)."""

    def undo_stack(self) -> UndoStack | None:
        return None

    def state(self) -> dict[str, Any]:
        """JSON-serialisable parameters of this workspace (for project files)."""
        return {"seed": self.seed.value(), "model": self.weights.model, "live": self.live.isChecked()}

    def arrays(self) -> dict[str, np.ndarray]:
        """Images and maps of this workspace (for project files)."""
        return {}

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Put back what :meth:`state` and :meth:`arrays` returned."""
        self.seed.blockSignals(True)
        self.seed.setValue(int(state.get("seed", 0)))
        self.seed.blockSignals(False)
        if not self._live_paused:  # live_paused() sets it when the whole restore is done
            self.live.setChecked(bool(state.get("live", True)))
        model = state.get("model", "")
        idx = self.weights.combo.findData(model)
        if idx >= 0:
            self.weights.combo.setCurrentIndex(idx)

    @contextmanager
    def live_paused(self, state: dict[str, Any]) -> Iterator[None]:
        """Restore many fields with Live off, then set Live as ``state`` says and render once. When
        the restore raises, Live is put back as it was (nothing renders) and the error goes on."""
        live = self.live.isChecked()
        self.live.setChecked(False)
        self._live_paused = True
        restored = False
        try:
            yield
            restored = True
        finally:
            self._live_paused = False
            self.live.setChecked(bool(state.get("live", live)) if restored else live)
        self.schedule("full")

    def placeholder_text(self) -> str:
        return "The output appears here."

    def seed_unused(self) -> str:
        """'' when the seed changes the output of the current model and mode, else why it does not
        (Vary is then disabled with that reason as its tooltip)."""
        return ""

    # ------------------------------------------------------------------ state shown
    def update_vary(self) -> None:
        reason = self.seed_unused()
        for w in (self.vary_button, self.seed):
            w.setEnabled(not reason)
        self.vary_button.setToolTip(reason or VARY_TIP)
        self.seed.setToolTip(reason or "Random seed of the style / noise")

    def mark_stale(self, reason: str) -> None:
        """The output shown no longer matches the inputs (cancelled, failed, Live off)."""
        self.output.set_stale(reason)

    def add_shortcut(self, key: str, fn: Callable[[], object]) -> QAction:
        """A key that works wherever the focus is inside this workspace (not only on the canvas)."""
        act = QAction(self)
        act.setShortcut(QKeySequence(key))
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(lambda _checked=False: fn())
        self.addAction(act)
        return act

    def _live_toggled(self, on: bool) -> None:
        if on:
            self.schedule("full")

    # ------------------------------------------------------------------ scheduling
    def connect_canvas(self, canvas: QWidget) -> None:
        """Live previews from a canvas: preview size while the pointer is down, full on release."""
        canvas.strokeStarted.connect(self._stroke_started)
        canvas.edited.connect(self._edited)
        canvas.strokeFinished.connect(self._stroke_finished)

    def _stroke_started(self) -> None:
        self._interacting = True

    def _edited(self, _rect: object = None) -> None:
        if self._interacting:
            if not self.settings.get("render_on_release"):
                self.schedule("preview")
        else:
            self.schedule("full")  # undo, load, programmatic change

    def _stroke_finished(self) -> None:
        self._interacting = False
        self.schedule("full")

    def schedule(self, quality: Quality = "full", *, force: bool = False) -> int | None:
        """Submit the current inputs (latest wins). Returns the request id or None."""
        if self.bridge.closed:
            return None  # a late UI event after the window went away
        if not (force or self.live.isChecked()):
            self.mark_stale(STALE_LIVE_OFF)
            return None
        if not self.weights.model:
            self.hint.setText(NO_MODEL_HINT)
            self.mark_stale(NO_MODEL_HINT)
            return None
        try:
            request = self.make_request()
        except InputError as exc:
            self.hint.setText(str(exc))
            self.mark_stale(str(exc))
            return None
        self.hint.setText("")
        self.awaiting = True
        return self.bridge.submit(self.key, request, quality)

    def vary(self) -> None:
        if self.seed_unused():
            return  # (Ctrl+R where the seed does nothing)
        self.seed.setValue(random.randrange(0, 2**31 - 1))

    def _model_changed(self, name: str) -> None:
        if not name:
            self.hint.setText(NO_MODEL_HINT)
        self.model_changed(name)
        self.update_vary()

    def model_changed(self, name: str) -> None:
        """Hook: adapt inputs to the chosen model (palette, domains, pose/mask)."""
        self.schedule("full")

    # ------------------------------------------------------------------ results
    def _on_started(self, owner: str, rid: int) -> None:
        pass

    def _on_busy(self, busy: bool) -> None:
        self.output.set_busy(busy)

    def _on_result(self, owner: str, result: Result) -> None:
        if owner != self.key:
            return
        self.awaiting = False
        self.result = result
        self.shown_request_ids.append(result.request_id)
        if self.bridge.last_quality == "full":
            self.history.append(result)
        total = sum(result.timings.values())
        h, w = result.image.shape[:2]
        self.output.set_image(result.image, f"{w}×{h} · {total * 1000:.0f} ms · {result.device}")
        self.output.set_stale("")
        self.output.set_before(self.before_image())
        self.show_aux(result)
        if result.notes:
            self.statusMessage.emit("; ".join(result.notes))
        self.resultShown.emit(result)

    def _on_failure(self, owner: str, failure: Failure) -> None:
        if owner != self.key:
            return
        self.awaiting = False
        if self.bridge.last_quality == "preview":
            # Mid-drag the last good image stays; the full render on release reports a lasting problem.
            self.statusMessage.emit(f"{self.title}: preview skipped ({failure.message})")
            return
        self.hint.setText(failure.message)
        self.mark_stale(f"The last run failed: {failure.message}")
        self.statusMessage.emit(f"{self.title}: {failure.message}")

    def _compare_mode(self, index: int) -> None:
        self.output.set_before(self.before_image())
        self.output.set_mode(("single", "slider", "side")[index])

    def output_image(self) -> np.ndarray | None:
        return None if self.result is None else self.result.image
