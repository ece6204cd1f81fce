"""The shipped pose model (committed in weights/): the pose canvas has a model out of the box, it draws
the figure where the pose says, in the exemplar's outfit colours, and dragging a joint moves that limb."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.io import OPENPOSE_JOINTS, load_image, load_openpose_json
from engine.requests.base import frozen
from engine.requests.cocosnet import ExemplarRequest
from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request
from engine.weights import Manifest

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
J = {n: i for i, n in enumerate(OPENPOSE_JOINTS)}


@pytest.fixture(scope="module")
def pose_model() -> str:
    names = [n for n, e in Manifest().entries.items() if e.config.get("input_kind") == "pose"]
    assert names, "no pose model is registered in weights/manifest.json"
    return names[0]


@pytest.fixture(scope="module")
def generate(pose_model):
    store, cache = ModelStore(), LRUCache(8)
    exemplar = load_image(EXAMPLES / "exemplars" / "pose_000039.png")
    ex_kp = load_openpose_json(EXAMPLES / "maps" / "pose_000039.json")

    def run(keypoints: np.ndarray, canvas: tuple[int, int] = (128, 128)) -> np.ndarray:
        req = ExemplarRequest(model=pose_model, keypoints=frozen(keypoints), exemplar=frozen(exemplar),
                              exemplar_keypoints=frozen(ex_kp), canvas_size=canvas)
        return run_request(req, make_context(0, req, store, cache, CancelToken())).image.astype(np.float32)

    return run


def _limb_band(kp: np.ndarray, joints: tuple[str, ...], shape: tuple[int, int], radius: int) -> np.ndarray:
    band = np.zeros(shape, np.uint8)
    pts = [tuple(int(round(v)) for v in kp[J[j], :2]) for j in joints]
    for a, b in zip(pts, pts[1:], strict=False):
        cv2.line(band, a, b, 1, thickness=2 * radius)
    return band > 0


def test_dragging_a_joint_moves_that_limb(generate):
    kp = load_openpose_json(EXAMPLES / "maps" / "pose_000019.json")
    before = generate(kp)
    moved = kp.copy()
    # swing the right forearm: the wrist rotates 70° about the elbow
    elbow, wrist = moved[J["r_elbow"], :2], moved[J["r_wrist"], :2]
    angle = np.deg2rad(70)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    moved[J["r_wrist"], :2] = elbow + rot @ (wrist - elbow)
    after = generate(moved)
    diff = np.abs(after - before).mean(axis=2)
    radius = max(4, before.shape[0] // 24)
    limb = (_limb_band(kp, ("r_elbow", "r_wrist"), diff.shape, radius)
            | _limb_band(moved, ("r_elbow", "r_wrist"), diff.shape, radius))
    inside, outside = diff[limb].mean(), diff[~limb].mean()
    assert inside > 8.0, f"the forearm region barely changed ({inside:.1f} grey levels)"
    assert inside > 4 * outside, f"the change is not on the dragged limb: {inside:.1f} inside vs {outside:.1f} outside"


def test_the_figure_is_drawn_where_the_pose_is(generate):
    from engine.metrics.cocosnet_poses import WALL_DE
    from engine.metrics.speckle import to_lab

    kp = load_openpose_json(EXAMPLES / "maps" / "pose_000019.json")
    out = generate(kp).astype(np.uint8)
    lab = to_lab(out)
    wall = np.median(lab[:, :8].reshape(-1, 3), axis=0)  # the left edge: wall only in this example
    person = np.linalg.norm(lab - wall, axis=2) > WALL_DE
    on_skeleton = _limb_band(kp, ("neck", "r_hip", "r_knee", "r_ankle"), person.shape, 2)
    far = ~_limb_band(kp, ("nose", "neck", "r_hip", "r_knee", "r_ankle"), person.shape, out.shape[0] // 4)
    assert person[on_skeleton].mean() > 0.7, "the torso and right leg are not drawn along the skeleton"
    assert person[far].mean() < 0.1, "paint far from the figure"


def test_a_portrait_canvas_is_padded_to_the_models_square_frame_not_squeezed(generate):
    from engine.tasks.exemplar import pad_photo, padded_canvas

    assert padded_canvas((176, 256), 1.0) == ((256, 256), (40, 0))
    assert padded_canvas((300, 100), 1.0) == ((300, 300), (0, 100))
    photo = np.zeros((4, 2, 3), np.uint8)
    photo[:, 0], photo[:, 1] = 10, 200
    padded, offset = pad_photo(photo, 1.0)
    assert padded.shape == (4, 4, 3) and offset == (1, 0)
    assert (padded[:, 0] == 10).all() and (padded[:, 3] == 200).all()  # the border colours carried outwards

    kp = load_openpose_json(EXAMPLES / "maps" / "pose_000019.json")  # drawn on a 128² canvas
    square = generate(kp)
    tall = kp.copy()  # the same figure, twice as large, centred on the studio's 176×256 canvas
    tall[:, 0] = (tall[:, 0] - 64) * 2 + 88
    tall[:, 1] *= 2
    portrait = generate(tall, canvas=(176, 256))
    assert portrait.shape == (128, 88, 3)
    # what the network drew on its square frame, cropped to the canvas: not a squeezed figure
    assert np.abs(portrait - square[:, 20:108]).mean() < 1.0


@pytest.mark.parametrize("canvas", [(0, 256), (176, -3), (10**9, 256)])
def test_an_absurd_pose_canvas_is_one_plain_error(pose_model, canvas):
    from engine.requests.base import InputError

    exemplar = load_image(EXAMPLES / "exemplars" / "pose_000039.png")
    kp = load_openpose_json(EXAMPLES / "maps" / "pose_000019.json")
    req = ExemplarRequest(model=pose_model, keypoints=frozen(kp), exemplar=frozen(exemplar),
                          exemplar_keypoints=frozen(kp), canvas_size=canvas)
    with pytest.raises(InputError, match="pose canvas"):
        run_request(req, make_context(0, req, ModelStore(), LRUCache(2), CancelToken()))
