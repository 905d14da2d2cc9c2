"""The Transfer page (AppTest): a tiny transfer runs in the background, is saved, and shows up everywhere."""

import pytest

from app_support import actions
from app_support.resources import ASSETS
from app_support.testing import button, open_app, texts, wait_for_events, wait_for_jobs
from lt_core.runs import RunStore
from lt_core.trajectory import checkpoint_params, load_trajectory, params_bytes


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def transfer_page(steps=3, methods=("naive", "fgmt"), init_mode=None, seeds=None):
    at = open_app("pages/transfer.py")
    at.number_input(key="w:tr.steps").set_value(steps)
    at.multiselect(key="w:tr.methods").set_value(list(methods))
    if init_mode:
        at.radio(key="w:tr.init_mode").set_value(init_mode)
    at.run()
    if seeds:
        at.number_input(key="w:tr.first_seed").set_value(seeds[0])
        at.number_input(key="w:tr.n_seeds").set_value(seeds[1])
        at.run()
    return at


def test_tiny_transfer_runs_and_its_results_appear(runs_dir):
    at = transfer_page()
    button(at, "Run transfer").click().run()
    assert not at.error, texts(at.error)
    wait_for_jobs(at)
    assert not at.exception
    assert any("Finished 2 run(s)" in t for t in texts(at.success)), texts(at.success)
    table = at.dataframe[0].value
    assert list(table["run"]) == ["naive · init of digits_mlp_seed1", "fgmt · init of digits_mlp_seed1"]
    assert table["final accuracy"].between(0, 1).all()
    assert any("step 3/3" in p.proto.text for p in at.get("progress"))

    runs = RunStore(runs_dir).list_runs()
    assert {r.method for r in runs} == {"naive", "fgmt"}
    assert all(r.summary["steps"] == 3 and not r.stopped for r in runs)
    assert any("2 stored run(s)" in t for t in texts(at.sidebar.caption))
    reloaded = open_app()  # a new browser session: the runs are listed from disk
    assert any("2 stored run(s)" in t for t in texts(reloaded.sidebar.caption))
    assert any("naive · init of digits_mlp_seed1" in t for t in texts(reloaded.sidebar.markdown))

    at.switch_page("pages/results.py").run()
    assert not at.exception and not at.error
    assert sorted(at.multiselect(key="w:res.runs").value) == sorted(r.id for r in runs)
    assert len(at.dataframe[0].value) == 2
    labels = {b.label for b in at.get("download_button")}
    assert {"Curves (CSV)", "Runs and curves (JSON)", "Chart (HTML)", "Final params", "Permutations"} <= labels


def test_transfer_keeps_running_while_another_page_is_open():
    at = transfer_page(steps=4, methods=("fgmt",))
    button(at, "Run transfer").click().run()
    at.switch_page("pages/mode_connectivity.py").run()
    assert not at.exception
    wait_for_jobs(at)
    at.switch_page("pages/transfer.py").run()
    assert any("Finished 1 run(s)" in t for t in texts(at.success))
    assert at.dataframe[0].value["run"][0] == "fgmt · init of digits_mlp_seed1"


def test_oracle_without_target_is_one_clear_error(runs_dir):
    at = transfer_page(methods=("fgmt", "oracle"), init_mode="seeds")
    button(at, "Run transfer").click().run()
    assert len(at.error) == 1
    assert "oracle" in at.error[0].value and "second trajectory" in at.error[0].value
    assert not at.exception
    assert RunStore(runs_dir).list_runs() == []


def test_several_seeds_give_a_mean_and_spread_per_method(runs_dir):
    at = transfer_page(steps=2, methods=("naive",), init_mode="seeds", seeds=(3, 3))
    button(at, "Run transfer").click().run()
    wait_for_jobs(at)
    assert list(at.dataframe[0].value["run"]) == ["naive · seed 3", "naive · seed 4", "naive · seed 5"]
    summary = at.dataframe[1].value
    assert summary["method"][0] == "naive" and summary["runs"][0] == 3 and "±" in summary["final accuracy"][0]


def test_stop_ends_the_run_and_keeps_finished_steps(runs_dir):
    at = transfer_page(steps=300, methods=("fgmt", "gmt"), init_mode="seeds")
    button(at, "Run transfer").click().run()
    wait_for_events(at, "transfer", 3)
    at.run()
    at.button(key="tr.stop").click().run()
    wait_for_jobs(at)
    assert any("Stopped" in t for t in texts(at.warning))
    runs = RunStore(runs_dir).list_runs()
    assert len(runs) == 1 and runs[0].method == "fgmt" and runs[0].stopped
    assert 2 <= runs[0].summary["steps"] < 300


def test_two_sessions_do_not_mix_their_transfers():
    first = transfer_page(steps=2, methods=("naive",), init_mode="seeds", seeds=(5, 1))
    second = transfer_page(steps=2, methods=("fgmt",), init_mode="seeds", seeds=(7, 1))
    button(first, "Run transfer").click().run()
    button(second, "Run transfer").click().run()
    wait_for_jobs(first)
    wait_for_jobs(second)
    assert list(first.dataframe[0].value["run"]) == ["naive · seed 5"]
    assert list(second.dataframe[0].value["run"]) == ["fgmt · seed 7"]


def test_uploaded_init_file_is_used_and_bad_files_are_refused(runs_dir):
    target = load_trajectory(ASSETS / "digits_mlp_seed1.safetensors")
    good = params_bytes(checkpoint_params(target, 0, "seed1"))
    at = transfer_page(steps=2, methods=("naive",), init_mode="file")
    at.file_uploader(key="tr.upload").set_value([("init.safetensors", good, "application/octet-stream")]).run()
    button(at, "Run transfer").click().run()
    assert not at.error
    wait_for_jobs(at)
    assert list(at.dataframe[0].value["run"]) == ["naive · init.safetensors"]

    at.file_uploader(key="tr.upload").set_value([("model.pt", b"PK\x03\x04" + b"\x00" * 100,
                                                  "application/octet-stream")]).run()
    button(at, "Run transfer").click().run()
    assert len(at.error) == 1 and "pickle" in at.error[0].value
    assert any("Finished 1 run(s)" in t for t in texts(at.success)), "the earlier result stays on the page"


def test_home_button_starts_the_demo_transfer(monkeypatch, runs_dir):
    monkeypatch.setattr(actions, "DEMO_STEPS", 2)
    monkeypatch.setattr(actions, "DEMO_METHODS", ["naive", "oracle"])
    at = open_app()
    button(at, "Run the demo transfer").click().run()
    assert not at.exception and not at.error
    wait_for_jobs(at)
    assert {r.method for r in RunStore(runs_dir).list_runs()} == {"naive", "oracle"}


def test_init_of_another_architecture_is_one_clear_error(runs_dir):
    conv = load_trajectory(ASSETS / "digits_convbn_seed0.safetensors")
    at = transfer_page(methods=("naive",), init_mode="file")
    at.file_uploader(key="tr.upload").set_value([("conv_init.safetensors", params_bytes(checkpoint_params(conv, 0)),
                                                  "application/octet-stream")]).run()
    button(at, "Run transfer").click().run()
    assert len(at.error) == 1 and "same architecture" in at.error[0].value
    assert RunStore(runs_dir).list_runs() == []
