"""Helpers for driving the app in tests with Streamlit's AppTest (imported by tests only)."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lt_core.data import load_dataset
from lt_core.events import run_to_end
from lt_core.runs import RunStore, content_hash
from lt_core.trajectory import load_trajectory
from lt_core.transfer import TransferConfig

from .jobs import jobs_of
from .resources import ASSETS
from .transfer_plan import TransferPlan, run_plan, seed_inits, trajectory_init

APP = Path(__file__).resolve().parent.parent / "app.py"


def open_app(page: str | None = None, timeout: float = 60) -> AppTest:
    """Run app.py once (as a fresh browser session) and switch to ``page`` (e.g. ``pages/transfer.py``)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def wait_for_jobs(at: AppTest, timeout: float = 120) -> AppTest:
    """Wait until every background job of this session has ended, then rerun the page once."""
    owner = at.session_state["owner"]
    end = time.time() + timeout
    while any(j.running for j in jobs_of(owner)):
        if time.time() > end:
            raise TimeoutError(f"background jobs still running after {timeout} s")
        time.sleep(0.1)
    return at.run()


def wait_for_events(at: AppTest, kind: str, count: int, timeout: float = 60) -> None:
    """Wait until this session's latest ``kind`` job has reported at least ``count`` events."""
    owner = at.session_state["owner"]
    end = time.time() + timeout
    while True:
        jobs = [j for j in jobs_of(owner) if j.kind == kind]
        if jobs and len(jobs[-1].events()) >= count:
            return
        if time.time() > end:
            raise TimeoutError(f"the {kind} job reported fewer than {count} events in {timeout} s")
        time.sleep(0.05)


def texts(elements) -> list[str]:
    """The ``value`` of every element in an AppTest element list."""
    return [e.value for e in elements]


def button(at: AppTest, label: str):
    """The one button with this label (AppTest has no lookup by label)."""
    matches = [b for b in at.button if b.label == label]
    if len(matches) != 1:
        raise LookupError(f"expected one button {label!r}, found {len(matches)}")
    return matches[0]


def stored_demo_runs(store: RunStore, methods: tuple[str, ...] = ("naive", "fgmt"),
                     seeds: tuple[int, ...] | None = None) -> list[str]:
    """Stored runs of the MLP demo (seed 0) onto the init of seed 1, or onto random seeds."""
    paths = [ASSETS / f"digits_mlp_seed{k}.safetensors" for k in (0, 1)]
    (source, target), (source_ref, target_ref) = zip(*[
        (load_trajectory(p), {"name": p.stem, "hash": content_hash(p.read_bytes())}) for p in paths])
    inits = (seed_inits(source.model, "digits", list(seeds)) if seeds
             else [trajectory_init(target, target_ref["name"], target_ref["hash"])])
    plan = TransferPlan(source, source_ref, inits, list(methods), TransferConfig(steps=3), load_dataset("digits"), "cpu",
                        target=None if seeds else target, target_ref=None if seeds else target_ref)
    return run_to_end(run_plan(plan, store, lambda: False))
