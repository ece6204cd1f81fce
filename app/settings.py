"""Declarative user settings (Qt-free): one table of (key, default, label, help), stored as JSON.

The file lives in ``I2I_CONFIG_DIR`` or the platform's user config folder. Unknown keys are kept
out, invalid values fall back to their default and are reported (never a crash), and the schema
version lets older files be migrated forward. The studio's settings dialog is built from
:data:`SETTINGS`; the CLI may read the same file.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.api import LivePolicy, reject_json_constant

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
FILE_NAME = "settings.json"
SETTINGS_MAX_BYTES = 1 << 20  # a real settings file is under 1 kB; anything bigger is not one

Kind = Literal["bool", "int", "float", "choice", "str"]


@dataclass(frozen=True)
class Setting:
    """One user setting. ``choices`` for kind "choice"; ``minimum``/``maximum`` for numbers."""

    key: str
    default: Any
    label: str
    help: str
    kind: Kind
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    section: str = "General"

    def validate(self, value: Any) -> Any:
        """The value coerced to this setting's type; ValueError with a plain reason otherwise."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"{self.key} must be true or false, not {value!r}")
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{self.key} must be a number, not {value!r}")
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(f"{self.key} must be a whole number, not {value!r}")
                value = int(value)
            else:
                value = float(value)
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{self.key} must be at least {self.minimum}, not {value}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{self.key} must be at most {self.maximum}, not {value}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.key} must be one of {', '.join(self.choices)}, not {value!r}")
            return value
        if not isinstance(value, str):
            raise ValueError(f"{self.key} must be text, not {value!r}")
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting("device", "auto", "Compute device",
            "Where models run. 'auto' picks CUDA, then Apple MPS, then the CPU.",
            "choice", choices=("auto", "cpu", "cuda", "mps"), section="Engine"),
    Setting("precision", "auto", "Precision",
            "'auto' is float32 on the CPU and bfloat16/float16 on a GPU.",
            "choice", choices=("auto", "float32", "bfloat16", "float16"), section="Engine"),
    Setting("threads", 0, "CPU threads",
            "Threads for model code; 0 keeps one core free for the interface (next start).",
            "int", minimum=0, maximum=256, section="Engine"),
    Setting("live_preview", True, "Live preview",
            "Regenerate the output after every edit.", "bool", section="Preview"),
    Setting("render_on_release", False, "Render only when a stroke ends",
            "For slow models: no previews while the pointer is down.", "bool", section="Preview"),
    Setting("preview_size", LivePolicy.preview_size, "Preview size while drawing (px)",
            "Longer side of the working resolution while a stroke or slider drag is in progress; "
            "the full size is rendered on release.", "int", minimum=32, maximum=1024, section="Preview"),
    Setting("max_wait_ms", 500, "Longest wait for a preview (ms)",
            "A continuous stroke still refreshes at least this often when the model is slow.",
            "int", minimum=50, maximum=10000, section="Preview"),
    Setting("grace_ms", 120, "Debounce for slow models (ms)",
            "When generation is slow, wait this long for further edits before starting.",
            "int", minimum=0, maximum=5000, section="Preview"),
    Setting("brush_size", 12, "Default brush size (px)", "Brush diameter of new mask canvases.",
            "int", minimum=1, maximum=256, section="Canvas"),
    Setting("undo_limit", 200, "Undo steps", "Strokes kept in each canvas's history.",
            "int", minimum=1, maximum=10000, section="Canvas"),
    Setting("theme", "dark", "Theme", "Colours of the interface (takes effect at the next start).",
            "choice", choices=("dark", "light", "system"), section="Interface"),
    Setting("autosave_s", 60, "Autosave every (s)",
            "Write a recovery copy of the session this often; 0 turns autosave off.",
            "int", minimum=0, maximum=3600, section="Projects"),
)

_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

# version -> function turning that version's dict into the next version's dict
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # v1 stored the preview size under "preview_px" and autosave in minutes.
    1: lambda d: {**{k: v for k, v in d.items() if k not in ("preview_px", "autosave_min")},
                  **({"preview_size": d["preview_px"]} if "preview_px" in d else {}),
                  **({"autosave_s": d["autosave_min"] * 60}
                     if isinstance(d.get("autosave_min"), (int, float)) else {})},
}


def config_dir() -> Path:
    """``I2I_CONFIG_DIR``, else the platform's per-user config folder for i2i-studio."""
    env = os.environ.get("I2I_CONFIG_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "i2i-studio"


def setting(key: str) -> Setting:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown setting {key!r}; known: {', '.join(_BY_KEY)}") from None


@dataclass
class Settings:
    """Current values of every setting, with the problems found when the file was read."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def defaults(cls, path: Path | None = None) -> Settings:
        return cls(path=path or config_dir() / FILE_NAME, values={s.key: s.default for s in SETTINGS})

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the file; a missing file gives the defaults, a broken one the defaults plus problems."""
        out = cls.defaults(path)
        try:
            if not out.path.exists():
                return out
            if not out.path.is_file():
                raise ValueError("it is not a file")
            size = out.path.stat().st_size
            if size > SETTINGS_MAX_BYTES:
                raise ValueError(f"it is {size} bytes, more than the {SETTINGS_MAX_BYTES >> 10} KiB "
                                 "a settings file may be")
            raw = json.loads(out.path.read_text(encoding="utf-8"), parse_constant=reject_json_constant)
            if not isinstance(raw, dict):
                raise ValueError("the top level is not an object")
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = "it nests too deeply" if isinstance(exc, RecursionError) else exc
            out._problem(f"{out.path} could not be read ({reason}); using default settings")
            return out
        version = raw.pop("schema", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            out._problem(f"{out.path} has schema {repr(version)[:40]}, not one this program knows "
                         f"(1 to {SCHEMA_VERSION}); reading what it can, defaults for the rest")
            version = SCHEMA_VERSION
        try:
            while version < SCHEMA_VERSION:
                raw = MIGRATIONS[version](raw)
                version += 1
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            out._problem(f"{out.path} could not be migrated from schema {version} ({exc}); using default settings")
            return out
        out.update(raw, source=str(out.path))
        return out

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    def update(self, raw: dict[str, Any], *, source: str = "settings") -> None:
        """Take every valid known value from ``raw``; report the rest and keep their defaults."""
        for key, value in raw.items():
            if key not in _BY_KEY:
                self._problem(f"{source}: unknown setting {key!r} ignored")
                continue
            try:
                self.values[key] = _BY_KEY[key].validate(value)
            except (ValueError, OverflowError) as exc:
                self._problem(f"{source}: {exc}; using the default {_BY_KEY[key].default!r}")

    def get(self, key: str) -> Any:
        setting(key)
        return self.values[key]

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def set(self, key: str, value: Any) -> None:
        """Set one value; ValueError (nothing changed) when it is invalid."""
        self.values[key] = setting(key).validate(value)

    def copy(self) -> Settings:
        return Settings(path=self.path, values=dict(self.values), problems=list(self.problems))

    def save(self) -> None:
        """Atomic write: a crash never leaves half a settings file. OSError when the folder cannot
        take it (the old file is then untouched)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"schema": SCHEMA_VERSION, **{k: self.values[k] for k in _BY_KEY}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".settings-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def sections() -> list[tuple[str, list[Setting]]]:
    """Settings grouped by section, in declaration order (for a settings dialog)."""
    out: dict[str, list[Setting]] = {}
    for s in SETTINGS:
        out.setdefault(s.section, []).append(s)
    return list(out.items())


def keys() -> Iterable[str]:
    return _BY_KEY.keys()
