"""i2i-studio: the PySide6 desktop application over the Qt-free ``engine`` package."""
