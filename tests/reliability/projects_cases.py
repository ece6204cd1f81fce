"""Hostile project files, settings, window state and lock files (issue 15, studio side).

Each case is a name, a function that writes the hostile input into a folder and returns its path,
and what must happen: "ok" (it loads: the studio writes such values itself, or they are harmless)
or "error" (an InputError naming the file). Cases are built from a real project written by
``save_project`` and then damaged, so each one differs from a sound file in one respect.

Also here: the case counter whose figure (cases tried / cases passed) the test module prints.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.project import PROJECT_MAX_MEMBERS, Project, WorkspaceData, save_project
from tests.reliability import hostile

OK, ERROR = "ok", "error"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]
    expect: str  # OK or ERROR for load_project
    gui_refuses: bool = False  # loads, but a workspace refuses a value (an unknown mode)


class Counter:
    """This module's failures, each case also counted in the suite's totals (``hostile.record``)."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def record(self, name: str, passed: bool, reason: str = "") -> None:
        hostile.record(name, passed, reason)
        if not passed:
            self.failures.append(f"{name}: {reason}")


# ------------------------------------------------------------------------------------ a sound project
def sound_project() -> Project:
    """What the studio writes: maps, a pose, strokes, a photo, and each workspace's state."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, (48, 40)).astype(np.int32)
    kp = np.ones((18, 3), np.float32) * 20
    pts = rng.uniform(0, 200, (12, 2)).astype(np.float32)
    meta = np.array([(5, 3, 0, 0), (7, 4, 1, 1)], np.float32)
    photo = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    return Project(current="exemplar", workspaces={
        "exemplar": WorkspaceData({"seed": 3, "model": "", "live": True, "kind": "labels", "brush": 12, "label": 1},
                                  {"labels": labels, "keypoints": kp, "exemplar": photo}),
        "panoptic": WorkspaceData({"seed": 0, "model": "", "live": True, "label": 1, "instance": 1},
                                  {"labels": labels, "instances": labels * 0 + 1}),
        "stargan": WorkspaceData({"seed": 0, "model": "", "live": True, "mode": "latent", "domain": -1, "psi": 1.0,
                                  "reference_domain": -1, "seed_b": 1, "b_from_reference": False, "alpha": 50},
                                 {"source": photo}),
        "makeup": WorkspaceData({"seed": 0, "model": "", "live": True, "regions": ["lips", "eyes"], "strength": 100}),
        "sketch": WorkspaceData({"seed": 0, "model": "", "live": True, "class": "", "width": 3},
                                {"stroke_points": pts, "stroke_meta": meta}),
        "scene": WorkspaceData({"seed": 0, "model": "", "live": True, "objects": [], "layer": 0},
                               {"stroke_points": np.zeros((0, 2), np.float32),
                                "stroke_meta": np.zeros((0, 4), np.float32)}),
    })


def read_members(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(members.pop("project.json")), members


def write_zip(path: Path, meta: Any, members: dict[str, bytes], *, raw_json: bytes | None = None,
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("project.json", raw_json if raw_json is not None else json.dumps(meta))
    return path


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _sound(folder: Path) -> Path:
    path = folder / "sound.i2i"
    if not path.exists():
        save_project(path, sound_project())
    return path


def _mutated(name: str, change: Callable[[dict, dict], bytes | None]) -> Callable[[Path], Path]:
    """A builder: the sound project with ``change(meta, members)`` applied (it may return raw
    project.json bytes)."""
    def build(folder: Path) -> Path:
        meta, members = read_members(_sound(folder))
        raw = change(meta, members)
        return write_zip(folder / f"{name}.i2i", meta, members, raw_json=raw)
    return build


def _bytes(name: str, data: Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / f"{name}.i2i"
        path.write_bytes(data(folder))
        return path
    return build


def _set_state(ws: str, key: str, value: Any) -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        meta["workspaces"][ws]["state"][key] = value
    return change


def _set_array(ws: str, name: str, data: bytes | np.ndarray, ext: str = ".npy") -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        member = f"{ws}/{name}-hostile{ext}"
        members[member] = data if isinstance(data, bytes) else npy(data)
        meta["workspaces"][ws]["arrays"][name] = member
    return change


# ------------------------------------------------------------------------------------ byte surgery on zips
def _central_entries(data: bytes) -> list[int]:
    """Offsets of the central-directory records."""
    out, pos = [], 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        out.append(pos)
        pos += 4
    return out


def _patch_member(data: bytes, member: str, *, flag: int | None = None, method: int | None = None,
                  size: int | None = None) -> bytes:
    """Set the flag bits / compression method / uncompressed size of ``member`` in both its local
    header and its central-directory record (as a hostile writer would)."""
    buf = bytearray(data)
    for cd in _central_entries(data):
        n = struct.unpack_from("<H", buf, cd + 28)[0]
        if bytes(buf[cd + 46:cd + 46 + n]).decode() != member:
            continue
        local = struct.unpack_from("<I", buf, cd + 42)[0]
        for base, off in ((cd, 8), (local, 6)):
            if flag is not None:
                struct.pack_into("<H", buf, base + off, flag)
            if method is not None:
                struct.pack_into("<H", buf, base + off + 2, method)
            if size is not None:
                struct.pack_into("<I", buf, base + off + 16, size)
    return bytes(buf)


def _member_data_span(data: bytes, member: str) -> tuple[int, int]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member)
    off = info.header_offset
    n, m = struct.unpack_from("<HH", data, off + 26)
    start = off + 30 + n + m
    return start, start + info.compress_size


def _zip_bytes(meta: Any, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("project.json", json.dumps(meta))
    return buf.getvalue()


def _surgery(name: str, change: Callable[[bytes, str], bytes], member_of: str = "labels",
             compression: int = zipfile.ZIP_DEFLATED) -> Callable[[Path], Path]:
    """The sound project rewritten with ``compression``, then ``change(zip bytes, member)`` applied
    to the member holding the exemplar workspace's array ``member_of`` ("project.json" for the json)."""
    def build(folder: Path) -> Path:
        meta, members = read_members(_sound(folder))
        member = "project.json" if member_of == "project.json" else meta["workspaces"]["exemplar"]["arrays"][member_of]
        path = folder / f"{name}.i2i"
        path.write_bytes(change(_zip_bytes(meta, members, compression), member))
        return path
    return build


def _flip(offset_from_start: int) -> Callable[[bytes, str], bytes]:
    def change(data: bytes, member: str) -> bytes:
        start, end = _member_data_span(data, member)
        buf = bytearray(data)
        pos = min(start + offset_from_start, end - 1)
        buf[pos] ^= 0xFF
        return bytes(buf)
    return change


def _cut_data(data: bytes, member: str) -> bytes:
    """Overwrite the middle of a member's deflate stream with garbage (a broken stream)."""
    start, end = _member_data_span(data, member)
    buf = bytearray(data)
    mid = (start + end) // 2
    buf[mid:min(mid + 16, end)] = b"\xff" * (min(mid + 16, end) - mid)
    return bytes(buf)


def _png(width: int, height: int, color_type: int = 2, bit_depth: int = 8, idat: bytes | None = None) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _npy_header(shape: tuple[int, ...], descr: str = "<i4", data: bytes = b"\x00" * 64, version: int = 1) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header)) + header + data


def _nested(depth: int) -> bytes:
    return b'{"format": "i2i-studio project", "version": 1, "workspaces": {"exemplar": {"state": {"x": ' \
        + b"[" * depth + b"]" * depth + b"}}}}"


def _bomb_members(folder: Path) -> bytes:
    """A member that really inflates to 300 MB (declared honestly) — refused by its declared size."""
    meta, members = read_members(_sound(folder))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with zf.open("exemplar/bomb.npy", "w", force_zip64=True) as dest:
            dest.write(_npy_header((300 * 1024 * 1024 // 4,), data=b""))
            zeros = bytes(16 << 20)
            for _ in range(300 // 16 + 1):
                dest.write(zeros)
        meta["workspaces"]["exemplar"]["arrays"]["labels"] = "exemplar/bomb.npy"
        zf.writestr("project.json", json.dumps(meta))
    return buf.getvalue()


def _lying_bomb(folder: Path) -> bytes:
    """A member that inflates to 64 MB while its headers declare 1 kB."""
    meta, members = read_members(_sound(folder))
    members["exemplar/liar.npy"] = _npy_header((16 << 20,), data=bytes(64 << 20))
    meta["workspaces"]["exemplar"]["arrays"]["labels"] = "exemplar/liar.npy"
    return _patch_member(_zip_bytes(meta, members), "exemplar/liar.npy", size=1024)


def _many_entries(folder: Path) -> bytes:
    meta, _ = read_members(_sound(folder))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(PROJECT_MAX_MEMBERS + 10):
            zf.writestr(f"x/{i}", b"")
        zf.writestr("project.json", json.dumps(meta))
    return buf.getvalue()


def _zip_slip(folder: Path) -> bytes:
    meta, members = read_members(_sound(folder))
    members["../../escaped.npy"] = npy(np.zeros((4, 4), np.int32))
    meta["workspaces"]["exemplar"]["arrays"]["labels"] = "../../escaped.npy"
    return _zip_bytes(meta, members)


def _truncated(fraction: float) -> Callable[[Path], bytes]:
    def data(folder: Path) -> bytes:
        raw = _sound(folder).read_bytes()
        return raw[:int(len(raw) * fraction)]
    return data


def _with_meta(meta_value: Any) -> Callable[[dict, dict], bytes]:
    def change(meta: dict, members: dict) -> bytes:
        return json.dumps(meta_value).encode()
    return change


def _meta_field(key: str, value: Any) -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        meta[key] = value
    return change


def _ws_field(ws: str, key: str, value: Any) -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        meta["workspaces"][ws][key] = value
    return change


def _strokes(points: np.ndarray, meta_rows: np.ndarray) -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        _set_array("sketch", "stroke_points", points)(meta, members)
        _set_array("sketch", "stroke_meta", meta_rows)(meta, members)
    return change


def _drop_array(ws: str, name: str) -> Callable[[dict, dict], None]:
    def change(meta: dict, members: dict) -> None:
        meta["workspaces"][ws]["arrays"].pop(name)
    return change


def project_cases() -> list[Case]:
    """Hostile ``.i2i`` files (each also opened in the studio and used as an autosave)."""
    c: list[Case] = []

    def add(name: str, build: Callable[[Path], Path], expect: str, **kw: Any) -> None:
        c.append(Case(name, build, expect, **kw))

    def mutated(name: str, change: Callable[[dict, dict], Any], expect: str, **kw: Any) -> None:
        add(name, _mutated(name, change), expect, **kw)

    add("sound", _sound, OK)
    # -- not a zip at all
    for name, data in [("empty", b""), ("text", b"hello, not a project\n"), ("random", bytes(range(256)) * 40),
                       ("png-renamed", _png(4, 4)), ("zip-end-only", b"PK\x05\x06" + bytes(18)),
                       ("nul-bytes", bytes(4096))]:
        add(f"not-zip-{name}", _bytes(f"not-zip-{name}", lambda f, d=data: d), ERROR)
    for frac in (0.05, 0.25, 0.5, 0.75, 0.9, 0.99):
        add(f"truncated-{frac}", _bytes(f"truncated-{frac}", _truncated(frac)), ERROR)
    add("folder", lambda f: (f / "folder.i2i").mkdir(exist_ok=True) or f / "folder.i2i", ERROR)
    add("missing", lambda f: f / "missing.i2i", ERROR)
    add("fifo", lambda f: (os.mkfifo(f / "fifo.i2i") if not (f / "fifo.i2i").exists() else None) or f / "fifo.i2i",
        ERROR)
    # -- zip-level damage
    add("no-project-json", _bytes("no-project-json", _no_json), ERROR)
    add("crc-json", _surgery("crc-json", _flip(3), "project.json", zipfile.ZIP_STORED), ERROR)
    add("crc-labels", _surgery("crc-labels", _flip(200), "labels", zipfile.ZIP_STORED), ERROR)
    add("crc-keypoints", _surgery("crc-keypoints", _flip(130), "keypoints", zipfile.ZIP_STORED), ERROR)
    add("deflate-broken-json", _surgery("deflate-broken-json", _cut_data, "project.json"), ERROR)
    add("deflate-broken-labels", _surgery("deflate-broken-labels", _cut_data, "labels"), ERROR)
    add("deflate-first-byte", _surgery("deflate-first-byte", _flip(0), "labels"), ERROR)
    for member_of in ("labels", "project.json"):
        add(f"encrypted-{member_of}", _surgery(f"encrypted-{member_of}",
                                               lambda d, m: _patch_member(d, m, flag=1), member_of), ERROR)
        for method in (1, 6, 9, 12, 14, 93, 99):
            add(f"method-{method}-{member_of}", _surgery(
                f"method-{method}-{member_of}", lambda d, m, k=method: _patch_member(d, m, method=k), member_of), ERROR)
        add(f"declared-4GB-{member_of}", _surgery(
            f"declared-4GB-{member_of}", lambda d, m: _patch_member(d, m, size=0xFFFFFFF0), member_of), ERROR)
        add(f"declared-1B-{member_of}", _surgery(
            f"declared-1B-{member_of}", lambda d, m: _patch_member(d, m, size=1), member_of), ERROR)
    add("zip-bomb-300MB", _bytes("zip-bomb-300MB", _bomb_members), ERROR)
    add("zip-bomb-lying-size", _bytes("zip-bomb-lying-size", _lying_bomb), ERROR)
    add("many-entries", _bytes("many-entries", _many_entries), ERROR)
    add("zip-slip-member", _bytes("zip-slip-member", _zip_slip), ERROR)
    mutated("absolute-member", lambda m, mem: m["workspaces"]["exemplar"]["arrays"].update(labels="/etc/passwd"), ERROR)
    mutated("member-missing", lambda m, mem: m["workspaces"]["exemplar"]["arrays"].update(labels="nope.npy"), ERROR)
    mutated("member-int", lambda m, mem: m["workspaces"]["exemplar"]["arrays"].update(labels=5), ERROR)
    mutated("member-list", lambda m, mem: m["workspaces"]["exemplar"]["arrays"].update(labels=["a"]), ERROR)
    mutated("member-txt", _set_array("exemplar", "labels", b"hello", ".txt"), ERROR)
    mutated("member-pickle", _set_array("exemplar", "labels", b"\x80\x04K\x01.", ".pkl"), ERROR)
    mutated("unknown-array-name", _set_array("exemplar", "mystery", np.zeros(3)), OK)
    # -- project.json of the wrong shape or types
    for name, value in [("list", [1, 2]), ("string", "i2i"), ("number", 5), ("null", None), ("empty-object", {}),
                        ("other-format", {"format": "zip", "version": 1}),
                        ("format-int", {"format": 1})]:
        mutated(f"json-{name}", _with_meta(value), ERROR)
    for name, raw in [("not-json", b"{not json"), ("nan", b'{"format": "i2i-studio project", "version": NaN}'),
                      ("infinity", b'{"format": "i2i-studio project", "version": 1, "current": Infinity}'),
                      ("latin1", '{"format": "i2i-studio project", "current": "\xe9"}'.encode("latin-1")),
                      ("deep-100", _nested(100)), ("deep-100000", _nested(100000)),
                      ("huge-5MB", b'{"format": "i2i-studio project", "pad": "' + b"x" * (5 << 20) + b'"}'),
                      ("bom", b"\xef\xbb\xbf" + json.dumps({"format": "i2i-studio project"}).encode())]:
        mutated(f"json-{name}", lambda m, mem, r=raw: r, OK if name == "bom" else ERROR)  # a BOM: still UTF-8
    for key, value, expect in [("version", "1", ERROR), ("version", 99, ERROR), ("version", 10**300, ERROR),
                               ("version", True, ERROR), ("version", 1.5, ERROR), ("version", None, ERROR),
                               ("version", 0, OK), ("workspaces", [], ERROR), ("workspaces", "x", ERROR),
                               ("workspaces", None, ERROR), ("current", 7, ERROR), ("current", ["a"], ERROR),
                               ("current", "no-such-tab", OK), ("source", {"a": 1}, ERROR), ("source", "", OK)]:
        mutated(f"meta-{key}-{json.dumps(value)[:12]}", _meta_field(key, value), expect)
    for key, value in [("state", []), ("state", "x"), ("arrays", []), ("arrays", 3), ("state", None)]:
        mutated(f"ws-{key}-{json.dumps(value)}", _ws_field("exemplar", key, value), ERROR)
    mutated("ws-is-list", lambda m, mem: m["workspaces"].update(exemplar=[1]), ERROR)
    mutated("ws-unknown", lambda m, mem: m["workspaces"].update(mystery={"state": {"a": 1}, "arrays": {}}), OK)
    # -- state fields: types the studio never writes
    for ws, key, value, expect in [
            ("exemplar", "seed", "12", ERROR), ("exemplar", "seed", 10**20, ERROR),
            ("exemplar", "seed", -10**20, ERROR), ("exemplar", "seed", 1.5, ERROR), ("exemplar", "seed", None, ERROR),
            ("exemplar", "seed", [], ERROR),
            ("exemplar", "seed", True, ERROR), ("exemplar", "seed", -1, OK), ("exemplar", "seed", 2**31 - 1, OK),
            ("exemplar", "live", "yes", ERROR), ("exemplar", "live", 1, ERROR), ("exemplar", "model", 5, ERROR),
            ("exemplar", "model", "x" * 5000, ERROR), ("exemplar", "model", "no-such-model", OK),
            ("exemplar", "brush", -5, OK), ("exemplar", "brush", 10**6, OK), ("exemplar", "label", 10**12, ERROR),
            ("exemplar", "label", {"a": 1}, ERROR), ("exemplar", "kind", ["pose"], ERROR),
            ("exemplar", "unknown-field", {"deep": [1, 2]}, OK), ("exemplar", "unknown-number", 3, OK),
            ("stargan", "psi", "1", ERROR), ("stargan", "psi", 1e308, OK), ("stargan", "psi", -7, OK),
            ("stargan", "mode", "bogus", OK), ("stargan", "mode", 3, ERROR), ("stargan", "domain", 10**9, OK),
            ("stargan", "domain", -10**9, OK), ("stargan", "alpha", 10**10, ERROR), ("stargan", "alpha", 10**5, OK),
            ("stargan", "b_from_reference", "false", ERROR), ("makeup", "regions", "lips", ERROR),
            ("makeup", "regions", [1, 2], ERROR), ("makeup", "regions", ["x" * 2000], ERROR),
            ("makeup", "regions", ["nose"], OK), ("makeup", "strength", -100, OK),
            ("scene", "objects", [{"a": 1}], ERROR),
            ("scene", "objects", ["car"] * 5000, ERROR), ("scene", "layer", 10**10, ERROR), ("scene", "layer", 99, OK),
            ("sketch", "class", None, ERROR), ("sketch", "width", 10**6, OK), ("panoptic", "instance", -4, OK)]:
        gui_refuses = (key, value) == ("mode", "bogus")
        mutated(f"state-{ws}-{key}-{json.dumps(value)[:14]}", _set_state(ws, key, value), expect,
                gui_refuses=gui_refuses)
    # -- arrays: shapes, types and contents the studio never writes
    for ws, name, arr, expect in [
            ("exemplar", "labels", np.zeros(64, np.int32), ERROR),
            ("exemplar", "labels", np.zeros((8, 8), np.float64), ERROR),
            ("exemplar", "labels", np.zeros((8, 8, 2), np.int32), ERROR),
            ("exemplar", "labels", np.zeros((0, 0), np.int32), ERROR),
            ("exemplar", "labels", np.zeros((0, 8), np.int32), ERROR),
            ("exemplar", "labels", np.full((8, 8), 2**40, np.int64), ERROR),
            ("exemplar", "labels", np.zeros((8, 8), bool), ERROR),
            ("exemplar", "labels", np.zeros((8, 8), np.complex64), ERROR),
            ("exemplar", "labels", np.full((8, 8), -3, np.int32), OK),
            ("exemplar", "labels", np.zeros((8, 8), np.uint16), OK),
            ("exemplar", "labels", np.zeros((1, 5000), np.uint8), OK),
            ("exemplar", "labels", np.zeros((8, 8), ">i4"), OK),
            ("exemplar", "labels", np.asfortranarray(np.arange(64, dtype=np.int32).reshape(8, 8)), OK),
            ("exemplar", "keypoints", np.zeros((5, 3), np.float32), ERROR),
            ("exemplar", "keypoints", np.zeros((18, 2), np.float32), ERROR),
            ("exemplar", "keypoints", np.zeros((18, 3), np.int32), ERROR),
            ("exemplar", "keypoints", np.full((18, 3), np.nan, np.float32), ERROR),
            ("exemplar", "keypoints", np.full((18, 3), np.inf, np.float64), ERROR),
            ("exemplar", "keypoints", np.zeros((18, 3), np.float64), OK),
            ("exemplar", "exemplar", np.zeros((8, 8, 5), np.uint8), ERROR),
            ("exemplar", "exemplar", np.zeros((8, 8, 3), np.float64), ERROR),
            ("exemplar", "exemplar", np.zeros((8, 8), np.uint8), ERROR),
            ("exemplar", "exemplar", np.zeros(192, np.uint8), ERROR),
            ("exemplar", "exemplar", np.zeros((8, 8, 3), np.uint16), ERROR),
            ("exemplar", "exemplar", np.zeros((8, 8, 4), np.uint8), OK),
            ("exemplar", "exemplar_map", np.zeros((7, 3), np.float32), ERROR),
            ("exemplar", "exemplar_map", np.ones((18, 3), np.float32), OK),
            ("exemplar", "exemplar_map", np.zeros((8, 8), np.uint8), OK),
            ("panoptic", "instances", np.zeros((9, 9), np.int32), ERROR),
            ("stargan", "source", np.zeros((1, 1, 3), np.uint8), OK)]:
        mutated(f"array-{ws}-{name}-{arr.dtype.str}-{'x'.join(map(str, arr.shape))}-{expect}",
                _set_array(ws, name, arr), expect)
    # -- .npy members with hostile headers
    for name, data in [("huge-shape", _npy_header((100000, 100000))),
                       ("huge-shape-3d", _npy_header((10**6, 10**6, 3), "|u1")),
                       ("shape-more-than-data", _npy_header((64, 64))),
                       ("shape-less-than-data", _npy_header((2, 2))),
                       ("object-dtype", _npy_header((2, 2), "|O")),
                       ("structured", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) +
                        b"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (4,), }".ljust(117) + b"\n"
                        + bytes(16)),
                       ("unicode-dtype", _npy_header((2, 2), "<U4")),
                       ("version-9", _npy_header((4, 4)).replace(b"\x01\x00", b"\x09\x00", 1)),
                       ("version-2", _npy_header((4, 4), version=2)),
                       ("bad-magic", b"\x93NUMPX\x01\x00" + bytes(100)),
                       ("header-garbage", b"\x93NUMPY\x01\x00\x10\x00" + b"import os;     \n"),
                       ("header-length-huge", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{"),
                       ("negative-shape", _npy_header((-4, 4))),
                       ("empty", b"")]:
        expect = OK if name == "version-2" else ERROR  # 4×4 int32 is the 64 bytes it declares
        mutated(f"npy-{name}", _set_array("exemplar", "labels", data), expect)
    # -- PNG members with hostile headers
    for name, data in [("70000-square", _png(70000, 70000)), ("16-bit", _png(8, 8, 2, 16)),
                       ("palette", _png(8, 8, 3)), ("truncated-idat", _png(64, 64, idat=zlib.compress(b"\x00" * 9))),
                       ("broken-idat", _png(8, 8, idat=b"\x78\x9c\xff\xff\xff")),
                       ("garbage", b"\x89PNG\r\n\x1a\n" + bytes(40)),
                       ("jpeg-header", b"\xff\xd8\xff\xe0" + bytes(64)), ("zero-width", _png(0, 8))]:
        mutated(f"png-{name}", _set_array("exemplar", "exemplar", data, ".png"), ERROR)
    # -- strokes that do not add up
    pts = np.zeros((12, 2), np.float32)
    for name, meta_rows, points in [
            ("counts-exceed-points", np.array([(50, 3, 0, 0)], np.float32), pts),
            ("counts-fewer-points", np.array([(2, 3, 0, 0)], np.float32), pts),
            ("negative-count", np.array([(-4, 3, 0, 0), (16, 3, 0, 0)], np.float32), pts),
            ("fractional-count", np.array([(5.5, 3, 0, 0), (6.5, 3, 0, 0)], np.float32), pts),
            ("zero-width", np.array([(12, 0, 0, 0)], np.float32), pts),
            ("nan-width", np.array([(12, np.nan, 0, 0)], np.float32), pts),
            ("meta-3-columns", np.array([(12, 3, 0)], np.float32), pts),
            ("points-3-columns", np.array([(12, 3, 0, 0)], np.float32), np.zeros((12, 3), np.float32)),
            ("points-1d", np.array([(12, 3, 0, 0)], np.float32), np.zeros(24, np.float32)),
            ("points-inf", np.array([(12, 3, 0, 0)], np.float32), np.full((12, 2), np.inf, np.float32)),
            ("group-huge", np.array([(12, 3, 0, 1e30)], np.float32), pts),
            ("ok-one-stroke", np.array([(12, 3, 0, 0)], np.float32), pts)]:
        mutated(f"strokes-{name}", _strokes(points, meta_rows), OK if name.startswith("ok") else ERROR)
    mutated("strokes-meta-without-points", _drop_array("sketch", "stroke_points"), ERROR)
    return c


def _no_json(folder: Path) -> bytes:
    _, members = read_members(_sound(folder))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------ config folder
@dataclass(frozen=True)
class StartCase:
    """A damaged config folder: ``build(folder)`` fills it; ``names`` must appear in the start-up
    message (lower case); ``set_aside`` names a file that must be moved out of the way."""
    name: str
    build: Callable[[Path], None]
    names: tuple[str, ...] = ()
    set_aside: str = ""


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return build


def _both(*builds: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        for b in builds:
            b(folder)
    return build


def _autosave_from(case: Case) -> Callable[[Path], None]:
    """A crashed session (lock of a dead pid) whose autosave is the hostile project ``case``."""
    def build(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder.parent / "scratch"
        scratch.mkdir(exist_ok=True)
        src = case.build(scratch)
        dest = folder / "autosave.i2i"
        if src.is_dir():
            dest.mkdir()
        elif src.is_fifo():
            os.mkfifo(dest)
        elif src.exists():
            dest.write_bytes(src.read_bytes())
        (folder / "session.lock").write_text("999999999")
    return build


def start_cases() -> list[StartCase]:
    c: list[StartCase] = []
    for name, text in [("schema-0", '{"schema": 0, "brush_size": 5}'), ("schema-negative", '{"schema": -3}'),
                       ("schema-string", '{"schema": "2"}'), ("schema-huge", '{"schema": 100000000000000000000}'),
                       ("schema-bool", '{"schema": true}'), ("schema-float", '{"schema": 1.5}'),
                       ("deep", "[" * 100000 + "]" * 100000), ("deep-object", '{"a":' * 5000 + "1" + "}" * 5000),
                       ("list", "[1, 2]"), ("not-json", "{oops"), ("nan", '{"schema": 2, "grace_ms": NaN}'),
                       ("wrong-types", '{"schema": 2, "brush_size": "big", "live_preview": 3, "theme": 5, '
                                       '"threads": 1e400, "undo_limit": [1], "device": {"x": 1}}'),
                       ("huge-int", '{"schema": 2, "threads": ' + "9" * 5000 + "}"),
                       ("binary", bytes(range(256)).decode("latin-1")),
                       ("v1-bad-migration", '{"schema": 1, "autosave_min": "x", "preview_px": []}')]:
        c.append(StartCase(f"settings-{name}", _write("settings.json", text), ("settings.json",)))
    c.append(StartCase("settings-too-big", _write("settings.json", b" " * (2 << 20) + b"{}"), ("settings.json",)))
    c.append(StartCase("settings-folder", lambda f: (f / "settings.json").mkdir(parents=True), ("settings.json",)))
    for name, text in [("tab-text", "[General]\ntab=abc\n"), ("tab-negative", "[General]\ntab=-1\n"),
                       ("tab-huge", "[General]\ntab=" + "9" * 30 + "\n"), ("tab-float", "[General]\ntab=1.5\n"),
                       ("geometry-text", "[General]\ngeometry=hello\n"),
                       ("geometry-garbage", "[General]\ngeometry=@ByteArray(\\x1\\x2\\x3)\n"),
                       ("state-garbage", "[General]\nstate=@ByteArray(garbage)\n"),
                       ("state-list", "[General]\nstate=1, 2, 3\n")]:
        c.append(StartCase(f"window-{name}", _write("window.ini", text), ("window.ini",)))
    for name, text in [("pid-30-digits", "9" * 30), ("pid-text", "abc"), ("pid-negative", "-5"), ("pid-empty", ""),
                       ("pid-binary", bytes(range(256))), ("pid-huge-file", b"1" * (8 << 20))]:
        # a lock with a sound autosave beside it: the session is restored whatever the lock says
        c.append(StartCase(f"lock-{name}", _both(_autosave_from(Case("sound", _sound, OK)),
                                                 _write("session.lock", text)), ("restored",)))
    c.append(StartCase("lock-folder", lambda f: (f / "session.lock").mkdir(parents=True), ("session.lock",),
                       set_aside="session.lock"))
    return c


def autosave_cases(cases: list[Case]) -> list[StartCase]:
    """Each hostile project that fails to load, left as the autosave of a crashed session."""
    return [StartCase(f"autosave-{case.name}", _autosave_from(case), ("autosave",), set_aside="autosave.i2i")
            for case in cases if case.expect == ERROR and case.name != "missing"]
