"""lt_core: learning transfer and mode connectivity for PyTorch networks (no UI code here)."""

__version__ = "0.1.0"
