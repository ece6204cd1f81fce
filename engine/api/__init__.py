"""The engine's one narrow interface: requests in; images, progress and typed failures out.

Everything the GUI or the CLI needs from the engine is importable from here.
"""
from .base import (Cancelled, DeviceName, EngineError, ErrorKind, Failure, FrozenArray,
                   InputError, MissingDependencyError, ProgressCallback, Quality, Request,
                   Result, WeightsError, array_digest, frozen)
from .cocosnet import *  # noqa: F401,F403
from .edgegan import *  # noqa: F401,F403
from .panoptic import *  # noqa: F401,F403
from .preview import preview_size_for
from ..limits import (PROJECT_INT_RANGE, PROJECT_JSON_MAX_BYTES, PROJECT_JSON_MAX_DEPTH, PROJECT_MAX_MEMBERS,
                      PROJECT_MEMBER_MAX_BYTES, PROJECT_TEXT_MAX_CHARS, PROJECT_TOTAL_MAX_BYTES,
                      json_depth_exceeds)
from .stargan2 import *  # noqa: F401,F403
from . import cocosnet as _c, edgegan as _e, panoptic as _p, stargan2 as _s

__all__ = [
    "Cancelled", "DeviceName", "EngineError", "ErrorKind", "Failure", "FrozenArray", "InputError",
    "MissingDependencyError", "ProgressCallback", "Quality", "Request", "Result", "WeightsError",
    "array_digest", "frozen", "preview_size_for",
    "PROJECT_INT_RANGE", "PROJECT_JSON_MAX_BYTES", "PROJECT_JSON_MAX_DEPTH", "PROJECT_MAX_MEMBERS",
    "PROJECT_MEMBER_MAX_BYTES", "PROJECT_TEXT_MAX_CHARS", "PROJECT_TOTAL_MAX_BYTES", "json_depth_exceeds", *_c.__all__, *_e.__all__, *_p.__all__, *_s.__all__,
]
