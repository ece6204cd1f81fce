"""Project files: one zip holding every workspace's canvases, pickers and parameters.

Layout: ``project.json`` ({"format": "i2i-studio project", "version", "current", "source",
"workspaces": {key: {"state": {...}, "arrays": {name: member}}}}) plus one member per array: 8-bit
images and maps as PNG (greyscale or RGB, lossless), everything else as ``.npy``. Large arrays
(photos) are stored once by content hash (``media/<hash>.png``), however many workspaces use them,
and a :class:`MediaCache` keeps their encoded bytes so later saves do not encode them again. Writes
are atomic (temp file in the same folder, fsync, rename), so a crash never leaves a half-written
project. The same format serves autosave, written by :class:`Autosaver` on a worker thread; a lock
file tells the next start that the last session did not exit cleanly.

Reading is bounded (``PROJECT_*`` limits below, each checked before the memory it guards is
spent): a member's declared size and the bytes actually inflated are both capped, an ``.npy``
header's shape and a PNG header's size are checked before an array is made, ``project.json`` is
size- and depth-checked before parsing, and every field must have the type the studio writes.
Any failure is one :class:`InputError` naming the file and the problem.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import tempfile
import threading
import time
import warnings
import weakref
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.api import (
    OPENPOSE_JOINTS,
    PROJECT_INT_RANGE,
    PROJECT_JSON_MAX_BYTES,
    PROJECT_JSON_MAX_DEPTH,
    PROJECT_MAX_MEMBERS,
    PROJECT_MEMBER_MAX_BYTES,
    PROJECT_TEXT_MAX_CHARS,
    PROJECT_TOTAL_MAX_BYTES,
    InputError,
    array_digest,
    json_depth_exceeds,
    reject_json_constant,
)

FORMAT = "i2i-studio project"
VERSION = 1
SUFFIX = ".i2i"
AUTOSAVE_NAME = "autosave" + SUFFIX
LOCK_NAME = "session.lock"
MEDIA_MIN_BYTES = 1 << 20  # arrays at least this big are stored once by content hash



@dataclass
class WorkspaceData:
    state: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Project:
    workspaces: dict[str, WorkspaceData] = field(default_factory=dict)
    current: str = ""
    source: str = ""  # the project file this session belongs to (kept by autosaves)


Parts = list[bytes]  # an encoded member in pieces of about 1 MiB


def _png_chunk(tag: bytes, data: bytes) -> Parts:
    return [struct.pack(">I", len(data)) + tag, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))]


def encode_png(arr: np.ndarray, level: int = 6) -> Parts:
    """A lossless PNG (8-bit grey, RGB or RGBA) written block by block: each row gets the "Sub"
    filter in numpy and zlib compresses about 1 MiB at a time. Both let go of the GIL, and no step
    copies the whole image, so a big photo encoded on the autosave thread never holds up the GUI
    thread for long (Pillow's and OpenCV's encoders each hold it for 100+ ms on an 8000² photo)."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    header = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", *_png_chunk(b"IHDR", header)]
    flat = np.ascontiguousarray(arr).reshape(h, w * c)
    comp = zlib.compressobj(level)
    step = max(1, (1 << 20) // (w * c + 1))
    for y0 in range(0, h, step):
        rows = flat[y0:y0 + step]
        filtered = np.empty((len(rows), w * c + 1), np.uint8)
        filtered[:, 0] = 1  # Sub: each byte minus the byte one pixel to its left (mod 256)
        filtered[:, 1:c + 1] = rows[:, :c]
        np.subtract(rows[:, c:], rows[:, :-c], out=filtered[:, c + 1:])
        data = comp.compress(filtered)
        if data:
            parts += _png_chunk(b"IDAT", data)
    parts += _png_chunk(b"IDAT", comp.flush()) + _png_chunk(b"IEND", b"")
    return parts


def _encode(arr: np.ndarray) -> tuple[str, Parts]:
    """(extension, parts): PNG for 8-bit grey/RGB(A) arrays, exact .npy otherwise."""
    if arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        # big photos: fast compression (somewhat larger, several times faster to write)
        return ".png", encode_png(arr, 6 if arr.nbytes < 16 * MEDIA_MIN_BYTES else 1)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return ".npy", [buf.getvalue()]


def _write_member(zf: zipfile.ZipFile, member: str, parts: Parts, compress_type: int) -> None:
    """Write one member piece by piece (no copy of the whole, short GIL holds)."""
    info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    with zf.open(info, "w", force_zip64=sum(len(p) for p in parts) > (1 << 30)) as dest:
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), 1 << 20):
                dest.write(view[start:start + (1 << 20)])


def _decode(name: str, data: bytes | bytearray) -> np.ndarray:
    """An array from a member's bytes; ValueError naming the problem (sizes checked from the
    header before anything is allocated)."""
    if name.endswith(".png"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(io.BytesIO(data), formats=["PNG"])
            except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                raise ValueError(f"its image is too large ({exc})") from None
        if img.mode not in ("L", "RGB", "RGBA"):
            raise ValueError(f"a {img.mode} image, not the 8-bit grey/RGB/RGBA this program writes")
        w, h = img.size
        need = w * h * len(img.getbands())
        if need > PROJECT_MEMBER_MAX_BYTES:
            raise ValueError(f"its image is {w}×{h}, more than {PROJECT_MEMBER_MAX_BYTES >> 20} MiB decoded")
        return np.asarray(img).copy()
    if not name.endswith(".npy"):
        raise ValueError("not a .png or .npy member")
    buf = io.BytesIO(data)
    major, _minor = np.lib.format.read_magic(buf)
    if major == 1:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    elif major in (2, 3):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    else:
        raise ValueError(f"unknown .npy version {major}")
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(f"unsupported array type {dtype}")
    need = math.prod(shape) * dtype.itemsize
    if need > PROJECT_MEMBER_MAX_BYTES:
        raise ValueError(f"its header declares shape {shape} ({need / 1e6:.0f} MB), more than "
                         f"{PROJECT_MEMBER_MAX_BYTES >> 20} MiB")
    if need != len(data) - buf.tell():
        raise ValueError(f"its header declares shape {shape} but the data is {len(data) - buf.tell()} bytes")
    # a view of the member's own (writable) buffer: no copy
    return np.frombuffer(data, dtype, offset=buf.tell()).reshape(shape, order="F" if fortran else "C")


class MediaCache:
    """Encoded bytes of large arrays by content hash (bounded LRU), and each array object's hash, so
    an unchanged photo is neither hashed nor encoded again on the next save. Thread-safe. Arrays
    handed to a save are treated as immutable (the studio replaces images, it never writes into
    them)."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self._encoded: OrderedDict[str, tuple[str, Parts]] = OrderedDict()
        self._digests: dict[int, tuple[weakref.ref, str]] = {}
        self._lock = threading.Lock()
        self.encodes = 0  # statistics: how many arrays were actually encoded

    def digest(self, arr: np.ndarray) -> str:
        with self._lock:
            known = self._digests.get(id(arr))
            if known is not None and known[0]() is arr:
                return known[1]
        digest = array_digest(arr)
        with self._lock:
            self._digests = {k: v for k, v in self._digests.items() if v[0]() is not None}
            try:
                self._digests[id(arr)] = (weakref.ref(arr), digest)
            except TypeError:  # a view of a non-weakref-able object: just do not remember it
                pass
        return digest

    def encoded(self, digest: str, arr: np.ndarray) -> tuple[str, Parts]:
        with self._lock:
            hit = self._encoded.get(digest)
            if hit is not None:
                self._encoded.move_to_end(digest)
                return hit
        ext, data = _encode(arr)
        with self._lock:
            self.encodes += 1
            self._encoded[digest] = (ext, data)
            total = sum(len(p) for _, d in self._encoded.values() for p in d)
            while total > self.max_bytes and len(self._encoded) > 1:
                _, (_, dropped) = self._encoded.popitem(last=False)
                total -= sum(len(p) for p in dropped)
        return ext, data


def _umask() -> int:
    """The process umask, read without changing it (the autosave thread may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """Permissions for a file written over ``path``: the old file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def save_project(path: Path | str, project: Project, *, cache: MediaCache | None = None,
                 keep: Callable[[], bool] | None = None) -> bool:
    """Write ``project`` to ``path`` atomically. ``cache`` reuses encoded photos; ``keep()`` is
    asked just before the file replaces the old one (False: drop the write). True when written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = cache or MediaCache()
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "current": project.current, "workspaces": {}}
    if project.source:
        meta["source"] = project.source
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; a saved project follows the umask
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                stored: set[str] = set()
                for key, ws in project.workspaces.items():
                    members: dict[str, str] = {}
                    for name, arr in ws.arrays.items():
                        if arr is None:
                            continue
                        arr = np.asarray(arr)
                        if arr.nbytes >= MEDIA_MIN_BYTES:
                            digest = cache.digest(arr)
                            ext, data = cache.encoded(digest, arr)
                            member = f"media/{digest}{ext}"
                        else:
                            ext, data = _encode(arr)
                            member = f"{key}/{name}{ext}"
                        if member not in stored:
                            # PNG is already compressed; storing it avoids a second deflate pass
                            _write_member(zf, member, data,
                                          zipfile.ZIP_STORED if ext == ".png" else zipfile.ZIP_DEFLATED)
                            stored.add(member)
                        members[name] = member
                    meta["workspaces"][key] = {"state": ws.state, "arrays": members}
                zf.writestr("project.json", json.dumps(meta, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        if keep is not None and not keep():
            os.unlink(tmp)
            return False
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _zip_entries(path: Path) -> int | None:
    """Entries the zip's end record declares (read before ``zipfile`` builds one object per entry)."""
    try:
        with open(path, "rb") as fh:
            end = zipfile._EndRecData(fh)  # the stdlib's own end-record reader
    except (OSError, struct.error, ValueError):
        return None
    return None if not end else int(end[zipfile._ECD_ENTRIES_TOTAL])


def _read_member(zf: zipfile.ZipFile, member: str, limit: int) -> bytearray:
    """A member's bytes, refused (ValueError) when encrypted, compressed in a way this program does
    not write, declared larger than ``limit``, or inflating past its declared size or ``limit``."""
    info = zf.getinfo(member)  # KeyError: missing
    if info.flag_bits & 0x1:
        raise ValueError("it is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"it uses compression method {info.compress_type}, which this program does not write")
    if info.file_size > limit:
        raise ValueError(f"it declares {info.file_size / 1e6:.0f} MB, more than the {limit >> 20} MiB allowed")
    data = bytearray(info.file_size)  # filled in place: no second copy of a big member
    view, pos = memoryview(data), 0
    with zf.open(info) as fh:
        while pos < len(data):
            n = fh.readinto(view[pos:pos + (1 << 20)])
            if not n:
                break
            pos += n
        if pos != len(data) or fh.read(1):
            raise ValueError(f"it does not inflate to its declared {info.file_size} bytes")
    return data


# What each array of a workspace may be: (allowed ndim, allowed trailing channels, dtype kinds)
_IMAGE = ((3,), (3, 4), "u")  # photos: 8-bit RGB(A)
_MAP = ((2,), (), "iu")  # label / instance maps
ARRAY_KINDS: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]] = {
    **dict.fromkeys(("exemplar", "photo", "portrait", "source", "reference", "style"), _IMAGE),
    **dict.fromkeys(("labels", "instances", "edited_map", "original_map", "portrait_map"), _MAP),
    "exemplar_map": ((2,), (), "iuf"),  # a label map, or a pose (joints × 3) for pose models
    "keypoints": ((2,), (3,), "f"),
    "stroke_points": ((2,), (2,), "f"),
    "stroke_meta": ((2,), (4,), "f"),  # per stroke: point count, width, erase, group
}


def _check_array(name: str, arr: np.ndarray) -> str:
    """'' when ``arr`` is what the studio writes under ``name``, else the problem."""
    ndims, channels, kinds = ARRAY_KINDS[name]
    if arr.ndim not in ndims or arr.dtype.kind not in kinds:
        return f"is a {arr.ndim}-D {arr.dtype} array of shape {arr.shape}, not the kind stored as {name!r}"
    if arr.ndim == 3 and arr.dtype != np.uint8:
        return f"is {arr.dtype}, not an 8-bit image"
    if channels and arr.shape[-1] not in channels:
        return (f"has {arr.shape[-1]} channels/columns (shape {arr.shape}); "
                f"{name!r} has {' or '.join(map(str, channels))}")
    if ARRAY_KINDS[name] in (_IMAGE, _MAP) and min(arr.shape[:2]) == 0:
        return f"is empty (shape {arr.shape})"
    if (name == "keypoints" or (name == "exemplar_map" and arr.dtype.kind == "f")) \
            and arr.shape != (len(OPENPOSE_JOINTS), 3):
        return f"has shape {arr.shape}; a pose is {len(OPENPOSE_JOINTS)} joints × 3"
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return "holds NaN or infinite values"
    if arr.dtype.kind in "iu" and arr.size and (arr.min() < PROJECT_INT_RANGE[0] or arr.max() > PROJECT_INT_RANGE[1]):
        return "holds values outside the 32-bit range"
    return ""


def _check_strokes(points: np.ndarray | None, meta: np.ndarray | None) -> str:
    if points is None and meta is None:
        return ""
    if points is None or meta is None:
        return "has stroke_points or stroke_meta without the other"
    counts = meta[:, 0] if len(meta) else np.zeros(0, np.float32)
    if (counts < 1).any() or (counts != np.round(counts)).any() or int(counts.sum()) != len(points):
        return f"has stroke point counts that do not add up to its {len(points)} points"
    if len(meta) and ((meta[:, 1] <= 0).any() or np.abs(meta[:, 3]).max() > PROJECT_INT_RANGE[1]):
        return "has a stroke with a width of 0 or less, or a group number out of range"
    return ""


# The types of the fields workspaces read back (a wrong type is refused, never guessed at)
STATE_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("seed", "seed_b", "domain", "reference_domain", "alpha", "brush", "label", "instance",
                     "opacity", "strength", "width", "layer"), (int,)),
    "psi": (int, float),
    **dict.fromkeys(("live", "b_from_reference", "paste"), (bool,)),
    **dict.fromkeys(("model", "mode", "kind", "class"), (str,)),
    **dict.fromkeys(("regions", "objects"), (list,)),
}

_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true/false", "str": "text", "list": "a list"}


def _check_state(state: dict[str, Any]) -> str:
    """'' when every field a workspace reads has the type the studio writes, numbers fit a C int
    and are finite, and text is short; else the problem."""
    for key, value in state.items():
        expected = STATE_TYPES.get(key)
        if expected is not None and (not isinstance(value, expected)
                                     or (isinstance(value, bool) and bool not in expected)):
            wanted = " or ".join(_TYPE_WORDS[t.__name__] for t in expected)
            return f"field {key[:40]!r} is {_short(value)}, not {wanted}"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not PROJECT_INT_RANGE[0] <= value <= PROJECT_INT_RANGE[1]:
                return f"field {key[:40]!r} is {_short(value)}, outside the 32-bit range"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"field {key[:40]!r} is not a finite number"
        elif isinstance(value, str):
            if len(value) > PROJECT_TEXT_MAX_CHARS:
                return f"field {key[:40]!r} is text longer than {PROJECT_TEXT_MAX_CHARS} characters"
        elif isinstance(value, list):
            if len(value) > PROJECT_TEXT_MAX_CHARS or not all(
                    isinstance(v, str) and len(v) <= PROJECT_TEXT_MAX_CHARS for v in value):
                return f"field {key[:40]!r} is not a short list of names"
    return ""  # fields no workspace reads (a newer version's) are kept as they are


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_project(path: Path | str) -> Project:
    """Read a project; InputError naming the file and the problem when it is not a sound one.
    Nothing is written and nothing is extracted; memory is bounded by the ``PROJECT_*`` limits."""
    path = Path(path)
    name = path.name or str(path)
    if path.is_dir():
        raise InputError(f"{name} is a folder, not an i2i-studio project")
    if path.exists() and not path.is_file():  # a pipe or device would block or never end
        raise InputError(f"{name} is not a regular file, so not an i2i-studio project")
    entries = _zip_entries(path)
    if entries is not None and entries > PROJECT_MAX_MEMBERS:
        raise InputError(f"{name} lists {entries} zip entries; a project has at most {PROJECT_MAX_MEMBERS}")
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, struct.error) as exc:
        raise InputError(f"{name} is not an i2i-studio project (not a readable zip file: {exc})") from None
    with zf:
        if len(zf.infolist()) > PROJECT_MAX_MEMBERS:
            raise InputError(f"{name} has more than {PROJECT_MAX_MEMBERS} zip entries")
        try:
            text = _read_member(zf, "project.json", PROJECT_JSON_MAX_BYTES).decode("utf-8-sig")
            too_deep = json_depth_exceeds(text, PROJECT_JSON_MAX_DEPTH)  # scanned before parsing
            meta = None if too_deep else json.loads(text, parse_constant=reject_json_constant)
        except KeyError:
            raise InputError(f"{name} is not an i2i-studio project (no project.json inside)") from None
        except (ValueError, RecursionError, zipfile.BadZipFile, zlib.error, EOFError, OSError,
                NotImplementedError, RuntimeError) as exc:
            raise InputError(f"{name}: project.json is damaged ({exc or type(exc).__name__})") from None
        if too_deep:
            raise InputError(f"{name}: project.json nests deeper than {PROJECT_JSON_MAX_DEPTH} levels")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{name} is not an i2i-studio project (project.json does not say so)")
        version = meta.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise InputError(f"{name}: project.json has version {version!r}, not a whole number")
        if version > VERSION:
            raise InputError(f"{name} was written by a newer i2i-studio (project version {version})")
        workspaces = meta.get("workspaces", {})
        current, source = meta.get("current", ""), meta.get("source", "")
        if not isinstance(workspaces, dict) or not isinstance(current, str) or not isinstance(source, str):
            raise InputError(f"{name}: project.json has the wrong shape (workspaces, current or source)")
        out = Project(current=current, source=source)
        decoded: dict[str, np.ndarray] = {}  # a photo shared by several workspaces is read once
        total = 0
        for key, ws in workspaces.items():
            where = f"{name}: workspace {key[:40]!r}"
            if not isinstance(ws, dict) or not isinstance(ws.get("state", {}), dict) \
                    or not isinstance(ws.get("arrays", {}), dict):
                raise InputError(f"{where} has the wrong shape (state and arrays must be objects)")
            state = ws.get("state", {})
            problem = _check_state(state)
            if problem:
                raise InputError(f"{where}: {problem}")
            arrays = {}
            for array_name, member in ws.get("arrays", {}).items():
                if array_name not in ARRAY_KINDS:
                    continue  # not one this program uses: never read
                if not isinstance(member, str) or member.startswith(("/", "\\")) or ".." in member.split("/"):
                    raise InputError(f"{where}: array {array_name!r} names an invalid member {str(member)[:60]!r}")
                if member not in decoded:
                    try:
                        data = _read_member(zf, member, min(PROJECT_MEMBER_MAX_BYTES,
                                                            PROJECT_TOTAL_MAX_BYTES - total))
                        decoded[member] = _decode(member, data)
                        del data
                    except KeyError:
                        raise InputError(f"{name}: {member} is missing") from None
                    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error,
                            struct.error, NotImplementedError, RuntimeError) as exc:
                        raise InputError(f"{name}: {member} is damaged ({exc or type(exc).__name__})") from None
                    total += decoded[member].nbytes
                    if total > PROJECT_TOTAL_MAX_BYTES:
                        raise InputError(f"{name}: its arrays decode to more than "
                                         f"{PROJECT_TOTAL_MAX_BYTES >> 20} MiB")
                arr = decoded[member]
                problem = _check_array(array_name, arr)
                if problem:
                    raise InputError(f"{where}: {member} {problem}")
                arrays[array_name] = arr
            problem = _check_strokes(arrays.get("stroke_points"), arrays.get("stroke_meta"))
            instances = arrays.get("instances")
            if not problem and instances is not None and instances.shape != arrays.get("labels", instances).shape:
                problem = "has an instance map and a label map of different sizes"
            if problem:
                raise InputError(f"{where} {problem}")
            out.workspaces[str(key)] = WorkspaceData(state=dict(state), arrays=arrays)
    return out


def projects_equal(a: Project, b: Project, *, photos_by_identity: bool = False) -> bool:
    """Same parameters and bit-identical arrays (dtype, shape, values). With
    ``photos_by_identity`` large arrays count as equal only when they are the same object: the
    studio replaces images rather than writing into them, and comparing two 8000² photos pixel by
    pixel would stall the GUI thread."""
    if a.current != b.current or set(a.workspaces) != set(b.workspaces):
        return False
    for key, wa in a.workspaces.items():
        wb = b.workspaces[key]
        if json.loads(json.dumps(wa.state)) != json.loads(json.dumps(wb.state)):
            return False
        if set(wa.arrays) != set(wb.arrays):
            return False
        for name, arr in wa.arrays.items():
            other = wb.arrays[name]
            if arr is other:
                continue
            if photos_by_identity and max(arr.nbytes, other.nbytes) >= MEDIA_MIN_BYTES:
                return False
            if arr.dtype != other.dtype or arr.shape != other.shape or not np.array_equal(arr, other):
                return False
    return True


# ------------------------------------------------------------------------------------------------
# Crash recovery: a lock file while a session runs, an autosave beside it
# ------------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):  # a pid no process can have (e.g. 30 digits)
        return False
    return True


class SessionGuard:
    """Marks a running session in ``folder``; tells whether the previous one crashed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.lock = self.folder / LOCK_NAME
        self.autosave = self.folder / AUTOSAVE_NAME

    def _lock_pid(self) -> int:
        """The pid in the lock file; 0 when it is unreadable or not a number."""
        try:
            with open(self.lock, "rb") as fh:
                text = fh.read(64).decode("ascii").strip()
            return int(text) if text.isdigit() else 0
        except (OSError, ValueError):
            return 0

    def crashed_session(self) -> Path | None:
        """The autosave of a previous session that did not exit cleanly (and is not running)."""
        if not (os.path.lexists(self.lock) and os.path.lexists(self.autosave)):
            return None
        pid = self._lock_pid()
        if pid != os.getpid() and _pid_alive(pid):
            return None  # another studio is running and owns these files
        return self.autosave

    def set_aside(self, path: Path) -> Path:
        """Rename a damaged file (or folder) out of the way, keeping it for the user to look at;
        returns the new name. OSError when it cannot be renamed."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(100):
            target = path.with_name(f"{path.stem}-damaged-{stamp}{f'-{n}' if n else ''}{path.suffix}")
            if not os.path.lexists(target):
                os.rename(path, target)
                return target
        raise OSError(f"no free name to set {path.name} aside")

    def start(self) -> Path | None:
        """Mark this session as running. A lock that cannot be a file (a folder in its place) is
        set aside first: its new name is returned. OSError when the folder cannot hold the lock."""
        self.folder.mkdir(parents=True, exist_ok=True)
        moved = None
        if os.path.lexists(self.lock) and not self.lock.is_file():
            moved = self.set_aside(self.lock)
        self.lock.write_text(str(os.getpid()))
        return moved

    def save(self, project: Project, *, cache: MediaCache | None = None,
             keep: Callable[[], bool] | None = None) -> bool:
        return save_project(self.autosave, project, cache=cache, keep=keep)

    def finish(self) -> None:
        """Clean exit: nothing to recover next time."""
        for p in (self.autosave, self.lock):
            try:
                p.unlink()
            except OSError:  # gone already, or a folder that was never ours to remove
                pass


def _background_priority() -> None:
    """Run the calling thread at a lower CPU priority, so that on a busy machine the GUI thread
    is scheduled before the autosave (Linux: niceness is per thread)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass


class Autosaver:
    """Writes autosaves on one worker thread. The GUI hands over a snapshot (a :class:`Project`
    whose arrays are copies or immutable images) and returns at once; a snapshot still waiting
    when a newer one arrives is dropped (newest wins). ``on_done(error)`` runs on the worker
    thread after each write ('' on success)."""

    def __init__(self, guard: SessionGuard, cache: MediaCache | None = None,
                 on_done: Callable[[str], None] | None = None) -> None:
        self.guard = guard
        self.cache = cache or MediaCache()
        self.on_done = on_done
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="i2i-autosave",
                                            initializer=_background_priority)
        self._futures: list[Future] = []
        self._closing = threading.Event()
        self.written = 0

    def submit(self, project: Project) -> Future:
        for f in self._futures:
            f.cancel()  # only succeeds for a snapshot still waiting
        future = self._executor.submit(self._write, project)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def _write(self, project: Project) -> bool:
        if self._closing.is_set():
            return False
        try:
            ok = self.guard.save(project, cache=self.cache, keep=lambda: not self._closing.is_set())
        except OSError as exc:
            if self.on_done is not None:
                self.on_done(f"Autosave failed: {exc}")
            return False
        if ok:
            self.written += 1
            if self.on_done is not None:
                self.on_done("")
        return ok

    def close(self, timeout: float = 10.0) -> bool:
        """Stop: drop a waiting snapshot, let a running write finish (it is not committed), wait
        up to ``timeout`` seconds. True when the worker stopped in time."""
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        running = [f for f in self._futures if not f.cancelled()]
        futures_wait(running, timeout)
        return all(f.done() for f in running)
