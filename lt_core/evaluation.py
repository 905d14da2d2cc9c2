"""Evaluating a parameter set without copying it into a module: loss, accuracy, BatchNorm statistics."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .models import build_model

Tensors = dict[str, torch.Tensor]


def model_for(config: dict, device: torch.device | str) -> nn.Module:
    """A module of the right architecture on ``device``; its own weights are never used."""
    return build_model(config).to(device)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def evaluate(model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 8192) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``params`` (+ BatchNorm ``buffers``) in eval mode."""
    model.eval()
    state = {**params, **buffers}
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        logits = functional_call(model, state, (xb,))
        loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return float(loss_sum) / len(x), float(correct) / len(x)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor,
                        batches: int = 10, batch_size: int = 256,
                        generator: torch.Generator | None = None) -> Tensors:
    """Fresh BatchNorm running statistics for ``params``: the average over ``batches`` training batches.

    Returns new buffers (``buffers`` is only used when the model has no BatchNorm: then it is returned
    as it is). Works for parameter sets stored without statistics.
    """
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not bns:
        return buffers
    fresh = {}
    for prefix, m in bns.items():  # from the modules, so parameter sets stored without statistics work too
        fresh[f"{prefix}.running_mean"] = torch.zeros_like(m.running_mean)
        fresh[f"{prefix}.running_var"] = torch.ones_like(m.running_var)
    bns = list(bns.values())
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    model.train()
    try:
        for m in bns:
            m.momentum = None  # cumulative average over the batches seen
            m.num_batches_tracked.zero_()
        n = len(x)
        order = torch.randperm(n, generator=generator).to(x.device) if generator is not None else None
        for i in range(batches):
            idx = order[(i * batch_size) % n:(i * batch_size) % n + batch_size] if order is not None else \
                slice((i * batch_size) % n, (i * batch_size) % n + batch_size)
            functional_call(model, {**params, **fresh}, (x[idx],))
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
        model.eval()
    return fresh


def loss_and_grad(model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor, y: torch.Tensor,
                  linear_weights: list[str] = ()) -> tuple[torch.Tensor, Tensors, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Training-mode loss and gradient of ``params`` on one batch (BatchNorm uses batch statistics).

    For each Linear weight named in ``linear_weights`` it returns, instead of the dense gradient, the
    factors (δ, h) of the gradient δᵀ·h: δ = ∂loss/∂(layer output), h = layer input (batch × features).
    """
    modules = dict(model.named_modules())
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name in linear_weights:
        prefix = name.rsplit(".", 1)[0]
        hooks.append(modules[prefix].register_forward_hook(
            lambda _m, inputs, output, key=name: captured.__setitem__(key, (inputs[0], output))))
    model.train()
    try:
        live = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        scratch = {n: b.clone() for n, b in buffers.items()}
        loss = nn.functional.cross_entropy(functional_call(model, {**live, **scratch}, (x,)), y)
        outputs = [captured[n][1] for n in linear_weights]
        dense = [n for n in live if n not in linear_weights]  # factored weights' dense gradients are skipped
        grads = torch.autograd.grad(loss, [live[n] for n in dense] + outputs)
    finally:
        for hook in hooks:
            hook.remove()
        model.eval()
    factors = {n: (delta.detach(), captured[n][0].detach()) for n, delta in zip(linear_weights, grads[len(dense):])}
    return loss.detach(), dict(zip(dense, grads[:len(dense)])), factors
