"""The Results page (AppTest) on runs made through the same code path as the Transfer page."""

import json

import pytest

from app_support.charts import curves_table, results_figure
from app_support.testing import button, open_app, stored_demo_runs, texts, wait_for_jobs
from lt_core.runs import RunStore


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    stored_demo_runs(store)
    return store


def test_chart_table_and_downloads(store):
    at = open_app("pages/results.py")
    assert not at.exception and not at.error
    assert len(at.multiselect(key="w:res.runs").value) == 2
    assert len(at.get("plotly_chart")) >= 1
    table = at.dataframe[0].value
    assert set(table["run"]) == {"naive · init of digits_mlp_seed1", "fgmt · init of digits_mlp_seed1"}
    assert set(table["steps"]) == {"3/3"}
    labels = [b.label for b in at.get("download_button")]
    for label in ("Curves (CSV)", "Runs and curves (JSON)", "Chart (HTML)", "Final params", "Best params",
                  "Init params", "Permutations"):
        assert label in labels


def test_changing_the_view_does_not_recompute(store, monkeypatch):
    at = open_app("pages/results.py")
    import lt_core.transfer
    monkeypatch.setattr(lt_core.transfer, "transfer", lambda *a, **k: pytest.fail("recomputed a transfer"))
    at.radio(key="w:res.metric").set_value("val_loss").run()
    at.radio(key="w:res.x").set_value("step").run()
    assert not at.exception and not at.error


def test_png_export_works_or_says_why(store):
    at = open_app("pages/results.py")
    button(at, "Prepare chart PNG").click().run(timeout=120)
    assert not at.exception
    png = [b for b in at.get("download_button") if b.label == "Chart (PNG)"]
    assert png or any("PNG export is not available" in t for t in texts(at.warning))


def test_curve_exports_hold_every_step(store):
    records = store.list_runs()
    table = curves_table(records)
    assert len(table) == 2 * 4 and set(table["step"]) == {0, 1, 2, 3}
    assert json.loads(json.dumps([r.data for r in records]))[0]["source"]["name"] == "digits_mlp_seed0"
    figure = results_figure(records)
    names = {t.name for t in figure.data}
    assert "source: digits_mlp_seed0" in names
    assert any("target trained" in (a.text or "") for a in figure.layout.annotations)


def test_finetune_runs_live_and_is_saved(store):
    at = open_app("pages/results.py")
    at.number_input(key="w:res.ft_epochs").set_value(1).run()
    button(at, "Fine-tune").click().run()
    assert not at.error
    wait_for_jobs(at)
    assert any("Fine-tuning finished" in t for t in texts(at.success)), texts(at.success)
    run_id = at.selectbox(key="w:res.ft_run").value
    saved = store.load_attachment(run_id, "finetune")
    assert saved["curves"]["epochs"] == [0, 1] and len(saved["curves"]["acc_transferred"]) == 2


def test_mean_and_spread_over_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    stored_demo_runs(RunStore(tmp_path / "runs"), methods=("naive",), seeds=(0, 1))
    at = open_app("pages/results.py")
    summary = at.dataframe[1].value
    assert summary["runs"][0] == 2 and "±" in summary["final accuracy"][0]


def test_delete_runs(store):
    at = open_app("pages/results.py")
    at.checkbox[-1].check().run()
    button(at, "Delete chosen runs").click().run()
    assert store.list_runs() == []
    assert any("No stored runs" in t for t in texts(at.info))
