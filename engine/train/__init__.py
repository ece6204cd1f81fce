"""Trainers, one module per family (each adds `i2i train <family>`)."""
