import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lt_core.data import load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array in MNIST's idx format (unsigned bytes)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist_folder(root: Path, n_train: int = 600, n_test: int = 100, seed: int = 0) -> Path:
    """A torchvision-layout MNIST folder (root/MNIST/raw/*-ubyte) with learnable synthetic digits.

    Each class is a fixed random 28×28 prototype plus noise, so a network can learn it quickly.
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(10, 28, 28))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n)
        images = np.clip(prototypes[labels] + rng.normal(0, 60, size=(n, 28, 28)), 0, 255)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def mnist_root(tmp_path):
    return make_mnist_folder(tmp_path / "data")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests share 2 cores with a Streamlit server and each other; PyTorch's worker threads spinning
    against other processes made small models ~50× slower, so the test process uses one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
