"""Project files: one zip holding every workspace's canvases, pickers and parameters.

Layout: ``project.json`` ({"format": "i2i-studio project", "version", "current", "workspaces":
{key: {"state": {...}, "arrays": {name: member}}}}) plus one member per array: 8-bit images and
maps as PNG (greyscale or RGB, lossless), everything else as ``.npy``. Writes are atomic (temp file
in the same folder, fsync, rename), so a crash never leaves a half-written project. The same
format serves autosave; a lock file tells the next start that the last session did not exit cleanly.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.api import InputError

FORMAT = "i2i-studio project"
VERSION = 1
SUFFIX = ".i2i"
AUTOSAVE_NAME = "autosave" + SUFFIX
LOCK_NAME = "session.lock"


@dataclass
class WorkspaceData:
    state: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Project:
    workspaces: dict[str, WorkspaceData] = field(default_factory=dict)
    current: str = ""


def _encode(arr: np.ndarray) -> tuple[str, bytes]:
    """(extension, bytes): PNG for 8-bit grey/RGB arrays, exact .npy otherwise."""
    buf = io.BytesIO()
    if arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
        return ".png", buf.getvalue()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return ".npy", buf.getvalue()


def _decode(name: str, data: bytes) -> np.ndarray:
    if name.endswith(".png"):
        img = Image.open(io.BytesIO(data))
        return np.asarray(img).copy()
    return np.load(io.BytesIO(data), allow_pickle=False)


def save_project(path: Path | str, project: Project) -> None:
    """Write ``project`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "current": project.current, "workspaces": {}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for key, ws in project.workspaces.items():
                    members: dict[str, str] = {}
                    for name, arr in ws.arrays.items():
                        if arr is None:
                            continue
                        ext, data = _encode(np.asarray(arr))
                        member = f"{key}/{name}{ext}"
                        # PNG is already compressed; storing it avoids a second deflate pass
                        zf.writestr(member, data, compress_type=zipfile.ZIP_STORED if ext == ".png" else zipfile.ZIP_DEFLATED)
                        members[name] = member
                    meta["workspaces"][key] = {"state": ws.state, "arrays": members}
                zf.writestr("project.json", json.dumps(meta, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        out = Project(current=str(meta.get("current", "")))
        for key, ws in meta.get("workspaces", {}).items():
            arrays = {}
            for name, member in ws.get("arrays", {}).items():
                try:
                    arrays[name] = _decode(member, zf.read(member))
                except (KeyError, OSError, ValueError) as exc:
                    raise InputError(f"{path.name}: {member} is missing or damaged ({exc})") from exc
            out.workspaces[key] = WorkspaceData(state=dict(ws.get("state", {})), arrays=arrays)
    return out


def projects_equal(a: Project, b: Project) -> bool:
    """Same parameters and bit-identical arrays (dtype, shape, values)."""
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

    def save(self, project: Project) -> None:
        save_project(self.autosave, project)

    def finish(self) -> None:
        """Clean exit: nothing to recover next time."""
        for p in (self.autosave, self.lock):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
