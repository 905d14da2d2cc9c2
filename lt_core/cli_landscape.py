"""``interpolate`` and ``plane`` subcommands (mode connectivity)."""

from __future__ import annotations

import argparse
import math

from .cli_common import add_data_root, add_device, positive_int, write_json
from .data import DATASETS, load_dataset
from .devices import resolve_device
from .errors import LTError
from .events import Finished
from .landscape import (InterpolationProgress, PlaneProgress, align, alpha_grid, barriers, check_compatible,
                        interpolate, plane)
from .models import describe
from .trajectory import ParamFile, load_param_set

SPEC_HELP = "parameter file (FILE.safetensors) or trajectory checkpoint (TRAJ.safetensors@K, e.g. @-1)"


def register(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("interpolate", help="loss and accuracy along the line between two parameter sets")
    p.add_argument("--a", required=True, help=SPEC_HELP)
    p.add_argument("--b", required=True, help=SPEC_HELP)
    p.add_argument("--align", action="store_true", help="permute b's hidden units onto a (weight matching) first")
    p.add_argument("--points", type=_at_least_two, default=25, help="number of α values (default 25)")
    p.add_argument("--range", type=float, nargs=2, default=[0.0, 1.0], metavar=("LO", "HI"),
                   help="α range (default 0 1); may extend beyond [0, 1]")
    _add_common(p)
    p.add_argument("--train-subset", type=positive_int, default=None,
                   help="training examples for train metrics (default: all up to 10000, else a seeded 10000)")
    p.add_argument("--out", required=True, help="curve to write (.json)")

    q = sub.add_parser("plane", help="loss and accuracy on the 2-D plane through three parameter sets")
    q.add_argument("--a", required=True, help=SPEC_HELP + "; the plane's origin")
    q.add_argument("--b", required=True, help=SPEC_HELP)
    q.add_argument("--c", required=True, help=SPEC_HELP)
    q.add_argument("--resolution", type=_at_least_two, default=21, help="grid points per axis (default 21)")
    q.add_argument("--margin", type=float, default=0.2, help="extra room around the points, as a fraction (0.2)")
    _add_common(q)
    q.add_argument("--train", action="store_true", help="also compute train loss/accuracy grids (slower)")
    q.add_argument("--out", required=True, help="grid to write (.json)")
    return {"interpolate": run_interpolate, "plane": run_plane}


def _at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 2, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-bn-reset", dest="bn_reset", action="store_false",
                   help="interpolate BatchNorm statistics instead of re-estimating them at every point")
    p.add_argument("--bn-batches", type=positive_int, default=10, help="training batches for each BN re-estimate")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="evaluate on this dataset (default: the one a was trained on)")
    add_data_root(p)
    add_device(p)
    p.add_argument("--seed", type=int, default=0, help="seeds BN batches, the train subset and the alignment")


def _load(named: dict[str, str], dataset_override: str | None) -> tuple[dict[str, ParamFile], str]:
    sets = {name: load_param_set(spec) for name, spec in named.items()}
    check_compatible(sets)
    if dataset_override:
        return sets, dataset_override
    first = next(iter(sets.values()))
    for name, pf in sets.items():
        if pf.dataset != first.dataset:
            raise LTError(f"a was trained on {first.dataset} but {name} on {pf.dataset}: pass --dataset to choose "
                          "which one to evaluate on")
    return sets, first.dataset


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def run_interpolate(args: argparse.Namespace) -> int:
    alpha_grid(args.points, tuple(args.range))  # a bad range fails before anything is loaded
    sets, dataset_name = _load({"a": args.a, "b": args.b}, args.dataset)
    a, b = sets["a"], sets["b"]
    device = resolve_device(args.device)
    dataset = load_dataset(dataset_name, args.data_root, device)
    print(f"interpolating {describe(a.model)} on {dataset.describe()}, device {device}")
    if args.align:
        b, _ = align(a, b, seed=args.seed, device=device)
        print("aligned b onto a (weight matching)")
    curve = None
    for event in interpolate(a, b, dataset, points=args.points, alpha_range=tuple(args.range),
                             reset_bn=args.bn_reset, bn_batches=args.bn_batches, device=device, seed=args.seed,
                             train_subset=args.train_subset):
        if isinstance(event, InterpolationProgress):
            m = event.metrics
            print(f"[{event.step}/{event.total}] α {event.alpha:+.3f}  val loss {m['val_loss']:.4f} acc "
                  f"{m['val_acc']:.4f}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  "
                  f"({event.elapsed:.1f}s)", flush=True)
        elif isinstance(event, Finished):
            curve = event.result
    try:
        found = barriers(curve)
    except LTError as exc:
        found = {}
        print(f"no barrier: {exc}")
    for column, bar in found.items():
        print(f"{bar.kind} barrier ({column}): {bar.height:.4f} at α {bar.alpha:.3f}")
    val_loss, val_acc = found.get("val_loss"), found.get("val_acc")
    out = {
        "a": args.a, "b": args.b, "dataset": dataset_name, "architecture": describe(a.model),
        "aligned": bool(args.align), "bn_reset": bool(curve.attrs["reset_bn"]), "batchnorm": curve.attrs["batchnorm"],
        "seed": args.seed, "train_examples": curve.attrs["train_examples"],
        "alphas": curve["alpha"].tolist(),
        "val_losses": [_num(v) for v in curve["val_loss"]], "val_accuracies": [_num(v) for v in curve["val_acc"]],
        "train_losses": [_num(v) for v in curve["train_loss"]],
        "train_accuracies": [_num(v) for v in curve["train_acc"]],
        "loss_barrier": val_loss.height if val_loss else None, "loss_barrier_alpha": val_loss.alpha if val_loss else None,
        "accuracy_barrier": val_acc.height if val_acc else None,
        "accuracy_barrier_alpha": val_acc.alpha if val_acc else None,
        "barriers": {k: v.as_dict() for k, v in found.items()},
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


def run_plane(args: argparse.Namespace) -> int:
    sets, dataset_name = _load({"a": args.a, "b": args.b, "c": args.c}, args.dataset)
    device = resolve_device(args.device)
    dataset = load_dataset(dataset_name, args.data_root, device)
    print(f"plane through a, b, c of {describe(sets['a'].model)} on {dataset.describe()}, "
          f"{args.resolution}×{args.resolution} points, device {device}")
    result = None
    for event in plane(sets["a"], sets["b"], sets["c"], dataset, resolution=args.resolution, margin=args.margin,
                       reset_bn=args.bn_reset, bn_batches=args.bn_batches, device=device, seed=args.seed,
                       train_metrics=args.train):
        if isinstance(event, PlaneProgress):
            if event.step % args.resolution == 0:
                print(f"row {event.step // args.resolution}/{args.resolution}  y {event.y:+.3f}  "
                      f"last val loss {event.metrics['val_loss']:.4f} acc {event.metrics['val_acc']:.4f}  "
                      f"({event.elapsed:.1f}s)", flush=True)
        elif isinstance(event, Finished):
            result = event.result
    for name, (x, y) in result.points.items():
        print(f"{name} at ({x:.4f}, {y:.4f})")
    write_json(args.out, {"a": args.a, "b": args.b, "c": args.c, "dataset": dataset_name,
                          "architecture": describe(sets["a"].model), **result.to_json()})
    print(f"wrote {args.out}")
    return 0
