"""Mode connectivity: loss along a line between two parameter sets, loss barriers, alignment, a 2-D
loss plane through three sets, and which hidden unit of one network matches which of another.

Everything evaluates parameter sets with ``torch.func.functional_call`` on one module built once
(``evaluation.model_for``), with all tensors on the compute device. Long work is a generator of
progress events ending with ``events.Finished(result)``, like training.

**BatchNorm.** The running statistics of a network are not a linear function of its parameters:
the midpoint of two trained networks has activations whose means and variances are unrelated to
the average of the endpoints' statistics. So by default (``reset_bn=True``) the statistics are
re-estimated at every evaluated point from ``bn_batches`` training batches, drawn with a generator
seeded by ``seed`` — the same batches at every point, so the curve is smooth and the endpoints
equal ``recompute_batchnorm`` with that seed. With ``reset_bn=False`` the statistics are
interpolated like the parameters (variances clamped at 0 outside [0, 1]), which shows why the reset
matters. Networks without BatchNorm ignore the flag.

**Train metrics.** Evaluating the whole training set at every point dominates the cost on
MNIST-size data, so by default train metrics use all of the training set when it has at most
``DEFAULT_TRAIN_CAP`` (10 000) examples (``digits``: all 1 437) and otherwise a fixed random subset
of that many examples (seeded by ``seed``; the same subset at every point). ``train_subset=N``
chooses the size, ``train_metrics=False`` skips them (columns are NaN).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import Dataset
from .errors import LTError
from .evaluation import evaluate, has_batchnorm, model_for, recompute_batchnorm
from .events import Finished
from .models import ACTIVATIONS, buffer_names, describe
from .permutation import Perms, apply, spec_for, weight_matching
from .trajectory import ParamFile

Tensors = dict[str, torch.Tensor]

DEFAULT_TRAIN_CAP = 10_000
CURVE_COLUMNS = ("alpha", "train_loss", "train_acc", "val_loss", "val_acc")
_ALPHA_TOL = 1e-9


# --------------------------------------------------------------------------------------------
# compatibility and shared helpers
# --------------------------------------------------------------------------------------------

def check_compatible(sets: dict[str, ParamFile] | Sequence[ParamFile], same_dataset: bool = False) -> None:
    """Raise ``LTError`` unless all parameter sets have the same architecture (and dataset if asked).

    ``sets`` maps a name used in messages ("a", "b", …) to a set; a plain sequence is named a, b, c….
    """
    named = dict(sets) if isinstance(sets, dict) else {chr(ord("a") + i): s for i, s in enumerate(sets)}
    items = list(named.items())
    first_name, first = items[0]
    for name, other in items[1:]:
        if other.model != first.model:
            da, db = describe(first.model), describe(other.model)
            if da == db:  # same summary line: say which config entries differ
                keys = sorted(k for k in set(first.model) | set(other.model) if first.model.get(k) != other.model.get(k))
                detail = ", ".join(f"{k}: {first.model.get(k)!r} vs {other.model.get(k)!r}" for k in keys)
                raise LTError(f"{first_name} and {name} have different model configs ({detail}); "
                              "they must be the same architecture")
            raise LTError(f"{first_name} is {da} but {name} is {db}: both must be the same architecture")
        if same_dataset and other.dataset != first.dataset:
            raise LTError(f"{first_name} was trained on {first.dataset} but {name} on {other.dataset}; "
                          "choose which dataset to evaluate on")


def _check_dataset(pf: ParamFile, dataset: Dataset) -> None:
    if list(pf.model["input_shape"]) != list(dataset.input_shape):
        raise LTError(f"the model ({describe(pf.model)}) expects inputs {pf.model['input_shape']} but "
                      f"{dataset.name} has {dataset.input_shape}")
    if pf.model["num_classes"] != dataset.num_classes:
        raise LTError(f"the model has {pf.model['num_classes']} outputs but {dataset.name} has "
                      f"{dataset.num_classes} classes")


def _resolve(device: torch.device | str | None, dataset: Dataset) -> torch.device:
    return torch.device(device) if device is not None else dataset.device


def _on(tensors: Tensors, device: torch.device) -> Tensors:
    return {n: t.to(device, torch.float32) for n, t in tensors.items()}


def _stored_buffers(pf: ParamFile, model: nn.Module, device: torch.device, name: str) -> Tensors:
    """``pf``'s own BatchNorm statistics on ``device``, for evaluating without a BatchNorm reset."""
    names = buffer_names(model)
    if not all(n in pf.buffers for n in names):
        raise LTError(f"{name} has no BatchNorm statistics (its file holds parameters only): "
                      "evaluate with BatchNorm reset instead")
    return _on({n: pf.buffers[n] for n in names}, device)


def _lerp_buffers(a: Tensors, b: Tensors, alpha: float) -> Tensors:
    """Linear interpolation of BatchNorm statistics; variances clamped at 0 (extrapolation)."""
    out = {n: torch.lerp(a[n], b[n], alpha) for n in a}
    return {n: (t.clamp_min(0.0) if n.endswith("running_var") else t) for n, t in out.items()}


@dataclass
class _Evaluator:
    """Evaluates parameter sets on one model: fresh BN statistics if asked, val and train metrics."""

    model: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_sub: torch.Tensor | None
    y_sub: torch.Tensor | None
    reset_bn: bool
    bn_batches: int
    bn_batch_size: int
    seed: int

    def __call__(self, params: Tensors, buffers: Tensors) -> dict[str, float]:
        if self.reset_bn:
            gen = torch.Generator().manual_seed(self.seed)
            buffers = recompute_batchnorm(self.model, params, buffers, self.x_train, self.bn_batches,
                                          self.bn_batch_size, gen)
        val_loss, val_acc = evaluate(self.model, params, buffers, self.x_val, self.y_val)
        metrics = {"train_loss": math.nan, "train_acc": math.nan, "val_loss": val_loss, "val_acc": val_acc}
        if self.x_sub is not None:
            metrics["train_loss"], metrics["train_acc"] = evaluate(self.model, params, buffers, self.x_sub, self.y_sub)
        return metrics


def train_subset_indices(n: int, train_subset: int | None, seed: int) -> torch.Tensor | None:
    """Indices of the training examples used for train metrics (``None``: all of them, in order).

    Default (``train_subset=None``): all when ``n ≤ DEFAULT_TRAIN_CAP``, else a seeded random
    subset of ``DEFAULT_TRAIN_CAP``.
    """
    if train_subset is not None and train_subset < 1:
        raise LTError(f"the train subset needs at least 1 example (got {train_subset})")
    size = min(n, train_subset if train_subset is not None else DEFAULT_TRAIN_CAP)
    if size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def _evaluator(model: nn.Module, dataset: Dataset, device: torch.device, reset_bn: bool, bn_batches: int,
               bn_batch_size: int, seed: int, train_metrics: bool, train_subset: int | None) -> _Evaluator:
    if bn_batches < 1 or bn_batch_size < 1:
        raise LTError("BatchNorm reset needs at least 1 batch of at least 1 example")
    x_tr, y_tr = dataset.x_train.to(device), dataset.y_train.to(device)
    x_sub = y_sub = None
    if train_metrics:
        idx = train_subset_indices(len(x_tr), train_subset, seed)
        x_sub, y_sub = (x_tr, y_tr) if idx is None else (x_tr[idx.to(device)], y_tr[idx.to(device)])
    return _Evaluator(model, x_tr, y_tr, dataset.x_val.to(device), dataset.y_val.to(device), x_sub, y_sub,
                      reset_bn, bn_batches, bn_batch_size, seed)


# --------------------------------------------------------------------------------------------
# interpolation and barriers
# --------------------------------------------------------------------------------------------

@dataclass
class InterpolationProgress:
    """One point of a curve evaluated: ``step`` of ``total``, at ``alpha``."""

    step: int
    total: int
    alpha: float
    metrics: dict[str, float]
    elapsed: float


def alpha_grid(points: int, alpha_range: tuple[float, float] = (0.0, 1.0)) -> list[float]:
    """``points`` evenly spaced α over ``alpha_range``, plus 0 and 1 whenever the range covers them.

    Values within rounding of 0 or 1 are snapped to exactly 0 or 1; if 0 or 1 lies inside the range
    but falls between grid points it is added, so the barrier is always defined for a range that
    covers [0, 1] (the curve then has one or two more rows than ``points``).
    """
    lo, hi = float(alpha_range[0]), float(alpha_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise LTError(f"the α range must be two finite numbers LO < HI (got {lo}, {hi})")
    if points < 2:
        raise LTError(f"a curve needs at least 2 points (got {points})")
    alphas = [float(a) for a in np.linspace(lo, hi, points)]
    tol = 1e-9 * (hi - lo) + 1e-12
    for anchor in (0.0, 1.0):
        if lo - tol <= anchor <= hi + tol:
            near = [i for i, a in enumerate(alphas) if abs(a - anchor) <= tol]
            if near:
                alphas[near[0]] = anchor
            else:
                alphas.append(anchor)
    return sorted(alphas)


def interpolate(a: ParamFile, b: ParamFile, dataset: Dataset, points: int = 25,
                alpha_range: tuple[float, float] = (0.0, 1.0), reset_bn: bool = True, bn_batches: int = 10,
                bn_batch_size: int = 256, device: torch.device | str | None = None, seed: int = 0,
                train_subset: int | None = None,
                train_metrics: bool = True) -> Iterator[InterpolationProgress | Finished]:
    """Loss and accuracy at (1−α)·a + α·b for α on ``alpha_grid(points, alpha_range)``.

    Yields one ``InterpolationProgress`` per point, then ``Finished(curve)`` where ``curve`` is a
    DataFrame with columns alpha, train_loss, train_acc, val_loss, val_acc (train columns NaN when
    ``train_metrics`` is off). See the module docstring for BatchNorm and the train subset.
    ``device`` defaults to the dataset's device.
    """
    check_compatible({"a": a, "b": b})
    _check_dataset(a, dataset)
    alphas = alpha_grid(points, alpha_range)
    device = _resolve(device, dataset)
    model = model_for(a.model, device)
    bn = has_batchnorm(model)
    reset = reset_bn and bn
    pa, pb = _on(a.params, device), _on(b.params, device)
    stored = bn and not reset
    ba = _stored_buffers(a, model, device, "a") if stored else {}
    bb = _stored_buffers(b, model, device, "b") if stored else {}
    ev = _evaluator(model, dataset, device, reset, bn_batches, bn_batch_size, seed, train_metrics, train_subset)
    start = time.perf_counter()
    rows = []
    for step, alpha in enumerate(alphas, start=1):
        # torch.lerp is exact at both ends: α=0 gives a and α=1 gives b bit for bit.
        params = {n: torch.lerp(pa[n], pb[n], alpha) for n in pa}
        buffers = _lerp_buffers(ba, bb, alpha)
        metrics = ev(params, buffers)
        rows.append({"alpha": alpha, **metrics})
        yield InterpolationProgress(step, len(alphas), alpha, metrics, time.perf_counter() - start)
    curve = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    curve.attrs.update({"reset_bn": reset, "batchnorm": bn, "seed": seed,
                        "train_examples": 0 if ev.x_sub is None else len(ev.x_sub)})
    yield Finished(curve, time.perf_counter() - start)


@dataclass
class Barrier:
    """The height of a barrier on one column of a curve and the α where it is highest.

    Loss columns: max over α∈[0,1] of L(α) − ((1−α)L(0) + αL(1)). Accuracy columns: max over
    α∈[0,1] of ((1−α)acc(0) + α·acc(1)) − acc(α). Both are ≥ 0 (the endpoints contribute 0).
    """

    column: str
    kind: str  # "loss" or "accuracy"
    height: float
    alpha: float
    start: float  # the column's value at α = 0
    end: float  # and at α = 1

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "height": self.height, "alpha": self.alpha,
                "start": self.start, "end": self.end}


def barrier(curve: pd.DataFrame, column: str = "val_loss") -> Barrier:
    """The barrier on ``column`` (a loss, or an accuracy if the name contains "acc").

    Only rows with 0 ≤ α ≤ 1 count; the rows at α = 0 and α = 1 must be present (within 1e-9).
    """
    if column not in curve.columns or "alpha" not in curve.columns:
        raise LTError(f"the curve has no {column!r} column (it has {', '.join(map(str, curve.columns))})")
    alpha = curve["alpha"].to_numpy(dtype=float)
    values = curve[column].to_numpy(dtype=float)
    ends = []
    for anchor in (0.0, 1.0):
        hits = np.flatnonzero(np.abs(alpha - anchor) <= _ALPHA_TOL)
        if len(hits) == 0:
            raise LTError(f"a barrier needs the curve at α = 0 and α = 1, but its α run from {alpha.min():g} "
                          f"to {alpha.max():g} without {anchor:g}: use a range that covers [0, 1]")
        ends.append(float(values[hits[0]]))
    if not all(math.isfinite(v) for v in ends):
        raise LTError(f"the curve's {column} is not a number at α = 0 or 1 (were train metrics skipped?)")
    inside = (alpha >= -_ALPHA_TOL) & (alpha <= 1 + _ALPHA_TOL)
    al = np.clip(alpha[inside], 0.0, 1.0)
    line = (1 - al) * ends[0] + al * ends[1]
    accuracy = "acc" in column
    gap = (line - values[inside]) if accuracy else (values[inside] - line)
    i = int(np.nanargmax(gap))
    return Barrier(column, "accuracy" if accuracy else "loss", float(gap[i]), float(al[i]), ends[0], ends[1])


def barriers(curve: pd.DataFrame) -> dict[str, Barrier]:
    """Loss and accuracy barriers for val and train: keys val_loss, val_acc, train_loss, train_acc.

    Columns that are all NaN (train metrics skipped) are left out.
    """
    return {c: barrier(curve, c) for c in ("val_loss", "val_acc", "train_loss", "train_acc")
            if c in curve.columns and curve[c].notna().any()}


# --------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------

def _origin(pf: ParamFile, default: str) -> str:
    source = pf.info.get("source")
    if source is None:
        return default
    return f"{source}@{pf.info['checkpoint']}" if "checkpoint" in pf.info else str(source)


def align(a: ParamFile, b: ParamFile, seed: int = 0, device: torch.device | str | None = None) -> tuple[ParamFile, Perms]:
    """``b`` with its hidden units permuted onto ``a`` by weight matching, and the permutations.

    The returned set computes the same function as ``b`` (parameters and BatchNorm buffers are
    both permuted); ``perms[g][i]`` is the unit of ``b`` now at position ``i`` of group ``g``.
    """
    check_compatible({"a": a, "b": b})
    spec = spec_for(a.model)
    device = torch.device(device) if device is not None else next(iter(a.params.values())).device
    perms = weight_matching(target=_on(a.params, device), source=_on(b.params, device), spec=spec, seed=seed,
                            device=device)
    perms_b = {g: p.to(next(iter(b.params.values())).device) for g, p in perms.items()}
    params = apply(spec, b.params, perms_b)
    buffers = apply(spec, b.buffers, perms_b) if b.buffers else {}
    info = {**b.info, "aligned": True, "aligned_to": _origin(a, "a"), "alignment": "weight matching",
            "alignment_seed": seed}
    return ParamFile(b.model, b.dataset, params, buffers, info), perms


# --------------------------------------------------------------------------------------------
# the plane through three parameter sets
# --------------------------------------------------------------------------------------------

@dataclass
class PlaneBasis:
    """An orthonormal basis (u, v) of the plane through a, b, c over the concatenated parameters.

    ``origin`` is a; b lies on the u axis. ``points`` holds the plane coordinates of a, b, c.
    """

    names: list[str]
    shapes: list[torch.Size]
    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    points: dict[str, tuple[float, float]]


def _flat(params: Tensors, names: list[str], device: torch.device) -> torch.Tensor:
    return torch.cat([params[n].to(device, torch.float32).reshape(-1) for n in names])


def plane_basis(a: ParamFile, b: ParamFile, c: ParamFile, device: torch.device | str = "cpu") -> PlaneBasis:
    """Gram–Schmidt on b − a and c − a. Raises ``LTError`` if the three points are (nearly) collinear."""
    check_compatible({"a": a, "b": b, "c": c})
    device = torch.device(device)
    names = list(a.params)
    shapes = [a.params[n].shape for n in names]
    va, vb, vc = (_flat(p.params, names, device) for p in (a, b, c))
    # Norms and projections in float64: parameter vectors can have millions of entries.
    db, dc = (vb - va).double(), (vc - va).double()
    nb = float(db.norm())
    if nb == 0.0:
        raise LTError("a and b are the same parameters: the plane through a, b, c is not defined")
    u = db / nb
    cx = float(dc @ u)
    w = dc - cx * u
    cy = float(w.norm())
    if cy <= 1e-6 * max(nb, float(dc.norm())):
        raise LTError("a, b and c lie on one line (c is a, b, or on the line through them): no plane to draw")
    v = w / cy
    return PlaneBasis(names, shapes, va, u.float(), v.float(), {"a": (0.0, 0.0), "b": (nb, 0.0), "c": (cx, cy)})


def params_at(basis: PlaneBasis, x: float, y: float) -> Tensors:
    """The parameters at plane coordinates (x, y): a + x·u + y·v, as a name → tensor dict."""
    flat = basis.origin + x * basis.u + y * basis.v
    out, start = {}, 0
    for name, shape in zip(basis.names, basis.shapes):
        n = math.prod(shape)
        out[name] = flat[start:start + n].view(shape)
        start += n
    return out


def plane_coordinates(basis: PlaneBasis, params: Tensors) -> tuple[float, float]:
    """The projection of ``params`` onto the plane, in plane coordinates."""
    d = (_flat(params, basis.names, basis.origin.device) - basis.origin).double()
    return float(d @ basis.u.double()), float(d @ basis.v.double())


def _barycentric(basis: PlaneBasis, x: float, y: float) -> tuple[float, float]:
    """(β, γ) with a + x·u + y·v = a + β(b − a) + γ(c − a): the weights for interpolating buffers."""
    bx = basis.points["b"][0]
    cx, cy = basis.points["c"]
    gamma = y / cy
    return (x - gamma * cx) / bx, gamma


@dataclass
class PlaneProgress:
    """One grid point of a plane evaluated: ``step`` of ``total``, at plane coordinates (x, y)."""

    step: int
    total: int
    x: float
    y: float
    metrics: dict[str, float]
    elapsed: float


@dataclass
class PlaneResult:
    """Metrics on a grid over the plane. Grids are indexed ``[iy, ix]`` (rows follow ``y``)."""

    x: np.ndarray
    y: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    points: dict[str, tuple[float, float]]
    basis: PlaneBasis
    train_loss: np.ndarray | None = None
    train_acc: np.ndarray | None = None
    reset_bn: bool = True
    info: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain lists and numbers (no tensors); NaN/inf become None."""
        def grid(g: np.ndarray | None):
            return None if g is None else [[_num(v) for v in row] for row in g.tolist()]
        return {"x": self.x.tolist(), "y": self.y.tolist(), "val_loss": grid(self.val_loss),
                "val_acc": grid(self.val_acc), "train_loss": grid(self.train_loss), "train_acc": grid(self.train_acc),
                "points": {k: list(v) for k, v in self.points.items()}, "bn_reset": self.reset_bn, **self.info}


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def plane(a: ParamFile, b: ParamFile, c: ParamFile, dataset: Dataset, resolution: int = 21, margin: float = 0.2,
          reset_bn: bool = True, bn_batches: int = 10, bn_batch_size: int = 256,
          device: torch.device | str | None = None, seed: int = 0, train_metrics: bool = False,
          train_subset: int | None = None) -> Iterator[PlaneProgress | Finished]:
    """Loss and accuracy on a ``resolution × resolution`` grid over the plane through a, b and c.

    The grid covers the three points plus ``margin`` × (the larger of the points' x and y extents)
    on every side, the same distance on both axes so that distances on a heat map look right.
    Yields one ``PlaneProgress`` per grid point (row by row), then ``Finished(PlaneResult)``.
    Without BN reset the buffers are interpolated with the barycentric weights of each point.
    """
    if resolution < 2:
        raise LTError(f"the plane needs a resolution of at least 2 (got {resolution})")
    if not (margin >= 0 and math.isfinite(margin)):
        raise LTError(f"the margin must be a number ≥ 0 (got {margin})")
    check_compatible({"a": a, "b": b, "c": c})
    _check_dataset(a, dataset)
    device = _resolve(device, dataset)
    basis = plane_basis(a, b, c, device)
    model = model_for(a.model, device)
    bn = has_batchnorm(model)
    reset = reset_bn and bn
    bufs = [_stored_buffers(p, model, device, n) for n, p in zip("abc", (a, b, c))] if bn and not reset else []
    ev = _evaluator(model, dataset, device, reset, bn_batches, bn_batch_size, seed, train_metrics, train_subset)
    coords = np.array(list(basis.points.values()))
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    pad = margin * float((hi - lo).max())
    xs = np.linspace(lo[0] - pad, hi[0] + pad, resolution)
    ys = np.linspace(lo[1] - pad, hi[1] + pad, resolution)
    grids = {k: np.full((resolution, resolution), np.nan) for k in ("val_loss", "val_acc", "train_loss", "train_acc")}
    start = time.perf_counter()
    total = resolution * resolution
    step = 0
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            params = params_at(basis, float(x), float(y))
            buffers = {}
            if bufs:
                beta, gamma = _barycentric(basis, float(x), float(y))
                buffers = {n: bufs[0][n] + beta * (bufs[1][n] - bufs[0][n]) + gamma * (bufs[2][n] - bufs[0][n])
                           for n in bufs[0]}
                buffers = {n: (t.clamp_min(0.0) if n.endswith("running_var") else t) for n, t in buffers.items()}
            metrics = ev(params, buffers)
            for k in grids:
                grids[k][iy, ix] = metrics[k]
            step += 1
            yield PlaneProgress(step, total, float(x), float(y), metrics, time.perf_counter() - start)
    result = PlaneResult(xs, ys, grids["val_loss"], grids["val_acc"], dict(basis.points), basis,
                         grids["train_loss"] if train_metrics else None, grids["train_acc"] if train_metrics else None,
                         reset, {"resolution": resolution, "margin": margin, "seed": seed})
    yield Finished(result, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# which unit matched which
# --------------------------------------------------------------------------------------------

@dataclass
class UnitMatching:
    """Correlations between the units of one group of a and of b, before and after alignment.

    ``before[i, j]``: unit i of a vs unit j of b. ``after[i, j]``: unit i of a vs unit j of aligned
    b, which is unit ``perm[j]`` of b. A good alignment puts high values on the diagonal of ``after``.
    """

    layer: str
    method: str  # "activation" or "weight"
    before: np.ndarray
    after: np.ndarray
    perm: np.ndarray

    @property
    def diagonal_before(self) -> float:
        return float(np.mean(np.diag(self.before)))

    @property
    def diagonal_after(self) -> float:
        return float(np.mean(np.diag(self.after)))


def _correlation(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Pearson correlation between the columns of x (N×n) and y (N×m); constant columns give 0."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    x = x / x.norm(dim=0).clamp_min(1e-12)
    y = y / y.norm(dim=0).clamp_min(1e-12)
    return (x.T @ y).cpu().numpy()


def unit_module(config: dict, group: str) -> tuple[str, bool]:
    """The module whose output holds the units of ``group``, and whether the activation follows it.

    mlp ``fcK``: the linear layer (then the activation); conv ``convK``: its BatchNorm if any, else
    the conv (then the activation); resnet ``stageS_blockB.inner``: that block's bn1 (then the
    activation); resnet ``streamS``: the output of the last block of stage S (already activated).
    """
    groups = spec_for(config).groups
    if group not in groups:
        raise LTError(f"{describe(config)} has no layer {group!r}: choose one of {', '.join(groups)}")
    if config["arch"] == "mlp":
        return group, True
    if config["arch"] == "conv":
        return (group.replace("conv", "bn") if config.get("batchnorm") else group), True
    if group.endswith(".inner"):
        return group[:-len(".inner")] + ".bn1", True
    stage = int(group[len("stream"):])
    return f"stage{stage}_block{config['blocks_per_stage']}", False


@torch.no_grad()
def _activations(model: nn.Module, module_name: str, activate: bool, config: dict, params: Tensors,
                 buffers: Tensors, x: torch.Tensor) -> torch.Tensor:
    """Unit activations (examples × positions, units) of ``module_name`` under ``params``."""
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(module_name).register_forward_hook(lambda m, i, out: captured.append(out))
    try:
        model.eval()
        torch.func.functional_call(model, {**params, **buffers}, (x,))
    finally:
        handle.remove()
    out = captured[0]
    if activate:
        out = ACTIVATIONS[config.get("activation", "relu")]()(out)
    return out.movedim(1, -1).reshape(-1, out.shape[1])


def _incoming(spec, params: Tensors, buffers: Tensors, group: str) -> torch.Tensor:
    """Each unit's incoming weights (every tensor whose axis 0 is ``group``), one row per unit."""
    state = {**params, **buffers}
    rows = [state[n].reshape(state[n].shape[0], -1) for n, axes in spec.axes.items()
            if axes and axes[0] == group and n in state and not n.endswith(("running_mean", "running_var"))]
    return torch.cat(rows, dim=1)


def unit_matching(a: ParamFile, b: ParamFile, layer: str, dataset: Dataset | None = None,
                  method: str = "activation", perms: Perms | None = None, samples: int = 1000, seed: int = 0,
                  device: torch.device | str | None = None, bn_batches: int = 10,
                  bn_batch_size: int = 256) -> UnitMatching:
    """The n×n unit correlation matrix of group ``layer`` between a and b, before and after aligning b.

    ``method="activation"``: Pearson correlation of the units' activations on the first
    ``samples`` validation examples (for conv layers every spatial position counts as an
    observation); see ``unit_module`` for where each group is read. Sets without stored
    BatchNorm statistics get them re-estimated. ``method="weight"``: correlation of the units'
    incoming weights (needs no data). ``perms`` are the permutations from ``align`` (computed
    here with ``seed`` when not given).
    """
    if method not in ("activation", "weight"):
        raise LTError(f"unknown unit matching method {method!r}: use activation or weight")
    check_compatible({"a": a, "b": b})
    spec = spec_for(a.model)
    unit_module(a.model, layer)  # validates the layer name
    aligned, found = align(a, b, seed=seed) if perms is None else (None, perms)
    perm = found[layer].cpu()
    if method == "weight":
        if aligned is None:
            p = {g: t.to(next(iter(b.params.values())).device) for g, t in found.items()}
            aligned = ParamFile(b.model, b.dataset, apply(spec, b.params, p), apply(spec, b.buffers, p) if b.buffers else {})
        wa, wb, wc = (_incoming(spec, p.params, p.buffers, layer).float().cpu() for p in (a, b, aligned))
        before, after = _correlation(wa.T, wb.T), _correlation(wa.T, wc.T)
        return UnitMatching(layer, method, before, after, perm.numpy())
    if dataset is None:
        raise LTError("activation matching needs a dataset")
    _check_dataset(a, dataset)
    device = _resolve(device, dataset)
    model = model_for(a.model, device)
    x = dataset.x_val[:samples].to(device)
    name, activate = unit_module(a.model, layer)
    acts = []
    for pf in (a, b):
        params = _on(pf.params, device)
        if all(n in pf.buffers for n in buffer_names(model)):
            buffers = _on({n: pf.buffers[n] for n in buffer_names(model)}, device)
        else:  # a set stored without BatchNorm statistics: estimate them
            buffers = recompute_batchnorm(model, params, {}, dataset.x_train.to(device), bn_batches,
                                          bn_batch_size, torch.Generator().manual_seed(seed))
        acts.append(_activations(model, name, activate, a.model, params, buffers, x))
    before = _correlation(acts[0], acts[1])
    # Permuting b leaves its function unchanged, so aligned unit j is b's unit perm[j]: reorder columns.
    return UnitMatching(layer, method, before, before[:, perm.numpy()], perm.numpy())
