"""i2i-studio: the PySide6 desktop application over the Qt-free ``engine`` package.

PySide6 is pinned below 6.12 (pyproject): 6.12.0 over-releases ``None``/``True`` on CPython 3.11
and aborts the interpreter after a few thousand signals; tests/test_app_shell.py guards that.
"""
