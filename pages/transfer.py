"""Transfer: choose a source trajectory, new initialization(s), methods and settings; run live."""

import pandas as pd
import streamlit as st

from app_support import resources, session
from app_support.actions import DEMO_METHODS, DEMO_SOURCE, DEMO_STEPS, start_transfer
from app_support.charts import fmt_seconds, transfer_figure
from app_support.frame import page_frame
from app_support.jobs import Job
from app_support.transfer_plan import (InitChoice, TransferPlan, batch_view, file_init, method_summary, parse_seeds,
                                       seed_inits, trajectory_init)
from app_support.uploads import read_upload
from app_support.widgets import job_outcome, live_job, or_stop, reported_errors, stop_button, trajectory_picker
from lt_core.errors import LTError
from lt_core.transfer import PATHS, SCHEDULES, TransferConfig

INIT_MODES = {"trajectory": "Init of a second trajectory (unlocks oracle)", "seeds": "Random seeds",
              "file": "Uploaded parameter file"}
METHOD_ORDER = ["naive", "fgmt", "gmt", "oracle"]

page_frame("Transfer")
st.title("Transfer")
st.caption("Replay a source trajectory from new initializations: θ₂ᵗ = θ₂⁰ + π_t(θ₁ᵗ − θ₁⁰). Every run is saved "
           "to the run store as soon as it ends.")

store = session.store()
entries = resources.known_trajectories(store)
demo_id = next((e.id for e in entries if e.name == DEMO_SOURCE), None)
settings, live = st.columns([2, 3], gap="large")
with settings:
    source_entry = trajectory_picker("Source trajectory", "w:tr.source", entries, preferred=demo_id,
                                     help="The trajectory whose training is replayed.")
    if source_entry is None:
        st.stop()
    source = or_stop(lambda: resources.trajectory(source_entry))
    final_acc = source.checkpoints[-1].metrics.get("val_acc")
    st.caption(f"{source_entry.architecture} on **{source.dataset}**, {len(source)} checkpoints"
               + (f", final validation accuracy {final_acc:.3f}" if final_acc is not None else ""))

    st.subheader("New initialization")
    mode = st.radio("Start from", list(INIT_MODES), format_func=INIT_MODES.get,
                    key=session.default("w:tr.init_mode", "trajectory"))
    compatible = [e for e in entries if e.model == source_entry.model and e.id != source_entry.id]
    target_entry = None
    uploads = []
    if mode == "trajectory":
        target_entry = trajectory_picker("Second trajectory", "w:tr.target", compatible,
                                         help="Its init is the new initialization; its trained end is the oracle's target "
                                              "and a reference line on the charts.")
    elif mode == "seeds":
        cols = st.columns(2)
        cols[0].number_input("First seed", min_value=0, step=1, key=session.default("w:tr.first_seed", 1))
        cols[1].number_input("How many initializations", min_value=1, max_value=50, step=1,
                             key=session.default("w:tr.n_seeds", 1),
                             help="Seeds first … first + n − 1; the summary shows mean ± spread per method.")
    else:
        uploads = st.file_uploader("Parameter file(s) (.safetensors)", accept_multiple_files=True, key="tr.upload",
                                   help="LT Explorer parameter files (or trajectories: their checkpoint 0 is used).")

    st.subheader("Methods and settings")
    st.multiselect("Methods", METHOD_ORDER, key=session.choose_many("w:tr.methods", METHOD_ORDER, DEMO_METHODS),
                   help="naive: no permutation · fgmt: fast gradient matching · gmt: gradient matching · "
                        "oracle: aligned with the real trained target (needs a second trajectory)")
    cols = st.columns(2)
    cols[0].number_input("Steps T", min_value=1, max_value=500, step=1, key=session.default("w:tr.steps", DEMO_STEPS))
    cols[1].selectbox("Schedule", SCHEDULES, key=session.choose("w:tr.schedule", SCHEDULES, "cosine"),
                      help="cosine: bigger steps early · uniform · checkpoints: the source's own checkpoints")
    cols = st.columns(2)
    cols[0].selectbox("Path", PATHS, key=session.choose("w:tr.path", PATHS, "line"),
                      help="line: straight from the source's init to its end (as in the paper) · piecewise: through "
                           "every checkpoint")
    cols[1].number_input("Transfer seed", min_value=0, step=1, key=session.default("w:tr.seed", 0),
                         help="Seeds the mini-batches used for gradients and BatchNorm statistics.")
    with st.expander("Batch sizes"):
        cols = st.columns(3)
        cols[0].number_input("Gradient batch size", min_value=1, step=32, key=session.default("w:tr.batch_size", 128))
        cols[1].number_input("Gradient batches per point", min_value=1, max_value=32, step=1,
                             key=session.default("w:tr.grad_batches", 1))
        cols[2].number_input("BatchNorm batches", min_value=1, max_value=100, step=1,
                             key=session.default("w:tr.bn_batches", 10),
                             help="Training batches used to recompute BatchNorm statistics at every point.")
    st.caption(f"Device: **{session.device()}** (change it in the sidebar).")


def gather_inits() -> tuple[list[InitChoice], dict | None]:
    """The new initializations from the inputs, and the target reference when there is one."""
    if mode == "trajectory":
        if target_entry is None:
            raise LTError("there is no second trajectory with this architecture: train or upload one on the "
                          "Trajectories page, or start from random seeds")
        target = resources.trajectory(target_entry)
        return [trajectory_init(target, target_entry.name, target_entry.id)], {"name": target_entry.name,
                                                                               "hash": target_entry.id}
    if mode == "seeds":
        seeds = parse_seeds(st.session_state["w:tr.first_seed"], st.session_state["w:tr.n_seeds"])
        return seed_inits(source.model, source.dataset, seeds), None
    if not uploads:
        raise LTError("upload at least one parameter file, or choose another kind of new initialization")
    return [file_init(read_upload(f.getvalue(), f.name), f.name) for f in uploads], None


def build_plan() -> TransferPlan:
    inits, target_ref = gather_inits()
    config = TransferConfig(steps=int(st.session_state["w:tr.steps"]), schedule=st.session_state["w:tr.schedule"],
                            path=st.session_state["w:tr.path"], batch_size=int(st.session_state["w:tr.batch_size"]),
                            grad_batches=int(st.session_state["w:tr.grad_batches"]),
                            bn_batches=int(st.session_state["w:tr.bn_batches"]), seed=int(st.session_state["w:tr.seed"]))
    device = session.device()
    return TransferPlan(source=source, source_ref={"name": source_entry.name, "hash": source_entry.id}, inits=inits,
                        methods=[m for m in METHOD_ORDER if m in st.session_state["w:tr.methods"]], config=config,
                        dataset=resources.dataset(source.dataset, device), device=device,
                        target=resources.trajectory(target_entry) if target_ref else None, target_ref=target_ref)


current = session.job("transfer")
with settings:
    if st.button("Run transfer", type="primary", icon=":material/play_arrow:",
                 disabled=current is not None and current.running):
        with reported_errors():
            start_transfer(build_plan(), store)
            st.rerun()


def render(job: Job) -> None:
    st.subheader("Progress")
    view = batch_view(job.events(), job.meta["labels"], job.meta["steps"], job.elapsed, job.running)
    st.progress(view.fraction, text=view.text)
    stop_button(job, key="tr.stop")
    if view.curves:
        st.plotly_chart(transfer_figure(view.curves, title="Validation accuracy per transfer step"), width="stretch")
    if not job.running:
        job_outcome(job, f"Finished {len(view.saved)} run(s), saved to the run store")
    if view.saved:
        rows = [{"run": s.label, "final accuracy": round(s.final_accuracy, 4), "best accuracy": round(s.best_accuracy, 4),
                 "time": fmt_seconds(s.seconds), "stopped": s.stopped, "run id": s.run_id} for s in view.saved]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if len({s.label.split(" · ", 1)[1] for s in view.saved}) > 1:
            st.markdown("**Per method, over the new initializations (mean ± standard deviation)**")
            st.dataframe(method_summary([{"method": s.method, "final_accuracy": s.final_accuracy,
                                          "best_accuracy": s.best_accuracy, "seconds": s.seconds} for s in view.saved]),
                         hide_index=True, width="stretch")
        if not job.running:
            st.page_link("pages/results.py", label="Compare and download on the Results page", icon=":material/monitoring:")


with live:
    if live_job("transfer", render) is None:
        st.subheader("Progress")
        st.info("Press **Run transfer**: the validation accuracy of every run appears here step by step. A running "
                "transfer keeps going while you visit other pages.")
