"""Trajectories: pick a bundled or stored one, upload a .safetensors trajectory, or train a new one."""

from pathlib import Path

import streamlit as st

from app_support import resources, session
from app_support.actions import start_training
from app_support.charts import metrics_figure
from app_support.frame import page_frame
from app_support.jobs import Job
from app_support.resources import TrajectoryEntry
from app_support.uploads import read_upload
from app_support.widgets import (job_outcome, live_job, or_stop, reported_errors, stop_button, trajectory_picker,
                                 trajectory_summary)
from lt_core.data import DATASETS
from lt_core.errors import LTError
from lt_core.models import ACTIVATIONS, ARCHITECTURES, describe, make_config
from lt_core.train import TrainConfig

MODES = {"pick": "Bundled or stored", "upload": "Upload a file", "train": "Train a new one"}

page_frame("Trajectories")
st.title("Trajectories")
st.caption("A trajectory is a network's training recorded as checkpoints (one .safetensors file). Uploaded and "
           "trained trajectories are saved to the run store, so they survive reloads.")

store = session.store()
mode = st.radio("Trajectory", list(MODES), format_func=MODES.get, horizontal=True, label_visibility="collapsed",
                key=session.default("w:traj.mode", "pick"))


def show(entry_id: str) -> None:
    """Summary of a known trajectory, with shortcuts to use or download it."""
    entries = {e.id: e for e in resources.known_trajectories(store)}
    entry = entries.get(entry_id)
    if entry is None:
        return
    trajectory_summary(entry, or_stop(lambda: resources.trajectory(entry)))
    actions(entry)


def actions(entry: TrajectoryEntry) -> None:
    cols = st.columns([3, 2, 2, 3])
    if cols[0].button("Use as transfer source", key=f"traj.use.{entry.id}", icon=":material/shuffle:"):
        st.session_state["w:tr.source"] = entry.id
        st.switch_page("pages/transfer.py")
    cols[1].download_button("Download file", Path(entry.path).read_bytes(), file_name=f"{entry.name}.safetensors",
                            mime="application/octet-stream", key=f"traj.dl.{entry.id}", icon=":material/download:")
    if entry.origin != "bundled" and cols[2].button("Delete from store", key=f"traj.del.{entry.id}",
                                                    icon=":material/delete:"):
        store.delete_trajectory(entry.id)
        st.rerun()


if mode == "pick":
    entry = trajectory_picker("Trajectory", "w:traj.view", resources.known_trajectories(store))
    if entry is not None:
        show(entry.id)

elif mode == "upload":
    upload = st.file_uploader("Trajectory file (.safetensors)", key="traj.upload",
                              help="An LT Explorer trajectory: tensors ckpt.K.NAME plus a JSON header. Record one "
                                   "with lt_core.trajectory.TrajectoryRecorder or `python -m lt_core train`.")
    if upload is not None:
        data = upload.getvalue()
        with reported_errors():
            read_upload(data, upload.name, "trajectory")
            record = store.save_trajectory(data, Path(upload.name).stem, "uploaded")
            st.success(f"Saved {upload.name} to the run store as “{record.name}”.")
            show(record.id)

else:
    cols = st.columns(3)
    dataset_name = cols[0].selectbox("Dataset", DATASETS, key=session.choose("w:traj.dataset", DATASETS, "digits"),
                                     help="digits is bundled; the others are read from $LT_DATA_ROOT (./data).")
    arch = cols[1].selectbox("Architecture", ARCHITECTURES, key=session.choose("w:traj.arch", ARCHITECTURES, "mlp"))
    activation = cols[2].selectbox("Activation", list(ACTIVATIONS),
                                   key=session.choose("w:traj.activation", list(ACTIVATIONS), "relu"))
    cols = st.columns(3)
    if arch == "mlp":
        cols[0].number_input("Width", min_value=1, max_value=8192, step=32, key=session.default("w:traj.width", 128))
        cols[1].number_input("Hidden layers", min_value=1, max_value=16, step=1, key=session.default("w:traj.depth", 2))
    elif arch == "conv":
        cols[0].text_input("Channels per block", key=session.default("w:traj.channels", "32, 64"),
                           help="Comma-separated, e.g. 32, 64, 128")
        cols[1].checkbox("BatchNorm", key=session.default("w:traj.batchnorm", True))
        cols[2].selectbox("Head", ["gap", "flatten"], key=session.choose("w:traj.head", ["gap", "flatten"], "gap"))
    else:
        cols[0].number_input("Width multiplier", min_value=1, max_value=16, step=1,
                             key=session.default("w:traj.width_multiplier", 1))
        cols[1].number_input("Blocks per stage", min_value=1, max_value=8, step=1,
                             key=session.default("w:traj.blocks", 1))
    cols = st.columns(5)
    cols[0].number_input("Epochs", min_value=1, max_value=500, step=1, key=session.default("w:traj.epochs", 10))
    cols[1].number_input("Learning rate", min_value=1e-6, max_value=10.0, step=0.01, format="%.4f",
                         key=session.default("w:traj.lr", 0.05))
    cols[2].number_input("Batch size", min_value=1, max_value=8192, step=32, key=session.default("w:traj.batch_size", 128))
    cols[3].number_input("Seed", min_value=0, step=1, key=session.default("w:traj.seed", 0))
    cols[4].number_input("Checkpoints per epoch", min_value=1, max_value=20, step=1,
                         key=session.default("w:traj.per_epoch", 1))
    st.selectbox("Optimizer", ["sgd", "adam"], key=session.choose("w:traj.optimizer", ["sgd", "adam"], "sgd"))

    def model_options() -> dict:
        state = st.session_state
        if arch == "mlp":
            return {"width": int(state["w:traj.width"]), "depth": int(state["w:traj.depth"]), "activation": activation}
        if arch == "conv":
            try:
                channels = [int(c) for c in state["w:traj.channels"].replace(";", ",").split(",") if c.strip()]
            except ValueError:
                raise LTError("channels must be whole numbers separated by commas, e.g. 32, 64") from None
            return {"channels": channels, "batchnorm": bool(state["w:traj.batchnorm"]), "head": state["w:traj.head"],
                    "activation": activation}
        return {"width_multiplier": int(state["w:traj.width_multiplier"]),
                "blocks_per_stage": int(state["w:traj.blocks"]), "activation": activation}

    current = session.job("train")
    if st.button("Train", type="primary", icon=":material/play_arrow:", disabled=current is not None and current.running):
        with reported_errors():
            state = st.session_state
            data = resources.dataset(dataset_name, session.device())
            model_config = make_config(arch, data.input_shape, data.num_classes, **model_options())
            config = TrainConfig(optimizer=state["w:traj.optimizer"], lr=float(state["w:traj.lr"]),
                                 epochs=int(state["w:traj.epochs"]), batch_size=int(state["w:traj.batch_size"]),
                                 seed=int(state["w:traj.seed"]), checkpoints_per_epoch=int(state["w:traj.per_epoch"]))
            name = f"{dataset_name} {describe(model_config)} seed {config.seed}"
            start_training(model_config, data, config, session.device(), store, name)
            st.rerun()

    def render(job: Job) -> None:
        events = job.events()
        epochs = job.meta["epochs"]
        done = events[-1].epoch if events else 0
        eta = job.elapsed / done * (epochs - done) if done else None
        text = f"epoch {done}/{epochs}" + (f" · ETA {eta:.0f} s" if eta is not None and job.running else "")
        st.progress(done / epochs, text=f"Training {job.meta['name']}: {text}")
        stop_button(job, key="traj.stop", help="End the training after the current step; the checkpoints so far "
                                              "are saved as a trajectory.")
        if events and job.result is None:
            rows = [{"epoch": e.epoch, "val_acc": e.val_acc, "val_loss": e.val_loss, "train_loss": e.train_loss}
                    for e in events]
            st.plotly_chart(metrics_figure(rows, "epoch", "Training progress"), width="stretch")
        if not job.running:
            job_outcome(job, f"Trained and saved “{job.meta['name']}” to the run store",
                        stopped_text="the checkpoints so far were saved as a trajectory")
            if job.result is not None:
                show(job.result.id)

    live_job("train", render)
