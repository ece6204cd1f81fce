"""``python -m engine.cli`` (e.g. under ``torchrun``): the ``i2i`` command."""
import sys

from . import main

sys.exit(main())
