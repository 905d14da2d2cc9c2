"""``transfer`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from .cli_common import add_data_root, add_device, positive_int, write_json
from .data import load_dataset
from .devices import resolve_device
from .events import Finished
from .errors import LTError
from .models import init_params
from .trajectory import ParamFile, checkpoint_params, load_params, load_trajectory, save_params
from .transfer import METHODS, PATHS, SCHEDULES, TransferConfig, transfer


def register(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("transfer", help="transfer a trajectory onto a new initialization")
    p.add_argument("--trajectory", required=True, help="source trajectory (.safetensors)")
    init = p.add_mutually_exclusive_group(required=True)
    init.add_argument("--init-seed", type=int, help="fresh init of the same architecture from this seed")
    init.add_argument("--init", help="parameter file to start from (.safetensors)")
    init.add_argument("--target-trajectory", help="use this trajectory's init (needed by --method oracle)")
    p.add_argument("--method", choices=METHODS, default="fgmt")
    p.add_argument("--steps", type=positive_int, default=30)
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    p.add_argument("--path", choices=PATHS, default="line",
                   help="line: straight from the first to the last checkpoint; piecewise: through all")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--grad-batches", type=positive_int, default=1)
    p.add_argument("--bn-batches", type=positive_int, default=10)
    p.add_argument("--max-sweeps", type=positive_int, default=20)
    add_device(p)
    add_data_root(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="RUN.json to write")
    p.add_argument("--save-params", help="write the final transferred parameters here (.safetensors)")
    p.add_argument("--save-perms", help="write the final permutations here (.safetensors)")
    return {"transfer": run_transfer}


def _init(args: argparse.Namespace, source) -> tuple[ParamFile, str, object]:
    if args.target_trajectory:
        target = load_trajectory(args.target_trajectory)
        return checkpoint_params(target, 0, args.target_trajectory), f"init of {args.target_trajectory}", target
    if args.init:
        return load_params(args.init), args.init, None
    params, buffers = init_params(source.model, args.init_seed)
    return ParamFile(source.model, source.dataset, params, buffers, {"init_seed": args.init_seed}), \
        f"seed {args.init_seed}", None


def run_transfer(args: argparse.Namespace) -> int:
    if args.method == "oracle" and not args.target_trajectory:
        raise LTError("--method oracle needs the real target trajectory: pass --target-trajectory TGT.safetensors "
                      "(its init is the new initialization)")
    device = resolve_device(args.device)
    source = load_trajectory(args.trajectory)
    init, init_label, target = _init(args, source)
    if init.dataset != source.dataset:
        raise LTError(f"the new initialization comes from a {init.dataset} model but the source trajectory is "
                      f"on {source.dataset}")
    config = TransferConfig(args.method, args.steps, args.schedule, args.path, args.batch_size, args.grad_batches,
                            args.bn_batches, max_sweeps=args.max_sweeps, seed=args.seed)
    config.validate()
    dataset = load_dataset(source.dataset, args.data_root, device)
    print(f"{args.method}: {args.trajectory} → {init_label} on {dataset.name}, device {device}", flush=True)
    for event in transfer(source, init, dataset, config, target, device):
        if isinstance(event, Finished):
            result = event.result
            continue
        objective = "" if event.objective is None else f"  objective {event.objective:.4g}"
        print(f"step {event.step}/{event.total}  λ {event.lam:.3f}  val acc {event.val_acc:.4f}  "
              f"val loss {event.val_loss:.4f}{objective}  ({event.elapsed:.1f}s)", flush=True)
    record = {**result.summary(), "source": args.trajectory, "init": init_label, "dataset": source.dataset,
              "device": str(device)}
    write_json(args.out, record)
    if args.save_params:
        save_params(result.final, args.save_params)
    if args.save_perms:
        Path(args.save_perms).parent.mkdir(parents=True, exist_ok=True)
        save_file({f"perm.{g}": p.to(torch.int64).contiguous() for g, p in result.perms.items()}, args.save_perms,
                  metadata={"method": args.method})
    b = result.seconds_breakdown
    print(f"final acc {result.final_accuracy:.4f}  best {result.best_accuracy:.4f}  (target init "
          f"{result.target_init_accuracy:.4f}, source final {result.source_final_accuracy:.4f})  "
          f"{result.seconds:.1f}s: gradients {b['gradients']:.1f}s, matching {b['matching']:.1f}s, "
          f"evaluation {b['evaluation']:.1f}s → {args.out}")
    return 0
