"""Results: overlay stored runs, compare, download, and fine-tune from a transferred point."""

import json

import pandas as pd
import streamlit as st

from app_support import resources, session
from app_support.actions import start_session_job
from app_support.charts import (curves_table, figure_html, figure_png, finetune_figure, fmt_seconds,
                                results_figure)
from app_support.frame import page_frame
from app_support.jobs import Job
from app_support.landscape_work import finetune_work
from app_support.transfer_plan import method_summary
from app_support.widgets import job_outcome, live_job, reported_errors, run_option_label, stop_button
from lt_core.runs import RunRecord
from lt_core.train import TrainConfig

page_frame("Results")
st.title("Results")
store = session.store()
records = store.list_runs()
if not records:
    st.info("No stored runs yet in the run store: run a transfer first.")
    st.page_link("pages/transfer.py", label="Go to Transfer", icon=":material/shuffle:")
    st.stop()

by_id = {r.id: r for r in records}
latest_batch = [r.id for r in records if r.batch == records[0].batch]


def select(ids: list[str]) -> None:
    st.session_state["w:res.runs"] = ids


st.multiselect("Runs to compare", list(by_id), format_func=lambda k: run_option_label(by_id[k]),
               key=session.choose_many("w:res.runs", list(by_id), latest_batch))
cols = st.columns([1, 1, 1, 3])
cols[0].button("Latest batch", on_click=select, args=(latest_batch,), width="stretch")
cols[1].button("All runs", on_click=select, args=(list(by_id),), width="stretch")
cols[2].button("None", on_click=select, args=([],), width="stretch")
chosen: list[RunRecord] = [by_id[k] for k in st.session_state["w:res.runs"]]
if not chosen:
    st.info("Choose one or more runs to compare.")
    st.stop()

cols = st.columns(4)
x_axis = cols[0].radio("x axis", ["lam", "step"], horizontal=True, key=session.default("w:res.x", "lam"),
                       format_func={"lam": "λ along the source", "step": "transfer step"}.get)
metric = cols[1].radio("Metric", ["val_acc", "val_loss"], horizontal=True, key=session.default("w:res.metric", "val_acc"),
                       format_func={"val_acc": "accuracy", "val_loss": "loss"}.get)
show_source = cols[2].checkbox("Source's own checkpoints", key=session.default("w:res.source", True))
show_refs = cols[3].checkbox("Target init / trained lines", key=session.default("w:res.refs", True))
figure = results_figure(chosen, x_axis, metric, show_source, show_refs)
st.plotly_chart(figure, width="stretch")

table = pd.DataFrame([{
    "run": r.label, "source": r.source_name, "steps": f"{r.summary['steps']}/{r.summary['planned_steps']}",
    "final accuracy": round(r.final_accuracy, 4), "best accuracy": round(r.best_accuracy, 4),
    "best step": r.summary["best_step"], "init accuracy": round(r.summary["target_init_accuracy"], 4),
    "time": fmt_seconds(r.seconds), "stopped": r.stopped, "created": r.created.replace("T", " ")[:19], "run id": r.id}
    for r in chosen])
st.dataframe(table, hide_index=True, width="stretch")
summary_rows = [{"method": r.method, "final_accuracy": r.final_accuracy, "best_accuracy": r.best_accuracy,
                 "seconds": r.seconds} for r in chosen]
if len(chosen) > len({r.method for r in chosen}):
    st.markdown("**Per method (mean ± standard deviation over the chosen runs)**")
    st.dataframe(method_summary(summary_rows), hide_index=True, width="stretch")

st.subheader("Downloads")
cols = st.columns(4)
cols[0].download_button("Curves (CSV)", curves_table(chosen).to_csv(index=False), file_name="lt_curves.csv",
                        mime="text/csv", icon=":material/download:", width="stretch")
cols[1].download_button("Runs and curves (JSON)", json.dumps([r.data for r in chosen], indent=1),
                        file_name="lt_runs.json", mime="application/json", icon=":material/download:", width="stretch")
cols[2].download_button("Chart (HTML)", lambda: figure_html(figure), file_name="lt_chart.html", mime="text/html",
                        icon=":material/download:", width="stretch")
if cols[3].button("Prepare chart PNG", icon=":material/image:", width="stretch"):
    try:
        st.session_state["res.png"] = figure_png(figure)
    except Exception as exc:  # kaleido needs a local Chrome/Chromium; without one PNG export is unavailable
        st.session_state.pop("res.png", None)
        st.warning(f"PNG export is not available on this server ({type(exc).__name__}: {exc}). Download the HTML "
                   "chart instead: its camera button saves a PNG.")
if "res.png" in st.session_state:
    cols[3].download_button("Chart (PNG)", st.session_state["res.png"], file_name="lt_chart.png", mime="image/png",
                            icon=":material/download:", width="stretch")

cols = st.columns([2, 1, 1, 1, 1])
file_run = cols[0].selectbox("Files of run", [r.id for r in chosen], format_func=lambda k: by_id[k].label,
                             key=session.choose("w:res.file_run", [r.id for r in chosen]))
for col, name, label in ((cols[1], "final", "Final params"), (cols[2], "best", "Best params"),
                         (cols[3], "init", "Init params"), (cols[4], "perms", "Permutations")):
    col.download_button(label, lambda name=name: store.run_file(file_run, name).read_bytes(),
                        file_name=f"{file_run}_{name}.safetensors", mime="application/octet-stream",
                        key=f"res.dl.{name}", icon=":material/download:", width="stretch")
st.caption("Parameter files are LT Explorer .safetensors (load with lt_core.trajectory.load_params); permutations "
           "hold final.GROUP and step.T.GROUP index tensors.")



def delete_chosen() -> None:
    for r in chosen:
        store.delete_run(r.id)
    st.session_state["w:res.runs"] = []


with st.expander("Delete runs"):
    confirm = st.checkbox(f"Yes, delete the {len(chosen)} chosen run(s) from {store.transfers_dir}")
    st.button("Delete chosen runs", disabled=not confirm, icon=":material/delete:", on_click=delete_chosen)

st.subheader("Fine-tuning comparison")
st.caption("Train from the transferred parameters and from the plain new initialization side by side: transfer "
           "pays off when the first curve reaches a given accuracy in fewer epochs.")
cols = st.columns([2, 1, 1, 1, 1])
ft_run = cols[0].selectbox("Run", [r.id for r in chosen], format_func=lambda k: by_id[k].label,
                           key=session.choose("w:res.ft_run", [r.id for r in chosen]))
start_from = cols[1].selectbox("Start from", ["final", "best"], key=session.choose("w:res.ft_start", ["final", "best"]))
cols[2].number_input("Epochs", min_value=1, max_value=200, step=1, key=session.default("w:res.ft_epochs", 5))
cols[3].number_input("Learning rate", min_value=1e-6, max_value=10.0, step=0.01, format="%.4f",
                     key=session.default("w:res.ft_lr", 0.05))
cols[4].number_input("Batch size", min_value=1, max_value=8192, step=32, key=session.default("w:res.ft_batch", 128))

current = session.job("finetune")
if st.button("Fine-tune", icon=":material/play_arrow:", disabled=current is not None and current.running):
    with reported_errors():
        run = resources.stored_run(store, ft_run)
        dataset = resources.dataset(run.record.data["source"]["dataset"], session.device())
        config = TrainConfig(epochs=int(st.session_state["w:res.ft_epochs"]), lr=float(st.session_state["w:res.ft_lr"]),
                             batch_size=int(st.session_state["w:res.ft_batch"]))
        config.validate()
        start = run.final if start_from == "final" else run.best
        device = session.device()
        start_session_job("finetune", f"fine-tuning {run.record.label}",
                          lambda should_stop: finetune_work(store, ft_run, start, run.init, start_from, dataset,
                                                            config, device, should_stop),
                          meta={"run": ft_run, "epochs": config.epochs, "label": run.record.label})
        st.rerun()


def render(job: Job) -> None:
    events = job.events()
    epochs = job.meta["epochs"]
    done = events[-1].epoch if events else 0
    st.progress(done / epochs, text=f"Fine-tuning {job.meta['label']}: epoch {done}/{epochs}")
    stop_button(job, key="res.ft.stop", help="Stop the comparison (nothing is saved).")
    if events:
        curves = {"epochs": [e.epoch for e in events], "acc_transferred": [e.acc_transferred for e in events],
                  "acc_init": [e.acc_init for e in events]}
        st.plotly_chart(finetune_figure(curves, f"Fine-tuning {job.meta['label']}"), width="stretch")
    if not job.running:
        job_outcome(job, "Fine-tuning finished and saved with the run", stopped_text="nothing was saved")


job = live_job("finetune", render)
if job is None or job.meta["run"] != ft_run:
    saved = store.load_attachment(ft_run, "finetune")
    if saved:
        st.plotly_chart(finetune_figure(saved["curves"], f"Fine-tuning {by_id[ft_run].label} (from its {saved['start']} "
                                                         f"point, {saved['config']['epochs']} epochs, saved)"),
                        width="stretch")
