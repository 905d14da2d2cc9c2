"""``train`` and ``info`` subcommands."""

from __future__ import annotations

import argparse
import json

from .cli_common import add_data_root, add_device, positive_int
from .data import DATASETS, load_dataset
from .devices import resolve_device
from .events import Finished
from .models import ARCHITECTURES, ACTIVATIONS, count_params, describe, make_config
from .train import TrainConfig, train
from .trajectory import describe_file, save_trajectory


def register(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("train", help="train a network and record its trajectory")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    add_data_root(p)
    p.add_argument("--arch", choices=ARCHITECTURES, default="mlp")
    p.add_argument("--width", type=positive_int, help="mlp: hidden units per layer")
    p.add_argument("--depth", type=positive_int, help="mlp: number of hidden layers")
    p.add_argument("--activation", choices=list(ACTIVATIONS))
    p.add_argument("--channels", type=positive_int, nargs="+", help="conv: channels per conv block, e.g. 32 64")
    p.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None, help="conv: BatchNorm")
    p.add_argument("--head", choices=["gap", "flatten"], help="conv: global average pooling or flatten")
    p.add_argument("--width-multiplier", type=positive_int, help="resnet: channels 16k, 32k, 64k")
    p.add_argument("--blocks-per-stage", type=positive_int, help="resnet: residual blocks per stage")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoints-per-epoch", type=positive_int, default=1)
    p.add_argument("--checkpoint-every", type=positive_int, default=None, help="record every K steps instead")
    add_device(p)
    p.add_argument("--out", required=True, help="trajectory file to write (.safetensors)")

    i = sub.add_parser("info", help="validate a trajectory or parameter file and print its summary")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    return {"train": run_train, "info": run_info}


def run_train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_root, device)
    options = {"width": args.width, "depth": args.depth, "activation": args.activation, "channels": args.channels,
               "batchnorm": args.batchnorm, "head": args.head, "width_multiplier": args.width_multiplier,
               "blocks_per_stage": args.blocks_per_stage}
    config = make_config(args.arch, dataset.input_shape, dataset.num_classes, **options)
    tc = TrainConfig(args.optimizer, args.lr, args.momentum, args.weight_decay, args.epochs, args.batch_size,
                     args.seed, args.checkpoints_per_epoch, args.checkpoint_every)
    tc.validate()
    print(f"training {describe(config)} ({count_params(config):,} parameters) on {dataset.describe()}, device {device}")
    for event in train(config, dataset, tc, device):
        if isinstance(event, Finished):
            save_trajectory(event.result, args.out)
            print(f"wrote {args.out}: {len(event.result)} checkpoints in {event.elapsed:.1f}s")
        else:
            print(f"epoch {event.epoch}/{event.epochs}  train loss {event.train_loss:.4f}  "
                  f"val loss {event.val_loss:.4f}  val acc {event.val_acc:.4f}  ({event.elapsed:.1f}s)", flush=True)
    return 0


def run_info(args: argparse.Namespace) -> int:
    summary = describe_file(args.file)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.file}: valid {summary['kind']} file ({summary['bytes'] / 1e6:.2f} MB)")
    print(f"  architecture: {summary['architecture']}")
    print(f"  dataset:      {summary['dataset']}")
    print(f"  parameters:   {summary['parameters']:,}")
    if summary["kind"] == "trajectory":
        print(f"  checkpoints:  {summary['checkpoints']}")
        if summary["training"]:
            t = summary["training"]
            print(f"  training:     {t.get('optimizer')} lr {t.get('lr')}, {t.get('epochs')} epochs, seed {t.get('seed')}")
        if summary["final_metrics"]:
            print("  final:        " + ", ".join(f"{k} {v:.4f}" for k, v in summary["final_metrics"].items()))
    elif summary["info"]:
        print("  info:         " + json.dumps(summary["info"]))
    return 0
