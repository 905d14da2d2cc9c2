"""Time one 25-point interpolation curve for an MNIST-size MLP (784-512-512-10).

    python benchmarks/interpolate_speed.py [--data-root DIR] [--device cpu] [--points 25] [--repeats 3] [--threads N]

Uses MNIST from the data root when it is there (never downloads), else random tensors of MNIST's
shape (60 000 train / 10 000 validation, 1×28×28). The two endpoints are independently initialised
networks: the cost does not depend on the weights. Prints seconds per curve for: validation only,
train metrics on the default subset (10 000 examples), and train metrics on the whole training set.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lt_core.data import Dataset, load_dataset
from lt_core.devices import resolve_device
from lt_core.errors import LTError
from lt_core.events import run_to_end
from lt_core.landscape import DEFAULT_TRAIN_CAP, interpolate
from lt_core.models import init_params, make_config
from lt_core.trajectory import ParamFile


def mnist_or_random(root: str | None, device: torch.device) -> Dataset:
    try:
        return load_dataset("mnist", root, device, download=False)
    except LTError:
        gen = torch.Generator().manual_seed(0)
        x_tr = torch.randn(60_000, 1, 28, 28, generator=gen)
        x_va = torch.randn(10_000, 1, 28, 28, generator=gen)
        y_tr = torch.randint(0, 10, (60_000,), generator=gen)
        y_va = torch.randint(0, 10, (10_000,), generator=gen)
        return Dataset("random (MNIST-shaped)", x_tr.to(device), y_tr.to(device), x_va.to(device), y_va.to(device), 10)


def time_curve(a: ParamFile, b: ParamFile, dataset: Dataset, device: torch.device, points: int, repeats: int,
               **options) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run_to_end(interpolate(a, b, dataset, points=points, device=device, **options))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = mnist_or_random(args.data_root, device)
    config = make_config("mlp", [1, 28, 28], 10, width=512, depth=2)
    (pa, ba), (pb, bb) = init_params(config, 0), init_params(config, 1)
    a, b = ParamFile(config, dataset.name, pa, ba), ParamFile(config, dataset.name, pb, bb)
    print(f"{dataset.describe()}; mlp 784-512-512-10; device {device}, {torch.get_num_threads()} threads; "
          f"{args.points} points, median of {args.repeats}")
    time_curve(a, b, dataset, device, 2, 1, train_metrics=False)  # warm-up
    cases = [("validation only", {"train_metrics": False}),
             (f"+ train metrics, default subset ({min(DEFAULT_TRAIN_CAP, len(dataset.x_train))})", {}),
             (f"+ train metrics, all {len(dataset.x_train)} training examples",
              {"train_subset": len(dataset.x_train)})]
    for label, options in cases:
        seconds = time_curve(a, b, dataset, device, args.points, args.repeats, **options)
        print(f"{label:55s} {seconds:7.2f} s/curve  ({seconds / args.points * 1000:.0f} ms/point)")


if __name__ == "__main__":
    main()
