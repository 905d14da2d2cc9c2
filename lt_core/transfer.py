"""Learning transfer: GMT, FGMT, naive and oracle, as generators of progress events.

Given a source trajectory θ₁⁰…θ₁ᵀ and a new initialization θ₂⁰, the transferred trajectory is
θ₂ᵗ = θ₂⁰ + π_t(θ₁ᵗ − θ₁⁰) (DESIGN.md §1). The methods differ in how π_t is chosen:

- ``naive``: π = identity.
- ``oracle``: one π for every step, weight matching of the real target displacement (θ₂ᵀ − θ₂⁰)
  to the source's (θ₁ᵀ − θ₁⁰); needs the target trajectory trained from θ₂⁰.
- ``gmt``: at step t, gradient pairs (∇L(θ₁ˢ), ∇L(θ₂⁰ + π_{t−1}(θ₁ˢ − θ₁⁰))) for every s < t,
  the target side recomputed each step (O(T²) gradients); π_t matches the source gradients onto the
  target ones. Each point s keeps the mini-batches it drew first, so its source gradient is computed
  once and the pairs change between steps only through π (measured on digits: fresh batches per
  step made GMT noisier and up to 8 points worse than FGMT).
- ``fgmt``: the same objective, but only the newest pair (s = t − 1) is computed at step t and the
  earlier ones are kept (O(T) gradients); matching warm-starts from π_{t−1}.

Trajectory points θ₁ᵗ: with ``schedule="checkpoints"`` the recorded checkpoints themselves; otherwise
T + 1 points at the schedule's λ on the straight line from the first to the last checkpoint
(``path="line"``, the default, as in the paper) or on the piecewise-linear path through every
checkpoint (``path="piecewise"``). Measured on digits (MLP 64-256-256-10, T = 10): through
per-epoch checkpoints the piecewise path left GMT *below* naive (0.69 vs 0.74), while the straight
line gave GMT 0.94 and FGMT 0.90; dense real checkpoints (3 per epoch, T = 30) also work (0.87–0.90).
Gradients at points between coarse checkpoints do not describe the direction the path takes.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .data import Dataset
from .errors import LTError
from .evaluation import evaluate, loss_and_grad, model_for, recompute_batchnorm
from .events import Finished
from .models import describe
from .train import TrainConfig, TrainProgress, train
from .permutation import LowRank, MatchingProblem, PermSpec, Perms, apply, identity, spec_for, weight_matching
from .trajectory import ParamFile, Trajectory

METHODS = ("gmt", "fgmt", "naive", "oracle")
SCHEDULES = ("cosine", "uniform", "checkpoints")
PATHS = ("line", "piecewise")
Tensors = dict[str, torch.Tensor]


@dataclass
class TransferConfig:
    """Everything that decides a transfer's result (with the source, the init and the data)."""

    method: str = "fgmt"
    steps: int = 30
    schedule: str = "cosine"
    path: str = "line"
    batch_size: int = 128
    grad_batches: int = 1
    bn_batches: int = 10
    bn_batch_size: int = 256
    max_sweeps: int = 20
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise LTError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.schedule not in SCHEDULES:
            raise LTError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.path not in PATHS:
            raise LTError(f"unknown path {self.path!r}: choose one of {', '.join(PATHS)}")
        for name in ("steps", "batch_size", "grad_batches", "bn_batches", "bn_batch_size", "max_sweeps"):
            if int(getattr(self, name)) < 1:
                raise LTError(f"{name.replace('_', ' ')} must be at least 1 (got {getattr(self, name)})")


@dataclass
class TransferStep:
    """θ₂ᵗ has been built and evaluated. Step 0 is the new initialization itself."""

    method: str
    step: int
    total: int
    lam: float
    val_acc: float
    val_loss: float
    objective: float | None
    sweeps: int
    seconds: dict[str, float]
    elapsed: float


@dataclass
class TransferResult:
    """Per-step metrics, final and best transferred parameters, and the permutations used."""

    method: str
    config: dict
    lambdas: list[float]
    accuracies: list[float]
    losses: list[float]
    objectives: list[float | None]
    sweeps: list[int]
    final: ParamFile
    best: ParamFile
    best_step: int
    perms: Perms
    step_perms: list[Perms]
    target_init_accuracy: float
    target_init_loss: float
    source_final_accuracy: float
    seconds: float
    seconds_breakdown: dict[str, float]
    stopped: bool = False

    @property
    def final_accuracy(self) -> float:
        return self.accuracies[-1] if self.accuracies else self.target_init_accuracy

    @property
    def best_accuracy(self) -> float:
        return max(self.accuracies, default=self.target_init_accuracy)

    def summary(self) -> dict:
        """JSON-able record of the run (no tensors)."""
        return {"method": self.method, "steps": len(self.accuracies), "planned_steps": self.config["steps"],
                "schedule": self.config["schedule"], "config": self.config, "lambdas": self.lambdas,
                "accuracies": self.accuracies, "losses": self.losses, "objectives": self.objectives,
                "sweeps": self.sweeps, "final_accuracy": self.final_accuracy, "best_accuracy": self.best_accuracy,
                "best_step": self.best_step, "target_init_accuracy": self.target_init_accuracy,
                "target_init_loss": self.target_init_loss, "source_final_accuracy": self.source_final_accuracy,
                "seconds": self.seconds, "seconds_breakdown": self.seconds_breakdown, "stopped": self.stopped}


def schedule_lambdas(schedule: str, steps: int) -> list[float]:
    """λ_0…λ_T: ``uniform`` k/T; ``cosine`` with bigger steps early (DESIGN.md §1)."""
    if schedule == "uniform":
        return [k / steps for k in range(steps + 1)]
    weights = np.array([1 + math.cos(math.pi * j / steps) for j in range(steps)])
    cum = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    return [float(v) for v in cum]


def checkpoint_positions(traj: Trajectory) -> list[float]:
    """Where each checkpoint sits on [0, 1]: by training step when steps increase, else by index."""
    steps = [c.step for c in traj.checkpoints]
    n = len(steps)
    if n == 1:
        return [0.0]
    if all(b > a for a, b in zip(steps, steps[1:])):
        return [(s - steps[0]) / (steps[-1] - steps[0]) for s in steps]
    return [k / (n - 1) for k in range(n)]


def path_point(points: list[Tensors], positions: list[float], lam: float) -> Tensors:
    """The point at ``lam`` on the piecewise-linear path through ``points`` placed at ``positions``."""
    j = max(0, min(int(np.searchsorted(positions, lam, side="right")) - 1, len(points) - 2))
    lo, hi = positions[j], positions[j + 1]
    w = 0.0 if hi == lo else min(max((lam - lo) / (hi - lo), 0.0), 1.0)
    return {n: torch.lerp(points[j][n], points[j + 1][n], w) for n in points[j]}


def low_rank_weights(model: torch.nn.Module, spec: PermSpec, rank: int) -> list[str]:
    """Linear weights whose gradient (rank ≤ ``rank``) is cheaper to match in factored form.

    For each permuted axis of size n (the other of size m), a dense score costs n·m·n operations
    per pair, a factored one r²·(m + n) + r·n²; a weight is factored when that saves ≥ 40 % on every
    permuted axis.
    """
    names = []
    for prefix, module in model.named_modules():
        name = f"{prefix}.weight"
        axes = spec.axes.get(name, ())
        if not isinstance(module, torch.nn.Linear) or len(axes) != 2 or all(g is None for g in axes) or \
                any(k[0] == name for k in spec.blocks):
            continue
        shape = module.weight.shape
        saves = [rank * rank * (shape[0] + shape[1]) + rank * shape[k] ** 2 < 0.6 * shape[k] ** 2 * shape[1 - k]
                 for k, g in enumerate(axes) if g is not None]
        if all(saves):
            names.append(name)
    return names


def _check_compatible(source: Trajectory, init: ParamFile, dataset: Dataset, target: Trajectory | None) -> None:
    if init.model != source.model:
        raise LTError(f"the new initialization is {describe(init.model)} but the source trajectory is "
                      f"{describe(source.model)}: they must be the same architecture")
    if list(source.model["input_shape"]) != dataset.input_shape:
        raise LTError(f"the source trajectory was recorded on inputs {source.model['input_shape']} but the "
                      f"dataset {dataset.name} has {dataset.input_shape}")
    if target is not None and target.model != source.model:
        raise LTError(f"the target trajectory is {describe(target.model)} but the source is "
                      f"{describe(source.model)}: they must be the same architecture")
    if len(source.checkpoints) < 2:
        raise LTError("the source trajectory needs at least two checkpoints (its init and a later point)")


def transfer(source: Trajectory, init: ParamFile, dataset: Dataset, config: TransferConfig,
             target: Trajectory | None = None, device: torch.device | str | None = None,
             should_stop: Callable[[], bool] | None = None) -> Iterator[TransferStep | Finished]:
    """Transfer ``source``'s trajectory onto ``init``; yields a ``TransferStep`` per step, then
    ``Finished(TransferResult)``.

    ``should_stop`` is polled between steps: when it returns True the run ends early and the result
    holds every finished step (``stopped=True``). Same inputs and seed → same result on the CPU.
    """
    config.validate()
    _check_compatible(source, init, dataset, target)
    if config.method == "oracle" and target is None:
        raise LTError("the oracle baseline needs the real target trajectory (trained from the new init): "
                      "choose the init of a second trajectory, or use another method")
    device = torch.device(device) if device is not None else dataset.device
    start = time.perf_counter()
    timers = {"gradients": 0.0, "matching": 0.0, "evaluation": 0.0}
    model = model_for(source.model, device)
    spec = spec_for(source.model)
    x_tr, y_tr = dataset.x_train.to(device), dataset.y_train.to(device)
    x_va, y_va = dataset.x_val.to(device), dataset.y_val.to(device)
    batch_gen = torch.Generator().manual_seed(config.seed)
    bn_seed = config.seed + 1

    if config.schedule == "checkpoints":
        anchors, positions = source.checkpoints, checkpoint_positions(source)
        lambdas = positions
    elif config.path == "line":
        anchors, positions = [source.checkpoints[0], source.checkpoints[-1]], [0.0, 1.0]
        lambdas = schedule_lambdas(config.schedule, config.steps)
    else:
        anchors, positions = source.checkpoints, checkpoint_positions(source)
        lambdas = schedule_lambdas(config.schedule, config.steps)
    anchors = [{n: t.to(device) for n, t in c.params.items()} for c in anchors]
    total = len(lambdas) - 1
    theta1_0 = anchors[0]

    def point(s: int) -> Tensors:
        """θ₁ˢ, made when needed (T + 1 stored copies of the network would not fit big jobs)."""
        return path_point(anchors, positions, lambdas[s])

    def delta(s: int) -> Tensors:
        p = point(s)
        return {n: p[n] - theta1_0[n] for n in p}

    theta2_0 = {n: t.to(device) for n, t in init.params.items()}
    init_buffers = {n: t.to(device) for n, t in init.buffers.items()}

    def sample_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for _ in range(config.grad_batches):
            idx = torch.randint(0, len(x_tr), (config.batch_size,), generator=batch_gen).to(device)
            out.append((x_tr[idx], y_tr[idx]))
        return out

    factored = low_rank_weights(model, spec, config.batch_size * config.grad_batches)

    def grad(params: Tensors, buffers: Tensors, data: list) -> dict:
        """Mean gradient over ``data``; weights in ``factored`` as LowRank factors (δ scaled by 1/batches)."""
        total_grad: Tensors = {}
        parts: dict[str, list] = {n: [] for n in factored}
        for xb, yb in data:
            _, g, factors = loss_and_grad(model, params, buffers, xb, yb, factored)
            for n, v in g.items():
                total_grad[n] = total_grad[n] + v if n in total_grad else v
            for n, pair in factors.items():
                parts[n].append(pair)
        out: dict = {n: v / len(data) for n, v in total_grad.items()}
        for n, pairs in parts.items():
            out[n] = LowRank(torch.cat([d for d, _ in pairs]) / len(data), torch.cat([h for _, h in pairs]))
        return out

    def transferred(perms: Perms, s: int) -> Tensors:
        moved = apply(spec, delta(s), perms)
        return {n: theta2_0[n] + moved[n] for n in theta2_0}

    def evaluate_point(params: Tensors) -> tuple[float, float, Tensors]:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(bn_seed)
        buffers = recompute_batchnorm(model, params, init_buffers, x_tr, config.bn_batches, config.bn_batch_size, gen)
        loss, acc = evaluate(model, params, buffers, x_va, y_va)
        timers["evaluation"] += time.perf_counter() - t0
        return loss, acc, buffers

    source_final = source.checkpoints[-1]
    t0 = time.perf_counter()
    _, source_final_acc = evaluate(model, anchors[-1], {n: b.to(device) for n, b in source_final.buffers.items()},
                                   x_va, y_va)
    timers["evaluation"] += time.perf_counter() - t0
    init_loss, init_acc, _ = evaluate_point(theta2_0)
    yield TransferStep(config.method, 0, total, lambdas[0], init_acc, init_loss, None, 0, dict(timers),
                       time.perf_counter() - start)

    perms = identity(spec, device)
    if config.method == "oracle":
        t0 = time.perf_counter()
        tgt_init = {n: t.to(device) for n, t in target.checkpoints[0].params.items()}
        if any(not torch.allclose(tgt_init[n], theta2_0[n], atol=1e-6) for n in theta2_0):
            raise LTError("the oracle needs the new initialization to be the init of the target trajectory "
                          "(choose 'init of a second trajectory')")
        tgt_delta = {n: t.to(device) - tgt_init[n] for n, t in target.checkpoints[-1].params.items()}
        perms = weight_matching(tgt_delta, delta(total), spec, seed=config.seed, device=device)
        timers["matching"] += time.perf_counter() - t0

    problem = MatchingProblem(spec, list(theta2_0), device) if config.method == "fgmt" else None
    pair_batches: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    source_grads: list[Tensors] = []
    accs, losses, objectives, sweeps_list, step_perms = [], [], [], [], []
    best_acc, best_step, best_params, best_buffers = -1.0, 0, theta2_0, {}
    final_params, final_buffers = theta2_0, {}
    stopped = False
    for t in range(1, total + 1):
        if should_stop is not None and should_stop():
            stopped = True
            break
        objective, sweeps = None, 0
        if config.method in ("gmt", "fgmt"):
            t0 = time.perf_counter()
            earlier = range(t - 1, t) if config.method == "fgmt" else range(t)
            if config.method == "gmt":
                problem = MatchingProblem(spec, list(theta2_0), device)
            pairs = []
            for s in earlier:
                if s == len(pair_batches):  # point s is used for the first time: draw its batches
                    pair_batches.append(sample_batches())
                    source_grads.append(grad(point(s), init_buffers, pair_batches[s]))
                pairs.append((grad(transferred(perms, s), init_buffers, pair_batches[s]), source_grads[s]))
            timers["gradients"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for g2, g1 in pairs:
                problem.add_pair(g2, g1)
            perms, sweeps = problem.solve(perms, seed=config.seed + t, max_sweeps=config.max_sweeps)
            objective = problem.objective(perms)
            timers["matching"] += time.perf_counter() - t0
        params = transferred(perms, t)
        loss, acc, buffers = evaluate_point(params)
        accs.append(acc)
        losses.append(loss)
        objectives.append(objective)
        sweeps_list.append(sweeps)
        step_perms.append({g: p.detach().cpu().clone() for g, p in perms.items()})
        final_params, final_buffers = params, buffers
        if acc > best_acc:
            best_acc, best_step, best_params, best_buffers = acc, t, params, buffers
        yield TransferStep(config.method, t, total, lambdas[t], acc, loss, objective, sweeps, dict(timers),
                           time.perf_counter() - start)

    def as_file(params: Tensors, buffers: Tensors, step: int, acc: float, kind: str) -> ParamFile:
        return ParamFile(source.model, source.dataset, {n: v.detach().cpu() for n, v in params.items()},
                         {n: v.detach().cpu() for n, v in buffers.items()},
                         {"source": "transfer", "method": config.method, "which": kind, "step": step,
                          "val_acc": acc, "transfer_config": asdict(config)})

    final_step = len(accs)
    result = TransferResult(
        method=config.method, config=asdict(config), lambdas=lambdas[1:final_step + 1], accuracies=accs,
        losses=losses, objectives=objectives, sweeps=sweeps_list,
        final=as_file(final_params, final_buffers, final_step, accs[-1] if accs else init_acc, "final"),
        best=as_file(best_params, best_buffers, best_step, max(accs, default=init_acc), "best"),
        best_step=best_step, perms={g: p.cpu() for g, p in perms.items()}, step_perms=step_perms,
        target_init_accuracy=init_acc, target_init_loss=init_loss, source_final_accuracy=source_final_acc,
        seconds=time.perf_counter() - start, seconds_breakdown=dict(timers), stopped=stopped)
    yield Finished(result, result.seconds)


@dataclass
class FinetuneEpoch:
    """Validation accuracy after ``epoch`` epochs of training from each starting point."""

    epoch: int
    epochs: int
    acc_transferred: float
    acc_init: float
    loss_transferred: float
    loss_init: float
    elapsed: float


def finetune(transferred: ParamFile, init: ParamFile, dataset: Dataset, config: TrainConfig,
             device: torch.device | str | None = None) -> Iterator[FinetuneEpoch | Finished]:
    """Train from the transferred point and from the plain new init side by side (same data order).

    Yields ``FinetuneEpoch`` for epoch 0 (before training) … N, then ``Finished(dict)`` with the two
    accuracy curves, so users see whether transfer saves training.
    """
    if transferred.model != init.model:
        raise LTError("fine-tuning compares two starts of the same architecture; these differ")
    device = torch.device(device) if device is not None else dataset.device
    runs = [train(init.model, dataset, config, device, (p.params, p.buffers)) for p in (transferred, init)]
    start = time.perf_counter()
    model = model_for(init.model, device)
    x_va, y_va = dataset.x_val.to(device), dataset.y_val.to(device)

    def measure(p: ParamFile) -> tuple[float, float]:
        return evaluate(model, {n: t.to(device) for n, t in p.params.items()},
                        {n: t.to(device) for n, t in p.buffers.items()}, x_va, y_va)

    (lt, at), (li, ai) = measure(transferred), measure(init)
    curves = {"epochs": [0], "acc_transferred": [at], "acc_init": [ai], "loss_transferred": [lt], "loss_init": [li]}
    yield FinetuneEpoch(0, config.epochs, at, ai, lt, li, 0.0)
    for ev_t, ev_i in zip(*runs):
        if not isinstance(ev_t, TrainProgress):
            continue
        curves["epochs"].append(ev_t.epoch)
        for key, value in (("acc_transferred", ev_t.val_acc), ("acc_init", ev_i.val_acc),
                           ("loss_transferred", ev_t.val_loss), ("loss_init", ev_i.val_loss)):
            curves[key].append(value)
        yield FinetuneEpoch(ev_t.epoch, config.epochs, ev_t.val_acc, ev_i.val_acc, ev_t.val_loss, ev_i.val_loss,
                            time.perf_counter() - start)
    yield Finished(curves, time.perf_counter() - start)
