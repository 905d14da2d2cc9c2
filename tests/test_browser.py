"""End to end: the real app (streamlit run) driven in headless Chromium with playwright.

Runs a small transfer on the bundled demo through the background-thread path, follows it to the
end, visits Results and Mode connectivity, comes back to Transfer, and saves screenshots (to the
test's temporary folder, or to $LT_SCREENSHOT_DIR: ``LT_SCREENSHOT_DIR=assets/screenshots`` refreshes
the README's). Skipped without /usr/bin/chromium unless LT_REQUIRE_BROWSER=1.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _require_browser():
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright Python package is not installed"
    if missing:
        if os.environ.get("LT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (LT_REQUIRE_BROWSER=1) but {missing}")
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read() == b"ok"
    except OSError:
        return False


@pytest.fixture
def server(tmp_path):
    _require_browser()
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "LT_RUNS_DIR": str(tmp_path / "runs")}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while not _healthy(url):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{(tmp_path / 'streamlit.log').read_text()}")
            time.sleep(0.5)
        yield url, tmp_path / "runs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _shot(page, shots: Path, name: str) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so grow the window to fit it."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(1000, height + 120), 5000)})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / name))
    page.set_viewport_size({"width": 1400, "height": 1000})


def _go(page, name: str) -> None:
    """Follow a link of the sidebar navigation."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=name, exact=True).first.click()


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()
    _settle(page)


def test_transfer_and_mode_connectivity_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    shots = Path(os.environ.get("LT_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)

            page.goto(url)
            expect(page.get_by_role("heading", name="LT Explorer", level=1)).to_be_visible()
            page.wait_for_selector(".js-plotly-plot")
            _settle(page)
            _shot(page, shots, "home.png")

            _go(page, "Transfer")
            _pick(page, "Source trajectory", "digits_mlp_seed1")
            _pick(page, "Second trajectory", "digits_mlp_seed0")
            steps = page.get_by_label("Steps T")
            steps.fill("300")
            steps.press("Enter")
            _settle(page)
            _go(page, "Results")
            _go(page, "Transfer")
            page.get_by_role("button", name="Run transfer").click()
            stop = page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop")
            expect(stop).to_be_visible()
            page.wait_for_timeout(3000)  # live updates rerun the page meanwhile
            _go(page, "Results")  # leave while the transfer runs: it goes on, and the inputs stay
            _settle(page)
            page.wait_for_timeout(2000)
            _go(page, "Transfer")
            _settle(page)
            page.wait_for_timeout(1000)
            assert page.get_by_label("Steps T").input_value() == "300"
            assert page.get_by_role("combobox", name="Source trajectory").input_value().startswith("digits_mlp_seed1")
            stop.click()
            expect(page.get_by_text("Stopped after")).to_be_visible(timeout=60_000)
            stopped = len(list((runs / "transfers").iterdir()))
            assert stopped >= 1

            _pick(page, "Source trajectory", "digits_mlp_seed0")
            _pick(page, "Second trajectory", "digits_mlp_seed1")
            steps = page.get_by_label("Steps T")
            steps.fill("5")
            steps.press("Enter")
            _settle(page)
            page.get_by_role("button", name="Run transfer").click()
            expect(page.get_by_text("Finished 4 run(s)")).to_be_visible(timeout=180_000)
            expect(page.get_by_text("step 5/5").first).to_be_visible()
            page.wait_for_selector(".js-plotly-plot")
            _settle(page)
            _shot(page, shots, "transfer.png")
            assert len(list((runs / "transfers").iterdir())) == stopped + 4

            _go(page, "Results")
            expect(page.get_by_text("Validation accuracy along the transferred trajectories")).to_be_visible()
            _settle(page)
            _shot(page, shots, "results.png")

            _go(page, "Mode connectivity")
            page.get_by_role("button", name="Compute curves").click()
            expect(page.get_by_text("val loss barrier").first).to_be_visible(timeout=120_000)
            _settle(page)
            page.get_by_role("button", name="Compute plane").click()
            expect(page.get_by_text(" · c = ")).to_be_visible(timeout=120_000)
            _settle(page)
            page.get_by_role("button", name="Match units").click()
            expect(page.get_by_text("Layer fc1")).to_be_visible()
            _settle(page)
            page.wait_for_timeout(1000)
            _shot(page, shots, "mode_connectivity.png")

            _go(page, "Transfer")
            expect(page.get_by_text("Finished 4 run(s)")).to_be_visible()
            expect(page.get_by_label("Steps T")).to_have_value("5")
        finally:
            browser.close()
