"""Network families (one module each) and the layers they share (layers.py)."""
