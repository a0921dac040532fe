"""Neural-network building blocks (PyTorch's names and semantics)."""
from . import functional

__all__ = ["functional"]
