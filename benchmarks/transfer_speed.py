"""Speed of transfer for an MNIST-size MLP (784-512-512-10): wall time per method, split into
gradients / matching / evaluation, and the accuracy reached. A benchmark, not a test.

python benchmarks/transfer_speed.py [--steps 15 30 60] [--methods naive fgmt gmt oracle] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import mnist_or_synthetic  # noqa: E402

from lt_core.devices import resolve_device  # noqa: E402
from lt_core.events import run_to_end  # noqa: E402
from lt_core.models import make_config  # noqa: E402
from lt_core.train import TrainConfig, train  # noqa: E402
from lt_core.trajectory import checkpoint_params  # noqa: E402
from lt_core.transfer import TransferConfig, transfer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[15, 30, 60])
    parser.add_argument("--methods", nargs="+", default=["naive", "fgmt", "gmt", "oracle"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = mnist_or_synthetic(args.data_root, device)
    config = make_config("mlp", data.input_shape, 10, width=512, depth=2)
    t0 = time.perf_counter()
    source = run_to_end(train(config, data, TrainConfig(epochs=args.epochs, lr=0.05, seed=0), device))
    target = run_to_end(train(config, data, TrainConfig(epochs=args.epochs, lr=0.05, seed=1), device))
    print(f"data: {data.describe()}; "
          f"device {device}; two trajectories trained in {time.perf_counter() - t0:.1f}s; source final acc "
          f"{source.checkpoints[-1].metrics['val_acc']:.4f}")
    print(f"{'method':7} {'T':>3} {'total s':>8} {'grads s':>8} {'match s':>8} {'eval s':>7} {'final acc':>9}")
    for steps in args.steps:
        for method in args.methods:
            result = run_to_end(transfer(source, checkpoint_params(target, 0), data,
                                         TransferConfig(method=method, steps=steps), target=target, device=device))
            b = result.seconds_breakdown
            print(f"{method:7} {steps:3d} {result.seconds:8.2f} {b['gradients']:8.2f} {b['matching']:8.2f} "
                  f"{b['evaluation']:7.2f} {result.final_accuracy:9.4f}", flush=True)


if __name__ == "__main__":
    main()
