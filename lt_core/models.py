"""Architectures built from a JSON-able config.

A config is a plain dict stored in every trajectory file, e.g.
``{"arch": "mlp", "width": 512, "depth": 2, "activation": "relu",
"input_shape": [1, 28, 28], "num_classes": 10}``. Parameter names are stable and readable
(``fc1.weight``, ``conv2.weight``, ``bn2.running_mean``, ``out.weight``) because the
permutation specs in ``permutation.py`` refer to them.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from .errors import LTError

ARCHITECTURES = ("mlp", "conv", "resnet")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}

DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"width": 128, "depth": 2, "activation": "relu"},
    "conv": {"channels": [32, 64], "batchnorm": True, "activation": "relu", "head": "gap"},
    "resnet": {"width_multiplier": 1, "blocks_per_stage": 1, "activation": "relu"},
}


def make_config(arch: str, input_shape: tuple[int, ...] | list[int], num_classes: int, **options: Any) -> dict:
    """A complete, validated model config: defaults for ``arch`` overridden by ``options``."""
    if arch not in ARCHITECTURES:
        raise LTError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    config = {"arch": arch, **copy.deepcopy(DEFAULTS[arch])}
    config.update({k: v for k, v in options.items() if v is not None})
    config["input_shape"] = [int(s) for s in input_shape]
    config["num_classes"] = int(num_classes)
    validate_config(config)
    return config


def validate_config(config: Any) -> None:
    """Raise ``LTError`` with a readable message if ``config`` cannot build a model."""
    if not isinstance(config, dict):
        raise LTError("model config must be a JSON object")
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise LTError(f"unknown architecture {arch!r}: this version knows {', '.join(ARCHITECTURES)}")
    shape = config.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise LTError("model config needs input_shape as [channels, height, width] of positive integers")
    if not (isinstance(config.get("num_classes"), int) and config["num_classes"] >= 2):
        raise LTError("model config needs num_classes, an integer ≥ 2")
    activation = config.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise LTError(f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}")
    if arch == "mlp":
        _check_positive(config, "width")
        _check_positive(config, "depth")
    elif arch == "conv":
        channels = config.get("channels")
        if not (isinstance(channels, list) and channels and all(isinstance(c, int) and c > 0 for c in channels)):
            raise LTError("conv config needs channels, a non-empty list of positive integers")
        if config.get("head", "gap") not in ("gap", "flatten"):
            raise LTError("conv head must be 'gap' (global average pooling) or 'flatten'")
    else:
        _check_positive(config, "width_multiplier")
        _check_positive(config, "blocks_per_stage")


def _check_positive(config: dict, key: str) -> None:
    value = config.get(key)
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise LTError(f"{config['arch']} config needs {key}, a positive integer (got {value!r})")


def build_model(config: dict) -> nn.Module:
    """Build the network described by ``config`` (validated first)."""
    validate_config(config)
    return {"mlp": MLP, "conv": ConvNet, "resnet": ResNet}[config["arch"]](config)


def describe(config: dict) -> str:
    """A one-line human description, e.g. ``mlp 64-512-512-10 (relu)``."""
    c, h, w = config["input_shape"]
    if config["arch"] == "mlp":
        dims = [c * h * w] + [config["width"]] * config["depth"] + [config["num_classes"]]
        return f"mlp {'-'.join(map(str, dims))} ({config.get('activation', 'relu')})"
    if config["arch"] == "conv":
        bn = "+BatchNorm" if config.get("batchnorm") else ""
        return f"conv {tuple(config['channels'])}{bn}, {config.get('head', 'gap')} head, input {c}×{h}×{w}"
    return (f"resnet ×{config['width_multiplier']}, {config['blocks_per_stage']} block(s)/stage, "
            f"input {c}×{h}×{w}")


def _activation(config: dict) -> nn.Module:
    return ACTIVATIONS[config.get("activation", "relu")]()


class MLP(nn.Module):
    """Fully connected: flatten, ``depth`` hidden layers of ``width`` units, linear output."""

    def __init__(self, config: dict):
        super().__init__()
        c, h, w = config["input_shape"]
        dims = [c * h * w] + [config["width"]] * config["depth"]
        self.depth = config["depth"]
        for i in range(self.depth):
            self.add_module(f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))
        self.out = nn.Linear(dims[-1], config["num_classes"])
        self.act = _activation(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(self.depth):
            x = self.act(getattr(self, f"fc{i + 1}")(x))
        return self.out(x)


class ConvNet(nn.Module):
    """VGG-style: per block conv3×3 → (BatchNorm) → activation → (2×2 max-pool), then a head.

    The head is global average pooling + linear (``gap``) or flatten + linear (``flatten``).
    """

    def __init__(self, config: dict):
        super().__init__()
        channels = [config["input_shape"][0]] + list(config["channels"])
        self.n = len(config["channels"])
        self.batchnorm = bool(config.get("batchnorm"))
        self.head = config.get("head", "gap")
        size = min(config["input_shape"][1:])
        self.pools = []
        for i in range(self.n):
            self.add_module(f"conv{i + 1}", nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=not self.batchnorm))
            if self.batchnorm:
                self.add_module(f"bn{i + 1}", nn.BatchNorm2d(channels[i + 1]))
            self.pools.append(size >= 4)
            if size >= 4:
                size //= 2
        in_features = channels[-1] * (1 if self.head == "gap" else _flat_size(config))
        self.out = nn.Linear(in_features, config["num_classes"])
        self.act = _activation(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n):
            x = getattr(self, f"conv{i + 1}")(x)
            if self.batchnorm:
                x = getattr(self, f"bn{i + 1}")(x)
            x = self.act(x)
            if self.pools[i]:
                x = nn.functional.max_pool2d(x, 2)
        x = x.mean(dim=(2, 3)) if self.head == "gap" else x.flatten(1)
        return self.out(x)


def _flat_size(config: dict) -> int:
    """Spatial positions per channel that a flatten head sees (height × width after pooling)."""
    _, h, w = config["input_shape"]
    for _ in config["channels"]:
        if min(h, w) >= 4:
            h, w = h // 2, w // 2
    return h * w


def resnet_widths(config: dict) -> list[int]:
    base = 16 * config["width_multiplier"]
    return [base, 2 * base, 4 * base]


class BasicBlock(nn.Module):
    """conv-bn-act-conv-bn plus a shortcut (identity, or 1×1 conv + bn when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, activation: nn.Module):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = activation
        self.has_shortcut = stride != 1 or cin != cout
        if self.has_shortcut:
            self.shortcut_conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = self.shortcut_bn(self.shortcut_conv(x)) if self.has_shortcut else x
        return self.act(y + s)


class ResNet(nn.Module):
    """A small residual network: stem, three stages (16k, 32k, 64k channels), GAP, linear.

    Stages 2 and 3 halve the spatial size while it is ≥ 4, so 8×8, 28×28 and 32×32 inputs all work.
    """

    def __init__(self, config: dict):
        super().__init__()
        widths = resnet_widths(config)
        act = _activation(config)
        self.act = act
        self.stem_conv = nn.Conv2d(config["input_shape"][0], widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        size = min(config["input_shape"][1:])
        cin = widths[0]
        self.block_names = []
        for s, width in enumerate(widths):
            stride = 2 if s > 0 and size >= 4 else 1
            size = math.ceil(size / stride)
            for b in range(config["blocks_per_stage"]):
                name = f"stage{s + 1}_block{b + 1}"
                self.add_module(name, BasicBlock(cin, width, stride if b == 0 else 1, act))
                self.block_names.append(name)
                cin = width
        self.out = nn.Linear(widths[-1], config["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem_bn(self.stem_conv(x)))
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.out(x.mean(dim=(2, 3)))


def param_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def buffer_names(model: nn.Module) -> list[str]:
    """Floating-point buffers (BatchNorm running statistics); the integer batch counters are skipped."""
    return [name for name, b in model.named_buffers() if b.is_floating_point()]


def init_params(config: dict, seed: int, device: torch.device | str = "cpu") -> tuple[dict, dict]:
    """Fresh parameters and buffers for ``config`` from ``seed`` (same seed → same tensors)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config)
    return split_state(model, device)


def split_state(model: nn.Module, device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Detached copies of a model's parameters and float buffers as two name → tensor dicts."""
    params = {n: p.detach().clone().to(device or p.device) for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone().to(device or b.device) for n, b in model.named_buffers() if b.is_floating_point()}
    return params, buffers


def count_params(config: dict) -> int:
    return sum(p.numel() for p in build_model(config).parameters())
