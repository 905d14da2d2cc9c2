"""Reading files a user uploads: validated by lt_core, never unpickled, errors as ``InvalidFile``."""

from __future__ import annotations

import streamlit as st

from lt_core.errors import InvalidFile
from lt_core.trajectory import ParamFile, Trajectory, load_any, load_trajectory


@st.cache_resource(show_spinner="Checking the file…", max_entries=8)
def _parse(data: bytes, name: str, kind: str) -> Trajectory | ParamFile:
    if kind == "trajectory":
        return load_trajectory(data, name)
    return load_any(data, name)


def read_upload(data: bytes, name: str, kind: str = "any") -> Trajectory | ParamFile:
    """Parse uploaded bytes as a trajectory (``kind="trajectory"``) or either kind of LT Explorer file.

    Raises ``InvalidFile`` with a message saying what is wrong (pickles, random bytes, a parameter
    file where a trajectory is needed, shapes that do not fit the architecture…).
    """
    if not data:
        raise InvalidFile(f"{name} is empty: choose a .safetensors trajectory or parameter file")
    return _parse(bytes(data), name, kind)
