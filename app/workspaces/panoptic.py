"""Panoptic map → image: paint classes and instances (outlines drawn), optional style photo."""
from __future__ import annotations

from typing import Any

import numpy as np

from engine.api import FrozenArray, InputError, PanopticRequest, Request, model_palette

from ..mask_editor import MaskEditor
from ..pickers import ImagePicker
from ..undo import UndoStack
from ..views import ImageView
from .base import Workspace


def panoptic_palette(entry: Any):
    return model_palette("panoptic", entry)


class PanopticWorkspace(Workspace):
    key = "panoptic"
    title = "Panoptic → image"
    family = "panoptic"
    description = "Paint classes and separate instances (N = new instance); the generator sees the instance edges."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.editor = MaskEditor(panoptic_palette(self.weights.entry), (256, 256), panoptic=True,
                                 brush_size=s.get("brush_size"), undo_limit=s.get("undo_limit"))
        self.style = ImagePicker("Style photo (optional)", gallery_kind="exemplars", thumb=96)
        self.style.imageChanged.connect(lambda _i: self.schedule("full"))
        self.inputs_layout.addWidget(self.editor.tools, 1)
        self.inputs_layout.addWidget(self.style)
        self.center_layout.addWidget(self.editor.canvas, 1)
        self.connect_canvas(self.editor.canvas)
        for key, fn in self.editor.shortcuts():
            self.add_shortcut(key, fn)
        self.edges = ImageView("Instance edges")
        self.edges.setMaximumHeight(200)
        self.aux_row.addWidget(self.edges)
        self.model_changed(self.weights.model)

    def model_changed(self, name: str) -> None:
        entry = self.weights.entry
        self.editor.set_palette(panoptic_palette(entry))
        self.style.setEnabled(bool(entry is not None and entry.config.get("use_vae")))
        self.schedule("full")

    def undo_stack(self) -> UndoStack | None:
        return self.editor.doc.history

    def seed_unused(self) -> str:
        entry = self.weights.entry
        if entry is not None and not entry.config.get("use_vae"):
            return "This panoptic model has no style code: the map alone decides the output, so the seed does nothing."
        return ""

    def make_request(self) -> Request:
        doc = self.editor.doc
        if not doc.labels.any():
            raise InputError("Paint some classes on the canvas first.")
        entry = self.weights.entry
        use_style = entry is not None and entry.config.get("use_vae") and self.style.image is not None
        return PanopticRequest(model=self.weights.model, seed=self.seed.value(), labels=FrozenArray(doc.labels),
                               instances=FrozenArray(doc.instances) if doc.instances is not None else None,
                               style_image=self.style.frozen if use_style else None)

    def show_aux(self, result: Any) -> None:
        self.edges.set_image(result.aux.get("instance_edges"))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "label": self.editor.canvas.current_label,
                "instance": self.editor.canvas.current_instance}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"labels": self.editor.doc.labels.copy()}
        if self.editor.doc.instances is not None:
            out["instances"] = self.editor.doc.instances.copy()
        if self.style.image is not None:
            out["style"] = self.style.image
        return out

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            labels = arrays.get("labels")
            if labels is None:
                labels = np.zeros((256, 256), np.int32)
            self.editor.doc.replace(labels, arrays.get("instances"), record=False)
            self.editor.doc.history.clear()
            self.style.set_image(arrays.get("style"))
            self.editor.canvas.set_label(int(state.get("label", 1)))
            self.editor.canvas.set_instance(int(state.get("instance", 1)))
