"""Choosing the compute device."""

from __future__ import annotations

import torch

from .errors import LTError


def available_devices() -> list[str]:
    """Devices this machine can run on, best first."""
    return (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a ``torch.device``, checking it exists."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LTError(f"unknown device {name!r}: use auto, cpu or cuda") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LTError(f"device {name!r} was asked for but CUDA is not available here: use --device cpu or auto")
    return device
