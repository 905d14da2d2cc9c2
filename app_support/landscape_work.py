"""Mode-connectivity and fine-tuning work as event generators for the job runner (no Streamlit here).

Each generator passes lt_core's progress events through and ends with ``Finished(result)``, where
the result is a small dict the page draws from. A stop request ends the work early with no result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator

from lt_core.data import Dataset
from lt_core.events import Finished
from lt_core.landscape import align, barriers, interpolate, plane
from lt_core.runs import RunStore
from lt_core.train import TrainConfig
from lt_core.transfer import finetune
from lt_core.trajectory import ParamFile

StopCheck = Callable[[], bool]


@dataclass
class NamedSet:
    """A parameter set with the label it has on the page."""

    label: str
    params: ParamFile


def _passthrough(events: Iterator, should_stop: StopCheck) -> Iterator:
    """Yield progress events until ``Finished`` (returned) or a stop request (None)."""
    for event in events:
        if isinstance(event, Finished):
            return event.result
        if should_stop():
            return None
        yield event
    return None


def interpolation_work(a: NamedSet, b: NamedSet, dataset: Dataset, device: str, points: int, reset_bn: bool,
                       align_first: bool, should_stop: StopCheck) -> Iterator:
    """(Align b onto a, then) the loss/accuracy curve from a to b and its barriers."""
    other = align(a.params, b.params, device=device)[0] if align_first else b.params
    curve = yield from _passthrough(interpolate(a.params, other, dataset, points=points, reset_bn=reset_bn,
                                                device=device), should_stop)
    if curve is not None:
        yield Finished({"curve": curve, "barriers": barriers(curve), "a": a.label,
                        "b": b.label + (" (aligned)" if align_first else ""), "aligned": align_first,
                        "reset_bn": reset_bn})


def plane_work(a: NamedSet, b: NamedSet, c: NamedSet, dataset: Dataset, device: str, resolution: int, margin: float,
               reset_bn: bool, align_first: bool, should_stop: StopCheck) -> Iterator:
    """(Align b and c onto a, then) metrics on a grid over the plane through a, b and c."""
    pb, pc = b.params, c.params
    if align_first:
        pb, pc = align(a.params, pb, device=device)[0], align(a.params, pc, device=device)[0]
    result = yield from _passthrough(plane(a.params, pb, pc, dataset, resolution=resolution, margin=margin,
                                           reset_bn=reset_bn, device=device), should_stop)
    if result is not None:
        suffix = " (aligned)" if align_first else ""
        result = replace(result, basis=None)  # the basis holds three full parameter vectors: not needed to draw
        yield Finished({"result": result, "labels": {"a": a.label, "b": b.label + suffix, "c": c.label + suffix},
                        "aligned": align_first})


def finetune_work(store: RunStore, run_id: str, start: ParamFile, init: ParamFile, start_name: str, dataset: Dataset,
                  config: TrainConfig, device: str, should_stop: StopCheck) -> Iterator:
    """Fine-tune from a transferred point and from the init side by side; saves the curves with the run."""
    curves = yield from _passthrough(finetune(start, init, dataset, config, device), should_stop)
    if curves is not None:
        record = {"curves": curves, "start": start_name, "config": asdict(config)}
        store.save_attachment(run_id, "finetune", record)
        yield Finished(record)
