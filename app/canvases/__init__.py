"""Canvas widgets: they paint a numpy document model and turn pointer input into document edits."""
from .mask import MaskCanvas
from .pose import PoseCanvas
from .sketch import SketchCanvas

__all__ = ["MaskCanvas", "PoseCanvas", "SketchCanvas"]
