"""Every parameter set the app knows, for the Mode connectivity page.

Keys are strings: ``traj:<hash>:init`` / ``traj:<hash>:final`` (a trajectory's first and last
checkpoint) and ``run:<id>:final`` / ``:best`` / ``:init`` / ``:aligned_source`` (a stored run's
transferred points, its new initialization, and the source's final point permuted by the run's
last permutation π_T, i.e. the source's trained network moved into the target's coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass

from lt_core.errors import LTError
from lt_core.permutation import apply, spec_for
from lt_core.runs import RunRecord, RunStore
from lt_core.trajectory import ParamFile, checkpoint_params

from . import resources
from .resources import TrajectoryEntry

RUN_POINTS = {"final": "transferred (final)", "best": "transferred (best)", "init": "new init",
              "aligned_source": "source trained, aligned by π_T"}


@dataclass
class SetOption:
    """One choosable parameter set: its key, what the page calls it, and its architecture."""

    key: str
    label: str
    model: dict
    dataset: str


def set_options(entries: list[TrajectoryEntry], records: list[RunRecord]) -> list[SetOption]:
    """Options from every known trajectory (init, trained) and every stored run (see the module docstring)."""
    options = []
    for e in entries:
        options.append(SetOption(f"traj:{e.id}:final", f"{e.name} · trained (final)", e.model, e.dataset))
        options.append(SetOption(f"traj:{e.id}:init", f"{e.name} · init", e.model, e.dataset))
    known = {e.id for e in entries}
    for r in records:
        source = r.data.get("source") or {}
        model, dataset = source.get("model"), source.get("dataset")
        if model is None:
            continue
        for point, text in RUN_POINTS.items():
            if point == "init" and (r.data.get("init") or {}).get("kind") == "trajectory":
                continue  # the same as that trajectory's init, listed above
            if point == "aligned_source" and source.get("hash") not in known:
                continue
            options.append(SetOption(f"run:{r.id}:{point}", f"{r.label} [{r.id[-6:]}] · {text}", model, dataset))
    return options


def default_keys(records: list[RunRecord], options: list[SetOption]) -> tuple[str | None, str | None, str | None]:
    """Sensible first choices: the trained target, the latest GMT-like run's result, the aligned source."""
    keys = {o.key for o in options}
    run = next((r for m in ("gmt", "fgmt", "oracle", "naive") for r in records if r.method == m), None)
    if run is None:
        finals = [o.key for o in options if o.key.endswith(":final")]
        return (finals[1] if len(finals) > 1 else None), (finals[0] if finals else None), None
    target = (run.data.get("target") or {}).get("hash")
    a = f"traj:{target}:final" if f"traj:{target}:final" in keys else f"run:{run.id}:init"
    c = f"run:{run.id}:aligned_source" if f"run:{run.id}:aligned_source" in keys else f"run:{run.id}:init"
    return a, f"run:{run.id}:final", c


def resolve(key: str, store: RunStore, entries: list[TrajectoryEntry]) -> ParamFile:
    """The parameter set behind an option key (loaded through the per-process caches)."""
    kind, ident, point = key.split(":", 2)
    by_id = {e.id: e for e in entries}
    if kind == "traj":
        if ident not in by_id:
            raise LTError("that trajectory is no longer in the run store: choose another parameter set")
        entry = by_id[ident]
        return checkpoint_params(resources.trajectory(entry), 0 if point == "init" else -1, entry.name)
    run = resources.stored_run(store, ident)
    if point in ("final", "best", "init"):
        return getattr(run, point)
    source_hash = (run.record.data.get("source") or {}).get("hash")
    if source_hash not in by_id:
        raise LTError("the source trajectory of that run is not available any more: choose another parameter set")
    entry = by_id[source_hash]
    final = checkpoint_params(resources.trajectory(entry), -1, entry.name)
    spec = spec_for(final.model)
    return ParamFile(final.model, final.dataset, apply(spec, final.params, run.perms),
                     apply(spec, final.buffers, run.perms) if final.buffers else {},
                     {**final.info, "aligned_by": f"run {run.record.id} π_T"})
