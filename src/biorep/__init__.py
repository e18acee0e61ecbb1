"""biorep: learn, compare and evaluate representations of biological images."""

__version__ = "0.1.0"
