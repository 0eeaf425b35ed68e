"""Receptive field page: pattern, window, layers, length -> the growth curve of the last
position's field and, up to 256 tokens, after how many layers each input reaches each output."""

import streamlit as st

from lcviz import masks, plots, receptive
from lcviz.app import state

PATTERNS = ("sliding window", "dilated window", "global + local", "strided")
MAX_LENGTH = 4096
HEATMAP_LENGTH = 256  # the (T, T) reachability heatmap up to this length; beyond, the curve


@st.cache_resource(max_entries=64, show_spinner=False)
def field_view(pattern, length, params, layers):
    """(field sizes of the last position per layer, pairs, growth figure, reachability figure or
    None when T > HEATMAP_LENGTH) for hashable params."""
    mask = state.cached_mask(pattern, length, params)
    sizes = receptive.reachable_from(mask, length - 1, layers).sum(-1).tolist()
    window = dict(params).get("window") if pattern == "sliding window" else None
    growth = plots.receptive_growth_plotly({pattern: sizes}, window=window,
                                           title=f"Inputs that reach position {length - 1}")
    heatmap = None
    if length <= HEATMAP_LENGTH:
        heatmap = plots.reachability_plotly(receptive.reachability(mask, layers))
    return sizes, masks.attended_pairs(mask), growth, heatmap


def render():
    columns = st.columns(5)
    with columns[0]:
        pattern = state.choice("pattern", "pattern", list(PATTERNS), "sliding window")
    with columns[1]:
        length = state.int_slider("length T", "length", 2, MAX_LENGTH, 64)
    with columns[2]:
        window = state.int_slider("window w", "window", 1, 1024, 4)
    with columns[3]:
        layers = state.int_slider("layers L", "layers", 1, 12, 4)
    params = {"window": window}
    with columns[4]:
        if pattern == "dilated window":
            params["dilation"] = state.int_slider("dilation d", "dilation", 1, 16, 2)
        if pattern == "global + local":
            params["n_global"] = state.int_slider("global tokens", "n_global", 0, 16, 2)
    if pattern == "strided":
        params = {"stride": window}
    if window > length:
        st.error(f"window w = {window} is larger than the length T = {length}: move the "
                 f"window to at most {length}, or the length up to at least {window}.")
        return
    sizes, pairs, growth, heatmap = field_view(pattern, length, tuple(sorted(params.items())),
                                               layers)
    counts = st.columns(3)
    counts[0].metric("inputs reaching the last position", f"{sizes[-1]:,}")
    notes = [f"Position {length - 1} after {layers} layers; {pairs:,} attended pairs per layer."]
    if pattern == "sliding window":
        counts[1].metric("exact L(w−1)+1", f"{receptive.window_receptive_field(window, layers, length - 1):,}")
        counts[2].metric("naive w·L", f"{window * layers:,}")
        notes.append(f"The exact formula is capped at T; the naive w·L over-counts by L−1 = "
                     f"{layers - 1}: each layer's window includes the position it starts from.")
    st.caption(" ".join(notes))
    state.plot(growth, key="growth")
    if heatmap is not None:
        state.plot(heatmap, key="reach")
    else:
        st.info(f"The layer-by-layer heatmap is drawn up to T = {HEATMAP_LENGTH}; at "
                f"T = {length:,} the curve above is computed for the last position only.")
