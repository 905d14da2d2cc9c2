import pytest
import torch

from lt_core.evaluation import model_for
from lt_core.models import init_params, make_config
from lt_core.permutation import (MatchingProblem, apply, identity, invert, random_perms, spec_for,
                                 weight_matching)

CONFIGS = [
    make_config("mlp", [1, 8, 8], 10, width=32, depth=3),
    make_config("mlp", [1, 8, 8], 10, width=16, depth=1, activation="gelu"),
    make_config("conv", [1, 8, 8], 10, channels=[8, 16], batchnorm=True),
    make_config("conv", [3, 32, 32], 10, channels=[8, 16], batchnorm=False, head="flatten"),
    make_config("conv", [1, 28, 28], 10, channels=[4, 8, 8], batchnorm=True, head="flatten"),
    make_config("resnet", [1, 8, 8], 10, blocks_per_stage=2),
    make_config("resnet", [3, 32, 32], 10),
]


def _random_buffers(buffers, seed):
    gen = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(b.shape, generator=gen) + 0.5 if "var" in n else torch.randn(b.shape, generator=gen))
            for n, b in buffers.items()}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['arch']}-{c['input_shape'][1]}")
def test_permuted_network_computes_the_same_function(config):
    params, buffers = init_params(config, seed=1)
    buffers = _random_buffers(buffers, 2)
    spec = spec_for(config)
    assert set(spec.axes) == set(params) | set(buffers), "spec must cover every parameter and BN buffer"
    perms = random_perms(spec, seed=3)
    assert not all(torch.equal(p, torch.arange(len(p))) for p in perms.values())
    model = model_for(config, "cpu").eval()
    x = torch.randn(16, *config["input_shape"])
    out = torch.func.functional_call(model, {**params, **buffers}, (x,))
    permuted = apply(spec, {**params, **buffers}, perms)
    assert any(not torch.equal(permuted[n], params[n]) for n in params)
    out_p = torch.func.functional_call(model, permuted, (x,))
    torch.testing.assert_close(out_p, out, atol=1e-5, rtol=1e-5)
    # and the inverse permutation undoes it
    back = apply(spec, permuted, invert(perms))
    assert all(torch.equal(back[n], params[n]) for n in params)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['arch']}-{c['input_shape'][1]}")
def test_weight_matching_recovers_planted_permutation(config):
    params, _ = init_params(config, seed=5)
    spec = spec_for(config)
    planted = random_perms(spec, seed=6)
    gen = torch.Generator().manual_seed(7)
    target = {n: t + 0.01 * t.std() * torch.randn(t.shape, generator=gen) for n, t in apply(spec, params, planted).items()}
    found = weight_matching(target, params, spec, seed=0)
    for g in spec.groups:
        assert torch.equal(found[g], planted[g]), f"group {g} not recovered"


def test_matching_never_decreases_the_objective():
    config = make_config("mlp", [1, 8, 8], 10, width=24, depth=3)
    spec = spec_for(config)
    problem = MatchingProblem(spec)
    for seed in range(4):  # several unrelated pairs: a hard, non-planted problem
        a, _ = init_params(config, seed)
        b, _ = init_params(config, seed + 100)
        problem.add_pair(a, b)
    start = random_perms(spec, seed=9)
    previous = problem.objective(start)
    perms = start
    for _ in range(6):
        perms, _ = problem.solve(perms, seed=1, max_sweeps=1)
        value = problem.objective(perms)
        assert value >= previous - 1e-6 * abs(previous)
        previous = value
    assert previous > problem.objective(start)
    # the stacked cross terms and running single-group sums add up to the plain objective
    ref = 0.0
    for seed in range(4):
        a, _ = init_params(config, seed)
        b, _ = init_params(config, seed + 100)
        pb = apply(spec, b, perms)
        ref += sum(float((a[n] * pb[n]).sum()) for n in a)
    assert problem.objective(perms) == pytest.approx(ref, rel=1e-4)


def test_identity_is_found_for_identical_networks():
    config = make_config("resnet", [1, 8, 8], 10)
    params, _ = init_params(config, 0)
    spec = spec_for(config)
    found = weight_matching(params, params, spec, init=random_perms(spec, 1))
    assert all(torch.equal(found[g], identity(spec)[g]) for g in spec.groups)


def test_low_rank_pairs_score_like_dense_ones():
    """Cross terms formed from gradient factors δᵀ·h equal those of the dense matrices."""
    from lt_core.permutation import LowRank

    config = make_config("mlp", [1, 8, 8], 10, width=40, depth=3)
    spec = spec_for(config)
    gen = torch.Generator().manual_seed(0)
    dense, factored = MatchingProblem(spec), MatchingProblem(spec)
    for _ in range(3):
        pair = []
        for _side in range(2):
            params, _ = init_params(config, int(torch.randint(0, 1000, (1,), generator=gen)))
            lr = {n: LowRank(torch.randn(6, 40, generator=gen), torch.randn(6, 40, generator=gen))
                  for n in ("fc2.weight", "fc3.weight")}
            lr["fc1.weight"] = LowRank(torch.randn(6, 40, generator=gen), torch.randn(6, 64, generator=gen))
            lr["out.weight"] = LowRank(torch.randn(6, 10, generator=gen), torch.randn(6, 40, generator=gen))
            pair.append(({**params, **lr}, {**params, **{n: f.dense() for n, f in lr.items()}}))
        factored.add_pair(pair[0][0], pair[1][0])
        dense.add_pair(pair[0][1], pair[1][1])
    assert set(factored._low_rank) == {"fc2.weight", "fc3.weight"}
    perms = random_perms(spec, seed=4)
    for g in spec.groups:
        torch.testing.assert_close(factored.score(g, perms), dense.score(g, perms), rtol=1e-4, atol=1e-3)
    assert factored.objective(perms) == pytest.approx(dense.objective(perms), rel=1e-5)
    a, _ = factored.solve(seed=2)
    b, _ = dense.solve(seed=2)
    assert all(torch.equal(a[g], b[g]) for g in spec.groups)
