"""Regenerate the bundled demo trajectories in assets/ from the bundled digits data (CPU, seconds).

python scripts/make_demo_assets.py
"""

from __future__ import annotations

import json
from pathlib import Path

from lt_core.data import load_dataset
from lt_core.events import run_to_end
from lt_core.models import describe, make_config
from lt_core.train import TrainConfig, train
from lt_core.trajectory import save_trajectory

ASSETS = Path(__file__).resolve().parent.parent / "assets"

DEMOS = [
    ("digits_mlp_seed0", "mlp", {"width": 128, "depth": 2}, TrainConfig(epochs=10, lr=0.05, seed=0)),
    ("digits_mlp_seed1", "mlp", {"width": 128, "depth": 2}, TrainConfig(epochs=10, lr=0.05, seed=1)),
    ("digits_convbn_seed0", "conv", {"channels": [32, 64], "batchnorm": True}, TrainConfig(epochs=15, lr=0.05, seed=0)),
    ("digits_convbn_seed1", "conv", {"channels": [32, 64], "batchnorm": True}, TrainConfig(epochs=15, lr=0.05, seed=1)),
]


def main() -> None:
    dataset = load_dataset("digits")
    catalog = []
    for name, arch, options, tc in DEMOS:
        config = make_config(arch, dataset.input_shape, dataset.num_classes, **options)
        traj = run_to_end(train(config, dataset, tc))
        path = ASSETS / f"{name}.safetensors"
        save_trajectory(traj, path)
        acc = traj.checkpoints[-1].metrics["val_acc"]
        catalog.append({"file": path.name, "title": f"{describe(config)}, seed {tc.seed}", "final_val_acc": acc})
        print(f"{path.name}: {len(traj)} checkpoints, final val acc {acc:.3f}, {path.stat().st_size / 1e6:.2f} MB")
    (ASSETS / "demos.json").write_text(json.dumps(catalog, indent=2))


if __name__ == "__main__":
    main()
