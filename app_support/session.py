"""Per-browser-session state: who this session is, its device, its run store, its jobs, its inputs."""

from __future__ import annotations

import uuid
from typing import Any, Sequence

import streamlit as st

from lt_core.devices import available_devices
from lt_core.runs import RunStore, default_root

from .jobs import Job, get_job

WIDGET_PREFIX = "w:"


def owner() -> str:
    """A random id for this browser session; jobs are registered under it."""
    if "owner" not in st.session_state:
        st.session_state["owner"] = uuid.uuid4().hex
    return st.session_state["owner"]


KEPT_PREFIX = "kept:"


def keep_widget_values() -> None:
    """Keep page inputs (keys starting with ``w:``) when the user switches pages.

    Streamlit forgets the value of a widget that a run does not draw (and, with live fragments
    running, it did so even when the value had been written back into session state). So every full
    run snapshots the inputs under plain keys that are never widgets, and restores any input that
    went missing before a page draws its widgets.
    """
    state = st.session_state
    for key in list(state.keys()):
        if isinstance(key, str) and key.startswith(WIDGET_PREFIX):
            state[key] = state[key]
            state[KEPT_PREFIX + key] = state[key]
        elif isinstance(key, str) and key.startswith(KEPT_PREFIX):
            widget_key = key[len(KEPT_PREFIX):]
            if widget_key not in state:
                state[widget_key] = state[key]


def default(key: str, value: Any) -> str:
    """Give widget ``key`` its first value (widgets then take no ``value=``); returns the key."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def choose(key: str, options: Sequence[Any], preferred: Any = None) -> str:
    """Like ``default`` for a choice: keeps the current value only while it is still an option."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = preferred if preferred in options else (options[0] if options else None)
    return key


def choose_many(key: str, options: Sequence[Any], preferred: Sequence[Any]) -> str:
    """``choose`` for a multiselect: drops values that are no longer options."""
    current = st.session_state.get(key)
    if current is None:
        st.session_state[key] = [v for v in preferred if v in options]
    else:
        st.session_state[key] = [v for v in current if v in options]
    return key


def device() -> str:
    """The compute device picked in the sidebar (``cuda`` when present, else ``cpu``)."""
    devices = available_devices()
    return st.session_state.get("w:device") if st.session_state.get("w:device") in devices else devices[0]


def store() -> RunStore:
    """The run store at the location set in the sidebar (``$LT_RUNS_DIR`` or ./runs by default)."""
    root = (st.session_state.get("w:store_root") or "").strip()
    return RunStore(root or default_root())


def job(kind: str) -> Job | None:
    """This session's latest job of ``kind`` (e.g. ``transfer``), if it is still registered."""
    return get_job(st.session_state.get(f"job:{kind}"), owner())


def remember_job(kind: str, new_job: Job) -> None:
    st.session_state[f"job:{kind}"] = new_job.id
