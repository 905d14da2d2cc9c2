"""The Trajectories page (AppTest): uploads are validated and stored, training runs live, errors are clear."""

import pickle

import pytest
import torch

import lt_core.data
from app_support.resources import ASSETS
from app_support.testing import button, open_app, texts, wait_for_events, wait_for_jobs
from lt_core.errors import DatasetUnavailable
from lt_core.runs import RunStore
from lt_core.trajectory import Trajectory, checkpoint_params, load_trajectory, params_bytes, trajectory_bytes


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def page(mode):
    at = open_app("pages/trajectories.py")
    at.radio(key="w:traj.mode").set_value(mode).run()
    return at


def upload(at, name, data):
    at.file_uploader(key="traj.upload").set_value((name, data, "application/octet-stream")).run()
    return at


def test_valid_upload_is_stored_and_summarised(runs_dir):
    demo = load_trajectory(ASSETS / "digits_convbn_seed1.safetensors")
    data = trajectory_bytes(Trajectory(demo.model, demo.dataset, demo.checkpoints[:6], demo.training))
    at = upload(page("upload"), "my_conv.safetensors", data)
    assert not at.error and not at.exception
    assert any("Saved my_conv.safetensors" in t for t in texts(at.success))
    assert {m.label: m.value for m in at.metric}["Checkpoints"] == "6"
    stored = RunStore(runs_dir).list_trajectories()
    assert [r.name for r in stored] == ["my_conv"] and stored[0].origin == "uploaded"

    at = open_app("pages/transfer.py")  # a new session sees it among the sources
    assert any(o.startswith("my_conv (uploaded") for o in at.selectbox(key="w:tr.source").options)


@pytest.mark.parametrize("name, data, words", [
    ("model.pt", pickle.dumps({"weights": [1.0, 2.0]}, protocol=4), "pickle"),
    ("torch_zip.pt", b"PK\x03\x04" + bytes(200), "pickle"),
    ("noise.safetensors", torch.randint(0, 256, (500,), dtype=torch.uint8).numpy().tobytes(), "not a valid safetensors"),
    ("empty.safetensors", b"", "empty"),
])
def test_bad_uploads_show_one_clear_error(runs_dir, name, data, words):
    at = upload(page("upload"), name, data)
    assert len(at.error) == 1, texts(at.error)
    assert words in at.error[0].value and name in at.error[0].value
    assert not at.exception
    assert RunStore(runs_dir).list_trajectories() == []


def test_a_parameter_file_is_not_a_trajectory(runs_dir):
    params = checkpoint_params(load_trajectory(ASSETS / "digits_mlp_seed0.safetensors"), -1)
    at = upload(page("upload"), "params.safetensors", params_bytes(params))
    assert len(at.error) == 1 and "not a trajectory" in at.error[0].value


def test_training_runs_live_and_saves_the_trajectory(runs_dir):
    at = page("train")
    at.number_input(key="w:traj.width").set_value(16)
    at.number_input(key="w:traj.depth").set_value(1)
    at.number_input(key="w:traj.epochs").set_value(2)
    at.run()
    button(at, "Train").click().run()
    assert not at.error, texts(at.error)
    wait_for_jobs(at)
    assert not at.exception
    assert any("Trained and saved" in t for t in texts(at.success)), texts(at.success)
    stored = RunStore(runs_dir).list_trajectories()
    assert len(stored) == 1 and stored[0].origin == "trained" and stored[0].checkpoints == 3
    assert "mlp 64-16-10" in stored[0].name


def test_stopped_training_keeps_its_checkpoints(runs_dir):
    at = page("train")
    at.number_input(key="w:traj.width").set_value(16)
    at.number_input(key="w:traj.epochs").set_value(200)
    at.run()
    button(at, "Train").click().run()
    wait_for_events(at, "train", 2)
    at.run()
    at.button(key="traj.stop").click().run()
    wait_for_jobs(at)
    assert any("Stopped" in t and "saved" in t for t in texts(at.warning)), texts(at.warning)
    stored = RunStore(runs_dir).list_trajectories()
    assert len(stored) == 1 and "stopped at step" in stored[0].name
    assert 3 <= stored[0].checkpoints < 201


def test_missing_dataset_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DATA_ROOT", str(tmp_path / "no_data"))

    def offline(cls, name, root, train):
        raise DatasetUnavailable(lt_core.data._missing_message(name, root))

    monkeypatch.setattr(lt_core.data, "_download", offline)
    at = page("train")
    at.selectbox(key="w:traj.dataset").set_value("mnist").run()
    button(at, "Train").click().run()
    assert len(at.error) == 1
    assert "mnist" in at.error[0].value and "LT_DATA_ROOT" in at.error[0].value
    assert not at.exception


def test_a_damaged_stored_trajectory_is_one_clear_error(runs_dir):
    demo = load_trajectory(ASSETS / "digits_mlp_seed0.safetensors")
    record = RunStore(runs_dir).save_trajectory(
        Trajectory(demo.model, demo.dataset, demo.checkpoints[:3], demo.training), "damaged", "uploaded")
    record.path.write_bytes(record.path.read_bytes()[:5000])
    for page_path, key in (("pages/transfer.py", "w:tr.source"), ("pages/trajectories.py", "w:traj.view")):
        at = open_app(page_path)
        at.selectbox(key=key).set_value(record.id).run()
        assert len(at.error) == 1 and "damaged" in at.error[0].value, texts(at.error)
        assert not at.exception
