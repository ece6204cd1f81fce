"""Image, label-map, instance-map and pose I/O: odd inputs load, bad ones fail with a clear message."""
from __future__ import annotations

import io as _io
import json

import numpy as np
import pytest
from PIL import Image

from engine import io
from engine.api import InputError


def _save(tmp_path, name, img, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


def test_rgb_png_round_trip(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    p = tmp_path / "a.png"
    io.save_image(p, arr)
    out = io.load_image(p)
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    assert np.array_equal(out, arr)


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (255, 0, 0))
    img.putpixel((0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = _save(tmp_path, "o.jpg", img, exif=exif.tobytes(), quality=100)
    out = io.load_image(p)
    assert out.shape == (4, 2, 3)  # width and height swapped


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "1", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.new("RGB", (6, 4), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray(np.full((4, 6), 40000, np.uint16))
    else:
        img = base.convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"  # PNG cannot hold CMYK
    p = _save(tmp_path, f"m.{ext}", img)
    out = io.load_image(p)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert abs(int(out[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1


def test_rgba_over_white_and_kept(tmp_path):
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 255)  # opaque red; others fully transparent
    p = _save(tmp_path, "t.png", Image.fromarray(arr, "RGBA"))
    over = io.load_image(p)
    assert tuple(over[0, 0]) == (255, 0, 0) and tuple(over[1, 1]) == (255, 255, 255)
    kept = io.load_image(p, alpha="keep")
    assert kept.shape == (2, 2, 4) and kept[1, 1, 3] == 0


def test_empty_corrupt_missing_and_folder(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        io.load_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="not an image"):
        io.load_image(tmp_path / "junk.png")
    buf = _io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[:60])
    with pytest.raises(InputError):
        io.load_image(tmp_path / "trunc.png")
    with pytest.raises(InputError, match="no such file"):
        io.load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        io.load_image(tmp_path)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    from engine import limits

    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 1000)
    p = _save(tmp_path, "big.png", Image.new("L", (100, 100)))
    with pytest.raises(InputError, match="MP|bomb"):
        io.load_image(p)


def test_palette_lookup_tables_round_trip():
    pal = io.Palette("t", ("a", "b", "c"), np.array([[0, 0, 0], [255, 0, 0], [0, 10, 200]], np.uint8))
    labels = np.array([[0, 1], [2, 1]], np.int32)
    rgb = pal.colorize(labels)
    assert tuple(rgb[1, 0]) == (0, 10, 200)
    assert np.array_equal(pal.decode(rgb), labels)
    rgb[0, 0] = (250, 3, 1)
    with pytest.raises(InputError, match="not in the"):
        pal.decode(rgb)
    assert pal.decode(rgb, strict=False)[0, 0] == 1  # nearest colour is red


def test_label_map_png_round_trip_with_palette(tmp_path):
    pal = io.Palette("t", ("a", "b"), np.array([[0, 0, 0], [9, 9, 9]], np.uint8))
    labels = np.array([[0, 1, 1], [1, 0, 0]], np.int32)
    p = tmp_path / "l.png"
    io.save_label_map(p, labels, pal)
    assert Image.open(p).mode == "P"
    assert np.array_equal(io.load_label_map(p), labels)
    with pytest.raises(InputError, match="knows 1 classes"):
        io.load_label_map(p, num_classes=1)


def test_colour_label_map_needs_palette(tmp_path):
    p = _save(tmp_path, "c.png", Image.new("RGB", (3, 3), (9, 9, 9)))
    with pytest.raises(InputError, match="colour image"):
        io.load_label_map(p)


def test_instance_map_16bit_round_trip(tmp_path):
    ids = np.array([[0, 1000, 40001], [65535, 7, 7]], np.int32)
    p = tmp_path / "i.png"
    io.save_instance_map(p, ids)
    assert np.array_equal(io.load_instance_map(p), ids)
    with pytest.raises(InputError):
        io.save_instance_map(p, np.array([[70000]]))


def test_instance_edges_marks_both_sides_of_a_boundary():
    ids = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    e = io.instance_edges(ids)
    expected = np.array([[0, 1, 1], [1, 1, 1], [1, 1, 1]], np.float32)
    assert np.array_equal(e, expected)


def test_openpose_json_round_trip_and_errors(tmp_path):
    kp = np.zeros((18, 3), np.float32)
    kp[:, 0] = np.arange(18) * 3
    kp[:, 1] = np.arange(18) * 2
    kp[:, 2] = 1
    kp[5, 2] = 0  # missing joint
    p = tmp_path / "pose.json"
    io.save_openpose_json(p, kp, size=(256, 256))
    assert np.allclose(io.load_openpose_json(p), kp)
    (tmp_path / "bad.json").write_text(json.dumps({"people": []}))
    with pytest.raises(InputError, match="no person"):
        io.load_openpose_json(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    with pytest.raises(InputError, match="54"):
        io.load_openpose_json(tmp_path / "short.json")
    assert len(io.OPENPOSE_LIMBS) == 17 and len(io.OPENPOSE_JOINTS) == 18
