"""Training that yields progress events and records a trajectory."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from .data import Dataset, batches
from .errors import LTError
from .evaluation import evaluate
from .events import Finished
from .models import build_model, split_state
from .trajectory import Checkpoint, Trajectory


@dataclass
class TrainConfig:
    """Optimiser and schedule; stored in the trajectory header as ``training``."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    checkpoints_per_epoch: int = 1
    checkpoint_every_steps: int | None = None

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise LTError(f"unknown optimizer {self.optimizer!r}: use sgd or adam")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LTError(f"learning rate must be a positive number (got {self.lr})")
        for name in ("epochs", "batch_size", "checkpoints_per_epoch"):
            if getattr(self, name) < 1:
                raise LTError(f"{name.replace('_', ' ')} must be at least 1 (got {getattr(self, name)})")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise LTError("checkpoint every K steps needs K ≥ 1")


@dataclass
class TrainProgress:
    """End of one epoch."""

    step: int
    total: int
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_acc: float
    checkpoints: int
    elapsed: float
    metrics: dict = field(default_factory=dict)


def _checkpoint_steps(steps_per_epoch: int, config: TrainConfig) -> set[int]:
    total = steps_per_epoch * config.epochs
    if config.checkpoint_every_steps:
        wanted = set(range(config.checkpoint_every_steps, total + 1, config.checkpoint_every_steps))
    else:
        per = config.checkpoints_per_epoch
        wanted = {e * steps_per_epoch + round((i + 1) * steps_per_epoch / per)
                  for e in range(config.epochs) for i in range(per)}
    return wanted | {total}


def train(model_config: dict, dataset: Dataset, config: TrainConfig, device: torch.device | str | None = None,
          start: tuple[dict, dict] | None = None,
          should_stop: Callable[[], bool] | None = None) -> Iterator[TrainProgress | Finished]:
    """Train from a seeded init (or from ``start`` = (params, buffers)), recording checkpoints; the last
    event is ``Finished(trajectory)``.

    Checkpoints: the start, then N per epoch (or every K steps), always the final point. Same seed →
    same trajectory on the CPU. ``should_stop`` is polled after every optimizer step: when it returns
    True, training ends there with the current point as the last checkpoint and
    ``training["stopped_at_step"]`` set, so nothing already trained is lost.
    """
    config.validate()
    device = torch.device(device) if device is not None else dataset.device
    if list(model_config["input_shape"]) != dataset.input_shape:
        raise LTError(f"the model expects inputs {model_config['input_shape']} but {dataset.name} has "
                      f"{dataset.input_shape}")
    torch.manual_seed(config.seed)
    model = build_model(model_config).to(device)
    if start is not None:
        params, buffers = start
        model.load_state_dict({**params, **buffers}, strict=False)
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x_tr, y_tr = dataset.x_train.to(device), dataset.y_train.to(device)
    x_va, y_va = dataset.x_val.to(device), dataset.y_val.to(device)
    gen = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(x_tr) / config.batch_size)
    total = steps_per_epoch * config.epochs
    record_at = _checkpoint_steps(steps_per_epoch, config)
    start = time.perf_counter()

    def snapshot(step: int, train_loss: float | None) -> Checkpoint:
        params, buffers = split_state(model, "cpu")
        val_loss, val_acc = evaluate(model, {}, {}, x_va, y_va)
        metrics = {"val_loss": val_loss, "val_acc": val_acc}
        if train_loss is not None:
            metrics["train_loss"] = train_loss
        return Checkpoint(params, buffers, step, step / steps_per_epoch, metrics)

    checkpoints = [snapshot(0, None)]
    step = 0
    stopped = False
    for epoch in range(1, config.epochs + 1):
        loss_sum = torch.zeros((), device=device)
        seen = 0
        recent = torch.zeros((), device=device)
        recent_n = 0
        for xb, yb in batches(x_tr, y_tr, config.batch_size, gen):
            model.train()
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.detach() * len(xb)
            seen += len(xb)
            recent += loss.detach() * len(xb)
            recent_n += len(xb)
            stopped = should_stop is not None and should_stop()
            if step in record_at or (stopped and recent_n):
                checkpoints.append(snapshot(step, float(recent) / recent_n))
                recent.zero_()
                recent_n = 0
            if stopped:
                break
        if stopped:
            break
        train_loss = float(loss_sum) / seen
        if not math.isfinite(train_loss):
            raise LTError(f"training diverged in epoch {epoch} (loss is {train_loss}): lower the learning rate")
        if checkpoints[-1].step == step:
            val_loss, val_acc = checkpoints[-1].metrics["val_loss"], checkpoints[-1].metrics["val_acc"]
        else:
            val_loss, val_acc = evaluate(model, {}, {}, x_va, y_va)
        yield TrainProgress(step, total, epoch, config.epochs, train_loss, val_loss, val_acc,
                            len(checkpoints), time.perf_counter() - start)
    training = {**asdict(config), "steps": step, "steps_per_epoch": steps_per_epoch}
    if stopped:
        training["stopped_at_step"] = step
    traj = Trajectory(model_config, dataset.name, checkpoints, training)
    yield Finished(traj, time.perf_counter() - start)
