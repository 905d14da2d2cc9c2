"""LT Explorer: Streamlit entry point (the full app lands with the app issue)."""

import streamlit as st

from lt_core.data import load_dataset

st.set_page_config(page_title="LT Explorer", layout="wide")
st.title("LT Explorer")
st.write("Learning transfer and mode connectivity for neural networks. The library `lt_core` is ready; "
         "the interactive pages are on their way.")
st.write(load_dataset("digits").describe())
