"""Masks page: pattern, length and the pattern's parameters -> the mask (hover a cell for its
query, key and whether it may attend), attended pairs, sparsity."""

import streamlit as st

from lcviz import masks, plots
from lcviz.app import state

MAX_LENGTH = 4096
DISPLAY_CELLS = 256  # longer masks are summed into this many cells per side for drawing
PARAM_SLIDERS = {  # parameter -> (label, minimum, maximum); defaults come from MASK_PATTERNS
    "window": ("window w (itself + w-1 before)", 1, 1024),
    "dilation": ("dilation d", 1, 16),
    "stride": ("stride", 1, 1024),
    "summary": ("summary tokens per block", 1, 16),
    "n_global": ("global tokens", 0, 16),
    "n_random": ("random keys per query", 0, 16),
    "seed": ("random seed", 0, 99),
    "block": ("block size", 1, 1024),
    "blocks_back": ("earlier blocks seen", 0, 8),
}
LENGTH_LIKE = ("window", "stride", "block")  # parameters that cannot exceed the length


@st.cache_resource(max_entries=64, show_spinner=False)
def mask_view(pattern, length, params):
    """(plotly figure of the mask, attended pairs, cell size b) for hashable params; masks longer
    than DISPLAY_CELLS are drawn in cells of b x b pairs (hover gives the count)."""
    mask = state.cached_mask(pattern, length, params)
    figure = plots.mask_heatmap_plotly(mask, title=f"{pattern}, T = {length:,}",
                                       max_cells=DISPLAY_CELLS)
    return figure, masks.attended_pairs(mask), -(-length // DISPLAY_CELLS)


def render():
    pattern_column, length_column, *param_columns = st.columns(4)
    with pattern_column:
        pattern = state.choice("pattern", "pattern", list(masks.MASK_PATTERNS), "sliding window")
    with length_column:
        length = state.int_slider("length T", "length", 1, MAX_LENGTH, 64)
    _, spec = masks.MASK_PATTERNS[pattern]
    params = {}
    for column, (name, (default, _)) in zip(param_columns, spec.items()):
        label, low, high = PARAM_SLIDERS[name]
        with column:
            params[name] = state.int_slider(label, name, low, high, default)
    too_long = [f"{name} = {params[name]}" for name in LENGTH_LIKE
                if params.get(name, 0) > length]
    if too_long:
        st.error(f"{', '.join(too_long)} is larger than the length T = {length}: move it to "
                 f"at most {length}, or the length up to at least "
                 f"{max(params[n] for n in LENGTH_LIKE if n in params)}.")
        return
    figure, pairs, cell = mask_view(pattern, length, tuple(sorted(params.items())))
    counts = st.columns(3)
    counts[0].metric("attended pairs", f"{pairs:,}")
    counts[1].metric("of T² (sparsity)", f"{pairs / length**2:.2%}")
    counts[2].metric("dense causal pairs", f"{length * (length + 1) // 2:,}")
    notes = ["Dense causal attention keeps T(T+1)/2 pairs."]
    if pattern == "sliding window":
        w = params["window"]
        notes.append(f"Closed form of the window: w·T − w(w−1)/2 = "
                     f"{masks.sliding_window_pairs(length, w):,}.")
    if cell > 1:
        notes.append(f"Each drawn cell holds {cell} × {cell} query-key pairs (T = {length:,} "
                     f"drawn as {-(-length // cell)} cells a side): hover a cell for how many "
                     "of them may attend.")
    st.caption(" ".join(notes))
    state.plot(figure, key="mask")
