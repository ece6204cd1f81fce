"""i2i-studio engine: PyTorch generators, tasks, scheduler and CLI. Never imports Qt."""
__version__ = "0.1.0"
