"""What every page shares: page config, the sidebar (navigation, device, run store, stored runs) and
keeping page inputs across page switches.

The app uses Streamlit's pages/ directory: app.py is Home and each file in pages/ is one page. Every
page starts with ``page_frame(title)``, so each run of any page draws the same frame.
"""

from __future__ import annotations

import streamlit as st

from lt_core.devices import available_devices
from lt_core.runs import default_root

from . import session
from .jobs import jobs_of

NAVIGATION = [("app.py", "Home", ":material/home:"),
              ("pages/trajectories.py", "Trajectories", ":material/timeline:"),
              ("pages/transfer.py", "Transfer", ":material/shuffle:"),
              ("pages/results.py", "Results", ":material/monitoring:"),
              ("pages/mode_connectivity.py", "Mode connectivity", ":material/landscape:")]
MAX_LISTED_RUNS = 12


def page_frame(title: str) -> None:
    """Page config, session setup and the shared sidebar; call first on every page."""
    st.set_page_config(page_title=f"{title} · LT Explorer", page_icon=":material/shuffle:", layout="wide")
    session.keep_widget_values()
    session.owner()
    with st.sidebar:
        st.markdown("### LT Explorer")
        for path, label, icon in NAVIGATION:
            st.page_link(path, label=label, icon=icon)
        st.divider()
        _settings()


def _settings() -> None:
    devices = available_devices()
    st.selectbox("Device", devices, key=session.choose("w:device", devices, devices[0]),
                 help="cuda is offered when a GPU is present, and is then the default.")
    st.text_input("Run store", key=session.default("w:store_root", str(default_root())),
                  help="Folder where transfers and uploaded/trained trajectories are saved "
                       "(default: $LT_RUNS_DIR or ./runs). They survive reloads and restarts.")
    store = session.store()
    runs = store.list_runs()
    st.caption(f"{len(runs)} stored run(s) · {len(store.list_trajectories())} stored trajectory(ies)")
    with st.expander(f"Stored runs ({len(runs)})", expanded=False):
        if not runs:
            st.caption("None yet: start one on the Transfer page.")
        for record in runs[:MAX_LISTED_RUNS]:
            mark = " (stopped)" if record.stopped else ""
            st.markdown(f"**{record.label}**{mark}  \n{record.source_name} · final {record.final_accuracy:.3f}")
        if len(runs) > MAX_LISTED_RUNS:
            st.caption(f"… and {len(runs) - MAX_LISTED_RUNS} more on the Results page.")
        if runs:
            st.page_link("pages/results.py", label="Open Results", icon=":material/monitoring:")
    for job in jobs_of(session.owner()):
        if job.running:
            st.info(f"Running: {job.title}", icon=":material/hourglass_top:")
