"""Permutation symmetry of hidden units, and weight matching.

A permutation *group* is one set of interchangeable hidden units (one hidden layer of an MLP, the
channels of one conv layer, one residual stream). A ``PermSpec`` says, for every parameter and
BatchNorm buffer, which group acts on each of its axes. A permutation of a group is a LongTensor
``p`` of its size; permuting θ means ``θ'[i] = θ[p[i]]`` along every axis the group acts on, so
the permuted network computes exactly the same function.

Weight matching (DESIGN.md §1) maximises Σ_pairs ⟨A, π(B)⟩ over π by coordinate descent: for one
group at a time, with all other groups fixed, the objective is linear in that group's permutation
and the best one is a linear assignment problem on an n×n score matrix. ``MatchingProblem``
accumulates (target, source) pairs so that a transfer can add one pair per step cheaply: terms
that involve only one group are kept as running n×n sums, terms between two groups are stacked so
that each group visit is one large matrix product on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .models import _flat_size, resnet_widths

Perms = dict[str, torch.Tensor]


@dataclass
class PermSpec:
    """Which group acts on which axis of which tensor.

    ``axes[name][k]`` is the group acting on axis ``k`` of tensor ``name`` (or ``None``).
    ``blocks[(name, k)] = b`` marks an axis that holds ``size × b`` entries in blocks of ``b``
    (a conv layer's channels flattened into a linear layer).
    """

    groups: dict[str, int]
    axes: dict[str, tuple[str | None, ...]]
    blocks: dict[tuple[str, int], int] = field(default_factory=dict)


def spec_for(config: dict) -> PermSpec:
    """The permutation spec of a built-in architecture."""
    return {"mlp": _mlp_spec, "conv": _conv_spec, "resnet": _resnet_spec}[config["arch"]](config)


def _mlp_spec(config: dict) -> PermSpec:
    groups, axes = {}, {}
    prev = None
    for i in range(1, config["depth"] + 1):
        g = f"fc{i}"
        groups[g] = config["width"]
        axes[f"fc{i}.weight"] = (g, prev)
        axes[f"fc{i}.bias"] = (g,)
        prev = g
    axes["out.weight"] = (None, prev)
    axes["out.bias"] = (None,)
    return PermSpec(groups, axes)


def _bn_axes(prefix: str, group: str) -> dict[str, tuple[str | None, ...]]:
    return {f"{prefix}.{k}": (group,) for k in ("weight", "bias", "running_mean", "running_var")}


def _conv_spec(config: dict) -> PermSpec:
    groups, axes = {}, {}
    prev = None
    for i, c in enumerate(config["channels"], start=1):
        g = f"conv{i}"
        groups[g] = c
        axes[f"conv{i}.weight"] = (g, prev, None, None)
        if config.get("batchnorm"):
            axes.update(_bn_axes(f"bn{i}", g))
        else:
            axes[f"conv{i}.bias"] = (g,)
        prev = g
    axes["out.weight"] = (None, prev)
    axes["out.bias"] = (None,)
    blocks = {}
    if config.get("head", "gap") == "flatten" and _flat_size(config) > 1:
        blocks[("out.weight", 1)] = _flat_size(config)
    return PermSpec(groups, axes, blocks)


def _resnet_spec(config: dict) -> PermSpec:
    widths = resnet_widths(config)
    groups = {f"stream{s + 1}": w for s, w in enumerate(widths)}
    axes: dict[str, tuple[str | None, ...]] = {"stem_conv.weight": ("stream1", None, None, None)}
    axes.update(_bn_axes("stem_bn", "stream1"))
    prev = "stream1"
    for s in range(len(widths)):
        stream = f"stream{s + 1}"
        for b in range(config["blocks_per_stage"]):
            name = f"stage{s + 1}_block{b + 1}"
            inner = f"{name}.inner"
            groups[inner] = widths[s]
            axes[f"{name}.conv1.weight"] = (inner, prev, None, None)
            axes.update(_bn_axes(f"{name}.bn1", inner))
            axes[f"{name}.conv2.weight"] = (stream, inner, None, None)
            axes.update(_bn_axes(f"{name}.bn2", stream))
            if prev != stream:
                axes[f"{name}.shortcut_conv.weight"] = (stream, prev, None, None)
                axes.update(_bn_axes(f"{name}.shortcut_bn", stream))
            prev = stream
    axes["out.weight"] = (None, prev)
    axes["out.bias"] = (None,)
    return PermSpec(groups, axes)


def identity(spec: PermSpec, device: torch.device | str = "cpu") -> Perms:
    return {g: torch.arange(n, device=device) for g, n in spec.groups.items()}


def random_perms(spec: PermSpec, seed: int, device: torch.device | str = "cpu") -> Perms:
    gen = torch.Generator().manual_seed(seed)
    return {g: torch.randperm(n, generator=gen).to(device) for g, n in spec.groups.items()}


def invert(perms: Perms) -> Perms:
    return {g: torch.argsort(p) for g, p in perms.items()}


def _permute_axis(t: torch.Tensor, axis: int, perm: torch.Tensor, block: int) -> torch.Tensor:
    if block == 1:
        return t.index_select(axis, perm)
    return t.unflatten(axis, (-1, block)).index_select(axis, perm).flatten(axis, axis + 1)


def permute_tensor(spec: PermSpec, name: str, t: torch.Tensor, perms: Perms,
                   skip: str | None = None, offset: int = 0) -> torch.Tensor:
    """Permute one tensor by every group on its axes (except ``skip``).

    ``offset`` is the number of leading axes (e.g. a stack of pairs) that are not permuted.
    """
    for k, g in enumerate(spec.axes.get(name, ())):
        if g is not None and g != skip:
            t = _permute_axis(t, k + offset, perms[g].to(t.device), spec.blocks.get((name, k), 1))
    return t


def apply(spec: PermSpec, tensors: dict[str, torch.Tensor], perms: Perms) -> dict[str, torch.Tensor]:
    """π(θ): the same network with its hidden units permuted. Tensors not in the spec pass through."""
    return {name: permute_tensor(spec, name, t, perms) for name, t in tensors.items()}


def _front(spec: PermSpec, name: str, t: torch.Tensor, axis: int) -> torch.Tensor:
    """A stack (K, *shape) → matrix (n, K·rest) with the group's units on rows."""
    block = spec.blocks.get((name, axis), 1)
    if block > 1:
        t = t.unflatten(axis + 1, (-1, block))
    t = t.movedim(axis + 1, 0)
    return t.reshape(t.shape[0], -1)


@dataclass
class LowRank:
    """A matrix given by factors as ``d.T @ h`` (d: r×rows, h: r×cols).

    A Linear layer's mini-batch gradient is δᵀ·x with r = batch size; when r is well below the layer
    width, the cross terms of weight matching are cheaper to form from the factors.
    """

    d: torch.Tensor
    h: torch.Tensor

    def dense(self) -> torch.Tensor:
        return self.d.T @ self.h


def _dense(t: "torch.Tensor | LowRank") -> torch.Tensor:
    return t.dense() if isinstance(t, LowRank) else t


def _append(store: torch.Tensor | None, t: torch.Tensor, count: int) -> torch.Tensor:
    """Put ``t`` at row ``count`` of a stack that grows by doubling (no re-stacking per pair)."""
    if store is None or count == len(store):
        grown = torch.empty((max(4, 2 * count), *t.shape), dtype=t.dtype, device=t.device)
        if store is not None:
            grown[:count] = store[:count]
        store = grown
    store[count] = t
    return store


class MatchingProblem:
    """Σ over added pairs of ⟨A, π(B)⟩, ready to be maximised group by group.

    Tensors that one group alone acts on contribute a fixed n×n score to that group, kept as a
    running sum over pairs; tensors between two groups are stored as stacks of pairs.
    """

    def __init__(self, spec: PermSpec, names: list[str] | None = None, device: torch.device | str = "cpu"):
        self.spec = spec
        self.device = torch.device(device)
        wanted = names if names is not None else list(spec.axes)
        self.names = [n for n in wanted if n in spec.axes]
        self.cross = [n for n in self.names if len({g for g in spec.axes[n] if g is not None}) > 1]
        self.fixed_score = {g: torch.zeros(n, n, device=self.device) for g, n in spec.groups.items()}
        self._a: dict[str, torch.Tensor] = {}
        self._b: dict[str, torch.Tensor] = {}
        self._low_rank: dict[str, list[torch.Tensor]] = {}  # name → stacks [d_a, h_a, d_b, h_b]
        self.neighbours = {g: set() for g in spec.groups}
        for n in self.cross:
            groups = {g for g in spec.axes[n] if g is not None}
            for g in groups:
                self.neighbours[g] |= groups - {g}
        self._front_cache: dict[tuple[str, int], torch.Tensor] = {}
        self.constant = torch.zeros((), device=self.device, dtype=torch.float64)
        self.pairs = 0

    def add_pair(self, target: dict[str, "torch.Tensor | LowRank"], source: dict[str, "torch.Tensor | LowRank"]) -> None:
        """Add one (target A, source B) pair of tensor dicts (e.g. two gradients).

        A 2-D tensor between two groups may come as ``LowRank`` factors on both sides; it is then
        stored and scored in factored form (each name keeps the form of its first pair).
        """
        for name in self.names:
            a, b = target[name], source[name]
            factored = isinstance(a, LowRank) and isinstance(b, LowRank) and name in self.cross \
                and len(self.spec.axes[name]) == 2 and not any(k[0] == name for k in self.spec.blocks) \
                and (name in self._low_rank or (self.pairs == 0 and name not in self._a))
            if factored:
                parts = [t.detach().to(self.device, torch.float32) for t in (a.d, a.h, b.d, b.h)]
                stacks = self._low_rank.get(name, [None] * 4)
                self._low_rank[name] = [_append(st, t, self.pairs) for st, t in zip(stacks, parts)]
                continue
            if isinstance(a, LowRank) and isinstance(b, LowRank) and name not in self.cross:
                self._add_fixed_low_rank(name, a, b)
                continue
            a = _dense(a).detach().to(self.device, torch.float32)
            b = _dense(b).detach().to(self.device, torch.float32)
            if name in self.cross:
                self._a[name] = _append(self._a.get(name), a, self.pairs)
                self._b[name] = _append(self._b.get(name), b, self.pairs)
                continue
            if all(g is None for g in self.spec.axes[name]):
                self.constant += (a * b).sum().double()
                continue
            for k, g in enumerate(self.spec.axes[name]):
                if g is not None:
                    self.fixed_score[g] += _front(self.spec, name, a[None], k) @ _front(self.spec, name, b[None], k).T
        self._front_cache.clear()
        self.pairs += 1

    def _stacks(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._a[name][:self.pairs], self._b[name][:self.pairs]

    def _add_fixed_low_rank(self, name: str, a: LowRank, b: LowRank) -> None:
        """Single-group term of a factored 2-D tensor: d_aᵀ(h_a h_bᵀ)d_b for rows, h_aᵀ(d_a d_bᵀ)h_b for columns."""
        d_a, h_a, d_b, h_b = (t.detach().to(self.device, torch.float32) for t in (a.d, a.h, b.d, b.h))
        for k, g in enumerate(self.spec.axes[name]):
            if g is not None:
                own_a, own_b, oth_a, oth_b = (d_a, d_b, h_a, h_b) if k == 0 else (h_a, h_b, d_a, d_b)
                self.fixed_score[g] += own_a.T @ ((oth_a @ oth_b.T) @ own_b)
        if all(g is None for g in self.spec.axes[name]):
            self.constant += ((d_a @ d_b.T) * (h_a @ h_b.T)).sum().double()

    def _factors(self, name: str) -> list[torch.Tensor]:
        return [t[:self.pairs] for t in self._low_rank[name]]

    def score(self, group: str, perms: Perms) -> torch.Tensor:
        """The n×n matrix S with S[i, j] = gain of mapping source unit j to target unit i."""
        s = self.fixed_score[group].clone()
        for name in self.cross:
            for k, g in enumerate(self.spec.axes[name]):
                if g != group:
                    continue
                if name in self._low_rank:
                    s += self._low_rank_score(name, k, perms)
                    continue
                a, b = self._stacks(name)
                key = (name, k)
                if key not in self._front_cache:
                    self._front_cache[key] = _front(self.spec, name, a, k)
                b_other = permute_tensor(self.spec, name, b, perms, skip=group, offset=1)
                s += self._front_cache[key] @ _front(self.spec, name, b_other, k).T
        return s

    def _low_rank_score(self, name: str, axis: int, perms: Perms) -> torch.Tensor:
        """Σ_k own_aᵀ (other_a · other_b[:, π]ᵀ) own_b with A = d_aᵀ h_a, B = d_bᵀ h_b.

        ``own`` is the factor whose columns are this axis (d for rows, h for columns), ``other`` the
        factor whose columns the other group permutes: r×r and r×n products instead of n×n×n.
        """
        d_a, h_a, d_b, h_b = self._factors(name)
        own_a, own_b, oth_a, oth_b = (d_a, d_b, h_a, h_b) if axis == 0 else (h_a, h_b, d_a, d_b)
        other = self.spec.axes[name][1 - axis]
        oth_b = oth_b.index_select(2, perms[other].to(self.device))
        inner = torch.bmm(torch.bmm(oth_a, oth_b.transpose(1, 2)), own_b)  # K×r×n
        key = (name, axis)
        if key not in self._front_cache:
            self._front_cache[key] = own_a.permute(2, 0, 1).reshape(own_a.shape[2], -1)
        return self._front_cache[key] @ inner.reshape(-1, inner.shape[2])

    def objective(self, perms: Perms) -> float:
        """Σ_pairs ⟨A, π(B)⟩ for the given permutations."""
        total = self.constant.clone()
        for g, s in self.fixed_score.items():
            total += s.gather(1, perms[g].to(self.device)[:, None]).sum().double()
        for name, (d_a, h_a, d_b, h_b) in ((n, self._factors(n)) for n in self._low_rank):
            rows, cols = (perms[g].to(self.device) for g in self.spec.axes[name])
            left = torch.bmm(d_a, d_b.index_select(2, rows).transpose(1, 2))
            right = torch.bmm(h_a, h_b.index_select(2, cols).transpose(1, 2))
            total += (left * right).sum().double()
        for name in (n for n in self.cross if n not in self._low_rank):
            a, b = self._stacks(name)
            total += (a * permute_tensor(self.spec, name, b, perms, offset=1)).sum().double()
        return float(total)

    def solve(self, init: Perms | None = None, seed: int = 0, max_sweeps: int = 50) -> tuple[Perms, int]:
        """Coordinate descent from ``init`` (warm start); returns the permutations and sweeps used.

        Groups are visited in a random order (seeded) each sweep; a group is skipped when no group it
        shares a tensor with has changed since its last visit (its score matrix would be the same).
        It stops when a sweep changes nothing. The objective never decreases.
        """
        perms = {g: p.to(self.device) for g, p in (init or identity(self.spec, self.device)).items()}
        rng = np.random.default_rng(seed)
        groups = list(self.spec.groups)
        stale = set(groups)
        sweeps = 0
        for sweeps in range(1, max_sweeps + 1):
            improved = False
            for gi in rng.permutation(len(groups)):
                g = groups[gi]
                if g not in stale:
                    continue
                stale.discard(g)
                s = self.score(g, perms).double().cpu().numpy()
                _, cols = linear_sum_assignment(s, maximize=True)
                rows = np.arange(len(cols))
                old = s[rows, perms[g].cpu().numpy()].sum()
                new = s[rows, cols].sum()
                if new > old + 1e-9 * max(1.0, abs(old)):
                    perms[g] = torch.as_tensor(cols, device=self.device, dtype=torch.long)
                    stale |= self.neighbours[g]
                    improved = True
            if not improved or not stale:
                break
        return perms, sweeps


def weight_matching(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], spec: PermSpec,
                    init: Perms | None = None, seed: int = 0, max_sweeps: int = 100,
                    device: torch.device | str | None = None) -> Perms:
    """π maximising ⟨target, π(source)⟩ over the tensors both dicts hold (π(source) ≈ target)."""
    names = [n for n in target if n in source]
    device = device or next(iter(target.values())).device
    problem = MatchingProblem(spec, names, device)
    problem.add_pair(target, source)
    perms, _ = problem.solve(init, seed=seed, max_sweeps=max_sweeps)
    return perms
