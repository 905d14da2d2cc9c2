"""Starting background work from a page: builds the job, registers it for this session."""

from __future__ import annotations

from typing import Callable, Iterator

from lt_core.data import Dataset
from lt_core.errors import LTError
from lt_core.events import Finished
from lt_core.runs import RunStore
from lt_core.train import TrainConfig, train
from lt_core.transfer import TransferConfig

from . import resources, session
from .jobs import Job, start_job
from .transfer_plan import TransferPlan, run_plan, trajectory_init

DEMO_SOURCE = "digits_mlp_seed0"
DEMO_TARGET = "digits_mlp_seed1"
DEMO_METHODS = ["naive", "fgmt", "gmt", "oracle"]
DEMO_STEPS = 20


def start_transfer(plan: TransferPlan, store: RunStore) -> Job:
    """Validate ``plan`` (raising ``LTError``) and run it in the background as this session's transfer."""
    plan.validate()
    n = len(plan.labels())
    title = f"transfer of {plan.source_ref['name']}: {n} run(s), {plan.steps_per_run} steps each"
    return start_session_job("transfer", title, lambda should_stop: run_plan(plan, store, should_stop),
                             meta={"labels": plan.labels(), "steps": plan.steps_per_run, "batch": plan.batch})


def demo_plan(device: str) -> TransferPlan:
    """The first transfer the home page offers: MLP demo seed 0 onto the init of seed 1, all methods."""
    entries = {e.name: e for e in resources.demo_entries()}
    source_entry, target_entry = entries[DEMO_SOURCE], entries[DEMO_TARGET]
    source, target = resources.trajectory(source_entry), resources.trajectory(target_entry)
    return TransferPlan(source=source, source_ref={"name": source_entry.name, "hash": source_entry.id},
                        inits=[trajectory_init(target, target_entry.name, target_entry.id)], methods=list(DEMO_METHODS),
                        config=TransferConfig(steps=DEMO_STEPS), dataset=resources.dataset(source.dataset, device),
                        device=device, target=target, target_ref={"name": target_entry.name, "hash": target_entry.id})


def train_and_store(model_config: dict, dataset: Dataset, config: TrainConfig, device: str, store: RunStore,
                    name: str, should_stop: Callable[[], bool]) -> Iterator:
    """Train (yielding ``TrainProgress``), then save the trajectory to the store: ``Finished(record)``.

    A stop request ends the training after the current step; the checkpoints so far are saved.
    """
    for event in train(model_config, dataset, config, device, should_stop=should_stop):
        if isinstance(event, Finished):
            stopped = "stopped_at_step" in event.result.training
            label = f"{name} (stopped at step {event.result.training['stopped_at_step']})" if stopped else name
            yield Finished(store.save_trajectory(event.result, label, "trained"))
        else:
            yield event


def start_training(model_config: dict, dataset: Dataset, config: TrainConfig, device: str, store: RunStore,
                   name: str) -> Job:
    """Run ``train_and_store`` in the background as this session's training job."""
    config.validate()
    if list(model_config["input_shape"]) != dataset.input_shape:
        raise LTError(f"the model expects inputs {model_config['input_shape']} but {dataset.name} has "
                      f"{dataset.input_shape}")
    return start_session_job("train", f"training {name}",
                             lambda should_stop: train_and_store(model_config, dataset, config, device, store, name,
                                                                 should_stop),
                             meta={"name": name, "epochs": config.epochs})


def start_session_job(kind: str, title: str, work: Callable[[Callable[[], bool]], Iterator],
                      meta: dict | None = None) -> Job:
    """Start ``work(should_stop)`` in the background as this session's latest ``kind`` job.

    Raises ``LTError`` while this session's previous job of that kind is still running.
    """
    current = session.job(kind)
    if current is not None and current.running:
        raise LTError(f"this session is already running a {kind} job ({current.title}): wait for it or stop it")
    job = start_job(session.owner(), kind, title, work, meta=meta)
    session.remember_job(kind, job)
    return job
