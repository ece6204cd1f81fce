"""The engine's one door: requests in; images, progress and typed failures out.

``app/`` imports nothing of ``engine`` but this module (an import-linter contract says so). The request
and result types live in ``engine.requests`` (the bottom layer, which every engine module may use);
this module sits at the top, beside the CLI, and adds what a client needs to run them.
"""
from .limits import (PROJECT_INT_RANGE, PROJECT_JSON_MAX_BYTES, PROJECT_JSON_MAX_DEPTH, PROJECT_MAX_MEMBERS,
                     PROJECT_MEMBER_MAX_BYTES, PROJECT_TEXT_MAX_CHARS, PROJECT_TOTAL_MAX_BYTES, json_depth_exceeds)
from .requests import *  # noqa: F403 - the request/result types are this door's vocabulary
from .requests import __all__ as _request_names

__all__ = [
    *_request_names,
    "PROJECT_INT_RANGE", "PROJECT_JSON_MAX_BYTES", "PROJECT_JSON_MAX_DEPTH", "PROJECT_MAX_MEMBERS",
    "PROJECT_MEMBER_MAX_BYTES", "PROJECT_TEXT_MAX_CHARS", "PROJECT_TOTAL_MAX_BYTES", "json_depth_exceeds",
]
