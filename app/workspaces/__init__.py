"""One workspace per task; the main window shows them in this order (Ctrl+1 … Ctrl+N)."""
from .cocosnet import EditWorkspace, ExemplarWorkspace, MakeupWorkspace
from .panoptic import PanopticWorkspace
from .sketch import SceneWorkspace, SketchObjectWorkspace
from .stargan import StarGANWorkspace

WORKSPACES = (ExemplarWorkspace, EditWorkspace, MakeupWorkspace, StarGANWorkspace, PanopticWorkspace,
              SketchObjectWorkspace, SceneWorkspace)

__all__ = ["WORKSPACES", "ExemplarWorkspace", "EditWorkspace", "MakeupWorkspace", "StarGANWorkspace",
           "PanopticWorkspace", "SketchObjectWorkspace", "SceneWorkspace"]
