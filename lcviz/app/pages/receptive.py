"""Receptive field page: pattern, window, layers, length -> per-layer heatmaps and growth curve."""

import streamlit as st

from lcviz import masks, plots, receptive
from lcviz.app import state

PATTERNS = ("sliding window", "dilated window", "global + local", "strided")
MAX_LENGTH = 4096
HEATMAP_LENGTH = 256  # full (T, T) reachability heatmaps up to this length; beyond, the curve


@st.cache_data(max_entries=128, show_spinner=False)
def field_view(pattern, length, params, layers):
    """(field sizes of the last position per layer, pairs, PNG of the growth curve, PNG of the
    per-layer heatmaps or None when T > HEATMAP_LENGTH) for hashable params."""
    mask = state.cached_mask(pattern, length, params)
    sizes = receptive.reachable_from(mask, length - 1, layers).sum(-1).tolist()
    window = dict(params).get("window") if pattern == "sliding window" else None
    growth = state.png(plots.receptive_growth({pattern: sizes}, window=window,
                                              title=f"Field of position {length - 1}"))
    heatmaps = None
    if length <= HEATMAP_LENGTH:
        heatmaps = state.png(plots.reachability_heatmaps(
            receptive.reachability(mask, min(layers, 4)),
            title="Inputs reaching each output (first 4 layers)"))
    return sizes, masks.attended_pairs(mask), growth, heatmaps


def render():
    left, right = st.columns([1, 2])
    with left:
        pattern = state.choice("pattern", "pattern", list(PATTERNS), "sliding window")
        length = state.int_slider("length T", "length", 2, MAX_LENGTH, 64)
        window = state.int_slider("window w", "window", 1, 1024, 4)
        layers = state.int_slider("layers L", "layers", 1, 12, 4)
        params = {"window": window}
        if pattern == "dilated window":
            params["dilation"] = state.int_slider("dilation d", "dilation", 1, 16, 2)
        if pattern == "global + local":
            params["n_global"] = state.int_slider("global tokens", "n_global", 0, 16, 2)
        if pattern == "strided":
            params = {"stride": window}
    if window > length:
        right.error(f"window w = {window} is larger than the length T = {length}: move the "
                    f"window to at most {length}, or the length up to at least {window}.")
        return
    sizes, pairs, growth, heatmaps = field_view(pattern, length, tuple(sorted(params.items())),
                                                layers)
    with left:
        st.metric(f"inputs reaching position {length - 1} after {layers} layers", f"{sizes[-1]:,}")
        if pattern == "sliding window":
            st.metric("exact L(w−1)+1 (capped at T)",
                      f"{receptive.window_receptive_field(window, layers, length - 1):,}")
            st.caption(f"The naive w·L = {window * layers:,} over-counts by L−1 = {layers - 1}: "
                       "each layer's window includes the position it starts from.")
        st.caption(f"attended pairs per layer: {pairs:,}")
    with right:
        st.image(growth)
        if heatmaps is not None:
            st.image(heatmaps)
        else:
            st.info(f"Per-layer heatmaps are drawn up to T = {HEATMAP_LENGTH}; at T = {length} "
                    "the curve above is computed for the last position only (fast path).")
