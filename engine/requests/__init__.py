"""Request and result types, and the typed failures, shared by every layer of the engine.

The bottom layer: imports nothing else of ``engine``. ``engine.api`` re-exports all of it.
"""
from .base import (Cancelled, DeviceName, EngineError, ErrorKind, Failure, FrozenArray,
                   InputError, MissingDependencyError, ProgressCallback, Quality, Request,
                   Result, WeightsError, array_digest, frozen)
from .cocosnet import *  # noqa: F401,F403
from .edgegan import *  # noqa: F401,F403
from .panoptic import *  # noqa: F401,F403
from .stargan2 import *  # noqa: F401,F403
from . import cocosnet as _c, edgegan as _e, panoptic as _p, stargan2 as _s

__all__ = [
    "Cancelled", "DeviceName", "EngineError", "ErrorKind", "Failure", "FrozenArray", "InputError",
    "MissingDependencyError", "ProgressCallback", "Quality", "Request", "Result", "WeightsError",
    "array_digest", "frozen",
    *_c.__all__, *_e.__all__, *_p.__all__, *_s.__all__,
]
