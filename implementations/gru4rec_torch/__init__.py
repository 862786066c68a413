"""GRU4Rec in PyTorch, written from SPEC.md section 4 (see README.md)."""
from .model import DEFAULTS, GRU4Rec, resolve_params

__all__ = ["DEFAULTS", "GRU4Rec", "resolve_params"]
