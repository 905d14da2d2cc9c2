"""Every page renders (AppTest), with the shared sidebar."""

import pytest

from app_support.testing import open_app, texts
from lt_core.devices import available_devices

PAGES = [None, "pages/trajectories.py", "pages/transfer.py", "pages/results.py",
         "pages/mode_connectivity.py"]


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_home_explains_and_offers_a_first_transfer():
    at = open_app()
    assert not at.exception and not at.error
    assert at.title[0].value == "LT Explorer"
    assert any("Learning transfer" in t for t in texts(at.markdown))
    assert any(b.label == "Run the demo transfer" for b in at.button)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_errors(page):
    at = open_app(page)
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert len(at.main.children) > 0


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_the_shared_sidebar(runs_dir, page):
    at = open_app(page).run()
    assert [link.label for link in at.sidebar.get("page_link")][:5] == [
        "Home", "Trajectories", "Transfer", "Results", "Mode connectivity"]
    device = at.sidebar.selectbox(key="w:device")
    assert device.options == available_devices() and device.value == available_devices()[0]
    assert at.sidebar.text_input(key="w:store_root").value == str(runs_dir)
    assert any("0 stored run(s)" in t for t in texts(at.sidebar.caption))


def test_results_page_without_runs_points_to_transfer():
    at = open_app("pages/results.py")
    assert any("No stored runs" in t for t in texts(at.info))


def test_trajectories_page_shows_a_bundled_summary():
    at = open_app("pages/trajectories.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Dataset"] == "digits" and metrics["Checkpoints"] == "11"
    assert any("mlp 64-128-128-10" in t for t in texts(at.markdown))



def test_widget_values_survive_a_page_switch():
    at = open_app("pages/transfer.py")
    at.number_input(key="w:tr.steps").set_value(7).run()
    at.switch_page("pages/results.py").run()
    at.switch_page("pages/transfer.py").run()
    assert at.number_input(key="w:tr.steps").value == 7
