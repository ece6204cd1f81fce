"""Project files: one zip holding every workspace's canvases, pickers and parameters.

Layout: ``project.json`` ({"format": "i2i-studio project", "version", "current", "source",
"workspaces": {key: {"state": {...}, "arrays": {name: member}}}}) plus one member per array: 8-bit
images and maps as PNG (greyscale or RGB, lossless), everything else as ``.npy``. Large arrays
(photos) are stored once by content hash (``media/<hash>.png``), however many workspaces use them,
and a :class:`MediaCache` keeps their encoded bytes so later saves do not encode them again. Writes
are atomic (temp file in the same folder, fsync, rename), so a crash never leaves a half-written
project. The same format serves autosave, written by :class:`Autosaver` on a worker thread; a lock
file tells the next start that the last session did not exit cleanly.
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
import tempfile
import threading
import weakref
import zipfile
import zlib
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from engine.api import InputError, array_digest

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
    parts = [b"\x89PNG\r\n\x1a\n", *_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0))]
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


def _decode(name: str, data: bytes) -> np.ndarray:
    if name.endswith(".png"):
        img = Image.open(io.BytesIO(data))
        return np.asarray(img).copy()
    return np.load(io.BytesIO(data), allow_pickle=False)


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


def load_project(path: Path | str) -> Project:
    """Read a project; InputError with a plain reason when the file is not one."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path.name} is not an i2i-studio project (not a readable zip file: {exc})") from exc
    with zf:
        try:
            meta = json.loads(zf.read("project.json"))
        except KeyError:
            raise InputError(f"{path.name} is not an i2i-studio project (no project.json inside)") from None
        except ValueError as exc:
            raise InputError(f"{path.name}: project.json is damaged ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise InputError(f"{path.name} is not an i2i-studio project (format {meta.get('format')!r})")
        if int(meta.get("version", 0)) > VERSION:
            raise InputError(f"{path.name} was written by a newer i2i-studio (project version {meta['version']})")
        out = Project(current=str(meta.get("current", "")), source=str(meta.get("source", "")))
        decoded: dict[str, np.ndarray] = {}  # a photo shared by several workspaces is read once
        for key, ws in meta.get("workspaces", {}).items():
            arrays = {}
            for name, member in ws.get("arrays", {}).items():
                try:
                    if member not in decoded:
                        decoded[member] = _decode(member, zf.read(member))
                    arrays[name] = decoded[member]
                except (KeyError, OSError, ValueError) as exc:
                    raise InputError(f"{path.name}: {member} is missing or damaged ({exc})") from exc
            out.workspaces[key] = WorkspaceData(state=dict(ws.get("state", {})), arrays=arrays)
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
    except OSError:
        return False
    return True


class SessionGuard:
    """Marks a running session in ``folder``; tells whether the previous one crashed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.lock = self.folder / LOCK_NAME
        self.autosave = self.folder / AUTOSAVE_NAME

    def crashed_session(self) -> Path | None:
        """The autosave of a previous session that did not exit cleanly (and is not running)."""
        if not (self.lock.exists() and self.autosave.exists()):
            return None
        try:
            pid = int(self.lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid != os.getpid() and _pid_alive(pid):
            return None  # another studio is running and owns these files
        return self.autosave

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock.write_text(str(os.getpid()))

    def save(self, project: Project, *, cache: MediaCache | None = None,
             keep: Callable[[], bool] | None = None) -> bool:
        return save_project(self.autosave, project, cache=cache, keep=keep)

    def finish(self) -> None:
        """Clean exit: nothing to recover next time."""
        for p in (self.autosave, self.lock):
            try:
                p.unlink()
            except FileNotFoundError:
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
