"""The Mode connectivity page (AppTest): curves with barriers, the loss plane, neuron matching, errors."""

import pytest
import torch

import lt_core.data
from app_support.param_sets import resolve, set_options
from app_support.resources import known_trajectories
from app_support.testing import button, open_app, stored_demo_runs, texts, wait_for_jobs
from lt_core.errors import DatasetUnavailable
from lt_core.models import init_params, make_config
from lt_core.permutation import apply, spec_for
from lt_core.runs import RunStore
from lt_core.trajectory import Checkpoint, Trajectory


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    stored_demo_runs(store, methods=("fgmt",))
    return store


def page():
    at = open_app("pages/mode_connectivity.py")
    assert not at.exception and not at.error
    return at


def test_defaults_compare_the_trained_target_with_the_transferred_point(store):
    at = page()
    run = store.list_runs()[0]
    assert at.selectbox(key="w:mc.a").value.startswith("traj:") and at.selectbox(key="w:mc.a").value.endswith(":final")
    assert at.selectbox(key="w:mc.b").value == f"run:{run.id}:final"
    assert at.selectbox(key="w:mc.c").value == f"run:{run.id}:aligned_source"


def test_interpolation_shows_barriers(store):
    at = page()
    at.slider(key="w:mc.points").set_value(5).run()
    button(at, "Compute curves").click().run()
    wait_for_jobs(at)
    assert not at.exception and not at.error
    text = " ".join(texts(at.markdown))
    assert "val loss barrier" in text and "val acc barrier" in text and "(aligned)" in text
    assert any(b.label == "Curve (CSV)" for b in at.get("download_button"))


def test_plane_and_neuron_matching(store):
    at = page()
    at.slider(key="w:mc.resolution").set_value(5).run()
    button(at, "Compute plane").click().run()
    wait_for_jobs(at)
    assert not at.error and any(t.startswith("a = ") for t in texts(at.caption))
    at.radio(key="w:mc.plane_metric").set_value("val_acc").run()
    assert not at.exception and any(t.startswith("a = ") for t in texts(at.caption)), "redrawn without recomputing"

    at.selectbox(key="w:mc.layer").set_value("fc2").run()
    button(at, "Match units").click().run()
    assert not at.error and any(t.startswith("Layer fc2") for t in texts(at.caption))


def test_aligned_source_is_the_source_final_permuted_by_the_run(store):
    records = store.list_runs()
    entries = known_trajectories(store)
    key = f"run:{records[0].id}:aligned_source"
    assert key in {o.key for o in set_options(entries, records)}
    aligned = resolve(key, store, entries)
    source = next(e for e in entries if e.name == "digits_mlp_seed0")
    final = resolve(f"traj:{source.id}:final", store, entries)
    run = store.load_run(records[0].id)
    expected = apply(spec_for(final.model), final.params, run.perms)
    assert all(torch.equal(aligned.params[n], expected[n]) for n in expected)


def test_missing_dataset_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LT_DATA_ROOT", str(tmp_path / "no_data"))
    monkeypatch.setattr(lt_core.data, "_download",
                        lambda cls, name, root, train: (_ for _ in ()).throw(
                            DatasetUnavailable(lt_core.data._missing_message(name, root))))
    config = make_config("mlp", [1, 28, 28], 10, width=8, depth=1)
    points = [Checkpoint(*init_params(config, seed), step=k) for k, seed in enumerate((0, 1))]
    key = RunStore(tmp_path / "runs").save_trajectory(Trajectory(config, "mnist", points), "tiny mnist", "uploaded").id
    at = page()
    at.selectbox(key="w:mc.a").set_value(f"traj:{key}:final").run()
    at.selectbox(key="w:mc.b").set_value(f"traj:{key}:init").run()
    button(at, "Compute curves").click().run()
    assert len(at.error) == 1 and "mnist" in at.error[0].value and "LT_DATA_ROOT" in at.error[0].value
    assert not at.exception
