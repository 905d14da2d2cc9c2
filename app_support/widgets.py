"""Small Streamlit building blocks shared by the pages."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import streamlit as st

from lt_core.errors import LTError

from lt_core.runs import RunRecord
from lt_core.trajectory import Trajectory

from . import session
from .charts import fmt_seconds, metrics_figure
from .jobs import DONE, FAILED, STOPPED, Job
from .resources import TrajectoryEntry

POLL_SECONDS = 1.0
log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def reported_errors() -> Iterator[None]:
    """Show a failure of the enclosed work as one ``st.error`` instead of a traceback.

    ``LTError`` messages are shown as they are; anything else as a short "unexpected error" line
    (the traceback goes to the server log). Streamlit's own rerun/stop signals pass through.
    """
    try:
        yield
    except LTError as exc:
        st.error(str(exc))
    except Exception as exc:  # the page must keep working whatever goes wrong in lt_core
        log.exception("unexpected error on a page")
        st.error(f"unexpected error ({type(exc).__name__}: {exc}). The details are in the server log.")


def or_stop(load: Callable[[], T]) -> T:
    """``load()``, or one ``st.error`` and the end of this page run if it fails (e.g. a damaged file)."""
    with reported_errors():
        return load()
    st.stop()


def live_job(kind: str, render: Callable[[Job], None], interval: float = POLL_SECONDS) -> Job | None:
    """Draw this session's latest ``kind`` job with ``render``, redrawn every ``interval`` s while it runs.

    The panel is a fragment, so only it refreshes while the job runs; when the job ends the whole
    page reruns once, so everything else (run lists, the sidebar) shows the new results.
    """
    job = session.job(kind)
    if job is None:
        return None
    was_running = job.running

    def panel() -> None:
        current = session.job(kind)
        if current is None:
            return
        render(current)
        if was_running and not current.running:
            st.rerun()

    st.fragment(panel, run_every=interval if was_running else None)()
    return job


def job_outcome(job: Job, done_text: str, stopped_text: str = "every finished step is kept") -> None:
    """One line on how a finished job ended: success, stopped, or its error."""
    if job.status == DONE:
        st.success(f"{done_text} ({fmt_seconds(job.elapsed)}).")
    elif job.status == STOPPED:
        st.warning(f"Stopped after {fmt_seconds(job.elapsed)}; {stopped_text}.")
    elif job.status == FAILED:
        st.error(job.error)


def stop_button(job: Job, key: str, label: str = "Stop",
                help: str = "End after the current step; every finished step is kept and saved.") -> None:
    if job.running:
        st.button(label, key=key, on_click=job.request_stop, disabled=job.stop_requested, help=help, icon=":material/stop:")


def trajectory_picker(label: str, key: str, entries: Sequence[TrajectoryEntry], preferred: str | None = None,
                      help: str | None = None) -> TrajectoryEntry | None:
    """A selectbox over trajectory entries (by id); returns the chosen entry."""
    by_id = {e.id: e for e in entries}
    if not by_id:
        st.info("No trajectory fits here yet: add one on the Trajectories page.")
        return None
    st.selectbox(label, list(by_id), key=session.choose(key, list(by_id), preferred),
                 format_func=lambda k: by_id[k].label, help=help)
    return by_id[st.session_state[key]]


def trajectory_summary(entry: TrajectoryEntry, traj: Trajectory) -> None:
    """Architecture, dataset, checkpoints and the accuracy/loss-per-checkpoint chart."""
    summary = traj.summary()
    final = traj.checkpoints[-1].metrics
    cols = st.columns(4)
    cols[0].metric("Dataset", traj.dataset)
    cols[1].metric("Checkpoints", len(traj))
    cols[2].metric("Parameters", f"{summary['parameters']:,}")
    cols[3].metric("Final val accuracy", f"{final['val_acc']:.3f}" if "val_acc" in final else "–")
    st.markdown(f"**Architecture:** {summary['architecture']} · **origin:** {entry.origin} · **id:** `{entry.id}`")
    rows = [{"checkpoint": k, "epoch": c.epoch, "step": c.step, **c.metrics} for k, c in enumerate(traj.checkpoints)]
    x = "epoch" if any(r["epoch"] for r in rows) else "checkpoint"
    st.plotly_chart(metrics_figure(rows, x, "Accuracy and loss per checkpoint"), width="stretch")
    with st.expander("Training settings and checkpoint table"):
        st.json(traj.training or {}, expanded=False)
        st.dataframe(rows, hide_index=True, width="stretch")


def run_option_label(record: RunRecord) -> str:
    stopped = ", stopped" if record.stopped else ""
    return (f"{record.label} — {record.source_name} — final {record.final_accuracy:.3f}{stopped} "
            f"— {record.created.replace('T', ' ')[:16]}")
