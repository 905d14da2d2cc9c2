"""The run store: saved transfers and trajectories on disk, as JSON plus safetensors.

Layout under the store root (``$LT_RUNS_DIR``, else ``./runs``)::

    transfers/<run id>/run.json            the record: TransferResult.summary(), config, provenance
    transfers/<run id>/final.safetensors   final transferred parameters (a parameter file)
    transfers/<run id>/best.safetensors    best transferred parameters
    transfers/<run id>/init.safetensors    the new initialization the run started from
    transfers/<run id>/perms.safetensors   the last permutations and those of every step
    transfers/<run id>/<name>.json         attachments, e.g. a fine-tuning comparison
    trajectories/<hash>.safetensors        uploaded or trained trajectories, named by content hash
    trajectories/<hash>.json               their name, origin and summary

Run ids are made of letters, digits, ``-`` and ``_`` only, so they are safe as file names; every
id read from outside is checked against that pattern. Nothing is ever unpickled: parameters and
permutations are safetensors, records are JSON. A run is written to a temporary folder and renamed
into place, so a listing never sees half a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import InvalidFile, LTError
from .models import describe
from .permutation import Perms
from .trajectory import ParamFile, Trajectory, load_params, load_trajectory, params_bytes, trajectory_bytes
from .transfer import TransferResult

RUNS_ENV = "LT_RUNS_DIR"
RECORD_VERSION = 1
PERMS_KEY = "lt_explorer"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_HASH = re.compile(r"^[0-9a-f]{16}$")
RUN_FILES = ("final", "best", "init", "perms")


def default_root() -> Path:
    """``$LT_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def content_hash(data: bytes) -> str:
    """A short, stable name for file contents (first 16 hex digits of SHA-256)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:24] or "run"


def new_run_id(method: str) -> str:
    """A unique, file-name-safe id such as ``20240501-153012-fgmt-3fa2c1``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(method)}-{uuid.uuid4().hex[:6]}"


def _check_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _ID.match(run_id):
        raise LTError(f"{run_id!r} is not a run id (letters, digits, - and _ only)")
    return run_id


def _check_hash(key: str) -> str:
    if not isinstance(key, str) or not _HASH.match(key):
        raise LTError(f"{key!r} is not a stored trajectory id (16 hexadecimal digits)")
    return key


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def perms_bytes(perms: Perms, step_perms: list[Perms] | None = None) -> bytes:
    """Permutations as safetensors: ``final.{group}`` and ``step.{t}.{group}`` (t = 1…T), int64."""
    tensors = {f"final.{g}": p.detach().cpu().to(torch.int64).clone() for g, p in perms.items()}
    for t, step in enumerate(step_perms or [], start=1):
        tensors.update({f"step.{t}.{g}": p.detach().cpu().to(torch.int64).clone() for g, p in step.items()})
    header = {"format_version": RECORD_VERSION, "kind": "perms", "groups": {g: int(p.numel()) for g, p in perms.items()},
              "steps": len(step_perms or [])}
    return st_save(tensors, metadata={PERMS_KEY: json.dumps(header)})


def load_perms(source: str | Path | bytes, label: str = "the permutation file") -> tuple[Perms, list[Perms]]:
    """Read a file written by ``perms_bytes``: (final perms, per-step perms). Checks every permutation."""
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    try:
        tensors = st_load(bytes(data))
    except Exception as exc:  # safetensors raises its own error types for corrupt payloads
        raise InvalidFile(f"{label} is not a valid safetensors file: {exc}") from None
    final: Perms = {}
    steps: dict[int, Perms] = {}
    for key, t in tensors.items():
        parts = key.split(".")
        if t.dtype != torch.int64 or t.dim() != 1 or not torch.equal(t.sort().values, torch.arange(len(t))):
            raise InvalidFile(f"{label}: {key} is not a permutation")
        if parts[0] == "final" and len(parts) >= 2:
            final[".".join(parts[1:])] = t
        elif parts[0] == "step" and len(parts) >= 3 and parts[1].isdigit():
            steps.setdefault(int(parts[1]), {})[".".join(parts[2:])] = t
        else:
            raise InvalidFile(f"{label}: unexpected tensor {key!r}")
    return final, [steps[t] for t in sorted(steps)]


@dataclass
class RunRecord:
    """What ``run.json`` holds, with short accessors for listings."""

    id: str
    data: dict

    @property
    def summary(self) -> dict:
        return self.data["summary"]

    @property
    def method(self) -> str:
        return self.summary["method"]

    @property
    def label(self) -> str:
        return self.data.get("label") or f"{self.method} · {self.init_label}"

    @property
    def init_label(self) -> str:
        return (self.data.get("init") or {}).get("label", "?")

    @property
    def source_name(self) -> str:
        return (self.data.get("source") or {}).get("name", "?")

    @property
    def created(self) -> str:
        return self.data.get("created", "")

    @property
    def batch(self) -> str:
        return self.data.get("batch", self.id)

    @property
    def final_accuracy(self) -> float:
        return float(self.summary["final_accuracy"])

    @property
    def best_accuracy(self) -> float:
        return float(self.summary["best_accuracy"])

    @property
    def seconds(self) -> float:
        return float(self.summary.get("seconds", 0.0))

    @property
    def stopped(self) -> bool:
        return bool(self.summary.get("stopped"))


@dataclass
class StoredRun:
    """A run loaded back: its record, the three parameter sets and the permutations."""

    record: RunRecord
    final: ParamFile
    best: ParamFile
    init: ParamFile
    perms: Perms
    step_perms: list[Perms]


@dataclass
class TrajectoryRecord:
    """A stored trajectory: content hash id, name, origin (uploaded/trained) and its summary."""

    id: str
    name: str
    origin: str
    created: str
    model: dict
    dataset: str
    checkpoints: int
    final_metrics: dict
    path: Path

    @property
    def architecture(self) -> str:
        return describe(self.model)


class RunStore:
    """Transfers and trajectories saved under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()

    @property
    def transfers_dir(self) -> Path:
        return self.root / "transfers"

    @property
    def trajectories_dir(self) -> Path:
        return self.root / "trajectories"

    # ---------------------------------------------------------------- transfers

    def save_run(self, result: TransferResult, init: ParamFile, provenance: dict | None = None,
                 run_id: str | None = None) -> RunRecord:
        """Write a transfer result (summary, parameters, permutations) and return its record.

        ``provenance`` is merged into the record: e.g. ``label``, ``batch``, ``source`` (name, hash),
        ``init`` (kind, label), ``target``, ``device``.
        """
        run_id = _check_id(run_id or new_run_id(result.method))
        final_dir = self.transfers_dir / run_id
        if final_dir.exists():
            raise LTError(f"a run with id {run_id} already exists in {self.transfers_dir}")
        data = {"format_version": RECORD_VERSION, "id": run_id, "created": _now(), **(provenance or {}),
                "summary": result.summary()}
        tmp = self.transfers_dir / f".{run_id}.tmp"
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            (tmp / "final.safetensors").write_bytes(params_bytes(result.final))
            (tmp / "best.safetensors").write_bytes(params_bytes(result.best))
            (tmp / "init.safetensors").write_bytes(params_bytes(init))
            (tmp / "perms.safetensors").write_bytes(perms_bytes(result.perms, result.step_perms))
            (tmp / "run.json").write_text(json.dumps(data, indent=1))
            tmp.rename(final_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return RunRecord(run_id, data)

    def run_dir(self, run_id: str) -> Path:
        return self.transfers_dir / _check_id(run_id)

    def run_file(self, run_id: str, name: str) -> Path:
        """Path of one of a run's files: ``final``, ``best``, ``init`` or ``perms`` (.safetensors)."""
        if name not in RUN_FILES:
            raise LTError(f"a run has no file {name!r} (it has {', '.join(RUN_FILES)})")
        path = self.run_dir(run_id) / f"{name}.safetensors"
        if not path.is_file():
            raise LTError(f"run {run_id} has no {name} file in {self.transfers_dir}: was it deleted?")
        return path

    def list_runs(self) -> list[RunRecord]:
        """Every readable run, newest first (unreadable folders are skipped)."""
        if not self.transfers_dir.is_dir():
            return []
        records = []
        for folder in self.transfers_dir.iterdir():
            if folder.name.startswith(".") or not _ID.match(folder.name):
                continue
            try:
                data = json.loads((folder / "run.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("summary"), dict):
                records.append(RunRecord(folder.name, data))
        return sorted(records, key=lambda r: (r.created, r.id), reverse=True)

    def run_record(self, run_id: str) -> RunRecord:
        data = _read_record(self.run_dir(run_id) / "run.json", f"there is no run {run_id} in {self.transfers_dir}",
                            "run")
        return RunRecord(run_id, data)

    def load_run(self, run_id: str) -> StoredRun:
        """A run's record with its final, best and init parameters and its permutations."""
        record = self.run_record(run_id)
        final, best, init = (load_params(self.run_file(run_id, n), f"run {run_id}: {n}") for n in ("final", "best", "init"))
        perms, step_perms = load_perms(self.run_file(run_id, "perms"), f"run {run_id}: perms")
        return StoredRun(record, final, best, init, perms, step_perms)

    def delete_run(self, run_id: str) -> None:
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            raise LTError(f"there is no run {run_id} in {self.transfers_dir}")
        shutil.rmtree(folder)

    def save_attachment(self, run_id: str, name: str, data: dict) -> None:
        """Store a JSON attachment (e.g. ``finetune``) next to a run."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            raise LTError(f"there is no run {run_id} in {self.transfers_dir}")
        _write_json(folder / f"{_check_id(name)}.json", data)

    def load_attachment(self, run_id: str, name: str) -> dict | None:
        path = self.run_dir(run_id) / f"{_check_id(name)}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    # ---------------------------------------------------------------- trajectories

    def save_trajectory(self, source: bytes | Trajectory, name: str, origin: str) -> TrajectoryRecord:
        """Store a trajectory (validated first when given as bytes); the same content is stored once."""
        data = trajectory_bytes(source) if isinstance(source, Trajectory) else bytes(source)
        key = content_hash(data)
        if self.has_trajectory(key):
            return self.trajectory_record(key)
        traj = source if isinstance(source, Trajectory) else load_trajectory(data, name)
        self.trajectories_dir.mkdir(parents=True, exist_ok=True)
        path = self.trajectories_dir / f"{key}.safetensors"
        if not path.is_file():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        meta_path = self.trajectories_dir / f"{key}.json"
        if not meta_path.is_file():
            _write_json(meta_path, {"id": key, "name": name, "origin": origin, "created": _now(),
                                    "model": traj.model, "dataset": traj.dataset, "checkpoints": len(traj),
                                    "final_metrics": traj.checkpoints[-1].metrics, "training": traj.training})
        return self.trajectory_record(key)

    def has_trajectory(self, key: str) -> bool:
        return ((self.trajectories_dir / f"{_check_hash(key)}.json").is_file()
                and (self.trajectories_dir / f"{key}.safetensors").is_file())

    def trajectory_record(self, key: str) -> TrajectoryRecord:
        meta = _read_record(self.trajectories_dir / f"{_check_hash(key)}.json",
                            f"there is no stored trajectory {key} in {self.trajectories_dir}", "trajectory")
        return TrajectoryRecord(key, meta.get("name", key), meta.get("origin", "uploaded"), meta.get("created", ""),
                                meta["model"], meta["dataset"], int(meta.get("checkpoints", 0)),
                                meta.get("final_metrics") or {}, self.trajectories_dir / f"{key}.safetensors")

    def list_trajectories(self) -> list[TrajectoryRecord]:
        """Every readable stored trajectory, newest first."""
        if not self.trajectories_dir.is_dir():
            return []
        records = []
        for meta in self.trajectories_dir.glob("*.json"):
            if not _HASH.match(meta.stem) or not (meta.with_suffix(".safetensors")).is_file():
                continue
            try:
                records.append(self.trajectory_record(meta.stem))
            except (LTError, KeyError):
                continue
        return sorted(records, key=lambda r: (r.created, r.id), reverse=True)

    def load_trajectory(self, key: str) -> Trajectory:
        record = self.trajectory_record(key)
        return load_trajectory(record.path, record.name)

    def delete_trajectory(self, key: str) -> None:
        record = self.trajectory_record(key)
        record.path.unlink(missing_ok=True)
        (self.trajectories_dir / f"{key}.json").unlink(missing_ok=True)


def _read_record(path: Path, missing: str, what: str) -> dict:
    """A stored JSON record; a missing or damaged one is an error a person can act on."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LTError(missing) from None
    except ValueError:
        raise InvalidFile(f"{path} is not valid JSON: the {what} record is damaged") from None
