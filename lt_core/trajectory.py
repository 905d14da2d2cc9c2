"""Trajectories and parameter files: safetensors tensors plus a JSON header, validated on load.

A trajectory file holds tensors ``ckpt.{k}.{name}`` (parameters and float BatchNorm buffers of
checkpoint k) and, in the safetensors metadata under ``lt_explorer``, a JSON object::

    {"format_version": 1, "kind": "trajectory", "model": {...config...}, "dataset": "digits",
     "training": {...}, "checkpoints": [{"step": 0, "epoch": 0.0, "metrics": {...}}, ...]}

A parameter file holds tensors ``{name}`` and ``{"format_version": 1, "kind": "params",
"model": ..., "dataset": ..., "info": {...}}``. Nothing here ever unpickles: files from users are
data, and every loader says exactly what is wrong with a file it rejects.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save

from .errors import InvalidFile, LTError
from .models import buffer_names, build_model, describe, param_names, validate_config
from .data import DATASETS

FORMAT_VERSION = 1
HEADER_KEY = "lt_explorer"
DEFAULT_MAX_BYTES = 4 * 1024**3


def max_file_bytes() -> int:
    """Largest file accepted (``$LT_MAX_FILE_MB`` overrides the 4 GiB default)."""
    mb = os.environ.get("LT_MAX_FILE_MB")
    return int(float(mb) * 1024**2) if mb else DEFAULT_MAX_BYTES


@dataclass
class Checkpoint:
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    step: int = 0
    epoch: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)

    def state(self) -> dict[str, torch.Tensor]:
        return {**self.params, **self.buffers}


@dataclass
class Trajectory:
    """A recorded training run: model config, dataset, training settings and checkpoints."""

    model: dict
    dataset: str
    checkpoints: list[Checkpoint]
    training: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.checkpoints)

    def to(self, device: torch.device | str) -> "Trajectory":
        moved = [Checkpoint({n: t.to(device) for n, t in c.params.items()},
                            {n: t.to(device) for n, t in c.buffers.items()}, c.step, c.epoch, dict(c.metrics))
                 for c in self.checkpoints]
        return Trajectory(self.model, self.dataset, moved, dict(self.training))

    def header(self) -> dict:
        return {"format_version": FORMAT_VERSION, "kind": "trajectory", "model": self.model,
                "dataset": self.dataset, "training": self.training,
                "checkpoints": [{"step": c.step, "epoch": c.epoch, "metrics": c.metrics} for c in self.checkpoints]}

    def summary(self) -> dict:
        n_params = sum(t.numel() for t in self.checkpoints[0].params.values())
        return {"kind": "trajectory", "architecture": describe(self.model), "dataset": self.dataset,
                "checkpoints": len(self), "parameters": n_params, "training": self.training,
                "final_metrics": self.checkpoints[-1].metrics}


@dataclass
class ParamFile:
    """One parameter set (with BatchNorm buffers) and where it came from."""

    model: dict
    dataset: str
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"kind": "params", "architecture": describe(self.model), "dataset": self.dataset,
                "parameters": sum(t.numel() for t in self.params.values()), "info": self.info}


def trajectory_bytes(traj: Trajectory) -> bytes:
    tensors = {}
    for k, ckpt in enumerate(traj.checkpoints):
        for name, t in ckpt.state().items():
            tensors[f"ckpt.{k}.{name}"] = t.detach().cpu().contiguous()
    return st_save(tensors, metadata={HEADER_KEY: json.dumps(traj.header())})


def save_trajectory(traj: Trajectory, path: str | Path) -> None:
    _write_atomic(Path(path), trajectory_bytes(traj))


def params_bytes(pf: ParamFile) -> bytes:
    tensors = {n: t.detach().cpu().contiguous() for n, t in {**pf.params, **pf.buffers}.items()}
    header = {"format_version": FORMAT_VERSION, "kind": "params", "model": pf.model, "dataset": pf.dataset,
              "info": pf.info}
    return st_save(tensors, metadata={HEADER_KEY: json.dumps(header)})


def save_params(pf: ParamFile, path: str | Path) -> None:
    _write_atomic(Path(path), params_bytes(pf))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _limit_error(label: str, size: int) -> InvalidFile:
    return InvalidFile(f"{label} is {size / 1e6:.0f} MB, over the {max_file_bytes() / 1e6:.0f} MB limit "
                       "(set LT_MAX_FILE_MB to raise it)")


def _head(source: str | Path | bytes, label: str | None) -> tuple[bytes, int, str]:
    """The first bytes of a file (its 8-byte length and JSON header, as far as they go), its size, a label.

    A path is not read beyond its header here: tensors are memory-mapped later, so a big
    trajectory is not held in memory twice.
    """
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), label or "the uploaded file"
        if len(data) > max_file_bytes():
            raise _limit_error(label, len(data))
        return data, len(data), label
    path = Path(source)
    label = label or str(path)
    if not path.is_file():
        raise InvalidFile(f"{label}: no such file")
    size = path.stat().st_size
    if size > max_file_bytes():
        raise _limit_error(label, size)
    with path.open("rb") as f:
        first = f.read(8)
        wanted = struct.unpack("<Q", first)[0] if len(first) == 8 else 0
        return first + f.read(min(wanted, size - 8, 100 * 1024**2)), size, label


def _refuse_pickle(data: bytes, label: str) -> None:
    """Explain files saved with torch.save / pickle (zip archive or raw pickle stream)."""
    if data[:4] == b"PK\x03\x04" or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise InvalidFile(f"{label} looks like a PyTorch/pickle file (torch.save). LT Explorer never loads "
                          "pickles, since they can run code. Save it as safetensors instead: load it in "
                          "your own trusted code and use lt_core.trajectory.TrajectoryRecorder or "
                          "safetensors.torch.save_file.")


def read_header(source: str | Path | bytes, label: str | None = None) -> tuple[dict, str]:
    """Parse and check the container's header: (LT Explorer header JSON, label). Never unpickles."""
    data, size, label = _head(source, label)
    if size < 8:
        raise InvalidFile(f"{label} is too short to be a safetensors file ({size} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > size - 8 or len(data) < 8 + header_len or data[8:9] != b"{":
        _refuse_pickle(data, label)
        raise InvalidFile(f"{label} is not a valid safetensors file (truncated or not safetensors at all): "
                          f"its first 8 bytes announce a {header_len}-byte header in a {size}-byte file")
    try:
        raw = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidFile(f"{label} is not a valid safetensors file: its header is not JSON") from None
    meta = raw.get("__metadata__") or {} if isinstance(raw, dict) else {}
    if HEADER_KEY not in meta:
        raise InvalidFile(f"{label} is a safetensors file but not an LT Explorer file: its metadata has no "
                          f"'{HEADER_KEY}' entry. Record trajectories with TrajectoryRecorder or "
                          "`python -m lt_core train`.")
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError:
        raise InvalidFile(f"{label}: the '{HEADER_KEY}' metadata is not valid JSON") from None
    if not isinstance(header, dict):
        raise InvalidFile(f"{label}: the '{HEADER_KEY}' metadata must be a JSON object")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidFile(f"{label} has format_version {version!r}; this version of LT Explorer reads "
                          f"version {FORMAT_VERSION}. Re-export it with a matching version.")
    try:
        validate_config(header.get("model"))
    except LTError as exc:
        raise InvalidFile(f"{label}: {exc}") from None
    if header.get("dataset") not in DATASETS:
        raise InvalidFile(f"{label}: unknown dataset {header.get('dataset')!r} (known: {', '.join(DATASETS)})")
    return header, label


def read_file(source: str | Path | bytes, label: str | None = None) -> tuple[dict, dict[str, torch.Tensor], str]:
    """Parse and check the container: (header JSON, tensors, label). Never unpickles."""
    header, label = read_header(source, label)
    try:
        tensors = st_load(bytes(source)) if isinstance(source, (bytes, bytearray)) else st_load_file(str(source))
    except Exception as exc:  # safetensors raises its own error type for corrupt payloads
        raise InvalidFile(f"{label} is corrupt or truncated: {exc}") from None
    return header, tensors, label


def _check_state(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Size], where: str) -> None:
    for name, shape in expected.items():
        if name not in tensors:
            raise InvalidFile(f"{where} is missing {name}")
        t = tensors[name]
        if not t.is_floating_point():
            raise InvalidFile(f"{where}: {name} has dtype {t.dtype}, expected a floating-point type")
        if tuple(t.shape) != tuple(shape):
            raise InvalidFile(f"{where}: {name} has shape {tuple(t.shape)}, the model expects {tuple(shape)}")
        if not torch.isfinite(t).all():
            raise InvalidFile(f"{where}: {name} contains NaN or infinite values")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise InvalidFile(f"{where} has tensors the model does not know: {', '.join(extra[:5])}"
                          + (" …" if len(extra) > 5 else ""))


def expected_shapes(config: dict) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """Parameter and float-buffer shapes of the model ``config`` builds."""
    with torch.device("meta"):
        model = build_model(config)
    state = dict(model.named_parameters()) | dict(model.named_buffers())
    return ({n: state[n].shape for n in param_names(model)}, {n: state[n].shape for n in buffer_names(model)})


def load_trajectory(source: str | Path | bytes, label: str | None = None) -> Trajectory:
    """Load and validate a trajectory file (path or bytes)."""
    return _trajectory_from(*read_file(source, label))


def _trajectory_from(header: dict, tensors: dict[str, torch.Tensor], label: str) -> Trajectory:
    if header.get("kind") != "trajectory":
        raise InvalidFile(f"{label} is a {header.get('kind')!r} file, not a trajectory")
    entries = header.get("checkpoints")
    if not isinstance(entries, list) or not entries:
        raise InvalidFile(f"{label} lists no checkpoints")
    p_shapes, b_shapes = expected_shapes(header["model"])
    by_ckpt: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or parts[0] != "ckpt" or not parts[1].isdigit():
            raise InvalidFile(f"{label}: unexpected tensor {key!r} (trajectory tensors are named ckpt.K.NAME)")
        by_ckpt.setdefault(int(parts[1]), {})[parts[2]] = t
    extra = sorted(set(by_ckpt) - set(range(len(entries))))
    if extra:
        raise InvalidFile(f"{label} has tensors for checkpoint {extra[0]} but its header lists only {len(entries)}")
    checkpoints = []
    for k, entry in enumerate(entries):
        state = by_ckpt.get(k, {})
        where = f"checkpoint {k}"
        has_buffers = any(n in state for n in b_shapes)
        _check_state(state, p_shapes | (b_shapes if has_buffers else {}), f"{label}: {where}")
        if not isinstance(entry, dict):
            raise InvalidFile(f"{label}: the header entry of {where} must be an object")
        checkpoints.append(Checkpoint({n: state[n].float() for n in p_shapes},
                                      {n: state[n].float() for n in b_shapes if n in state},
                                      int(entry.get("step", k)), float(entry.get("epoch", 0.0)),
                                      {m: float(v) for m, v in (entry.get("metrics") or {}).items()}))
    return Trajectory(header["model"], header["dataset"], checkpoints, header.get("training") or {})


def load_params(source: str | Path | bytes, label: str | None = None) -> ParamFile:
    """Load and validate a parameter file (path or bytes)."""
    return _params_from(*read_file(source, label))


def _params_from(header: dict, tensors: dict[str, torch.Tensor], label: str) -> ParamFile:
    if header.get("kind") != "params":
        raise InvalidFile(f"{label} is a {header.get('kind')!r} file, not a parameter file"
                          + (" (use a trajectory file's checkpoint with FILE@K)" if header.get("kind") == "trajectory" else ""))
    p_shapes, b_shapes = expected_shapes(header["model"])
    has_buffers = any(n in tensors for n in b_shapes)
    _check_state(tensors, p_shapes | (b_shapes if has_buffers else {}), label)
    return ParamFile(header["model"], header["dataset"], {n: tensors[n].float() for n in p_shapes},
                     {n: tensors[n].float() for n in b_shapes if n in tensors}, header.get("info") or {})


def load_any(source: str | Path | bytes, label: str | None = None) -> Trajectory | ParamFile:
    """A trajectory or a parameter file, whichever ``source`` holds."""
    header, tensors, label = read_file(source, label)
    return (_trajectory_from if header.get("kind") == "trajectory" else _params_from)(header, tensors, label)


class TrajectoryRecorder:
    """Record a trajectory from your own training loop, for a built-in architecture.

    >>> config = make_config("mlp", [1, 8, 8], 10, width=128)
    >>> model = build_model(config)
    >>> rec = TrajectoryRecorder(config, "digits", training={"optimizer": "sgd", "lr": 0.05})
    >>> rec.record(model, step=0, epoch=0)             # the init
    >>> ...  # train, calling rec.record(model, step=..., epoch=..., val_acc=...) now and then
    >>> rec.save("my_run.safetensors")
    """

    def __init__(self, model_config: dict, dataset: str, training: dict | None = None):
        validate_config(model_config)
        if dataset not in DATASETS:
            raise LTError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
        self.model_config = model_config
        self.dataset = dataset
        self.training = dict(training or {})
        self.checkpoints: list[Checkpoint] = []
        self._shapes = expected_shapes(model_config)

    def record(self, model: torch.nn.Module, step: int, epoch: float = 0.0, **metrics: float) -> Checkpoint:
        """Copy the model's current parameters and BatchNorm buffers as the next checkpoint."""
        state = {n: t.detach().to("cpu", torch.float32, copy=True) for n, t in model.state_dict().items()
                 if t.is_floating_point()}
        p_shapes, b_shapes = self._shapes
        try:
            _check_state(state, p_shapes | b_shapes, f"checkpoint {len(self.checkpoints)}")
        except InvalidFile as exc:
            raise LTError(f"the model does not match the config {describe(self.model_config)}: {exc}") from None
        ckpt = Checkpoint({n: state[n] for n in p_shapes}, {n: state[n] for n in b_shapes}, int(step), float(epoch),
                          {k: float(v) for k, v in metrics.items()})
        self.checkpoints.append(ckpt)
        return ckpt

    def trajectory(self) -> Trajectory:
        if not self.checkpoints:
            raise LTError("nothing recorded yet: call record(model, step=0) at least once")
        return Trajectory(self.model_config, self.dataset, list(self.checkpoints), self.training)

    def save(self, path: str | Path) -> None:
        save_trajectory(self.trajectory(), path)


def describe_file(source: str | Path | bytes, label: str | None = None) -> dict[str, Any]:
    """Validate a file and return its summary (adds file size in bytes)."""
    obj = load_any(source, label)
    summary = obj.summary()
    summary["bytes"] = len(source) if isinstance(source, (bytes, bytearray)) else Path(source).stat().st_size
    return summary


def checkpoint_params(traj: Trajectory, index: int, label: str = "trajectory") -> ParamFile:
    """Checkpoint ``index`` (negative counts from the end) of a trajectory as a parameter set."""
    n = len(traj.checkpoints)
    if not -n <= index < n:
        raise LTError(f"{label} has {n} checkpoints (0…{n - 1}, or -1 for the last); there is no checkpoint {index}")
    ckpt = traj.checkpoints[index]
    return ParamFile(traj.model, traj.dataset, dict(ckpt.params), dict(ckpt.buffers),
                     {"source": label, "checkpoint": index % n, "step": ckpt.step, **ckpt.metrics})


def load_param_set(spec: str) -> ParamFile:
    """A parameter set from ``FILE.safetensors`` (parameter file) or ``TRAJ.safetensors@K`` (checkpoint K)."""
    path, at, index = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if at:
        try:
            k = int(index)
        except ValueError:
            raise LTError(f"{spec!r}: after @ comes a checkpoint number, e.g. run.safetensors@-1") from None
        return checkpoint_params(load_trajectory(path), k, path)
    obj = load_any(path)
    if isinstance(obj, Trajectory):
        raise LTError(f"{path} is a trajectory: say which checkpoint with {path}@K (e.g. @0 for the init, @-1 for the end)")
    return obj
