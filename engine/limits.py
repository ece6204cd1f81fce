"""Every resource bound on user input, in one place.

Each limit is checked *before* the memory or time it protects is spent: image sizes from the file
header, JSON size before parsing and depth before building, argument ranges before any array is made,
tensor bytes from a checkpoint's index or pickle before reading data, parameter bytes from a model
config before building the network. Code that enforces a limit imports it from here; the README lists
them ("Limits on input").
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .requests.base import InputError

# ------------------------------------------------------------------------------ images
MAX_IMAGE_PIXELS = 40_000_000  # per decoded image (a 7000×5700 photo); checked from the header
MAX_IMAGE_SIDE = 12_000  # longer side; a 1×80000 strip padded to a square would need 6.4 G pixels

# ------------------------------------------------------------------------------ JSON inputs
MAX_JSON_BYTES = 16 * 1024 * 1024  # pose / scene / panoptic / manifest / settings files
MAX_JSON_DEPTH = 64  # nesting of arrays and objects (deeper input is refused, never recursed into)

# ------------------------------------------------------------------------------ arguments
MAX_OUTPUTS = 64  # --num: images per source
MAX_STEPS = 64  # --steps: interpolation frames
MIN_PREVIEW_SIZE = 16  # --preview-size, pixels of the longer side
MAX_PREVIEW_SIZE = 2048
MAX_CANVAS_SIDE = 4096  # pose canvas_width / canvas_height, scene canvas sides
MAX_SCENE_OBJECTS = 256  # boxes in one scene layout
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
MAX_MASK_GROW = 16  # dilation radius of an edit mask at the scale it is computed (then resized)

# ------------------------------------------------------------------------------ weights
MAX_TENSOR_BYTES = 1024**3  # one tensor of a checkpoint (the largest official one is ~38 MB)
MAX_CHECKPOINT_BYTES = 8 * 1024**3  # all tensors of one checkpoint together
MAX_PICKLE_DEPTH = 100  # nesting of containers in a torch pickle (keys of nested tuples hang hashing)
MAX_PICKLE_NODES = 5_000_000  # objects a torch pickle expands to, shared references counted per use
MAX_PICKLE_BYTES = 256 * 1024**2  # the data.pkl record of a zip checkpoint / a legacy pickle stream
MAX_INDEX_BYTES = 64 * 1024**2  # a TensorFlow checkpoint's .index table (read whole)
MAX_MODEL_PARAM_BYTES = 2 * 1024**3  # float32 parameters a manifest config may ask to build
MAX_NAME_LENGTH = 64  # manifest names (file stems in weights/)

# ------------------------------------------------------------------------------ projects (.i2i)
PROJECT_MEMBER_MAX_BYTES = 256 * 1024**2  # decoded bytes of one member (an 8000×8000 RGB photo is 192 MB)
PROJECT_TOTAL_MAX_BYTES = 1024**3  # decoded bytes of all members together
PROJECT_JSON_MAX_BYTES = 4 * 1024**2  # project.json (a real one is a few kB)
PROJECT_JSON_MAX_DEPTH = 16  # nesting of project.json (the studio writes 5 levels)
PROJECT_MAX_MEMBERS = 4096  # zip entries (each costs a Python object before anything is read)
PROJECT_TEXT_MAX_CHARS = 1000  # one string field of a workspace's state
PROJECT_INT_RANGE = (-(2**31), 2**31 - 1)  # integer state fields go into Qt widgets (C int)


# ------------------------------------------------------------------------------ checks
def check_int_range(value: Any, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi], else an InputError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name} must lie in {lo}..{hi}, got {value}")
    return value


def check_image_size(width: int, height: int, what: str) -> None:
    """Refuse an image (or a canvas about to be allocated) larger than the pixel / side limits."""
    if width <= 0 or height <= 0:
        raise InputError(f"{what} has zero size ({width}×{height})")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise InputError(f"{what} is {width}×{height} pixels; a side may be at most {MAX_IMAGE_SIDE}")
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{what} is {width}×{height} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS // 1_000_000} MP this program accepts")


_BRACKETS = re.compile(r'["\[\]{}\\]')


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``limit`` (scanned, never parsed)."""
    # Only strings can hide brackets; skip everything else with a regex instead of per-character Python.
    depth = 0
    in_string = escaped = False
    pos = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if in_string:
            if escaped and m.start() == pos:
                escaped = False
            elif ch == "\\":
                escaped, pos = True, m.end()
            elif ch == '"':
                in_string = False
            continue
        escaped = False
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def reject_json_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def load_json(path: Path | str, what: str = "JSON") -> Any:
    """Read a user JSON file within :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`; ``NaN`` and
    ``Infinity`` are refused. Every failure is an InputError naming the file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not a {what} file")
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputError(f"{path} is {size / 1e6:.1f} MB; a {what} file may be at most "
                             f"{MAX_JSON_BYTES // 1024**2} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a {what} file (not UTF-8 text)") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return parse_json(text, f"{path}", what)


def parse_json(text: str, source: str, what: str = "JSON") -> Any:
    """:func:`load_json` for text already in memory; ``source`` names it in messages."""
    if len(text) > MAX_JSON_BYTES:
        raise InputError(f"{source}: {what} text is longer than {MAX_JSON_BYTES // 1024**2} MiB")
    if json_depth_exceeds(text):
        raise InputError(f"{source} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=reject_json_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{source} is not valid JSON: {exc}") from None


def finite_number(value: Any, name: str) -> float:
    """A JSON number that is finite (bool, string, None, NaN and ±inf refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {_short(value)}")
    out = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {_short(value)}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: Any, limit: int = 80) -> str:
    """``text`` safe to print on a terminal: control characters (escape codes, bidi overrides) shown
    as ``\\xNN`` escapes, length bounded."""
    s = str(text)
    s = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)
    return s if len(s) <= limit else s[: limit - 1] + "…"

