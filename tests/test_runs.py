import json
import pickle

import pytest
import torch

from lt_core.errors import InvalidFile, LTError
from lt_core.events import run_to_end
from lt_core.models import make_config
from lt_core.permutation import random_perms, spec_for
from lt_core.runs import RunStore, content_hash, default_root, load_perms, new_run_id, perms_bytes
from lt_core.train import TrainConfig, train
from lt_core.trajectory import checkpoint_params, load_params, trajectory_bytes
from lt_core.transfer import TransferConfig, transfer


@pytest.fixture(scope="module")
def small_traj(digits):
    config = make_config("mlp", digits.input_shape, 10, width=16, depth=1)
    return run_to_end(train(config, digits, TrainConfig(epochs=2, seed=0)))


@pytest.fixture(scope="module")
def other_traj(digits, small_traj):
    return run_to_end(train(small_traj.model, digits, TrainConfig(epochs=2, seed=1)))


@pytest.fixture(scope="module")
def result(digits, small_traj, other_traj):
    init = checkpoint_params(other_traj, 0, "other")
    return run_to_end(transfer(small_traj, init, digits, TransferConfig(method="fgmt", steps=3))), init


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"
    assert RunStore().root == tmp_path / "elsewhere"
    monkeypatch.delenv("LT_RUNS_DIR")
    assert default_root().name == "runs"


def test_run_ids_are_unique_and_safe():
    ids = {new_run_id("fgmt ../../etc") for _ in range(50)}
    assert len(ids) == 50
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for i in ids)


def test_save_list_load_delete_roundtrip(tmp_path, result):
    res, init = result
    store = RunStore(tmp_path)
    record = store.save_run(res, init, {"label": "fgmt · other", "batch": "b1", "init": {"kind": "trajectory",
                                                                                      "label": "other"}})
    assert [r.id for r in store.list_runs()] == [record.id]
    listed = store.list_runs()[0]
    assert listed.label == "fgmt · other" and listed.batch == "b1" and listed.method == "fgmt"
    assert listed.summary["accuracies"] == res.accuracies
    loaded = store.load_run(record.id)
    for name in res.final.params:
        assert torch.equal(loaded.final.params[name], res.final.params[name])
        assert torch.equal(loaded.best.params[name], res.best.params[name])
        assert torch.equal(loaded.init.params[name], init.params[name])
    assert all(torch.equal(loaded.perms[g], res.perms[g]) for g in res.perms)
    assert len(loaded.step_perms) == len(res.step_perms) == 3
    assert store.run_file(record.id, "final").is_file()
    store.delete_run(record.id)
    assert store.list_runs() == []
    with pytest.raises(LTError, match="no run"):
        store.load_run(record.id)


def test_survives_a_new_store_object(tmp_path, result):
    res, init = result
    run_id = RunStore(tmp_path).save_run(res, init).id
    assert RunStore(tmp_path).run_record(run_id).final_accuracy == pytest.approx(res.final_accuracy)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "x" * 200, "run id"])
def test_unsafe_run_ids_are_refused(tmp_path, bad):
    store = RunStore(tmp_path)
    with pytest.raises(LTError):
        store.load_run(bad)
    with pytest.raises(LTError):
        store.delete_run(bad)


def test_damaged_runs_are_skipped_in_listings(tmp_path, result):
    res, init = result
    store = RunStore(tmp_path)
    good = store.save_run(res, init).id
    bad = store.transfers_dir / "20240101-000000-fgmt-abcdef"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    (store.transfers_dir / ".half-written.tmp").mkdir()
    assert [r.id for r in store.list_runs()] == [good]
    with pytest.raises(InvalidFile, match="damaged"):
        store.run_record(bad.name)


def test_attachments(tmp_path, result):
    res, init = result
    store = RunStore(tmp_path)
    run_id = store.save_run(res, init).id
    assert store.load_attachment(run_id, "finetune") is None
    store.save_attachment(run_id, "finetune", {"curves": {"epochs": [0, 1]}})
    assert store.load_attachment(run_id, "finetune") == {"curves": {"epochs": [0, 1]}}


def test_perms_roundtrip_and_validation(small_traj):
    spec = spec_for(small_traj.model)
    perms = random_perms(spec, seed=3)
    steps = [random_perms(spec, seed=s) for s in range(4)]
    final, loaded_steps = load_perms(perms_bytes(perms, steps))
    assert all(torch.equal(final[g], perms[g]) for g in perms)
    assert all(torch.equal(a[g], b[g]) for a, b in zip(loaded_steps, steps) for g in perms)
    with pytest.raises(InvalidFile, match="not a permutation"):
        from safetensors.torch import save
        load_perms(save({"final.fc1": torch.zeros(16, dtype=torch.int64)}))
    with pytest.raises(InvalidFile):
        load_perms(pickle.dumps({"final.fc1": list(range(16))}))


def test_trajectories_are_stored_once_by_content(tmp_path, small_traj):
    store = RunStore(tmp_path)
    data = trajectory_bytes(small_traj)
    first = store.save_trajectory(data, "mine", "uploaded")
    again = store.save_trajectory(small_traj, "same content", "trained")
    assert first.id == again.id == content_hash(data)
    assert [r.id for r in store.list_trajectories()] == [first.id]
    assert first.name == "mine" and first.dataset == "digits" and first.checkpoints == len(small_traj)
    loaded = store.load_trajectory(first.id)
    assert torch.equal(loaded.checkpoints[-1].params["fc1.weight"], small_traj.checkpoints[-1].params["fc1.weight"])
    store.delete_trajectory(first.id)
    assert store.list_trajectories() == []


def test_invalid_trajectories_are_not_stored(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(InvalidFile, match="pickle"):
        store.save_trajectory(pickle.dumps({"a": 1}, protocol=4), "evil.pt", "uploaded")
    with pytest.raises(InvalidFile):
        store.save_trajectory(b"\x00" * 64, "noise.bin", "uploaded")
    assert store.list_trajectories() == []
    with pytest.raises(LTError):
        store.trajectory_record("../../etc/passwd")


def test_run_files_are_lt_parameter_files(tmp_path, result):
    res, init = result
    store = RunStore(tmp_path)
    run_id = store.save_run(res, init).id
    pf = load_params(store.run_file(run_id, "best"))
    assert pf.info["which"] == "best" and pf.model == res.best.model
    record = json.loads((store.run_dir(run_id) / "run.json").read_text())
    assert record["summary"]["method"] == "fgmt" and record["id"] == run_id
    with pytest.raises(LTError):
        store.run_file(run_id, "../run")
