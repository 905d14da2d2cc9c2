"""A batch of transfers (methods × new initializations) and the generator that runs and saves it.

Pure Python on top of lt_core (no Streamlit): the Transfer page builds a ``TransferPlan`` from its
inputs, checks it with ``validate`` (so mistakes show at once, before any thread starts), and hands
``run_plan`` to the job runner. Every finished run is written to the run store by the job itself,
so results survive the page being left, the browser being closed or a later run failing.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from lt_core.data import Dataset
from lt_core.errors import LTError
from lt_core.events import Finished
from lt_core.models import describe, init_params
from lt_core.runs import RunStore
from lt_core.trajectory import ParamFile, Trajectory, checkpoint_params
from lt_core.transfer import METHODS, TransferConfig, TransferStep, checkpoint_positions, transfer


@dataclass
class InitChoice:
    """One new initialization θ₂⁰ and how it was chosen (kind: seed, file or trajectory)."""

    label: str
    kind: str
    params: ParamFile
    meta: dict = field(default_factory=dict)


def seed_inits(model: dict, dataset: str, seeds: list[int]) -> list[InitChoice]:
    """Fresh random initializations of ``model``, one per seed."""
    inits = []
    for seed in seeds:
        params, buffers = init_params(model, seed)
        pf = ParamFile(model, dataset, params, buffers, {"source": "random init", "seed": seed})
        inits.append(InitChoice(f"seed {seed}", "seed", pf, {"seed": seed}))
    return inits


def trajectory_init(traj: Trajectory, name: str, key: str) -> InitChoice:
    """The initialization of a second trajectory (which can then serve as the oracle's target)."""
    return InitChoice(f"init of {name}", "trajectory", checkpoint_params(traj, 0, name), {"name": name, "hash": key})


def file_init(obj: ParamFile | Trajectory, file_name: str) -> InitChoice:
    """An uploaded parameter file, or the init (checkpoint 0) of an uploaded trajectory."""
    if isinstance(obj, Trajectory):
        return InitChoice(f"{file_name} @0", "file", checkpoint_params(obj, 0, file_name), {"file": file_name})
    return InitChoice(file_name, "file", obj, {"file": file_name})


def parse_seeds(first: int, count: int) -> list[int]:
    if count < 1:
        raise LTError("choose at least one new initialization (how many ≥ 1)")
    return list(range(int(first), int(first) + int(count)))


@dataclass
class TransferPlan:
    """Everything one click on Run decides: source, inits, methods, settings, data and device."""

    source: Trajectory
    source_ref: dict
    inits: list[InitChoice]
    methods: list[str]
    config: TransferConfig
    dataset: Dataset
    device: str
    target: Trajectory | None = None
    target_ref: dict | None = None
    batch: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4])

    @property
    def steps_per_run(self) -> int:
        return len(self.source) - 1 if self.config.schedule == "checkpoints" else self.config.steps

    def runs(self) -> list[tuple[InitChoice, str]]:
        return [(init, method) for init in self.inits for method in self.methods]

    def labels(self) -> list[str]:
        return [f"{method} · {init.label}" for init, method in self.runs()]

    def validate(self) -> None:
        """Raise ``LTError`` with what to change, before any work starts."""
        if not self.methods:
            raise LTError("choose at least one method (naive, fgmt, gmt or oracle)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise LTError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
        if not self.inits:
            raise LTError("choose at least one new initialization")
        if "oracle" in self.methods and self.target is None:
            raise LTError("the oracle baseline needs the real target trajectory: set the new initialization to "
                          "'init of a second trajectory', or leave oracle out")
        for init in self.inits:
            if init.params.model != self.source.model:
                raise LTError(f"the new initialization {init.label} is {describe(init.params.model)} but the source "
                              f"trajectory is {describe(self.source.model)}: they must be the same architecture")
        if list(self.source.model["input_shape"]) != self.dataset.input_shape:
            raise LTError(f"the source trajectory expects inputs {self.source.model['input_shape']} but "
                          f"{self.dataset.name} has {self.dataset.input_shape}")
        if len(self.source) < 2:
            raise LTError("the source trajectory needs at least two checkpoints (its init and a later point)")
        self.config.validate()


def source_curve(traj: Trajectory) -> list[dict]:
    """The source's own per-checkpoint metrics placed on λ ∈ [0, 1] (for reference lines)."""
    return [{"lam": lam, "step": c.step, "epoch": c.epoch, **c.metrics}
            for lam, c in zip(checkpoint_positions(traj), traj.checkpoints)]


def provenance(plan: TransferPlan, init: InitChoice, method: str) -> dict:
    """What a stored run records besides the result: where its source, init and target came from."""
    target = None
    if plan.target is not None and plan.target_ref is not None:
        target = {**plan.target_ref, "init_metrics": dict(plan.target.checkpoints[0].metrics),
                  "final_metrics": dict(plan.target.checkpoints[-1].metrics)}
    return {"label": f"{method} · {init.label}", "batch": plan.batch, "device": plan.device,
            "source": {**plan.source_ref, "architecture": describe(plan.source.model), "model": plan.source.model,
                       "dataset": plan.source.dataset, "checkpoints": len(plan.source),
                       "final_metrics": dict(plan.source.checkpoints[-1].metrics),
                       "curve": source_curve(plan.source)},
            "init": {"kind": init.kind, "label": init.label, **init.meta},
            "target": target if method == "oracle" or init.kind == "trajectory" else None,
            "transfer_config": asdict(replace(plan.config, method=method))}


@dataclass
class BatchStep:
    """Run ``run`` of ``runs`` reached ``step`` (a ``TransferStep``)."""

    run: int
    runs: int
    label: str
    step: TransferStep


@dataclass
class RunSaved:
    """Run ``run`` finished (or was stopped) and is in the store as ``run_id``."""

    run: int
    run_id: str
    label: str
    method: str
    final_accuracy: float
    best_accuracy: float
    seconds: float
    stopped: bool


def run_plan(plan: TransferPlan, store: RunStore, should_stop: Callable[[], bool]) -> Iterator:
    """Run every (init, method) pair in turn, saving each result; ends with ``Finished([run ids])``.

    A stop request ends the current run early (it is saved with every finished step) and skips
    the rest.
    """
    plan.validate()
    runs = plan.runs()
    labels = plan.labels()
    saved = []
    for i, (init, method) in enumerate(runs):
        if should_stop():
            break
        config = replace(plan.config, method=method)
        for event in transfer(plan.source, init.params, plan.dataset, config, target=plan.target,
                              device=plan.device, should_stop=should_stop):
            if isinstance(event, Finished):
                result = event.result
                record = store.save_run(result, init.params, provenance(plan, init, method))
                saved.append(record.id)
                yield RunSaved(i, record.id, labels[i], method, result.final_accuracy, result.best_accuracy,
                               result.seconds, result.stopped)
            else:
                yield BatchStep(i, len(runs), labels[i], event)
    yield Finished(saved)


@dataclass
class BatchView:
    """What the live panel draws: progress fraction and line, and the curves so far."""

    fraction: float
    text: str
    curves: dict[int, dict]
    saved: list[RunSaved]


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def batch_view(events: list, labels: list[str], steps_per_run: int, elapsed: float, running: bool = True) -> BatchView:
    """Progress (with an ETA from the pace so far, while ``running``) and per-run curves from a job's events."""
    curves: dict[int, dict] = {}
    saved = [e for e in events if isinstance(e, RunSaved)]
    for e in events:
        if isinstance(e, BatchStep):
            c = curves.setdefault(e.run, {"label": e.label, "method": e.step.method, "step": [], "lam": [],
                                          "val_acc": [], "val_loss": []})
            c["step"].append(e.step.step)
            c["lam"].append(e.step.lam)
            c["val_acc"].append(e.step.val_acc)
            c["val_loss"].append(e.step.val_loss)
    total = max(1, steps_per_run * len(labels))
    done_runs = {s.run for s in saved}
    done = sum(steps_per_run if r in done_runs else max(c["step"], default=0) for r, c in curves.items())
    fraction = min(1.0, done / total)
    last = next((e for e in reversed(events) if isinstance(e, BatchStep)), None)
    if last is None:
        text = "Starting…" if running else "No step was finished."
    elif running:
        eta = elapsed / done * (total - done) if done else math.nan
        eta_text = _clock(eta) if math.isfinite(eta) else "…"
        text = (f"{last.label}: step {last.step.step}/{last.step.total} · run {last.run + 1}/{last.runs} · "
                f"{fraction:.0%} · {_clock(elapsed)} elapsed · ETA {eta_text}")
    else:
        text = (f"{len(saved)}/{len(labels)} run(s) saved in {_clock(elapsed)} · last: {last.label}, "
                f"step {last.step.step}/{last.step.total}")
    return BatchView(fraction, text, curves, saved)


def method_summary(rows: list[dict]) -> pd.DataFrame:
    """Mean ± standard deviation of final and best accuracy (and time) per method over the given runs.

    ``rows``: dicts with method, final_accuracy, best_accuracy, seconds.
    """
    if not rows:
        return pd.DataFrame(columns=["method", "runs", "final accuracy", "best accuracy", "seconds"])
    frame = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHODS)}
    out = []
    for method, group in sorted(frame.groupby("method"), key=lambda kv: order.get(kv[0], 99)):
        def fmt(col: str, digits: int = 3) -> str:
            values = group[col].to_numpy(dtype=float)
            spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            return f"{values.mean():.{digits}f} ± {spread:.{digits}f}" if len(values) > 1 else f"{values.mean():.{digits}f}"
        out.append({"method": method, "runs": len(group), "final accuracy": fmt("final_accuracy"),
                    "best accuracy": fmt("best_accuracy"), "seconds": fmt("seconds", 1)})
    return pd.DataFrame(out)
