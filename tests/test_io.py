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


@pytest.mark.parametrize("dtype, high", [(np.uint8, 200), (np.int32, 40_000)])
def test_resize_nearest_takes_height_width_and_samples_like_torchvision(dtype, high):
    """One nearest resize for label and instance maps: size is (H, W), pixels are PIL's nearest
    (what torchvision Resize(NEAREST) gives the official loaders and our training data), ids never blend."""
    arr = np.random.default_rng(1).integers(0, high, (12, 20)).astype(dtype)
    out = io.resize_nearest(arr, (5, 7))
    assert out.shape == (5, 7) and out.dtype == dtype
    pil = np.asarray(Image.fromarray(arr.astype(np.int32), mode="I").resize((7, 5), Image.NEAREST))
    assert np.array_equal(out, pil.astype(dtype))
    assert set(np.unique(out)) <= set(np.unique(arr))
    assert io.resize_nearest(arr, 6).shape == (6, 6)
    same = io.resize_nearest(arr, arr.shape)
    same[0, 0] += 1  # a new array, never a view of the caller's map
    assert same[0, 0] != arr[0, 0]


def test_image_grid_tiles_on_white_resizing_to_the_first_image():
    red = np.zeros((10, 20, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((5, 5, 3), np.uint8)
    blue[..., 2] = 255
    grid = io.image_grid([red, blue, red], columns=2, pad=4)
    assert grid.shape == (2 * 10 + 3 * 4, 2 * 20 + 3 * 4, 3)
    assert (grid[4:14, 4:24] == red).all()
    assert (grid[4:14, 28:48] == (0, 0, 255)).all()  # resized to the first image's size
    assert (grid[18:28, 4:24] == red).all()
    assert (grid[18:28, 28:48] == 255).all() and (grid[:4] == 255).all() and (grid[:, 24:28] == 255).all()
    assert io.image_grid([red], columns=4).shape == (10 + 8, 20 + 8, 3)  # fewer images than columns
