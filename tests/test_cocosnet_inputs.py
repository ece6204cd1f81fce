"""CoCosNet input encoders on hand-made inputs; expected channels computed independently."""
from __future__ import annotations

import base64
import importlib.util
import zlib

import cv2
import numpy as np
import pytest

from engine.inputs.cocosnet import (
    CELEBAMASK_HQ_CLASSES,
    COCOSNET_CELEBAHQ_CLASSES,
    EDGE_PARTS,
    canny,
    encode_celebahq_edges,
    encode_celebahq_parsing,
    encode_for_config,
    encode_image,
    encode_labels,
    encode_pose,
    face_landmarks_from_photo,
    parsing_from_landmarks68,
    pose_from_photo,
)
from engine.io import source_dir
from engine.requests.base import InputError, MissingDependencyError


# ------------------------------------------------------------------------------------ labels
def test_labels_one_hot_with_unknown_value() -> None:
    lab = np.zeros((16, 16), np.uint8)
    lab[2:6, 3:9] = 3
    lab[10:, :4] = 150
    lab[12:, 12:] = 255  # unknown -> last channel
    t = encode_labels(lab, 151, size=16)
    assert t.shape == (151, 16, 16)
    expected_last = (lab == 150) | (lab == 255)
    assert np.array_equal(t[150].numpy() == 1, expected_last)
    assert np.array_equal(t[3].numpy() == 1, lab == 3)
    assert np.array_equal(t[0].numpy() == 1, lab == 0)
    assert float(t.sum()) == 16 * 16  # exactly one hot per pixel


def test_labels_nearest_downsampling_picks_pixel_centres() -> None:
    rows, cols = np.mgrid[0:32, 0:32]
    lab = ((rows * 3 + cols) % 7).astype(np.uint8)
    t = encode_labels(lab, 7, size=16).argmax(0).numpy()
    # PIL nearest at an exact ×2 reduction samples the source pixel (2i+1, 2j+1)
    assert np.array_equal(t, lab[1::2, 1::2])


def test_labels_reject_classes_out_of_range() -> None:
    with pytest.raises(InputError, match="class 9"):
        encode_labels(np.full((8, 8), 9), 8, size=8)
    with pytest.raises(InputError, match="H×W"):
        encode_labels(np.zeros((8, 8, 3)), 8, size=8)


# ------------------------------------------------------------------------ celebahq parsing
def test_celebahq_parsing_reorders_classes_and_puts_glasses_in_channel_16() -> None:
    names = CELEBAMASK_HQ_CLASSES
    p = np.zeros((8, 8), np.int32)
    p[0, :] = names.index("hair")
    p[1, :] = names.index("nose")
    p[2, :] = names.index("eye_g")
    p[3, :] = names.index("l_lip")
    p[4, :] = names.index("skin")
    t = encode_celebahq_parsing(p, size=8, names=names).numpy()
    assert t.shape == (19, 8, 8)
    assert COCOSNET_CELEBAHQ_CLASSES[16] == "eye_g" and 16 == 19 - 3
    assert (t[1, 0] == 1).all() and (t[9, 1] == 1).all() and (t[12, 3] == 1).all()
    assert (t[16, 2] == 1).all() and t[16].sum() == 8  # the glasses mask
    assert (t[2, 2] == 1).all() and (t[2, 4] == 1).all()  # under the glasses: skin
    assert (t[0, 5:] == 1).all()
    assert np.array_equal(t[np.r_[0:16, 17:19]].sum(0), np.ones((8, 8)))


# --------------------------------------------------------------------------------- edges
def _brute_edges(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    e = np.zeros_like(mask, dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] != mask[y, x]:
                    e[y, x] = True
    return e


def _brute_distance(edge: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(edge)
    out = np.zeros(edge.shape, dtype=np.float64)
    for y in range(edge.shape[0]):
        for x in range(edge.shape[1]):
            d = (np.abs(ys - y) + np.abs(xs - x)).min()
            out[y, x] = min(255, int(d / 3))
    return out / 255.0


def test_edge_encoding_part_edges_and_distance_maps() -> None:
    names = CELEBAMASK_HQ_CLASSES
    p = np.zeros((32, 32), np.int32)
    p[10:20, 12:22] = names.index("nose")
    t = encode_celebahq_edges(p, size=32, names=names).numpy()
    assert t.shape == (15, 32, 32)
    nose = p == names.index("nose")
    edges = _brute_edges(nose)
    assert np.array_equal(t[14] == 1, edges)
    assert np.array_equal(t[0], t[14])  # no photo: no Canny edges
    k = 1 + EDGE_PARTS.index("nose")
    np.testing.assert_allclose(t[k], _brute_distance(edges), atol=1e-6)
    for i, part in enumerate(EDGE_PARTS):
        if part != "nose":  # absent part: OpenCV finds no zero pixel -> 255 everywhere
            assert (t[1 + i] == 1.0).all(), part


def test_edge_encoding_adds_canny_edges_only_outside_the_face() -> None:
    names = CELEBAMASK_HQ_CLASSES
    p = np.zeros((48, 48), np.int32)
    p[8:40, 20:44] = names.index("skin")
    photo = np.full((48, 48, 3), 40, np.uint8)
    photo[:, 8:] = 220   # a strong step in the background at column 8
    photo[20:, 24:] = 90  # another step inside the skin region
    t = encode_celebahq_edges(p, photo, size=48, names=names).numpy()
    extra = (t[0] == 1) & (t[14] == 0)
    assert extra[:, 6:10].sum() >= 30  # background step found
    skin_interior = p == names.index("skin")
    assert not (extra & skin_interior).any()  # masked out inside the face


# skimage.feature.canny (scikit-image 0.26, defaults) on the 70×70 test image below.
_SKIMAGE_CANNY_70 = (
    "eNrFkc0NwjAMhV+KVXJAIkdO0BG6QTMKk6CMllE6AhuU+Nm+wwlLaV7sT/4r8L09jsNEhfBOQKEQ9akV9f2O3LZmyDXt"
    "RNDxJDJBxUAyxUAWDSrSkJojJ8vCuBDMLNSIV8zMZUgKZAokB7I4MlJL1DVEAimBVJ8oxUQSE5UYuuG8b52F8NIBsx9t"
    "ikSyPcA20TwyxUMiogVX2EfbYXMXbq9TU8xwYQ687/7juN0/2gcANBuE"
)


def test_canny_matches_scikit_image() -> None:
    img = np.zeros((70, 70), np.uint8)
    cv2.circle(img, (35, 35), 20, 200, -1)
    cv2.rectangle(img, (5, 5), (25, 40), 90, -1)
    expected = np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(_SKIMAGE_CANNY_70)), np.uint8))
    expected = expected[: 70 * 70].reshape(70, 70).astype(bool)
    got = canny(img)
    assert got.sum() == expected.sum() == 221
    assert np.array_equal(got, expected)


# ---------------------------------------------------------------------------------- pose
def test_pose_rendering_and_limb_distance_maps() -> None:
    kp = np.zeros((18, 3), np.float32)
    kp[1] = (20, 20, 1)  # neck
    kp[2] = (40, 20, 1)  # right shoulder -> limb 0 (neck, r_shoulder)
    t = encode_pose(kp, canvas_size=(64, 64), size=64).numpy()
    assert t.shape == (20, 64, 64)
    # neck disc BGR (255, 85, 0) blended 0.4 with the limb colour BGR (255, 0, 0) at 0.6,
    # then BGR -> RGB: (0, 34, 255)
    np.testing.assert_allclose(t[:3, 20, 20] * 255, [0, 34, 255], atol=0.5)
    # shoulder disc drawn with its own colour BGR (255, 170, 0), blended with the limb colour
    np.testing.assert_allclose(t[:3, 20, 40] * 255, [0, round(0.4 * 170), 255], atol=0.5)
    assert (t[:3, 50:, :] == 0).all()
    limb0 = t[3]
    assert limb0[20, 30] == 0.0  # on the limb
    assert limb0[40, 30] == pytest.approx(int(16 / 3) / 255)  # 16 px below the ellipse (half-width 4)
    assert (t[4:] == 1.0).all()  # the other 16 limbs are missing


def test_pose_encoding_rejects_bad_shapes() -> None:
    with pytest.raises(InputError, match="18 COCO keypoints"):
        encode_pose(np.zeros((17, 3)), (64, 64), 64)


def test_encode_for_config_channels() -> None:
    lab = np.zeros((32, 32), np.int32)
    assert encode_for_config("labels", 151, labels=lab, size=32).shape == (151, 32, 32)
    assert encode_for_config("celebahq_parsing", 19, labels=lab, size=32).shape == (19, 32, 32)
    assert encode_for_config("celebahq_edges", 15, labels=lab, size=32).shape == (15, 32, 32)
    assert encode_for_config("pose", 20, keypoints=np.zeros((18, 3)), size=32).shape == (20, 32, 32)
    with pytest.raises(InputError, match="pose keypoints"):
        encode_for_config("pose", 20, labels=lab, size=32)
    with pytest.raises(InputError, match="channels"):
        encode_for_config("celebahq_edges", 19, labels=lab, size=32)


def test_encode_image_range_and_resize() -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    img[..., 0] = 255
    t = encode_image(img, 16)
    assert t.shape == (3, 16, 16)
    assert t[0].min() == pytest.approx(1.0) and t[1].max() == pytest.approx(-1.0)
    with pytest.raises(InputError):
        encode_image(np.zeros((4, 4), np.uint8), 16)


# -------------------------------------------------------------------------- from a photo
def _template_landmarks() -> np.ndarray:
    lm = np.zeros((68, 2))
    a = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.stack([50 + 30 * np.cos(a), 50 + 35 * np.sin(a)], 1)  # jaw, lower half
    lm[17:22] = np.stack([np.linspace(25, 45, 5), [38, 35, 34, 35, 38]], 1)
    lm[22:27] = np.stack([np.linspace(55, 75, 5), [38, 35, 34, 35, 38]], 1)
    lm[27:31] = np.stack([[50] * 4, np.linspace(45, 60, 4)], 1)
    lm[31:36] = np.stack([np.linspace(44, 56, 5), [62, 63, 64, 63, 62]], 1)
    for s, cx in ((36, 35), (42, 65)):
        t = np.linspace(0, 2 * np.pi, 7)[:-1]
        lm[s:s + 6] = np.stack([cx + 6 * np.cos(t + np.pi), 45 + 3 * np.sin(t + np.pi)], 1)
    t = np.linspace(0, 2 * np.pi, 13)[:-1]
    lm[48:60] = np.stack([50 + 12 * np.cos(t + np.pi), 74 - 6 * np.sin(t + np.pi)], 1)
    t = np.linspace(0, 2 * np.pi, 9)[:-1]
    lm[60:68] = np.stack([50 + 8 * np.cos(t + np.pi), 74 - 2 * np.sin(t + np.pi)], 1)
    return lm


def test_parsing_from_landmarks_places_parts() -> None:
    names = CELEBAMASK_HQ_CLASSES
    p = parsing_from_landmarks68(_template_landmarks(), (100, 100), names)
    assert p[60, 30] == names.index("skin")  # cheek
    assert p[45, 35] == names.index("r_eye") and p[45, 65] == names.index("l_eye")
    assert p[5, 5] == names.index("background")
    assert (p == names.index("u_lip")).any() and (p == names.index("l_lip")).any()
    assert (p == names.index("nose")).any() and (p == names.index("l_brow")).any()


@pytest.mark.skipif(importlib.util.find_spec("dlib") is not None or source_dir("dlib-bin") is not None,
                    reason="dlib is installed or fetched")
def test_face_landmarks_need_dlib() -> None:
    with pytest.raises(MissingDependencyError, match="dlib"):
        face_landmarks_from_photo(np.zeros((32, 32, 3), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed")
def test_pose_from_photo_needs_mediapipe() -> None:
    with pytest.raises(MissingDependencyError, match="mediapipe"):
        pose_from_photo(np.zeros((32, 32, 3), np.uint8))
