"""Shared set-up for benchmarks: MNIST when it is on disk, else data of MNIST's shape."""

from __future__ import annotations

import torch

from lt_core.data import Dataset, load_dataset
from lt_core.errors import DatasetUnavailable


def mnist_or_synthetic(root: str | None, device: torch.device, seed: int = 0) -> Dataset:
    """Real MNIST from ``root`` if present (no download); else 60k/10k synthetic 1×28×28 images.

    The synthetic set is learnable but not trivial (faint class prototypes under strong noise), so
    accuracies mean something.
    """
    try:
        return load_dataset("mnist", root, device, download=False)
    except DatasetUnavailable:
        gen = torch.Generator().manual_seed(seed)
        prototypes = 0.1 * torch.randn(10, 1, 28, 28, generator=gen)
        def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.randint(0, 10, (n,), generator=gen)
            x = prototypes[y] + torch.randn(n, 1, 28, 28, generator=gen)
            return ((x - x.mean()) / x.std()).to(device), y.to(device)
        (x_tr, y_tr), (x_va, y_va) = split(60000), split(10000)
        return Dataset("mnist", x_tr, y_tr, x_va, y_va, num_classes=10)
