"""Layers shared by more than one network family (SPADE, spectral norm helpers, norms).

Family-specific blocks live in their family's module; only what two or more families use is here.
"""
from __future__ import annotations
