"""Hostile cases over the engine's entry points: CLI sub-commands, engine requests, image / pose /
scene / panoptic JSON readers, weights import and verify, the manifest, TF checkpoint import.

``make_cases(root)`` writes the hostile files under ``root/in`` and returns {group: [case, ...]}
(the case format is in ``hostile.py``). Outputs go to ``root/out``, the weights folder is
``root/w/a/weights`` (so a name like ``../../x`` would land in ``root/w`` and be caught).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tests.reliability.hostile import REPO

EX = REPO / "assets" / "examples"
FACE = str(EX / "faces" / "female_000019.png")
FACE2 = str(EX / "faces" / "male_000039.png")
PARSING = str(EX / "parsing" / "female_000019.png")
PARSING2 = str(EX / "parsing" / "male_000039.png")
SCENE_MAP = str(EX / "maps" / "scene_000019.png")
SCENE_MAP2 = str(EX / "maps" / "scene_000039.png")
SCENE_PHOTO = str(EX / "exemplars" / "scene_000019.png")
SCENE_PHOTO2 = str(EX / "exemplars" / "scene_000039.png")
SKETCH = str(EX / "sketches" / "bird.png")


# ------------------------------------------------------------------------------ file makers
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` (the data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def bmp_with_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 12, 0, 0, 54) + info + b"\x00" * 12


def gif_with_header(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02D\x01\x00;")


def hostile_images(d: Path) -> dict[str, Path]:
    """Image files that must each be refused with a message naming them."""
    d.mkdir(parents=True, exist_ok=True)
    good = Image.open(FACE)
    buf = d / "_good.png"
    good.save(buf)
    raw = buf.read_bytes()
    jpg = d / "_good.jpg"
    good.convert("RGB").save(jpg, quality=90)
    out: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        out[name] = d / name

    out["missing.png"] = d / "missing.png"
    (d / "folder.png").mkdir()
    out["folder.png"] = d / "folder.png"
    put("empty.png", b"")
    put("text.png", b"hello, this is not an image\n")
    put("lfs.png", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    put("random.png", np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    put("truncated.png", raw[:80])
    put("truncated_half.png", raw[: len(raw) // 2])
    bad = bytearray(raw)
    idat = bad.find(b"IDAT")
    for i in range(idat + 8, min(idat + 200, len(bad) - 20)):
        bad[i] ^= 0x5A
    put("corrupt_idat.png", bytes(bad))
    put("header_7000x7000.png", png_with_header(7000, 7000))
    put("header_100000x100000.png", png_with_header(100_000, 100_000))
    put("header_6500x6500.png", png_with_header(6500, 6500))
    strip = d / "strip_1x80000.png"
    Image.new("L", (1, 80_000), 0).save(strip)
    out[strip.name] = strip
    strip2 = d / "strip_80000x1.png"
    Image.new("L", (80_000, 1), 0).save(strip2)
    out[strip2.name] = strip2
    put("header_bmp_50000.bmp", bmp_with_header(50_000, 50_000))
    put("header_gif_65535.gif", gif_with_header(65_535, 65_535))
    put("truncated.jpg", jpg.read_bytes()[:300])
    loop = d / "loop.png"
    os.symlink(loop.name, loop)
    out["loop.png"] = loop
    out["\x1b[2Jescape.png"] = d / "\x1b[2Jescape.png"  # missing, with a terminal escape in its name
    buf.unlink()
    jpg.unlink()
    return out


def _write_json(path: Path, value: Any = None, text: str | None = None) -> Path:
    path.write_text(text if text is not None else json.dumps(value))
    return path


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def hostile_pose_json(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    ok = [100.0, 100.0, 1.0] * 18
    cases: dict[str, Any] = {
        "list_top": [1, 2, 3],
        "people_int": {"people": [5]},
        "people_empty": {"people": []},
        "people_str": {"people": "me"},
        "kp_short": {"people": [{"pose_keypoints_2d": [1, 2, 3]}]},
        "kp_strings": {"people": [{"pose_keypoints_2d": ["a"] * 54}]},
        "kp_nested": {"people": [{"pose_keypoints_2d": [[1, 2, 3]] * 18}]},
        "kp_bool": {"people": [{"pose_keypoints_2d": [True] * 54}]},
        "kp_huge": {"people": [{"pose_keypoints_2d": [1e300, 1e300, 1.0] * 18}]},
        "kp_bigint": {"people": [{"pose_keypoints_2d": [10**30, 5, 1] * 18}]},
        "kp_null": {"people": [{"pose_keypoints_2d": None}]},
        "canvas_huge": {"people": [{"pose_keypoints_2d": ok}], "canvas_width": 10**9, "canvas_height": 10**9},
        "canvas_negative": {"people": [{"pose_keypoints_2d": ok}], "canvas_width": -5, "canvas_height": 100},
        "canvas_string": {"people": [{"pose_keypoints_2d": ok}], "canvas_width": "wide", "canvas_height": 100},
        "canvas_zero": {"people": [{"pose_keypoints_2d": ok}], "canvas_width": 0, "canvas_height": 0},
    }
    out = {k: _write_json(d / f"{k}.json", v) for k, v in cases.items()}
    out["nan"] = _write_json(d / "nan.json", text='{"people": [{"pose_keypoints_2d": [NaN' + ", 1" * 53 + "]}]}")
    out["infinity"] = _write_json(d / "infinity.json",
                                  text='{"people": [{"pose_keypoints_2d": [Infinity' + ", 1" * 53 + "]}]}")
    out["deep"] = _write_json(d / "deep.json", text='{"people": ' + _deep(100_000) + "}")
    out["deep_object"] = _write_json(d / "deep_object.json", text='{"a":' * 50_000 + "1" + "}" * 50_000)
    out["not_json"] = _write_json(d / "not_json.json", text="people: me\n")
    out["empty"] = _write_json(d / "empty.json", text="")
    (d / "utf16.json").write_bytes('{"people": []}'.encode("utf-16"))
    out["utf16"] = d / "utf16.json"
    big = d / "big.json"
    with open(big, "w") as fh:
        fh.write('{"people": [], "pad": "')
        fh.write("x" * (17 * 1024 * 1024))
        fh.write('"}')
    out["big"] = big
    out["missing"] = d / "missing.json"
    return out


def hostile_scene_json(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(EX / "sketches" / "scene_bird.png", d / "scene_bird.png")
    obj = {"class": "bird", "box": [10, 10, 100, 100], "sketch": "scene_bird.png"}
    cases: dict[str, Any] = {
        "list_top": [obj],
        "size_huge": {"size": [100_000, 100_000], "objects": []},
        "size_strings": {"size": ["a", "b"], "objects": []},
        "size_float": {"size": [256.5, 192], "objects": []},
        "size_bool": {"size": [True, True], "objects": []},
        "size_negative": {"size": [-256, 192], "objects": []},
        "objects_dict": {"size": [256, 192], "objects": {"a": 1}},
        "objects_ints": {"size": [256, 192], "objects": [5, 6]},
        "too_many": {"size": [256, 192], "objects": [obj] * 1000},
        "box_strings": {"size": [256, 192], "objects": [{**obj, "box": ["a", 1, 2, 3]}]},
        "box_short": {"size": [256, 192], "objects": [{**obj, "box": [1, 2]}]},
        "box_empty": {"size": [256, 192], "objects": [{**obj, "box": [500, 500, 600, 600]}]},
        "class_int": {"size": [256, 192], "objects": [{**obj, "class": 7}]},
        "sketch_missing": {"size": [256, 192], "objects": [{**obj, "sketch": "nope.png"}]},
        "sketch_escape": {"size": [256, 192], "objects": [{**obj, "sketch": "../../../../etc/passwd"}]},
        "sketch_int": {"size": [256, 192], "objects": [{**obj, "sketch": 3}]},
        "background_missing": {"size": [256, 192], "background": "nope.png", "objects": []},
        "sketch_wrong_size": {"size": [64, 64], "objects": [{**obj, "box": [1, 1, 30, 30]}]},
    }
    out = {k: _write_json(d / f"{k}.json", v) for k, v in cases.items()}
    out["box_overflow"] = _write_json(d / "box_overflow.json", text='{"size": [256, 192], "objects": [{"class": '
                                      '"bird", "box": [1e400, 1, 50, 50], "sketch": "scene_bird.png"}]}')
    out["nan_box"] = _write_json(d / "nan_box.json", text='{"size": [256, 192], "objects": [{"class": "bird", '
                                 '"box": [NaN, 1, 50, 50], "sketch": "scene_bird.png"}]}')
    out["deep"] = _write_json(d / "deep.json", text='{"size": [256, 192], "objects": ' + _deep(100_000) + "}")
    out["not_json"] = _write_json(d / "not_json.json", text="{size: 1}")
    out["missing"] = d / "missing.json"
    return out


def hostile_panoptic_json(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Any] = {
        "list_top": [1],
        "segments_str": {"segments_info": "x"},
        "segments_ints": {"segments_info": [5]},
        "segment_no_id": {"segments_info": [{"category_id": 1}]},
        "segment_str_id": {"segments_info": [{"id": "a", "category_id": 1}]},
        "segment_float_cat": {"segments_info": [{"id": 1, "category_id": 1.5}]},
        "segment_unknown_cat": {"segments_info": [{"id": 1, "category_id": 101}]},
        "segment_huge_id": {"segments_info": [{"id": 10**30, "category_id": 1}]},
        "annotations_dict": {"annotations": {"a": 1}},
        "annotations_ints": {"annotations": [1, 2]},
        "no_match": {"annotations": [{"file_name": "other.png", "segments_info": []}]},
        "categories_str": {"segments_info": [], "categories": "x"},
        "categories_no_id": {"segments_info": [], "categories": [{"isthing": 1}]},
    }
    out = {k: _write_json(d / f"{k}.json", v) for k, v in cases.items()}
    out["deep"] = _write_json(d / "deep.json", text='{"segments_info": ' + _deep(100_000) + "}")
    out["nan"] = _write_json(d / "nan.json", text='{"segments_info": [{"id": NaN, "category_id": 1}]}')
    out["not_json"] = _write_json(d / "not_json.json", text="segments")
    out["missing"] = d / "missing.json"
    return out


# ------------------------------------------------------------------------------ weights files
def _nested_pickle(depth: int) -> bytes:
    """A dict whose key is ``depth`` levels of tuples each holding the previous one twice (shared)."""
    b = bytearray(b"\x80\x02}q\x00)r" + struct.pack("<I", 1))
    for i in range(1, depth + 1):
        b += b"j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i) + b"\x86" + b"r" + struct.pack("<I", i + 1)
    return bytes(b + b"K\x01s.")


def _deep_list_pickle(depth: int) -> bytes:
    return b"\x80\x02" + b"(" * depth + b"K\x01" + b"l" * depth + b"."


def _payload_pickle(marker: Path) -> bytes:
    cmd = f"touch {marker}".encode()
    return (b"\x80\x02cposix\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R.")


def _zip_with_pickle(good: Path, out: Path, pickle_bytes: bytes) -> Path:
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(out, "w") as o:
        for info in z.infolist():
            o.writestr(info, pickle_bytes if info.filename.endswith("data.pkl") else z.read(info))
    return out


def _safetensors_declaring(path: Path, nbytes: int) -> Path:
    header = json.dumps({"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 16)
    return path


def hostile_checkpoints(d: Path, marker: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    good = d / "_good.pt"
    torch.save({"a": torch.zeros(3)}, good)
    out: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        out[name] = d / name

    put("empty.pt", b"")
    put("text.pt", b"not a checkpoint\n")
    put("lfs.pt", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    put("truncated.pt", good.read_bytes()[:200])
    put("nested_tuples.pkl", _nested_pickle(60))
    put("deep_lists.pkl", _deep_list_pickle(5000))
    put("payload.pkl", _payload_pickle(marker))
    out["nested_tuples.pt"] = _zip_with_pickle(good, d / "nested_tuples.pt", _nested_pickle(60))
    out["payload.pt"] = _zip_with_pickle(good, d / "payload.pt", _payload_pickle(marker))
    out["deep_lists.pt"] = _zip_with_pickle(good, d / "deep_lists.pt", _deep_list_pickle(5000))
    put("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    put("short.safetensors", b"\x01\x02")
    put("hugeheader.safetensors", struct.pack("<Q", 2**62) + b"{}")
    out["declares_3GiB.safetensors"] = _safetensors_declaring(d / "declares_3GiB.safetensors", 3 * 1024**3)
    put("random.ckpt", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "folder.pt").mkdir()
    out["folder.pt"] = d / "folder.pt"
    out["missing.pt"] = d / "missing.pt"
    good.unlink()
    return out


def hostile_tf(d: Path) -> dict[str, Path]:
    """TF checkpoint prefixes (``X`` with ``X.index`` / ``X.data-00000-of-00001``)."""
    from engine.weights.tf_checkpoint import BundleEntry, encode_entry, encode_header, write_checkpoint, write_table

    d.mkdir(parents=True, exist_ok=True)
    good = write_checkpoint(d / "_good", {"a": np.arange(12, dtype=np.float32).reshape(3, 4),
                                          "b": np.ones(5, np.float32)})
    index = (d / "_good.index").read_bytes()
    data = (d / "_good.data-00000-of-00001").read_bytes()
    out: dict[str, Path] = {}

    def prefix(name: str, index_bytes: bytes | None, data_bytes: bytes | None = data) -> None:
        p = d / name
        if index_bytes is not None:
            (d / f"{name}.index").write_bytes(index_bytes)
        if data_bytes is not None:
            (d / f"{name}.data-00000-of-00001").write_bytes(data_bytes)
        out[name] = p

    n = len(index)
    for cut in sorted({1, 8, 20, 47, n // 3, n // 2, n - 49, n - 9, n - 1}):
        prefix(f"index_cut{cut}", index[:cut])
    flipped = bytearray(index)
    flipped[len(index) // 3] ^= 0xFF
    prefix("index_flipped", bytes(flipped))
    prefix("index_empty", b"")
    prefix("no_data", index, None)
    prefix("data_empty", index, b"")
    prefix("data_short", index, data[:10])

    def table(entries: dict[bytes, bytes], header: bytes | None = None) -> bytes:
        write_table(d / "_t.index", sorted({b"": header or encode_header(1), **entries}.items()))
        return (d / "_t.index").read_bytes()

    prefix("tensor_3GiB_sparse",
           table({b"w": encode_entry(BundleEntry(1, (3 * 1024**3 // 4,), 0, 0, 3 * 1024**3, None))}))
    os.truncate(d / "tensor_3GiB_sparse.data-00000-of-00001", 3 * 1024**3)  # sparse: no disk used
    prefix("shape_mismatch", table({b"w": encode_entry(BundleEntry(1, (10**6,), 0, 0, 16, None))}))
    prefix("offset_huge", table({b"w": encode_entry(BundleEntry(1, (4,), 0, 2**62, 16, None))}))
    prefix("dtype_unknown", table({b"w": encode_entry(BundleEntry(7, (4,), 0, 0, 16, None))}))
    prefix("shard_missing", table({b"w": encode_entry(BundleEntry(1, (4,), 3, 0, 16, None))}))
    prefix("shards_huge", table({b"w": encode_entry(BundleEntry(1, (4,), 0, 0, 16, None))},
                                header=b"\x08" + b"\xff" * 9 + b"\x01"))
    prefix("entry_truncated", table({b"w": encode_entry(BundleEntry(1, (4,), 0, 0, 16, None))[:-3]}))
    prefix("entry_fixed_cut", table({b"w": b"\x09\x01\x02"}))
    out["missing"] = d / "missing_prefix"
    for f in d.glob("_*"):
        f.unlink()
    del good
    return out


# ------------------------------------------------------------------------------ the cases
def _cli(name: str, argv: list[str], expect: list[str]) -> dict:
    return {"name": name, "kind": "cli", "argv": [str(a) for a in argv], "expect": [str(e) for e in expect]}


def _call(name: str, call: str, args: list, expect: list[str]) -> dict:
    return {"name": name, "kind": "call", "call": call, "args": args, "expect": [str(e) for e in expect]}


def _expect_for(path: Path) -> list[str]:
    return [str(path), path.name]


def image_cases(images: dict[str, Path], out: Path) -> list[dict]:
    o = str(out / "img.png")
    # (label, argv template with {X} for the hostile image)
    templates = [
        ("latent-source", ["generate", "stargan2-latent", "--source", "{X}", "--domain", "male", "--out", o]),
        ("reference-source", ["generate", "stargan2-reference", "--source", "{X}", "--reference", FACE2,
                              "--ref-domain", "male", "--out", o]),
        ("reference-ref", ["generate", "stargan2-reference", "--source", FACE, "--reference", "{X}",
                           "--ref-domain", "male", "--out", o]),
        ("interp-style", ["generate", "stargan2-interpolate", "--source", FACE, "--style-a", "latent:female",
                          "--style-b", "ref:{X}:male", "--out", o]),
        ("cocosnet-exemplar", ["generate", "cocosnet", "--input", SCENE_MAP, "--exemplar", "{X}", "--out", o]),
        ("cocosnet-input", ["generate", "cocosnet", "--input", "{X}", "--exemplar", SCENE_PHOTO2, "--out", o]),
        ("edit-photo", ["generate", "edit", "--photo", "{X}", "--map", SCENE_MAP, "--edited-map", SCENE_MAP2,
                        "--out", o]),
        ("edit-map", ["generate", "edit", "--photo", SCENE_PHOTO, "--map", "{X}", "--edited-map", SCENE_MAP2,
                      "--out", o]),
        ("makeup-portrait", ["generate", "makeup", "--portrait", "{X}", "--portrait-map", PARSING,
                             "--exemplar", FACE2, "--exemplar-map", PARSING2, "--out", o]),
        ("makeup-exemplar", ["generate", "makeup", "--portrait", FACE, "--portrait-map", PARSING,
                             "--exemplar", "{X}", "--exemplar-map", PARSING2, "--out", o]),
        ("panoptic-labels", ["generate", "panoptic", "--labels", "{X}", "--out", o]),
        ("panoptic-instances", ["generate", "panoptic", "--labels", SCENE_MAP, "--instances", "{X}", "--out", o]),
        ("sketch", ["generate", "sketch", "--sketch", "{X}", "--class", "bird", "--out", o]),
    ]
    cases = []
    for label, template in templates:
        for key, path in images.items():
            argv = [a.replace("{X}", str(path)) for a in template]
            cases.append(_cli(f"cli-{label}-{key!a}", argv, _expect_for(path)))
    for key, path in images.items():  # the readers themselves (engine API)
        cases.append(_call(f"api-load_image-{key!a}", "engine.io:load_image", [str(path)], _expect_for(path)))
        cases.append(_call(f"api-load_label_map-{key!a}", "engine.io:load_label_map", [str(path)], _expect_for(path)))
    return cases


def json_cases(pose: dict[str, Path], scene: dict[str, Path], pan: dict[str, Path], out: Path) -> list[dict]:
    o = str(out / "json.png")
    cases = []
    for key, path in pose.items():
        cases.append(_cli(f"cli-cocosnet-pose-{key}", ["generate", "cocosnet", "--input", path, "--exemplar",
                                                       SCENE_PHOTO2, "--out", o], _expect_for(path)))
        if not key.startswith("canvas_"):  # (those have valid keypoints; their canvas is refused below)
            cases.append(_call(f"api-openpose-{key}", "engine.io:load_openpose_json", [str(path)], _expect_for(path)))
        if key.startswith("canvas_") or key in ("deep", "nan", "big", "missing", "not_json", "empty", "utf16"):
            cases.append(_call(f"api-openpose-canvas-{key}", "engine.io:load_openpose_canvas", [str(path)],
                               _expect_for(path)))
    for key, path in scene.items():
        cases.append(_cli(f"cli-scene-{key}", ["generate", "scene", "--sketch", path, "--out", o], _expect_for(path)))
        cases.append(_call(f"api-scene-{key}", "engine.inputs.sketch:load_scene_sketch", [str(path)],
                           _expect_for(path)))
    coco_png = out.parent / "in" / "coco.png"
    Image.new("RGB", (32, 32), (1, 0, 0)).save(coco_png)
    for key, path in pan.items():
        cases.append(_cli(f"cli-panoptic-coco-{key}", ["generate", "panoptic", "--coco-png", coco_png,
                                                       "--coco-json", path, "--out", o], _expect_for(path)))
        if key != "segment_unknown_cat":  # category 101 is a valid COCO-Stuff class for the reader
            cases.append(_call(f"api-coco-{key}", "engine.inputs.panoptic:import_coco_panoptic",
                               [str(coco_png), str(path)], _expect_for(path)))
    return cases


def argument_cases(out: Path) -> list[dict]:
    o = str(out / "arg.png")
    latent = ["generate", "stargan2-latent", "--source", FACE, "--domain", "male", "--out", o]
    interp = ["generate", "stargan2-interpolate", "--source", FACE, "--style-a", "latent:female",
              "--style-b", "latent:male", "--out", o]
    makeup = ["generate", "makeup", "--portrait", FACE, "--portrait-map", PARSING, "--exemplar", FACE2,
              "--exemplar-map", PARSING2, "--out", o]
    cases = []
    for v in ["-1", "0", "65", "1000000000", "abc", "1.5", "", "99999999999999999999999"]:
        cases.append(_cli(f"num-{v}", latent + ["--num", v], ["--num"]))
    for v in ["-1", "0", "1", "65", "1000000", "x"]:
        cases.append(_cli(f"steps-{v}", interp + ["--steps", v], ["--steps"]))
    for v in ["0", "-5", "8", "100000", "big", "1e3"]:
        for base, label in ((latent, "latent"), (makeup, "makeup")):
            cases.append(_cli(f"preview-{label}-{v}", base + ["--preview-size", v], ["--preview-size"]))
        cases.append(_cli(f"preview-sketch-{v}", ["generate", "sketch", "--sketch", SKETCH, "--class", "bird",
                                                  "--out", o, "--preview-size", v], ["--preview-size"]))
    for v in ["-1", str(2**64), "seed"]:
        cases.append(_cli(f"seed-{v}", latent + ["--seed", v], ["--seed"]))
    for v in ["nan", "inf", "-inf", "1e400", "x"]:
        cases.append(_cli(f"psi-{v}", latent + ["--psi", v], ["--psi"]))
        cases.append(_cli(f"alpha-{v}", interp + ["--alpha", v], ["--alpha"]))
        cases.append(_cli(f"strength-{v}", makeup + ["--strength", v], ["--strength"]))
    cases.append(_cli("strength-2", makeup + ["--strength", "2"], ["--strength"]))
    for spec in ["latent:male:abc", "latent:male:1:nan", "latent:male:-3", "latent:", "ref:", "ref::male",
                 "bogus:male", f"latent:male:{2**70}", "latent:nobody"]:
        cases.append(_cli(f"style-{spec}", ["generate", "stargan2-interpolate", "--source", FACE, "--style-a", spec,
                                            "--style-b", "latent:male", "--out", o], [spec, "'nobody'"]))
    cases.append(_cli("domain-unknown", ["generate", "stargan2-latent", "--source", FACE, "--domain", "cat",
                                         "--out", o], ["cat"]))
    cases.append(_cli("domain-index", ["generate", "stargan2-latent", "--source", FACE, "--domain", "101",
                                       "--out", o], ["101"]))
    for m in ["nope", "\x1b[31mred", "../../etc/passwd"]:
        cases.append(_cli(f"model-{m!a}", latent + ["--model", m], [m]))
    for pal in ["../../../etc/passwd", "/etc/passwd", "..", "palettes/scenes", "x" * 300]:
        cases.append(_cli(f"palette-{pal[:20]}", ["generate", "panoptic", "--labels", SCENE_PHOTO, "--palette", pal,
                                                  "--out", o], [pal[:60]]))
    cases.append(_cli("sketch-class-unknown", ["generate", "sketch", "--sketch", SKETCH, "--class", "zebra-x",
                                               "--out", o], ["zebra-x"]))
    cases.append(_cli("makeup-region-unknown", makeup + ["--regions", "nose,toes"], ["toes"]))
    cases.append(_cli("cocosnet-config-unknown", ["generate", "cocosnet", "--config", "nope", "--input", SCENE_MAP,
                                                  "--exemplar", SCENE_PHOTO2, "--out", o], ["nope"]))
    for bad_out in (str(out / "noext"), str(out / "x.xyz"), str(out)):
        cases.append(_cli(f"out-{Path(bad_out).name}", ["generate", "sketch", "--sketch", SKETCH, "--class", "bird",
                                                         "--out", bad_out], ["--out"]))
        cases.append(_cli(f"out-latent-{Path(bad_out).name}", ["generate", "stargan2-latent", "--source", FACE,
                                                                "--domain", "male", "--out", bad_out], ["--out"]))
    cases.append(_cli("cli-unknown-command", ["frobnicate"], ["frobnicate"]))
    cases.append(_cli("cli-unknown-task", ["generate", "nothing"], ["nothing"]))
    cases.append(_cli("cli-missing-required", ["generate", "sketch", "--sketch", SKETCH], ["--class", "--out"]))
    cases.append(_cli("bench-unknown", ["bench", "no_such_bench"], ["no_such_bench"]))
    cases.append(_cli("keys-unknown-family", ["weights", "keys", "nofamily", "--config", "x"], ["nofamily"]))
    cases.append(_cli("keys-unknown-config", ["weights", "keys", "stargan2", "--config", "nocfg"], ["nocfg"]))
    return cases


def request_cases() -> list[dict]:
    """Engine requests (engine.api) that must be refused with a typed error before any work."""
    def req(name: str, cls: str, fields: dict, expect: list[str]) -> dict:
        return _call(f"request-{name}", "engine.tasks:run_request", [{"request": cls, "fields": fields}], expect)

    face = {"frozen": {"array": [64, 64, 3]}}
    cases = []
    for cls, key in (("StarGANLatentRequest", "source"), ("SketchObjectRequest", "sketch"),
                     ("PanopticRequest", "labels"), ("ExemplarRequest", "exemplar"), ("EditRequest", "photo"),
                     ("MakeupRequest", "portrait")):
        for shape in ([1, 80_000], [80_000, 1], [7000, 7000, 0], [20_000, 20_000, 0]):
            cases.append(req(f"{cls}-{key}-{shape}", cls, {key: {"frozen": {"array": shape}}}, [key.replace("_", " ")]))
        for ps in (0, -1, 5, 10**6, 2**70):
            cases.append(req(f"{cls}-preview-{ps}", cls, {key: face, "preview_size": ps}, ["preview size"]))
        for seed in (-1, 2**64):
            cases.append(req(f"{cls}-seed-{seed}", cls, {key: face, "seed": seed}, ["seed"]))
    for f in ("nan", "inf", "-inf"):
        cases.append(req(f"latent-psi-{f}", "StarGANLatentRequest", {"source": face, "psi": {"float": f}}, ["psi"]))
        cases.append(req(f"interp-alpha-{f}", "StarGANInterpolateRequest", {"source": face, "alpha": {"float": f}},
                         ["alpha"]))
        cases.append(req(f"makeup-strength-{f}", "MakeupRequest", {"portrait": face, "strength": {"float": f}},
                         ["strength"]))
    cases.append(req("latent-unnamed-model-missing", "StarGANLatentRequest", {"source": face, "model": "no_such"},
                     ["no_such"]))
    return cases


def weights_cases(ckpts: dict[str, Path], weights: Path, marker: Path) -> list[dict]:
    cases = []
    families = (("stargan2", "celeba_hq"), ("cocosnet", "ade20k"), ("panoptic", "spade_coco"))
    for key, path in ckpts.items():
        for fam, cfg in families:
            cases.append(_cli(f"import-{fam}-{key}", ["weights", "import", path, "--as", f"t_{fam}", "--family", fam,
                                                      "--config", cfg], _expect_for(path)))
        cases.append(_call(f"api-read_torch_file-{key}", "engine.weights:read_torch_file", [str(path)],
                           _expect_for(path)))
    src = ckpts["text.pt"]
    for name in ["../../x", "../escape", "/tmp/abs", "a/b", "", ".", "..", "x" * 200, "\x1b[31mred",
                 "stargan2_faces", "name with space", "-dash"]:
        cases.append(_cli(f"import-name-{name[:20]!a}", ["weights", "import", src, "--as", name, "--family", "stargan2",
                                                          "--config", "celeba_hq"], [name[:40], "model name", "--as"]))
    cases.append(_cli("import-family-unknown", ["weights", "import", src, "--as", "ok", "--family", "nofam",
                                                "--config", "x"], ["nofam"]))
    cases.append(_cli("import-config-unknown", ["weights", "import", src, "--as", "ok", "--family", "stargan2",
                                                "--config", "nocfg"], ["nocfg"]))
    return cases


def tf_cases(prefixes: dict[str, Path]) -> list[dict]:
    cases = []
    for key, p in prefixes.items():
        expect = [str(p), p.name]
        cases.append(_call(f"api-tf-read-{key}", "engine.weights.tf_checkpoint:read_checkpoint", [str(p)], expect))
        if key.startswith(("index_", "entry_", "missing")):  # listing reads the index only
            cases.append(_call(f"api-tf-list-{key}", "engine.weights.tf_checkpoint:list_variables", [str(p)], expect))
        cases.append(_cli(f"import-edgegan-tf-{key}", ["weights", "import", p, "--as", "tf_x", "--family", "edgegan",
                                                      "--config", "class14"], expect))
    return cases


def manifest_variants() -> dict[str, Any]:
    """Hostile ``manifest.json`` contents (each gets its own weights folder)."""
    good = json.loads((REPO / "weights" / "manifest.json").read_text())
    entry = next(e for e in good["models"] if e["name"] == "stargan2_faces")
    wide = {**entry, "name": "wide", "config": {**entry["config"], "max_conv_dim": 200_000, "hidden_dim": 200_000}}
    return {
        "list": [entry],
        "models_dict": {"models": {"a": entry}},
        "string_entries": {"models": ["stargan2_faces"]},
        "int_entries": {"models": [1, 2]},
        "missing_field": {"models": [{k: v for k, v in entry.items() if k != "file"}]},
        "bytes_string": {"models": [{**entry, "bytes": "many"}]},
        "config_list": {"models": [{**entry, "config": [1, 2]}]},
        "unknown_field": {"models": [{**entry, "evil": 1}]},
        "escape_name": {"models": [{**entry, "name": "\x1b[2J\x1b[31mpwn"}]},
        "slash_name": {"models": [{**entry, "name": "../../x"}]},
        "deep": None,  # written as text below
        "not_json": None,
        "nan": None,
        "wide_config": {"models": [wide]},
    }


def manifest_cases(root: Path, out: Path) -> list[dict]:
    """Cases whose ``env`` points ``I2I_WEIGHTS_DIR`` at a folder with a hostile manifest."""
    cases = []
    for key, value in manifest_variants().items():
        d = root / "manifests" / key
        d.mkdir(parents=True, exist_ok=True)
        path = d / "manifest.json"
        if key == "deep":
            path.write_text('{"models": ' + _deep(100_000) + "}")
        elif key == "not_json":
            path.write_text("{models")
        elif key == "nan":
            path.write_text('{"models": [], "x": NaN}')
        else:
            path.write_text(json.dumps(value))
        os.symlink(REPO / "weights" / "stargan2_faces.safetensors", d / "stargan2_faces.safetensors")
        expect = [str(path), "wide"]
        if key == "wide_config":
            argvs = [["generate", "stargan2-latent", "--model", "wide", "--source", FACE, "--domain", "male",
                      "--out", str(out / "m.png")]]
            cases.append({**_cli(f"manifest-{key}-generate", argvs[0], ["wide"]), "env": {"I2I_WEIGHTS_DIR": str(d)}})
            continue
        for argv in (["weights", "list"], ["weights", "verify"],
                     ["generate", "stargan2-latent", "--source", FACE, "--domain", "male",
                      "--out", str(out / "m.png")]):
            cases.append({**_cli(f"manifest-{key}-{argv[1]}", argv, expect), "env": {"I2I_WEIGHTS_DIR": str(d)}})
    return cases
