"""Masks page: pattern, length and the pattern's parameters -> heatmap, attended pairs, sparsity."""

import streamlit as st
import torch

from lcviz import masks, plots
from lcviz.app import state

MAX_LENGTH = 4096
DISPLAY_CELLS = 512  # longer masks are max-pooled to this many cells per side for drawing
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


@st.cache_data(max_entries=128, show_spinner=False)
def mask_view(pattern, length, params):
    """(PNG of the mask heatmap, attended pairs) for hashable params. Masks longer than 512 are
    max-pooled for drawing: a drawn cell is dark when any pair inside it is kept."""
    mask = state.cached_mask(pattern, length, params)
    drawn = mask.float()[None]
    if length > DISPLAY_CELLS:
        drawn = torch.nn.functional.adaptive_max_pool2d(drawn, DISPLAY_CELLS)
    title = f"{pattern}, T = {length}" + ("" if length <= DISPLAY_CELLS else
                                         f" (drawn max-pooled to {DISPLAY_CELLS}²)")
    return state.png(plots.mask_heatmap(drawn[0].numpy(), title=title)), masks.attended_pairs(mask)


def render():
    left, right = st.columns([1, 2])
    with left:
        pattern = state.choice("pattern", "pattern", list(masks.MASK_PATTERNS), "sliding window")
        length = state.int_slider("length T", "length", 1, MAX_LENGTH, 64)
        _, spec = masks.MASK_PATTERNS[pattern]
        params = {}
        for name, (default, _) in spec.items():
            label, low, high = PARAM_SLIDERS[name]
            params[name] = state.int_slider(label, name, low, high, default)
    too_long = [f"{name} = {params[name]}" for name in LENGTH_LIKE
                if params.get(name, 0) > length]
    if too_long:
        right.error(f"{', '.join(too_long)} is larger than the length T = {length}: move it to "
                    f"at most {length}, or the length up to at least "
                    f"{max(params[n] for n in LENGTH_LIKE if n in params)}.")
        return
    image, pairs = mask_view(pattern, length, tuple(sorted(params.items())))
    right.image(image, width="content")
    with left:
        st.metric("attended pairs", f"{pairs:,}")
        st.metric("of T² (sparsity)", f"{pairs / length**2:.2%}")
        st.metric("dense causal pairs T(T+1)/2", f"{length * (length + 1) // 2:,}")
        if pattern == "sliding window":
            w = params["window"]
            st.caption(f"Closed form w·T − w(w−1)/2 = {masks.sliding_window_pairs(length, w):,}")
