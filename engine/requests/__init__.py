"""Request and result types, and the typed failures, shared by every layer of the engine.

The bottom layer: imports nothing else of ``engine``. ``engine.api`` re-exports all of it.
"""
from . import cocosnet as _c
from . import edgegan as _e
from . import panoptic as _p
from . import stargan2 as _s
from .base import (
    Cancelled,
    DeviceName,
    EngineError,
    ErrorKind,
    Failure,
    FrozenArray,
    InputError,
    MissingDependencyError,
    ProgressCallback,
    Quality,
    Request,
    Result,
    WeightsError,
    array_digest,
    frozen,
)
from .cocosnet import *  # noqa: F403 - re-exports the module's __all__ (the request types)
from .edgegan import *  # noqa: F403 - re-exports the module's __all__ (the request types)
from .panoptic import *  # noqa: F403 - re-exports the module's __all__ (the request types)
from .stargan2 import *  # noqa: F403 - re-exports the module's __all__ (the request types)

__all__ = [
    "Cancelled", "DeviceName", "EngineError", "ErrorKind", "Failure", "FrozenArray", "InputError",
    "MissingDependencyError", "ProgressCallback", "Quality", "Request", "Result", "WeightsError",
    "array_digest", "frozen",
    *_c.__all__, *_e.__all__, *_p.__all__, *_s.__all__,
]
