"""Support code for the Streamlit app: session state, cached resources, background jobs, charts.

``lt_core`` knows nothing about Streamlit; this package is the thin layer the pages share.
"""
