"""Mode connectivity: interpolation curves with barriers, the 2-D loss plane, and neuron matching."""

import streamlit as st

from app_support import resources, session
from app_support.actions import start_session_job
from app_support.charts import interpolation_figure, matching_figure, plane_figure
from app_support.frame import page_frame
from app_support.jobs import Job
from app_support.landscape_work import NamedSet, interpolation_work, plane_work
from app_support.param_sets import default_keys, resolve, set_options
from app_support.widgets import job_outcome, live_job, reported_errors, stop_button
from lt_core.data import Dataset
from lt_core.landscape import check_compatible, unit_matching
from lt_core.permutation import spec_for

page_frame("Mode connectivity")
st.title("Mode connectivity")
st.caption("Are two networks in the same low-loss valley? Evaluate the straight line (1−α)·a + α·b, the plane "
           "through three networks, and which hidden unit of one matches which of the other.")

store = session.store()
entries = resources.known_trajectories(store)
records = store.list_runs()
options = set_options(entries, records)
by_key = {o.key: o for o in options}
if not options:
    st.info("No parameter sets yet: add a trajectory or run a transfer first.")
    st.stop()
default_a, default_b, default_c = default_keys(records, options)

cols = st.columns(2)
cols[0].selectbox("a", list(by_key), format_func=lambda k: by_key[k].label,
                  key=session.choose("w:mc.a", list(by_key), default_a), help="α = 0; the reference network.")
key_a = st.session_state["w:mc.a"]
same_arch = [k for k, o in by_key.items() if o.model == by_key[key_a].model]
others = [k for k in same_arch if k != key_a]
fallback_b = default_b if default_b in others else (others[0] if others else key_a)
cols[1].selectbox("b", same_arch, format_func=lambda k: by_key[k].label,
                  key=session.choose("w:mc.b", same_arch, fallback_b), help="α = 1 (same architecture as a).")
key_b = st.session_state["w:mc.b"]
cols = st.columns(2)
cols[0].checkbox("Align first", key=session.default("w:mc.align", True),
                 help="Permute the hidden units of b (and c) onto a by weight matching before comparing.")
cols[1].checkbox("Reset BatchNorm statistics", key=session.default("w:mc.reset_bn", True),
                 help="Recompute BatchNorm statistics at every evaluated point (networks with BatchNorm only).")
align_first, reset_bn = st.session_state["w:mc.align"], st.session_state["w:mc.reset_bn"]
device = session.device()


def named(key: str) -> NamedSet:
    return NamedSet(by_key[key].label, resolve(key, store, entries))


def load_sets(*keys: str) -> tuple[list[NamedSet], Dataset]:
    """The chosen sets and the dataset of a (raises LTError when something does not fit)."""
    sets = [named(k) for k in keys]
    check_compatible({name: s.params for name, s in zip("abc", sets)})
    return sets, resources.dataset(sets[0].params.dataset, device)


st.subheader("Interpolation")
cols = st.columns([3, 1], vertical_alignment="bottom")
cols[0].slider("Points on the line", 5, 51, key=session.default("w:mc.points", 21), step=2)
current = session.job("interp")
if cols[1].button("Compute curves", type="primary", icon=":material/play_arrow:",
                  disabled=current is not None and current.running):
    with reported_errors():
        (a, b), data = load_sets(key_a, key_b)
        points = int(st.session_state["w:mc.points"])
        start_session_job("interp", f"interpolation {a.label} → {b.label}",
                          lambda stop: interpolation_work(a, b, data, device, points, reset_bn, align_first, stop),
                          meta={"points": points})
        st.rerun()


def render_curve(job: Job) -> None:
    events = job.events()
    if job.running:
        done = events[-1].step if events else 0
        total = events[-1].total if events else job.meta["points"]
        st.progress(done / max(total, 1), text=f"Interpolating: point {done}/{total}")
        stop_button(job, key="mc.interp.stop", help="Stop (no curve is drawn).")
        return
    if job.result is None:
        job_outcome(job, "", stopped_text="no curve was drawn")
        return
    res = job.result
    st.plotly_chart(interpolation_figure(res["curve"], res["barriers"]), width="stretch")
    text = " · ".join(f"{name.replace('_', ' ')} barrier **{b.height:.4f}** at α = {b.alpha:.2f}"
                      for name, b in res["barriers"].items())
    attrs = res["curve"].attrs
    bn = ("no BatchNorm in these networks" if not attrs.get("batchnorm") else
          "BatchNorm statistics reset at every point" if attrs.get("reset_bn") else "BatchNorm statistics interpolated")
    st.markdown(f"{text}  \n_a = {res['a']}; b = {res['b']}; {bn}._")
    st.download_button("Curve (CSV)", res["curve"].to_csv(index=False), file_name="lt_interpolation.csv",
                       mime="text/csv", icon=":material/download:", key="mc.curve.dl")


live_job("interp", render_curve)

st.subheader("Loss plane")
cols = st.columns([3, 1, 1, 1])
plane_options = [k for k in same_arch if k not in (key_a, key_b)]
if not plane_options:
    st.info("The plane needs a third parameter set of the same architecture.")
else:
    cols[0].selectbox("c", plane_options, format_func=lambda k: by_key[k].label,
                      key=session.choose("w:mc.c", plane_options, default_c))
    cols[1].slider("Resolution", 5, 41, key=session.default("w:mc.resolution", 15), step=2,
                   help="Grid points per side (the cost grows with its square).")
    cols[2].number_input("Margin", min_value=0.0, max_value=2.0, step=0.1, key=session.default("w:mc.margin", 0.25))
    cols[3].radio("Colour by", ["val_loss", "val_acc"], key=session.default("w:mc.plane_metric", "val_loss"),
                  format_func={"val_loss": "loss", "val_acc": "accuracy"}.get)
    current = session.job("plane")
    if st.button("Compute plane", type="primary", icon=":material/play_arrow:",
                 disabled=current is not None and current.running):
        with reported_errors():
            (a, b, c), data = load_sets(key_a, key_b, st.session_state["w:mc.c"])
            resolution, margin = int(st.session_state["w:mc.resolution"]), float(st.session_state["w:mc.margin"])
            start_session_job("plane", f"loss plane {a.label}, {b.label}, {c.label}",
                              lambda stop: plane_work(a, b, c, data, device, resolution, margin, reset_bn,
                                                      align_first, stop),
                              meta={"total": resolution * resolution})
            st.rerun()


def render_plane(job: Job) -> None:
    last = job.last_event()
    if job.running:
        done = last.step if last else 0
        st.progress(done / job.meta["total"], text=f"Evaluating the plane: point {done}/{job.meta['total']}")
        stop_button(job, key="mc.plane.stop", help="Stop (no plane is drawn).")
        return
    if job.result is None:
        job_outcome(job, "", stopped_text="no plane was drawn")
        return
    labels = job.result["labels"]
    st.plotly_chart(plane_figure(job.result["result"], st.session_state.get("w:mc.plane_metric", "val_loss"),
                                 {"a": "a", "b": "b", "c": "c"}), width="stretch")
    st.caption(f"a = {labels['a']} · b = {labels['b']} · c = {labels['c']}")


live_job("plane", render_plane)

st.subheader("Neuron matching")
groups = list(spec_for(by_key[key_a].model).groups)
cols = st.columns([2, 2, 1])
cols[0].selectbox("Layer", groups, key=session.choose("w:mc.layer", groups, groups[0]),
                  help="A group of interchangeable hidden units.")
cols[1].radio("Compare units by", ["activation", "weight"], horizontal=True,
              key=session.default("w:mc.match_method", "activation"),
              help="activation: correlation of unit outputs on validation data · weight: of incoming weights")
inputs = (key_a, key_b, st.session_state["w:mc.layer"], st.session_state["w:mc.match_method"], device)
if cols[2].button("Match units", icon=":material/join_inner:"):
    with reported_errors():
        (a, b), data = load_sets(key_a, key_b)
        with st.spinner("Matching units…"):
            matching = unit_matching(a.params, b.params, inputs[2], data, method=inputs[3], device=device)
        st.session_state["mc.matching"] = (inputs, matching)
stored = st.session_state.get("mc.matching")
if stored is not None:
    done_inputs, matching = stored
    if done_inputs[:4] != inputs[:4]:
        st.caption("Showing the last matching computed (for other choices): press Match units to update it.")
    st.plotly_chart(matching_figure(matching), width="stretch")
    st.caption(f"Layer {matching.layer}: correlation of unit i of a with unit j of b. After alignment a good match "
               "puts high values on the diagonal.")
