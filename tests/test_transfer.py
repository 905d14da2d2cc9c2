import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lt_core import transfer as transfer_module
from lt_core.errors import LTError
from lt_core.events import Finished, run_to_end
from lt_core.models import init_params, make_config
from lt_core.permutation import apply, invert, spec_for
from lt_core.train import TrainConfig, train
from lt_core.trajectory import ParamFile, checkpoint_params, save_trajectory
from lt_core.transfer import (FinetuneEpoch, TransferConfig, TransferStep, finetune, schedule_lambdas,
                              transfer)


@pytest.fixture(scope="module")
def mlp_pairs(digits):
    """Three (source, target) trajectory pairs of a 64-128-128-10 MLP on digits, different seeds."""
    config = make_config("mlp", digits.input_shape, 10, width=128, depth=2)
    return [(run_to_end(train(config, digits, TrainConfig(epochs=10, lr=0.05, seed=s))),
             run_to_end(train(config, digits, TrainConfig(epochs=10, lr=0.05, seed=s + 1)))) for s in (0, 2, 4)]


def _final(source, target, digits, method, **options):
    config = TransferConfig(method=method, **options)
    return run_to_end(transfer(source, checkpoint_params(target, 0), digits, config, target=target))


def test_gmt_and_fgmt_beat_naive_and_approach_oracle_on_digits(mlp_pairs, digits):
    acc = {m: np.mean([_final(s, t, digits, m, steps=30, seed=i).final_accuracy for i, (s, t) in enumerate(mlp_pairs)])
           for m in ("naive", "fgmt", "gmt", "oracle")}
    assert acc["gmt"] >= acc["naive"] + 0.15, acc
    assert acc["fgmt"] >= acc["naive"] + 0.15, acc
    assert abs(acc["fgmt"] - acc["gmt"]) <= 0.05, acc
    assert acc["oracle"] >= acc["gmt"] - 0.02, acc


@pytest.mark.slow
def test_gmt_beats_naive_for_conv_batchnorm(digits):
    config = make_config("conv", digits.input_shape, 10, channels=[32, 64], batchnorm=True)
    source = run_to_end(train(config, digits, TrainConfig(epochs=15, lr=0.05, seed=0)))
    target = run_to_end(train(config, digits, TrainConfig(epochs=1, lr=0.05, seed=1)))
    naive = _final(source, target, digits, "naive", steps=30)
    gmt = _final(source, target, digits, "gmt", steps=30)
    assert gmt.final_accuracy >= naive.final_accuracy + 0.1, (gmt.final_accuracy, naive.final_accuracy)
    assert gmt.final.buffers and all(torch.isfinite(b).all() for b in gmt.final.buffers.values())


def test_naive_is_the_plain_displacement_and_gmt_a_permutation_of_it(mlp_pairs, digits):
    source, target = mlp_pairs[0]
    init = checkpoint_params(target, 0)
    delta = {n: source.checkpoints[-1].params[n] - source.checkpoints[0].params[n] for n in init.params}
    naive = run_to_end(transfer(source, init, digits, TransferConfig("naive", steps=5)))
    for n in init.params:
        assert torch.equal(naive.final.params[n], init.params[n] + delta[n])
    gmt = run_to_end(transfer(source, init, digits, TransferConfig("gmt", steps=5)))
    spec = spec_for(source.model)
    moved = {n: gmt.final.params[n] - init.params[n] for n in init.params}
    for n in init.params:
        assert torch.linalg.norm(moved[n]) == pytest.approx(float(torch.linalg.norm(delta[n])), rel=1e-4)
    back = apply(spec, moved, invert(gmt.perms))
    for n in init.params:
        torch.testing.assert_close(back[n], delta[n], atol=1e-5, rtol=1e-5)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in gmt.perms.values())


def test_same_inputs_same_result(mlp_pairs, digits):
    source, target = mlp_pairs[1]
    a = _final(source, target, digits, "fgmt", steps=6, seed=3)
    b = _final(source, target, digits, "fgmt", steps=6, seed=3)
    assert a.accuracies == b.accuracies
    assert all(torch.equal(a.perms[g], b.perms[g]) for g in a.perms)


def test_gradient_counts_fgmt_linear_gmt_quadratic(mlp_pairs, digits, monkeypatch):
    calls = []
    real = transfer_module.loss_and_grad
    monkeypatch.setattr(transfer_module, "loss_and_grad", lambda *a, **k: calls.append(1) or real(*a, **k))
    source, target = mlp_pairs[0]
    T = 6
    _final(source, target, digits, "fgmt", steps=T)
    assert len(calls) == 2 * T
    calls.clear()
    _final(source, target, digits, "gmt", steps=T)
    assert len(calls) == T + T * (T + 1) // 2  # one source gradient per point, target gradients every step


def test_events_and_stop_keep_finished_steps(mlp_pairs, digits):
    source, target = mlp_pairs[0]
    seen = []
    events = transfer(source, checkpoint_params(target, 0), digits, TransferConfig("fgmt", steps=10),
                      should_stop=lambda: len(seen) >= 4)
    for event in events:
        if isinstance(event, TransferStep):
            seen.append(event)
        else:
            result = event.result
    assert [e.step for e in seen] == [0, 1, 2, 3]
    assert result.stopped and len(result.accuracies) == 3 and result.final.info["step"] == 3
    assert result.accuracies == [e.val_acc for e in seen[1:]]
    assert set(result.seconds_breakdown) == {"gradients", "matching", "evaluation"}


def test_oracle_without_target_is_a_clear_error(mlp_pairs, digits):
    source, _ = mlp_pairs[0]
    params, buffers = init_params(source.model, 9)
    with pytest.raises(LTError, match="oracle baseline needs the real target trajectory"):
        run_to_end(transfer(source, ParamFile(source.model, "digits", params, buffers), digits,
                            TransferConfig("oracle")))


def test_architecture_mismatch_is_a_clear_error(mlp_pairs, digits):
    source, _ = mlp_pairs[0]
    other = make_config("mlp", digits.input_shape, 10, width=32, depth=2)
    params, buffers = init_params(other, 0)
    with pytest.raises(LTError, match="must be the same architecture"):
        run_to_end(transfer(source, ParamFile(other, "digits", params, buffers), digits, TransferConfig("naive")))


def test_schedules():
    uniform = schedule_lambdas("uniform", 4)
    cosine = schedule_lambdas("cosine", 10)
    assert uniform == [0, 0.25, 0.5, 0.75, 1.0]
    assert cosine[0] == 0 and cosine[-1] == pytest.approx(1.0)
    steps = np.diff(cosine)
    assert (steps > 0).all() and steps[0] > steps[-1] * 5


def test_finetune_from_transfer_starts_ahead(mlp_pairs, digits):
    source, target = mlp_pairs[0]
    init = checkpoint_params(target, 0)
    result = _final(source, target, digits, "fgmt", steps=10)
    events = list(finetune(result.final, init, digits, TrainConfig(epochs=2, lr=0.01, seed=0)))
    epochs = [e for e in events if isinstance(e, FinetuneEpoch)]
    assert [e.epoch for e in epochs] == [0, 1, 2]
    assert epochs[0].acc_transferred == pytest.approx(result.final_accuracy)
    assert epochs[0].acc_transferred > epochs[0].acc_init + 0.3
    assert isinstance(events[-1], Finished) and len(events[-1].result["acc_init"]) == 3


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lt_core", *args], capture_output=True, text=True, timeout=600)


def test_cli_transfer_writes_run_and_params(mlp_pairs, tmp_path):
    source, target = mlp_pairs[0]
    save_trajectory(source, tmp_path / "src.safetensors")
    save_trajectory(target, tmp_path / "tgt.safetensors")
    r = _cli("transfer", "--trajectory", str(tmp_path / "src.safetensors"), "--target-trajectory",
             str(tmp_path / "tgt.safetensors"), "--method", "fgmt", "--steps", "5", "--device", "cpu",
             "--out", str(tmp_path / "run.json"), "--save-params", str(tmp_path / "p.safetensors"))
    assert r.returncode == 0, r.stderr
    assert sum(line.startswith("step ") for line in r.stdout.splitlines()) == 6
    run = json.loads((tmp_path / "run.json").read_text())
    for key in ("method", "steps", "schedule", "accuracies", "losses", "final_accuracy", "best_accuracy",
                "target_init_accuracy", "source_final_accuracy", "seconds", "seconds_breakdown"):
        assert key in run
    assert run["steps"] == 5 and len(run["accuracies"]) == 5 and run["final_accuracy"] == run["accuracies"][-1]
    again = _cli("transfer", "--trajectory", str(tmp_path / "src.safetensors"), "--init", str(tmp_path / "p.safetensors"),
                 "--method", "naive", "--steps", "2", "--out", str(tmp_path / "run2.json"))
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run2.json").read_text())["target_init_accuracy"] == pytest.approx(run["final_accuracy"], abs=0.02)
    oracle = _cli("transfer", "--trajectory", str(tmp_path / "src.safetensors"), "--init-seed", "1", "--method", "oracle",
                  "--out", str(tmp_path / "x.json"))
    assert oracle.returncode == 2 and "--target-trajectory" in oracle.stderr and "Traceback" not in oracle.stderr


def test_gradient_factors_reproduce_the_weight_gradient(digits):
    from lt_core.evaluation import loss_and_grad, model_for
    from lt_core.transfer import low_rank_weights

    config = make_config("mlp", digits.input_shape, 10, width=512, depth=3)
    params, buffers = init_params(config, 0)
    model = model_for(config, "cpu")
    names = low_rank_weights(model, spec_for(config), rank=32)
    assert names == ["fc1.weight", "fc2.weight", "fc3.weight"]  # not out.weight: 10 rows are cheap dense
    _, grads, _ = loss_and_grad(model, params, buffers, digits.x_train[:32], digits.y_train[:32])
    _, partial, factors = loss_and_grad(model, params, buffers, digits.x_train[:32], digits.y_train[:32], names)
    assert set(partial) == set(grads) - set(names)
    for n in partial:
        torch.testing.assert_close(partial[n], grads[n])
    for n in names:
        delta, h = factors[n]
        torch.testing.assert_close(delta.T @ h, grads[n], rtol=1e-4, atol=1e-6)
    assert low_rank_weights(model, spec_for(config), rank=512) == []
