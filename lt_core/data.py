"""Datasets as normalised tensors on the compute device.

``digits`` (scikit-learn's bundled 8×8 digits) works offline and is the default. ``mnist``,
``fashion-mnist`` and ``cifar10`` come through torchvision from a data root (``--data-root``,
else ``$LT_DATA_ROOT``, else ``./data``), downloaded when the network allows.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetUnavailable, LTError

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")

_EXPECTED_FILES = {
    "mnist": ("MNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "fashion-mnist": ("FashionMNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "cifar10": ("cifar-10-batches-py", ["data_batch_1", "…", "data_batch_5", "test_batch", "batches.meta"]),
}


@dataclass
class Dataset:
    """Train and validation tensors (already on the device) plus a small descriptor."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> list[int]:
        return list(self.x_train.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def describe(self) -> str:
        c, h, w = self.input_shape
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation, "
                f"{c}×{h}×{w}, {self.num_classes} classes")


def default_data_root() -> Path:
    return Path(os.environ.get("LT_DATA_ROOT", "./data"))


def load_dataset(name: str, root: str | Path | None = None, device: torch.device | str = "cpu",
                 download: bool = True) -> Dataset:
    """Load ``name`` as normalised float tensors on ``device``; see the module docstring."""
    if name not in DATASETS:
        raise LTError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    root = Path(root) if root is not None else default_data_root()
    x_tr, y_tr, x_va, y_va = _load_cpu(name, str(root.resolve()), download)
    dev = torch.device(device)
    return Dataset(name, x_tr.to(dev), y_tr.to(dev), x_va.to(dev), y_va.to(dev), num_classes=10)


@functools.lru_cache(maxsize=8)
def _load_cpu(name: str, root: str, download: bool) -> tuple[torch.Tensor, ...]:
    if name == "digits":
        x_tr, y_tr, x_va, y_va = _digits()
    else:
        x_tr, y_tr, x_va, y_va = _torchvision(name, Path(root), download)
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x_tr - mean) / std, y_tr, (x_va - mean) / std, y_va


def _digits() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None] / 16.0
    y = bunch.target.astype(np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_va), torch.from_numpy(y_va)


def _torchvision(name: str, root: Path, download: bool) -> tuple[torch.Tensor, ...]:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            ds = _download(cls, name, root, train) if download else None
            if ds is None:
                raise DatasetUnavailable(_missing_message(name, root)) from None
        splits.append(_as_tensors(ds))
    (x_tr, y_tr), (x_va, y_va) = splits
    return x_tr, y_tr, x_va, y_va


def _download(cls, name: str, root: Path, train: bool):
    try:
        return cls(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, RuntimeError…)
        raise DatasetUnavailable(_missing_message(name, root) + f"\n(download failed: {exc})") from None


def _as_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    data = ds.data
    if isinstance(data, np.ndarray):  # CIFAR-10: N×H×W×C uint8
        x = torch.from_numpy(data).permute(0, 3, 1, 2)
    else:  # MNIST family: N×H×W uint8
        x = data[:, None]
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return x.float().div(255.0).contiguous(), y


def _missing_message(name: str, root: Path) -> str:
    folder, files = _EXPECTED_FILES[name]
    return (f"dataset {name!r} is not in {root} and could not be downloaded (no network?). "
            f"Expected the files {', '.join(files)} in {root / folder}. Put them there "
            f"(torchvision's layout; .gz archives work too for MNIST-style sets), pass another folder "
            f"with --data-root or the LT_DATA_ROOT environment variable, or run once with network "
            f"access to download them.")


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
            shuffle: bool = True):
    """Mini-batches of (x, y); shuffling is seeded by ``generator`` and happens on the CPU."""
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device) if shuffle else torch.arange(n, device=x.device)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]
