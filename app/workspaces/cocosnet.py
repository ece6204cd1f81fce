"""CoCosNet workspaces: exemplar translation (mask / face parsing / pose → image, with the warped
exemplar beside the output), image editing (edit a photo's map, regenerate with the photo as its
own exemplar, before/after slider) and makeup transfer (region toggles, strength)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    FACE_INPUT_KINDS,
    MAKEUP_REGIONS,
    EditRequest,
    ExemplarRequest,
    FrozenArray,
    InputError,
    MakeupRequest,
    Request,
    load_label_map,
    load_openpose_json,
    model_palette,
    needs_exemplar_map,
    palette_for,
    save_openpose_json,
)
from engine.api import render_pose as engine_render_pose

from ..canvases.pose import PoseCanvas
from ..document import JOINT_NAMES, PoseDocument
from ..mask_editor import MaskEditor
from ..pickers import ImagePicker
from ..undo import UndoStack
from ..views import ImageView
from .base import Workspace

FACE_KINDS = FACE_INPUT_KINDS
LABEL_KINDS = ("labels", *FACE_KINDS)
POSE_SIZE = (176, 256)  # DeepFashion's 256-high portrait canvas


def entry_kind(entry: Any) -> str:
    return str(entry.config.get("input_kind", "labels")) if entry is not None else "labels"


def entry_palette(entry: Any):
    """The class palette a CoCosNet model's input map uses (the engine's rule, shared with the CLI)."""
    return model_palette("cocosnet", entry)


def companion_map(photo: Path | None, pose: bool) -> Path | None:
    """The map (or pose JSON) that belongs to a photo, found by the layouts this project uses:
    the example gallery (exemplars/X.png ↔ maps/X.png|json), the dataset folders (image|exemplar/ID.png
    ↔ label/ID.png, pose|exemplar_pose/ID.json) and a ``<stem>_map.png`` / ``<stem>.json`` sibling."""
    if photo is None:
        return None
    stem, parent = photo.stem, photo.parent
    ext = ".json" if pose else ".png"
    candidates = [parent.parent / "maps" / f"{stem}{ext}"]
    if pose:
        sub = "exemplar_pose" if parent.name == "exemplar" else "pose"
        candidates += [parent.parent / sub / f"{stem}.json", parent / f"{stem}.json"]
    else:
        candidates += [parent.parent / "label" / f"{stem}.png", parent / f"{stem}_map.png"]
    return next((c for c in candidates if c.is_file()), None)


def is_pose_example(path: Path) -> bool:
    """A bundled pose example: an OpenPose JSON, or a photo whose companion is one."""
    return path.suffix.lower() == ".json" or companion_map(path, pose=True) is not None


# What to tell a user who has no pose model (the pose canvas needs one).
POSE_MODEL_HINT = ("No pose model is registered, so the pose canvas and the pose examples are hidden. "
                   "Posing a figure needs a CoCosNet DeepFashion model: import the official files with "
                   "<code>i2i weights import latest_net_G.pth latest_net_Corr.pth --as cocosnet_deepfashion "
                   "--family cocosnet --config deepfashion</code>, or train one with <code>i2i data build poses</code> "
                   "then <code>i2i train cocosnet --config small_deepfashion --data data/poses --export cocosnet_poses"
                   "</code>, and press Refresh.")

COCOSNET_SEED_UNUSED = ("CoCosNet has no random style: the look comes from the exemplar, so the seed does not "
                        "change the output. Choose another exemplar instead.")


def render_pose(kp: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """A pose as the model sees it, drawn by the engine (picker thumbnails); the canvas is the
    joints' extent plus a margin unless ``size`` is given."""
    kp = np.asarray(kp, np.float32)
    present = kp[:, 2] > 0
    if size is None:
        w = int(kp[present, 0].max() + 10) if present.any() else 64
        h = int(kp[present, 1].max() + 10) if present.any() else 64
        size = (max(w, 32), max(h, 32))
    return engine_render_pose(kp, size)[0]


class ExemplarWorkspace(Workspace):
    key = "exemplar"
    title = "Exemplar (CoCosNet)"
    family = "cocosnet"
    description = "Paint a semantic map (or pose a skeleton) and drop an exemplar photo whose style to copy."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.kind = "labels"
        self.editor = MaskEditor(entry_palette(self.weights.entry), (256, 256), brush_size=s.get("brush_size"),
                                 undo_limit=s.get("undo_limit"))
        self.pose_doc = PoseDocument(POSE_SIZE, undo_limit=s.get("undo_limit"))
        self.pose_canvas = PoseCanvas(self.pose_doc)

        self.exemplar = ImagePicker("Exemplar photo", gallery_kind="exemplars")
        self.exemplar.imageChanged.connect(self._exemplar_changed)
        self.exemplar_map = ImagePicker("Exemplar's own map", gallery_kind="maps", thumb=72,
                                        loader=self._load_exemplar_map, display=self._display_exemplar_map)
        self.exemplar_map.imageChanged.connect(lambda _i: self.schedule("full"))
        self.inputs_layout.addWidget(self.exemplar)
        self.inputs_layout.addWidget(self.exemplar_map)
        self.pose_note = QLabel()
        self.pose_note.setWordWrap(True)
        self.pose_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pose_note.setStyleSheet("color: #d9a441;")
        self.inputs_layout.addWidget(self.pose_note)

        self.tool_stack = QStackedWidget()
        self.tool_stack.addWidget(self.editor.tools)
        self.tool_stack.addWidget(self._pose_tools())
        self.inputs_layout.addWidget(self.tool_stack, 1)

        self.canvas_stack = QStackedWidget()
        self.canvas_stack.addWidget(self.editor.canvas)
        self.canvas_stack.addWidget(self.pose_canvas)
        self.center_layout.addWidget(self.canvas_stack, 1)
        self.connect_canvas(self.editor.canvas)
        for key, fn in self.editor.shortcuts():
            self.add_shortcut(key, fn)
        self.connect_canvas(self.pose_canvas)

        self.warped = ImageView("Warped exemplar")
        self.warped.setMinimumSize(140, 140)
        self.warped.setMaximumHeight(220)
        self.aux_row.addWidget(self.warped)
        self.model_changed(self.weights.model)

    def _pose_tools(self) -> QWidget:
        box = QGroupBox("Pose")
        lay = QVBoxLayout(box)
        self.joint_combo = QComboBox()
        self.joint_combo.addItems([n.replace("_", " ") for n in JOINT_NAMES])
        lay.addWidget(self.joint_combo)
        row = QHBoxLayout()
        add = QPushButton("Add joint")
        add.setToolTip("Put the chosen joint back (then right-click on the canvas to place it elsewhere)")
        add.clicked.connect(self._add_joint)
        rm = QPushButton("Remove joint")
        rm.clicked.connect(lambda: self.pose_doc.remove_joint(self.joint_combo.currentIndex()))
        row.addWidget(add)
        row.addWidget(rm)
        lay.addLayout(row)
        reset = QPushButton("Reset pose")
        reset.clicked.connect(self.pose_doc.reset)
        lay.addWidget(reset)
        row = QHBoxLayout()
        imp = QPushButton("Import JSON…")
        imp.clicked.connect(self._import_pose)
        exp = QPushButton("Export JSON…")
        exp.clicked.connect(self._export_pose)
        row.addWidget(imp)
        row.addWidget(exp)
        lay.addLayout(row)
        self.pose_canvas.jointSelected.connect(self.joint_combo.setCurrentIndex)
        lay.addWidget(QLabel("Drag joints; right-click a joint to remove it; Esc aborts a drag."))
        lay.addStretch(1)
        return box

    def _exemplar_changed(self, image: np.ndarray | None) -> None:
        """Load the exemplar's own map from beside the photo when there is one (one render)."""
        found = companion_map(self.exemplar.path, self.kind == "pose") if image is not None else None
        if found is not None:
            self.exemplar_map.blockSignals(True)
            self.exemplar_map.load(found)
            self.exemplar_map.blockSignals(False)
        self.schedule("full")

    def _add_joint(self) -> None:
        j = self.joint_combo.currentIndex()
        if not self.pose_doc.present(j):
            self.pose_doc.add_joint(j)
        self.pose_canvas.pending_joint = j

    def _import_pose(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import OpenPose JSON", "", "OpenPose JSON (*.json)")
        if path:
            try:
                self.pose_doc.set_keypoints(load_openpose_json(path), "import pose")
            except InputError as exc:
                self.hint.setText(str(exc))

    def _export_pose(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export OpenPose JSON", "pose.json", "OpenPose JSON (*.json)")
        if path:
            save_openpose_json(path, self.pose_doc.keypoints, self.pose_doc.size)

    # exemplar's own map: a label map for label models, keypoints for pose models
    def _load_exemplar_map(self, path: Path) -> np.ndarray:
        if self.kind == "pose":
            return load_openpose_json(path)
        return load_label_map(path, self.editor.doc.palette, num_classes=len(self.editor.doc.palette))

    def _display_exemplar_map(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 2 and arr.shape[1] == 3 and arr.shape[0] == len(JOINT_NAMES):
            return render_pose(arr)
        return self.editor.doc.palette.colorize(arr)

    def model_changed(self, name: str) -> None:
        entry = self.weights.entry
        self.kind = entry_kind(entry)
        pose = self.kind == "pose"
        self.canvas_stack.setCurrentIndex(1 if pose else 0)
        self.tool_stack.setCurrentIndex(1 if pose else 0)
        self.exemplar_map.title = "Exemplar's pose (JSON)" if pose else "Exemplar's own map"
        for picker in (self.exemplar, self.exemplar_map):  # examples that fit the chosen model only
            picker.set_gallery_filter(lambda path: is_pose_example(path) == pose)
        pose_models = [name for name, e in self.weights.entries.items() if entry_kind(e) == "pose"]
        if pose:
            note = ""
        elif pose_models:
            note = f"To pose a figure, choose {' or '.join(pose_models)} under Model."
        else:
            note = POSE_MODEL_HINT
        self.pose_note.setText(note)
        self.pose_note.setVisible(bool(note))
        if not pose:
            self.editor.set_palette(entry_palette(entry))
        self.schedule("full")

    def undo_stack(self) -> UndoStack | None:
        return self.pose_doc.history if self.kind == "pose" else self.editor.doc.history

    def before_image(self) -> np.ndarray | None:
        return self.exemplar.image

    def seed_unused(self) -> str:
        return COCOSNET_SEED_UNUSED

    def make_request(self) -> Request:
        if self.exemplar.image is None:
            raise InputError("Drop an exemplar photo on the Exemplar slot (or choose an example).")
        common = dict(model=self.weights.model, seed=self.seed.value(), exemplar=self.exemplar.frozen)
        ex_map = self.exemplar_map.image
        if ex_map is None and needs_exemplar_map(self.weights.entry):
            raise InputError("This model also needs the exemplar's own map: load it in the slot under the exemplar.")
        if self.kind == "pose":
            return ExemplarRequest(keypoints=FrozenArray(self.pose_doc.keypoints),
                                   exemplar_keypoints=self.exemplar_map.frozen,
                                   canvas_size=self.pose_doc.size, **common)
        return ExemplarRequest(input_map=FrozenArray(self.editor.doc.labels),
                               exemplar_map=self.exemplar_map.frozen, **common)

    def show_aux(self, result: Any) -> None:
        self.warped.set_image(result.aux.get("warped_exemplar"))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "kind": self.kind, "brush": self.editor.canvas.brush_size,
                "label": self.editor.canvas.current_label}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"labels": self.editor.doc.labels.copy(), "keypoints": self.pose_doc.keypoints.copy()}
        if self.exemplar.image is not None:
            out["exemplar"] = self.exemplar.image
        if self.exemplar_map.image is not None:
            out["exemplar_map"] = self.exemplar_map.image
        return out

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            labels = arrays.get("labels")
            self.editor.doc.replace(labels if labels is not None else np.zeros((256, 256), np.int32), record=False)
            self.editor.doc.history.clear()
            kp = arrays.get("keypoints")
            self.pose_doc.keypoints = (np.asarray(kp, np.float32).copy() if kp is not None
                                       else PoseDocument(POSE_SIZE).keypoints)
            self.pose_doc.history.clear()
            self.pose_doc.notify()
            self.exemplar.set_image(arrays.get("exemplar"))
            self.exemplar_map.set_image(arrays.get("exemplar_map"))
            self.editor.canvas.set_brush_size(int(state.get("brush", self.settings.get("brush_size"))))
            self.editor.canvas.set_label(int(state.get("label", 1)))


class EditWorkspace(Workspace):
    key = "edit"
    title = "Image editing"
    family = "cocosnet"
    description = "Open a photo with its map, repaint the map, and regenerate the photo from it."

    def accept_entry(self, entry: Any) -> str:
        return "" if entry_kind(entry) in LABEL_KINDS else "takes poses, not maps"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.editor = MaskEditor(entry_palette(self.weights.entry), (256, 256), brush_size=s.get("brush_size"),
                                 undo_limit=s.get("undo_limit"))
        self.editor.opacity_row.setVisible(True)
        self.original_map: np.ndarray | None = None
        self.photo = ImagePicker("Photo", gallery_kind="exemplars")
        self.photo.imageChanged.connect(self._photo_changed)
        self.photo_map = ImagePicker("Photo's map", gallery_kind="maps", thumb=72,
                                     loader=lambda p: load_label_map(p, self.editor.doc.palette,
                                                                     num_classes=len(self.editor.doc.palette)),
                                     display=lambda a: self.editor.doc.palette.colorize(a))
        self.photo_map.imageChanged.connect(self._map_changed)
        self.paste = QCheckBox("Keep unchanged regions from the photo")
        self.paste.setChecked(True)
        self.paste.toggled.connect(lambda _=False: self.schedule("full"))
        reset = QPushButton("Revert map edits")
        reset.clicked.connect(self.revert)
        self.inputs_layout.addWidget(self.photo)
        self.inputs_layout.addWidget(self.photo_map)
        self.inputs_layout.addWidget(self.paste)
        self.inputs_layout.addWidget(reset)
        self.inputs_layout.addWidget(self.editor.tools, 1)
        self.center_layout.addWidget(self.editor.canvas, 1)
        self.connect_canvas(self.editor.canvas)
        for key, fn in self.editor.shortcuts():
            self.add_shortcut(key, fn)
        self.warped = ImageView("Warped photo")
        self.warped.setMaximumHeight(200)
        self.aux_row.addWidget(self.warped)
        self.compare.setCurrentIndex(1)  # before/after slider by default
        self.model_changed(self.weights.model)

    def model_changed(self, name: str) -> None:
        self.editor.set_palette(entry_palette(self.weights.entry))
        self.schedule("full")

    def _photo_changed(self, photo: np.ndarray | None) -> None:
        self.editor.canvas.set_background(photo, self.editor.opacity.value() / 100)
        found = companion_map(self.photo.path, False) if photo is not None else None
        if found is not None and self.photo_map.load(found):
            return  # _map_changed syncs and renders
        self._sync_sizes()

    def _map_changed(self, labels: np.ndarray | None) -> None:
        self.original_map = None if labels is None else labels.astype(np.int32).copy()
        if labels is not None:
            self.editor.doc.replace(labels, label="load photo's map")
            self.editor.doc.history.clear()
        self._sync_sizes()

    def _sync_sizes(self) -> None:
        photo, labels = self.photo.image, self.original_map
        if photo is not None and labels is not None and photo.shape[:2] != labels.shape:
            self.hint.setText(f"The photo is {photo.shape[1]}×{photo.shape[0]} but its map is "
                              f"{labels.shape[1]}×{labels.shape[0]}; load the map made for this photo.")
            return
        self.editor.canvas.set_background(photo, self.editor.opacity.value() / 100)
        self.schedule("full")

    def revert(self) -> None:
        if self.original_map is not None:
            self.editor.doc.replace(self.original_map, label="revert edits")

    def undo_stack(self) -> UndoStack | None:
        return self.editor.doc.history

    def before_image(self) -> np.ndarray | None:
        return self.photo.image

    def seed_unused(self) -> str:
        return COCOSNET_SEED_UNUSED

    def make_request(self) -> Request:
        if self.photo.image is None or self.original_map is None:
            raise InputError("Open a photo and its label map (the map the photo was segmented into).")
        if self.photo.image.shape[:2] != self.original_map.shape:
            raise InputError("The photo and its map differ in size.")
        return EditRequest(model=self.weights.model, seed=self.seed.value(), photo=self.photo.frozen,
                           original_map=FrozenArray(self.original_map), edited_map=FrozenArray(self.editor.doc.labels),
                           paste_unchanged=self.paste.isChecked())

    def show_aux(self, result: Any) -> None:
        self.warped.set_image(result.aux.get("warped_exemplar"))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "paste": self.paste.isChecked(), "opacity": self.editor.opacity.value()}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"edited_map": self.editor.doc.labels.copy()}
        if self.photo.image is not None:
            out["photo"] = self.photo.image
        if self.original_map is not None:
            out["original_map"] = self.original_map
        return out

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            self.paste.setChecked(bool(state.get("paste", True)))
            self.editor.opacity.setValue(int(state.get("opacity", 60)))
            self.photo.set_image(arrays.get("photo"))
            self.photo_map.set_image(arrays.get("original_map"))
            edited = arrays.get("edited_map")
            self.editor.doc.replace(edited if edited is not None else np.zeros((256, 256), np.int32), record=False)
            self.editor.doc.history.clear()


class MakeupWorkspace(Workspace):
    key = "makeup"
    title = "Makeup transfer"
    family = "cocosnet"
    import_config = "celebahqedge"
    description = "Copy the makeup of an exemplar face onto a portrait, region by region."

    def accept_entry(self, entry: Any) -> str:
        return "" if entry_kind(entry) in FACE_KINDS else "not a face model"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pal = palette_for("celebamask_hq", 19)
        parsing = dict(loader=lambda p: load_label_map(p, pal, num_classes=19), display=pal.colorize, thumb=72)
        self.portrait = ImagePicker("Portrait", gallery_kind="faces")
        self.portrait_map = ImagePicker("Portrait's parsing map", gallery_kind="parsing", **parsing)
        self.exemplar = ImagePicker("Makeup exemplar", gallery_kind="faces")
        self.exemplar_map = ImagePicker("Exemplar's parsing map", gallery_kind="parsing", **parsing)
        for p in (self.portrait, self.portrait_map, self.exemplar, self.exemplar_map):
            p.imageChanged.connect(lambda _i: self.schedule("full"))
        left = QHBoxLayout()
        col1, col2 = QVBoxLayout(), QVBoxLayout()
        col1.addWidget(self.portrait)
        col1.addWidget(self.portrait_map)
        col2.addWidget(self.exemplar)
        col2.addWidget(self.exemplar_map)
        left.addLayout(col1)
        left.addLayout(col2)
        self.inputs_layout.addLayout(left)
        box = QGroupBox("Regions")
        bl = QHBoxLayout(box)
        self.regions: dict[str, QCheckBox] = {}
        for r in MAKEUP_REGIONS:
            cb = QCheckBox(r)
            cb.setChecked(r != "brows")
            cb.toggled.connect(lambda _=False: self.schedule("full"))
            self.regions[r] = cb
            bl.addWidget(cb)
        self.inputs_layout.addWidget(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Strength"))
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setValue(100)
        self.strength.valueChanged.connect(
            lambda _=0: self.schedule("preview" if self.strength.isSliderDown() else "full"))
        self.strength.sliderReleased.connect(lambda: self.schedule("full"))
        row.addWidget(self.strength)
        self.inputs_layout.addLayout(row)
        self.inputs_layout.addStretch(1)
        self.portrait_view = ImageView("Portrait")
        self.center_layout.addWidget(self.portrait_view, 1)
        self.portrait.imageChanged.connect(self.portrait_view.set_image)
        self.compare.setCurrentIndex(1)

    def before_image(self) -> np.ndarray | None:
        return self.portrait.image

    def seed_unused(self) -> str:
        return COCOSNET_SEED_UNUSED

    def make_request(self) -> Request:
        pickers = (self.portrait, self.portrait_map, self.exemplar, self.exemplar_map)
        missing = [p.title for p in pickers if p.image is None]
        if missing:
            raise InputError("Makeup transfer needs: " + ", ".join(missing) + ".")
        regions = tuple(r for r, cb in self.regions.items() if cb.isChecked())
        if not regions:
            raise InputError("Choose at least one region (lips, eyes, skin, brows).")
        return MakeupRequest(model=self.weights.model, seed=self.seed.value(),
                             portrait=self.portrait.frozen, portrait_map=self.portrait_map.frozen,
                             exemplar=self.exemplar.frozen, exemplar_map=self.exemplar_map.frozen,
                             regions=regions, strength=self.strength.value() / 100)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "regions": [r for r, cb in self.regions.items() if cb.isChecked()],
                "strength": self.strength.value()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: p.image for name, p in (("portrait", self.portrait), ("portrait_map", self.portrait_map),
                                              ("exemplar", self.exemplar), ("exemplar_map", self.exemplar_map))
                if p.image is not None}

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            for name, p in (("portrait", self.portrait), ("portrait_map", self.portrait_map),
                            ("exemplar", self.exemplar), ("exemplar_map", self.exemplar_map)):
                p.set_image(arrays.get(name))
            chosen = state.get("regions", ["lips", "eyes", "skin"])
            for r, cb in self.regions.items():
                cb.setChecked(r in chosen)
            self.strength.setValue(int(state.get("strength", 100)))
