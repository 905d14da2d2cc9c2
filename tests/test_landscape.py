import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from lt_core.errors import LTError
from lt_core.evaluation import evaluate, model_for, recompute_batchnorm
from lt_core.events import Finished, run_to_end
from lt_core.landscape import (InterpolationProgress, PlaneProgress, alpha_grid, align, barrier, barriers,
                               check_compatible, interpolate, params_at, plane, plane_basis, plane_coordinates,
                               unit_matching)
from lt_core.models import init_params, make_config
from lt_core.permutation import apply, random_perms, spec_for
from lt_core.train import TrainConfig, train
from lt_core.trajectory import ParamFile, checkpoint_params, save_params, save_trajectory


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These digits-size models run faster on one thread, and many times faster when other processes
    share the CPU cores (intra-op threads then wait on each other at every small operation)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(config, digits, seed, epochs):
    return run_to_end(train(config, digits, TrainConfig(epochs=epochs, seed=seed, lr=0.05)))


@pytest.fixture(scope="module")
def mlp_runs(digits):
    config = make_config("mlp", digits.input_shape, 10, width=128)
    return [_train(config, digits, seed, 10) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def mlps(mlp_runs):
    return [checkpoint_params(t, -1, f"mlp{k}") for k, t in enumerate(mlp_runs)]


@pytest.fixture(scope="module")
def convs(digits):
    config = make_config("conv", digits.input_shape, 10, channels=[8, 16], batchnorm=True)
    return [checkpoint_params(_train(config, digits, seed, 2), -1, f"conv{seed}") for seed in (0, 1)]


def _permuted_copy(pf, seed=3):
    spec = spec_for(pf.model)
    perms = random_perms(spec, seed)
    return ParamFile(pf.model, pf.dataset, apply(spec, pf.params, perms), apply(spec, pf.buffers, perms), {})


def _direct(pf, digits, buffers=None):
    model = model_for(pf.model, "cpu")
    b = pf.buffers if buffers is None else buffers
    return (evaluate(model, pf.params, b, digits.x_val, digits.y_val),
            evaluate(model, pf.params, b, digits.x_train, digits.y_train))


def test_curve_is_a_stream_of_events_and_endpoints_match_direct_evaluation(mlps, digits):
    a, b = mlps[0], mlps[1]
    events = list(interpolate(a, b, digits, points=5))
    progress = [e for e in events if isinstance(e, InterpolationProgress)]
    assert [e.step for e in progress] == [1, 2, 3, 4, 5] and all(e.total == 5 for e in progress)
    assert isinstance(events[-1], Finished) and len(events) == 6
    curve = events[-1].result
    assert list(curve.columns) == ["alpha", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert curve["alpha"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    for row, pf in ((0, a), (-1, b)):
        (val_loss, val_acc), (train_loss, train_acc) = _direct(pf, digits)
        got = curve.iloc[row]
        assert got["val_loss"] == pytest.approx(val_loss, rel=1e-6) and got["val_acc"] == val_acc
        assert got["train_loss"] == pytest.approx(train_loss, rel=1e-6) and got["train_acc"] == train_acc
    assert curve.attrs["train_examples"] == len(digits.x_train)  # digits is small: all of it


def test_bn_reset_endpoints_and_difference(convs, digits):
    a, b = convs
    with_reset = run_to_end(interpolate(a, b, digits, points=5, seed=7))
    without = run_to_end(interpolate(a, b, digits, points=5, reset_bn=False, train_metrics=False))
    assert with_reset.attrs["reset_bn"] and not without.attrs["reset_bn"]
    assert without["train_loss"].isna().all()
    model = model_for(a.model, "cpu")
    for row, pf in ((0, a), (-1, b)):
        fresh = recompute_batchnorm(model, pf.params, pf.buffers, digits.x_train, 10, 256,
                                    torch.Generator().manual_seed(7))
        (val_loss, val_acc), _ = _direct(pf, digits, fresh)
        assert with_reset["val_loss"].iloc[row] == pytest.approx(val_loss, rel=1e-6)
        (val_loss, _), _ = _direct(pf, digits)
        assert without["val_loss"].iloc[row] == pytest.approx(val_loss, rel=1e-6)
    middle = with_reset["val_loss"].iloc[2], without["val_loss"].iloc[2]
    assert abs(middle[0] - middle[1]) > 1e-3, middle


def test_alpha_grid_keeps_the_endpoints():
    assert alpha_grid(3) == [0.0, 0.5, 1.0]
    grid = alpha_grid(25, (-0.5, 1.5))
    assert len(grid) == 25 and 0.0 in grid and 1.0 in grid
    assert alpha_grid(5, (-0.3, 1.3)) == pytest.approx([-0.3, 0.0, 0.1, 0.5, 0.9, 1.0, 1.3])
    assert alpha_grid(3, (0.2, 0.8)) == pytest.approx([0.2, 0.5, 0.8])
    with pytest.raises(LTError, match="LO < HI"):
        alpha_grid(5, (1.0, 0.0))


def test_barrier_formula_uses_only_the_unit_interval():
    curve = pd.DataFrame({"alpha": [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5],
                          "val_loss": [99.0, 1.0, 2.0, 2.5, 3.5, 3.0, 99.0],
                          "val_acc": [0.0, 0.9, 0.8, 0.5, 0.7, 0.7, 0.0]})
    loss = barrier(curve, "val_loss")
    # line from 1.0 to 3.0: 1.5, 2.0, 2.5 at α = .25, .5, .75 → gaps 0.5, 0.5, 1.0
    assert loss.kind == "loss" and loss.height == pytest.approx(1.0) and loss.alpha == 0.75
    acc = barrier(curve, "val_acc")
    # line from 0.9 to 0.7: 0.85, 0.8, 0.75 → gaps 0.05, 0.3, 0.05
    assert acc.kind == "accuracy" and acc.height == pytest.approx(0.3) and acc.alpha == 0.5
    assert set(barriers(curve)) == {"val_loss", "val_acc"}
    with pytest.raises(LTError, match="cover"):
        barrier(curve[curve["alpha"] > 0.1], "val_loss")


def test_extended_range_curve_has_a_barrier(mlps, digits):
    curve = run_to_end(interpolate(mlps[0], mlps[1], digits, points=9, alpha_range=(-0.5, 1.5), train_metrics=False))
    assert curve["alpha"].min() == -0.5 and curve["alpha"].max() == 1.5
    inside = curve[(curve["alpha"] >= 0) & (curve["alpha"] <= 1)]
    ends = inside["val_loss"].iloc[[0, -1]].to_numpy()
    line = (1 - inside["alpha"]) * ends[0] + inside["alpha"] * ends[1]
    assert barrier(curve).height == pytest.approx(float((inside["val_loss"] - line).max()))


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_permuted_copy_has_no_barrier_after_align(kind, mlps, convs, digits):
    a = mlps[0] if kind == "mlp" else convs[0]
    b = _permuted_copy(a)
    before = barrier(run_to_end(interpolate(a, b, digits, points=5, train_metrics=False)))
    assert before.height > 0.05
    aligned, perms = align(a, b)
    assert aligned.info["aligned"] is True
    assert all(torch.equal(aligned.params[n], a.params[n]) for n in a.params)
    assert all(torch.equal(aligned.buffers[n], a.buffers[n]) for n in a.buffers)  # buffers permuted too
    for reset in (True, False):
        after = barrier(run_to_end(interpolate(a, aligned, digits, points=5, reset_bn=reset, train_metrics=False)))
        assert abs(after.height) < 1e-4


def test_alignment_lowers_the_barrier_of_independently_trained_mlps(mlps, digits):
    a, b = mlps[0], mlps[1]
    before = barriers(run_to_end(interpolate(a, b, digits, points=11)))
    aligned, _ = align(a, b)
    after = barriers(run_to_end(interpolate(a, aligned, digits, points=11)))
    assert after["val_loss"].height < before["val_loss"].height
    assert after["train_loss"].height < 0.5 * before["train_loss"].height
    assert after["val_acc"].height <= before["val_acc"].height


def test_plane_coordinates_reproduce_the_three_points(mlps, digits):
    a, b, c = mlps
    events = list(plane(a, b, c, digits, resolution=5, margin=0.1))
    assert sum(isinstance(e, PlaneProgress) for e in events) == 25
    result = events[-1].result
    assert result.val_loss.shape == (5, 5) and result.val_acc.shape == (5, 5) and result.train_loss is None
    assert np.isfinite(result.val_loss).all()
    assert result.points["a"] == (0.0, 0.0) and result.points["b"][1] == 0.0 and result.points["c"][1] > 0
    for name, pf in zip("abc", (a, b, c)):
        back = params_at(result.basis, *result.points[name])
        for n in pf.params:
            torch.testing.assert_close(back[n], pf.params[n], atol=1e-5, rtol=1e-4)
        assert plane_coordinates(result.basis, pf.params) == pytest.approx(result.points[name], abs=1e-4)
    xs, ys = result.x, result.y
    assert xs[0] < min(p[0] for p in result.points.values()) and ys[-1] > result.points["c"][1]
    mid = ParamFile(a.model, a.dataset, {n: (a.params[n] + b.params[n]) / 2 for n in a.params})
    with pytest.raises(LTError, match="one line"):
        plane_basis(a, b, mid)


def test_plane_with_batchnorm_and_no_reset_matches_the_corners(convs, digits):
    a, b = convs
    gen = torch.Generator().manual_seed(0)
    c = ParamFile(a.model, a.dataset, {n: (a.params[n] + b.params[n]) / 2 + 0.05 * torch.randn(t.shape, generator=gen)
                                       for n, t in a.params.items()}, a.buffers)
    result = run_to_end(plane(a, b, c, digits, resolution=3, margin=0.0, reset_bn=False))
    assert not result.reset_bn
    # c lies between a and b along x, so with margin 0 the bottom corners of the grid are a and b
    assert result.x[0] == 0.0 and result.x[-1] == pytest.approx(result.points["b"][0]) and result.y[0] == 0.0
    for ix, pf in ((0, a), (-1, b)):
        (val_loss, val_acc), _ = _direct(pf, digits)
        assert result.val_loss[0, ix] == pytest.approx(val_loss, rel=1e-3)


def test_unit_matching_puts_matches_on_the_diagonal(mlps, convs, digits):
    a, b = mlps[0], mlps[1]
    for layer in ("fc1", "fc2"):
        um = unit_matching(a, b, layer, digits)
        assert um.before.shape == um.after.shape == (128, 128)
        assert sorted(um.perm.tolist()) == list(range(128))
        assert um.diagonal_after > um.diagonal_before + 0.2
        np.testing.assert_allclose(um.after, um.before[:, um.perm])
    weights = unit_matching(a, b, "fc2", method="weight")
    assert weights.diagonal_after > weights.diagonal_before
    conv = unit_matching(convs[0], convs[1], "conv2", digits)
    assert conv.before.shape == (16, 16) and conv.diagonal_after > conv.diagonal_before
    with pytest.raises(LTError, match="fc1, fc2"):
        unit_matching(a, b, "conv1", digits)


@pytest.mark.parametrize("group", ["stream1", "stage2_block1.inner", "stream3"])
def test_unit_matching_finds_a_planted_permutation_in_a_resnet(group, digits):
    config = make_config("resnet", digits.input_shape, 10)
    params, buffers = init_params(config, seed=0)
    a = ParamFile(config, "digits", params, {})  # no stored BN statistics: re-estimated
    b = _permuted_copy(ParamFile(config, "digits", params, buffers))
    um = unit_matching(a, ParamFile(config, "digits", b.params, {}), group, digits, samples=200)
    n = spec_for(config).groups[group]
    assert um.after.shape == (n, n)
    assert um.diagonal_after > 0.99 and um.diagonal_before < 0.5


def test_incompatible_sets_are_one_clear_error(mlps, convs, digits):
    with pytest.raises(LTError, match=r"a is mlp 64-128-128-10 \(relu\) but b is conv"):
        check_compatible([mlps[0], convs[0]])
    with pytest.raises(LTError, match="same architecture"):
        run_to_end(interpolate(mlps[0], convs[0], digits))
    tanh = dict(mlps[0].model, activation="tanh")
    with pytest.raises(LTError, match=r"a is mlp 64-128-128-10 \(relu\) but c is mlp 64-128-128-10 \(tanh\)"):
        check_compatible({"a": mlps[0], "b": mlps[1], "c": ParamFile(tanh, "digits", mlps[0].params)})
    with pytest.raises(LTError, match="trained on digits but b on mnist"):
        check_compatible([mlps[0], ParamFile(mlps[1].model, "mnist", mlps[1].params)], same_dataset=True)


def test_missing_batchnorm_statistics(convs, digits):
    a, b = convs
    bare = ParamFile(b.model, b.dataset, b.params, {})
    with pytest.raises(LTError, match="no BatchNorm statistics"):
        run_to_end(interpolate(a, bare, digits, points=3, reset_bn=False))
    curve = run_to_end(interpolate(a, bare, digits, points=3, train_metrics=False))
    assert np.isfinite(curve["val_loss"]).all() and curve["val_acc"].iloc[-1] > 0.5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lt_core", *args], capture_output=True, text=True, timeout=600)


def test_cli_interpolate_two_trajectories(mlp_runs, tmp_path):
    for k in (0, 1):
        save_trajectory(mlp_runs[k], tmp_path / f"run{k}.safetensors")
    out = tmp_path / "curve.json"
    r = _cli("interpolate", "--a", f"{tmp_path / 'run0.safetensors'}@-1", "--b", f"{tmp_path / 'run1.safetensors'}@-1",
             "--align", "--points", "5", "--range", "-0.25", "1.25", "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sum(line.startswith("[") for line in r.stdout.splitlines()) == 7  # 5 points + α = 0 and 1
    assert "loss barrier (val_loss)" in r.stdout
    curve = json.loads(out.read_text())
    for key in ("alphas", "val_losses", "val_accuracies", "train_losses", "train_accuracies", "loss_barrier",
                "loss_barrier_alpha", "accuracy_barrier", "accuracy_barrier_alpha", "aligned", "bn_reset", "a", "b"):
        assert key in curve, key
    assert len(curve["alphas"]) == len(curve["val_losses"]) == len(curve["train_accuracies"]) == 7
    assert curve["aligned"] is True and curve["dataset"] == "digits"
    assert curve["loss_barrier"] >= 0 and 0 <= curve["loss_barrier_alpha"] <= 1
    assert all(isinstance(v, float) and math.isfinite(v) for v in curve["val_losses"])


def test_cli_plane(mlps, tmp_path):
    for k, pf in enumerate(mlps):
        save_params(pf, tmp_path / f"p{k}.safetensors")
    out = tmp_path / "plane.json"
    r = _cli("plane", "--a", str(tmp_path / "p0.safetensors"), "--b", str(tmp_path / "p1.safetensors"),
             "--c", str(tmp_path / "p2.safetensors"), "--resolution", "4", "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    grid = json.loads(out.read_text())
    assert len(grid["x"]) == len(grid["y"]) == 4
    assert np.array(grid["val_loss"]).shape == (4, 4) and np.array(grid["val_acc"]).shape == (4, 4)
    assert set(grid["points"]) == {"a", "b", "c"} and grid["points"]["a"] == [0.0, 0.0]


def test_cli_mismatched_architectures_is_one_clear_message(mlp_runs, convs, tmp_path):
    save_trajectory(mlp_runs[0], tmp_path / "mlp.safetensors")
    save_params(convs[0], tmp_path / "conv.safetensors")
    r = _cli("interpolate", "--a", f"{tmp_path / 'mlp.safetensors'}@-1", "--b", str(tmp_path / "conv.safetensors"),
             "--out", str(tmp_path / "c.json"))
    assert r.returncode != 0
    assert "a is mlp 64-128-128-10 (relu) but b is conv" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "c.json").exists()
