"""LT Explorer, the Streamlit app. Run: streamlit run app.py

This file is the Home page (what learning transfer is, a picture, a one-click first transfer); the
other pages are the files in pages/. Every page starts with the shared frame (sidebar, settings).
"""

import streamlit as st

from app_support import session
from app_support.actions import DEMO_METHODS, DEMO_SOURCE, DEMO_STEPS, DEMO_TARGET, demo_plan, start_transfer
from app_support.diagram import learning_transfer_diagram
from app_support.frame import page_frame
from app_support.widgets import reported_errors

page_frame("Home")
st.title("LT Explorer")
st.markdown(
    "**Learning transfer** replays the training of one neural network from a *different* starting point, "
    "without training it. Hidden units of a network can be permuted without changing what it computes, so "
    "the source's training steps θ₁ᵗ − θ₁⁰ can be copied onto a new initialization θ₂⁰ once the two networks' "
    "units are lined up: θ₂ᵗ = θ₂⁰ + π_t(θ₁ᵗ − θ₁⁰). **GMT** chooses the permutation π_t by matching the "
    "gradients of both networks along the way (**FGMT** is its fast variant); **naive** copies the steps "
    "without permuting and **oracle** aligns with the real trained target. Afterwards, **mode connectivity** "
    "shows whether the result lies in the same low-loss valley as the trained network. "
    "(D. Chijiwa, *Transferring Learning Trajectories of Neural Networks*, ICLR 2024.)"
)
st.plotly_chart(learning_transfer_diagram(), width="stretch", config={"staticPlot": True})

st.subheader("First transfer")
st.markdown(
    f"Transfer the bundled MLP trained on 8×8 digits (`{DEMO_SOURCE}`) onto the initialization of a second "
    f"run (`{DEMO_TARGET}`) with {', '.join(DEMO_METHODS)}, {DEMO_STEPS} steps each. It takes well under a "
    "minute on a laptop CPU and needs no download."
)
current = session.job("transfer")
running = current is not None and current.running
if st.button("Run the demo transfer", type="primary", disabled=running, icon=":material/play_arrow:"):
    with reported_errors():
        start_transfer(demo_plan(session.device()), session.store())
        st.switch_page("pages/transfer.py")
if running:
    st.info("A transfer is running: follow it on the Transfer page.")

st.subheader("How to use it")
st.markdown(
    "1. **Trajectories** — pick a bundled trajectory, upload your own `.safetensors` trajectory, or train one.\n"
    "2. **Transfer** — choose the source and the new initialization(s), the methods and steps; watch the "
    "accuracy grow step by step, stop at any time.\n"
    "3. **Results** — overlay any stored runs, compare with the source and the trained target, download "
    "curves, parameters and permutations, and fine-tune from a transferred point.\n"
    "4. **Mode connectivity** — loss and accuracy on the line between two networks (with barrier heights), "
    "the loss plane through three networks, and which neuron matched which."
)
cols = st.columns(4)
cols[0].page_link("pages/trajectories.py", label="Trajectories", icon=":material/timeline:")
cols[1].page_link("pages/transfer.py", label="Transfer", icon=":material/shuffle:")
cols[2].page_link("pages/results.py", label="Results", icon=":material/monitoring:")
cols[3].page_link("pages/mode_connectivity.py", label="Mode connectivity", icon=":material/landscape:")
