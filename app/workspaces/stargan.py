"""StarGAN v2: source photo → target domain, styled by a seed (latent), a reference photo, or an
interpolation between two styles with a slider that updates live while dragging."""
from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
)

from engine.api import (
    InputError,
    LatentStyle,
    ReferenceStyle,
    Request,
    StarGANInterpolateRequest,
    StarGANLatentRequest,
    StarGANReferenceRequest,
    domain_names,
)

from ..pickers import ImagePicker
from .base import Workspace

MODES = ("latent", "reference", "interpolate")
SLIDER_STEPS = 100




class StarGANWorkspace(Workspace):
    key = "stargan"
    title = "StarGAN v2"
    family = "stargan2"
    description = "Translate a face or animal photo into another domain with a random or reference style."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lay = self.inputs_layout
        self.source = ImagePicker("Source", gallery_kind="faces")
        self.source.imageChanged.connect(self._source_changed)
        lay.addWidget(self.source)

        mode_box = QGroupBox("Style from")
        mode_lay = QVBoxLayout(mode_box)
        self.mode_group = QButtonGroup(self)
        labels = ("Random code (seed)", "Reference photo", "Interpolation A → B")
        for i, (name, label) in enumerate(zip(MODES, labels, strict=True)):
            rb = QRadioButton(label)
            rb.setObjectName(f"mode_{name}")
            self.mode_group.addButton(rb, i)
            mode_lay.addWidget(rb)
        self.mode_group.button(0).setChecked(True)
        self.mode_group.idToggled.connect(self._mode_toggled)
        lay.addWidget(mode_box)

        form = QFormLayout()
        self.domain = QComboBox()
        self.domain.currentIndexChanged.connect(lambda _=0: self.schedule("full"))
        form.addRow("Target domain", self.domain)
        self.psi = QDoubleSpinBox()
        self.psi.setRange(0.0, 1.5)
        self.psi.setSingleStep(0.1)
        self.psi.setValue(1.0)
        self.psi.setToolTip("Truncation ψ: 1 = the full range of styles, lower = closer to the average style")
        self.psi.valueChanged.connect(lambda _=0: self.schedule("full"))
        form.addRow("Truncation ψ", self.psi)
        lay.addLayout(form)

        self.reference = ImagePicker("Reference", gallery_kind="faces", thumb=96)
        self.reference.imageChanged.connect(self._reference_changed)
        lay.addWidget(self.reference)
        ref_form = QFormLayout()
        self.reference_domain = QComboBox()
        self.reference_domain.currentIndexChanged.connect(lambda _=0: self.schedule("full"))
        ref_form.addRow("Reference domain", self.reference_domain)
        lay.addLayout(ref_form)

        interp = QGroupBox("Interpolation")
        il = QFormLayout(interp)
        self.seed_b = QSpinBox()
        self.seed_b.setRange(0, 2**31 - 1)
        self.seed_b.setValue(1)
        self.seed_b.valueChanged.connect(lambda _=0: self.schedule("full"))
        il.addRow("Style B seed", self.seed_b)
        self.b_from_reference = QCheckBox("Style B from the reference photo")
        self.b_from_reference.toggled.connect(lambda _=False: self.schedule("full"))
        il.addRow(self.b_from_reference)
        row = QHBoxLayout()
        row.addWidget(QLabel("A"))
        self.alpha = QSlider(Qt.Orientation.Horizontal)
        self.alpha.setRange(0, SLIDER_STEPS)
        self.alpha.setValue(SLIDER_STEPS // 2)
        self.alpha.setToolTip("Blend between style A (the seed above) and style B; updates while dragging")
        self.alpha.valueChanged.connect(self._alpha_moved)
        self.alpha.sliderPressed.connect(self._stroke_started)
        self.alpha.sliderReleased.connect(self._stroke_finished)
        row.addWidget(self.alpha, 1)
        row.addWidget(QLabel("B"))
        il.addRow(row)
        lay.addWidget(interp)
        self.interp_box = interp
        lay.addStretch(1)

        self.source_view_note = QLabel("Drop a source photo on the Source slot (or pick an example).")
        self.source_view_note.setWordWrap(True)
        self.center_layout.addWidget(self.source_view_note)
        from ..views import ImageView
        self.source_view = ImageView("Source photo")
        self.center_layout.addWidget(self.source_view, 1)
        self.model_changed(self.weights.model)
        self._mode_toggled(0, True)

    # ------------------------------------------------------------------ state
    @property
    def mode(self) -> str:
        return MODES[max(self.mode_group.checkedId(), 0)]

    def set_mode(self, mode: str) -> None:
        self.mode_group.button(MODES.index(mode)).setChecked(True)

    @property
    def alpha_value(self) -> float:
        return self.alpha.value() / SLIDER_STEPS

    def _mode_toggled(self, _id: int, checked: bool) -> None:
        if not checked:
            return
        mode = self.mode
        self.interp_box.setEnabled(mode == "interpolate")
        self.reference.setEnabled(mode in ("reference", "interpolate"))
        self.reference_domain.setEnabled(mode in ("reference", "interpolate"))
        self.psi.setEnabled(mode != "reference")
        self.update_vary()
        self.schedule("full")

    def seed_unused(self) -> str:
        if self.mode == "reference":
            return "In reference mode the style comes from the reference photo; the seed is not used."
        return ""

    def _reference_changed(self, image: np.ndarray | None) -> None:
        """A reference whose file name starts with a domain name (female_000019.png, cat_12.jpg)
        sets the reference domain to it; the style encoder needs the reference's own domain."""
        path = self.reference.path
        if image is not None and path is not None:
            first = path.stem.replace("-", "_").replace(" ", "_").split("_")[0].lower()
            names = [self.reference_domain.itemText(i).lower() for i in range(self.reference_domain.count())]
            if first in names:
                self.reference_domain.blockSignals(True)
                self.reference_domain.setCurrentIndex(names.index(first))
                self.reference_domain.blockSignals(False)
        self.schedule("full")

    def _source_changed(self, image: np.ndarray | None) -> None:
        self.source_view.set_image(image)
        self.source_view_note.setVisible(image is None)
        self.schedule("full")

    def _alpha_moved(self, _value: int) -> None:
        if self.mode == "interpolate":
            self.schedule("preview" if self.alpha.isSliderDown() else "full")

    def model_changed(self, name: str) -> None:
        entry = self.weights.entry
        names = domain_names(entry.config) if entry is not None else []
        for combo in (self.domain, self.reference_domain):
            current = combo.currentIndex()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if 0 <= current < len(names):
                combo.setCurrentIndex(current)
            combo.blockSignals(False)
        self.schedule("full")

    def before_image(self) -> np.ndarray | None:
        return self.source.image

    # ------------------------------------------------------------------ requests
    def make_request(self) -> Request:
        if self.source.image is None:
            raise InputError("Choose a source photo (drop one on the Source slot).")
        src = self.source.frozen
        common = dict(model=self.weights.model, seed=self.seed.value(), source=src)
        domain = max(self.domain.currentIndex(), 0)
        if self.mode == "latent":
            return StarGANLatentRequest(target_domain=domain, psi=self.psi.value(), **common)
        if self.mode == "reference":
            if self.reference.image is None:
                raise InputError("Choose a reference photo whose style to copy.")
            return StarGANReferenceRequest(reference=self.reference.frozen,
                                           reference_domain=max(self.reference_domain.currentIndex(), 0), **common)
        style_a = LatentStyle(domain=domain, seed=self.seed.value(), psi=self.psi.value())
        if self.b_from_reference.isChecked():
            if self.reference.image is None:
                raise InputError("Style B comes from the reference photo: choose one.")
            style_b = ReferenceStyle(image=self.reference.frozen,
                                     domain=max(self.reference_domain.currentIndex(), 0))
        else:
            style_b = LatentStyle(domain=domain, seed=self.seed_b.value(), psi=self.psi.value())
        return StarGANInterpolateRequest(style_a=style_a, style_b=style_b, alpha=self.alpha_value, **common)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "mode": self.mode, "domain": self.domain.currentIndex(),
                "psi": self.psi.value(), "reference_domain": self.reference_domain.currentIndex(),
                "seed_b": self.seed_b.value(), "b_from_reference": self.b_from_reference.isChecked(),
                "alpha": self.alpha.value()}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        if self.source.image is not None:
            out["source"] = self.source.image
        if self.reference.image is not None:
            out["reference"] = self.reference.image
        return out

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            self.source.set_image(arrays.get("source"))
            self.reference.set_image(arrays.get("reference"))
            self.set_mode(state.get("mode", "latent"))
            for w, k in ((self.domain, "domain"), (self.reference_domain, "reference_domain")):
                if 0 <= int(state.get(k, 0)) < w.count():
                    w.setCurrentIndex(int(state.get(k, 0)))
            self.psi.setValue(float(state.get("psi", 1.0)))
            self.seed_b.setValue(int(state.get("seed_b", 1)))
            self.b_from_reference.setChecked(bool(state.get("b_from_reference", False)))
            self.alpha.setValue(int(state.get("alpha", SLIDER_STEPS // 2)))
