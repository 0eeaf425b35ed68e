"""Ring attention page: ranks W, layout, causal or not, length and step -> the ring at that step
(which key/value block each rank holds), the score entries each rank computes at that step, and
the work table (pairs per rank and step) with each layout's imbalance."""

import streamlit as st

from lcviz import plots, ring
from lcviz.app import state

MAX_WORLD = 8
MAX_LENGTH = 256  # the (T, T) map of who computes what stays readable (and small) up to here
MASKS = ("causal", "bidirectional")


@st.cache_resource(max_entries=128, show_spinner=False)
def ring_view(world, layout, causal, length, step):
    """(work table (W, W), per-layout max/min ratio of the total work per rank, ring diagram,
    work heatmap, pair map) for one setting."""
    counts = ring.pairs_per_step(length, world, layout, causal)
    ratios = {}
    for name in ring.LAYOUTS:
        totals = ring.pairs_per_step(length, world, name, causal).sum(1)
        ratios[name] = (totals.max() / totals.min()).item()
    work = plots.ring_work(counts, step=step, title=f"Pairs per rank and step ({layout})")
    pairs = plots.ring_step_pairs(length, world, layout, step, causal)
    return counts, ratios, plots.ring_diagram(world, step), work, pairs


def render():
    left, right = st.columns([1, 2])
    with left:
        world = state.int_slider("ranks W", "world", 1, MAX_WORLD, 4)
        layout = state.choice("layout", "layout", list(ring.LAYOUTS), "contiguous")
        mask = state.choice("mask", "causal", list(MASKS), "causal")
        length = state.int_slider("length T", "length", 1, MAX_LENGTH, 32)
        if world > 1:
            step = state.int_slider("step", "step", 0, world - 1, 0)
        else:
            step = 0
            st.caption("One rank: a single step, nothing travels.")
    if world > length:
        right.error(f"W = {world} ranks for T = {length} tokens: every rank needs at least one "
                    f"token. Move the length to at least {world} or the ranks to at most {length}.")
        return
    causal = mask == "causal"
    counts, ratios, diagram, work, pairs = ring_view(world, layout, causal, length, step)
    totals = counts.sum(1)
    with left:
        st.metric(f"pairs computed at step {step}", f"{int(counts[:, step].sum()):,}",
                  help="over all ranks")
        st.metric("busiest / idlest rank (whole ring)", f"{ratios[layout]:.2f}×")
        st.caption(" · ".join(f"{name}: {ratio:.2f}×" for name, ratio in ratios.items()))
        st.caption(f"Each step takes as long as its busiest rank: {layout} keeps "
                   f"{totals.sum().item() / (world * counts.max(0).values.sum().item()):.0%} "
                   "of the ranks' time busy.")
    with right:
        state.plot(diagram, key="diagram")
        state.plot(work, key="work")
        state.plot(pairs, key="pairs")
        st.caption("Positions are global: with striped and zigzag layouts a rank's queries are "
                   "scattered rows, and every mask (and RoPE) must use these positions.")
