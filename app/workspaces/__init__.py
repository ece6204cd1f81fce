"""One workspace per task; the main window shows them in this order (Ctrl+1 … Ctrl+N)."""
from .stargan import StarGANWorkspace

WORKSPACES = (StarGANWorkspace,)

__all__ = ["WORKSPACES", "StarGANWorkspace"]
