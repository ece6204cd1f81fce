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
from .stargan2 import *  # noqa: F401,F403
from . import cocosnet as _c, edgegan as _e, panoptic as _p, stargan2 as _s

__all__ = [
    "Cancelled", "DeviceName", "EngineError", "ErrorKind", "Failure", "FrozenArray", "InputError",
    "MissingDependencyError", "ProgressCallback", "Quality", "Request", "Result", "WeightsError",
    "array_digest", "frozen", "preview_size_for", *_c.__all__, *_e.__all__, *_p.__all__, *_s.__all__,
]
