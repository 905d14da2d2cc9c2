"""Heavy resources cached per server process: datasets, trajectories, stored runs.

Trajectories are cached by file content hash and stored runs by id and modification time, so a
widget changed on one page never reloads anything, and a file replaced on disk is read again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from lt_core.data import Dataset, default_data_root, load_dataset
from lt_core.models import describe
from lt_core.runs import RunStore, StoredRun
from lt_core.trajectory import Trajectory, load_trajectory

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass
class TrajectoryEntry:
    """A trajectory the app knows: bundled in assets/ or stored in the run store."""

    id: str
    name: str
    origin: str  # "bundled", "uploaded" or "trained"
    path: str
    model: dict
    dataset: str
    checkpoints: int
    final_val_acc: float | None

    @property
    def architecture(self) -> str:
        return describe(self.model)

    @property
    def label(self) -> str:
        acc = f", final acc {self.final_val_acc:.3f}" if self.final_val_acc is not None else ""
        return f"{self.name} ({self.origin}{acc})"


@st.cache_data(show_spinner=False, max_entries=256)
def _file_hash(path: str, mtime: float, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    """Content hash of a file (same scheme as ``lt_core.runs.content_hash``), cached by mtime and size."""
    stat = Path(path).stat()
    return _file_hash(str(path), stat.st_mtime, stat.st_size)


@st.cache_resource(show_spinner="Loading trajectory…", max_entries=24)
def _trajectory(path: str, key: str, label: str) -> Trajectory:
    return load_trajectory(path, label)


def trajectory(entry: TrajectoryEntry) -> Trajectory:
    """The loaded trajectory of a catalogue entry (shared, read-only: never modify it)."""
    return _trajectory(entry.path, entry.id, _label(entry.name, entry.path))


def _label(name: str, path: str) -> str:
    return f"the trajectory “{name}” ({path})"


def demo_entries() -> list[TrajectoryEntry]:
    """The bundled demo trajectories listed in assets/demos.json."""
    catalog = json.loads((ASSETS / "demos.json").read_text())
    entries = []
    for item in catalog:
        path = ASSETS / item["file"]
        if not path.is_file():
            continue
        key = file_hash(path)
        traj = _trajectory(str(path), key, _label(path.stem, str(path)))
        entries.append(TrajectoryEntry(key, Path(item["file"]).stem, "bundled", str(path), traj.model, traj.dataset,
                                       len(traj), item.get("final_val_acc")))
    return entries


def known_trajectories(store: RunStore) -> list[TrajectoryEntry]:
    """Bundled demos first, then the store's trajectories (newest first), each once."""
    entries = demo_entries()
    seen = {e.id for e in entries}
    for rec in store.list_trajectories():
        if rec.id in seen:
            continue
        seen.add(rec.id)
        entries.append(TrajectoryEntry(rec.id, rec.name, rec.origin, str(rec.path), rec.model, rec.dataset,
                                       rec.checkpoints, rec.final_metrics.get("val_acc")))
    return entries


@st.cache_resource(show_spinner="Loading dataset…", max_entries=6)
def _dataset(name: str, device: str, root: str) -> Dataset:
    return load_dataset(name, root=root, device=torch.device(device))


def dataset(name: str, device: str) -> Dataset:
    """A dataset on ``device`` (raises ``DatasetUnavailable`` with what to do when it is missing)."""
    return _dataset(name, device, str(default_data_root().resolve()))


@st.cache_resource(show_spinner="Loading run…", max_entries=48)
def _stored_run(root: str, run_id: str, mtime: float) -> StoredRun:
    return RunStore(root).load_run(run_id)


def stored_run(store: RunStore, run_id: str) -> StoredRun:
    """A stored run with its parameters (cached; re-read if its record changed on disk)."""
    record = store.run_dir(run_id) / "run.json"
    return _stored_run(str(store.root), run_id, record.stat().st_mtime if record.exists() else 0.0)
