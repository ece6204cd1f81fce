"""i2i-studio: the PySide6 desktop application over the Qt-free ``engine`` package."""
from ._compat import protect_singletons

# PySide6 6.12 on CPython < 3.12 over-releases None/True; see app/_compat.py.
protect_singletons()
