import subprocess
import sys

import pytest
import torch

from lt_core.events import Finished, run_to_end
from lt_core.models import make_config
from lt_core.train import TrainConfig, TrainProgress, train
from lt_core.trajectory import load_trajectory


def test_training_learns_and_records(digits):
    config = make_config("mlp", digits.input_shape, 10, width=64)
    events = list(train(config, digits, TrainConfig(epochs=3, checkpoints_per_epoch=2, seed=1)))
    progress = [e for e in events if isinstance(e, TrainProgress)]
    assert [e.epoch for e in progress] == [1, 2, 3]
    assert isinstance(events[-1], Finished)
    traj = events[-1].result
    assert len(traj) == 1 + 3 * 2
    assert traj.checkpoints[0].step == 0 and traj.checkpoints[-1].step == progress[-1].total
    assert traj.checkpoints[-1].metrics["val_acc"] > 0.85 > traj.checkpoints[0].metrics["val_acc"]


def test_same_seed_same_trajectory(digits):
    config = make_config("conv", digits.input_shape, 10, channels=[8, 16])
    a = run_to_end(train(config, digits, TrainConfig(epochs=1, seed=4, checkpoint_every_steps=5)))
    b = run_to_end(train(config, digits, TrainConfig(epochs=1, seed=4, checkpoint_every_steps=5)))
    c = run_to_end(train(config, digits, TrainConfig(epochs=1, seed=5, checkpoint_every_steps=5)))
    assert [k.step for k in a.checkpoints] == [0, 5, 10, 12]
    assert all(torch.equal(x.state()[n], y.state()[n]) for x, y in zip(a.checkpoints, b.checkpoints) for n in x.state())
    assert not torch.equal(a.checkpoints[-1].params["conv1.weight"], c.checkpoints[-1].params["conv1.weight"])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lt_core", *args], capture_output=True, text=True, timeout=600)


def test_cli_train_on_local_mnist_then_info(mnist_root, tmp_path):
    out = tmp_path / "mnist_mlp.safetensors"
    r = _cli("train", "--dataset", "mnist", "--data-root", str(mnist_root), "--arch", "mlp", "--width", "32",
             "--depth", "2", "--epochs", "2", "--lr", "0.05", "--batch-size", "64", "--seed", "0",
             "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sum(line.startswith("epoch ") for line in r.stdout.splitlines()) == 2
    traj = load_trajectory(out)
    assert traj.dataset == "mnist" and traj.model["input_shape"] == [1, 28, 28] and len(traj) == 3
    assert traj.checkpoints[-1].metrics["val_acc"] > 0.8
    info = _cli("info", str(out))
    assert info.returncode == 0 and "trajectory" in info.stdout and "checkpoints:  3" in info.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "--dataset", "cifar10", "--data-root", "/nonexistent/x", "--out", "o.safetensors"], "cifar-10-batches-py"),
    (["train", "--lr", "-1", "--out", "o.safetensors"], "learning rate"),
    (["info", "/nonexistent/file.safetensors"], "no such file"),
    (["train", "--arch", "mlp", "--width", "0", "--out", "o.safetensors"], "expected a number"),
])
def test_cli_bad_input_is_one_clear_message(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _cli(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_info_rejects_a_pickle(tmp_path):
    path = tmp_path / "weights.safetensors"
    torch.save({"w": torch.zeros(3)}, path)
    r = _cli("info", str(path))
    assert r.returncode == 2 and "never loads pickles" in r.stderr and "Traceback" not in r.stderr


def test_stop_keeps_what_was_trained(digits):
    config = make_config("mlp", digits.input_shape, 10, width=32)
    steps = []
    events = list(train(config, digits, TrainConfig(epochs=5, seed=0, checkpoint_every_steps=4),
                        should_stop=lambda: steps.append(1) or len(steps) >= 6))
    traj = events[-1].result
    assert [c.step for c in traj.checkpoints] == [0, 4, 6]
    assert traj.training["stopped_at_step"] == 6 and traj.training["steps"] == 6
    assert not any(isinstance(e, TrainProgress) for e in events)  # stopped inside the first epoch
    full = run_to_end(train(config, digits, TrainConfig(epochs=5, seed=0, checkpoint_every_steps=4)))
    assert torch.equal(full.checkpoints[1].params["fc1.weight"], traj.checkpoints[1].params["fc1.weight"])
