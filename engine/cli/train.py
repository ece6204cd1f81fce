"""``i2i train FAMILY``: each trainer declares its own options next to its training loop."""
from __future__ import annotations

from ..train import cocosnet, edgegan, panoptic, stargan2
from .common import CliGroups


def register(groups: CliGroups) -> None:
    for trainer in (stargan2, cocosnet, panoptic, edgegan):
        trainer.register_cli(groups)
