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
    work = plots.ring_work(counts, step=step, title=f"Pairs per rank and step ({layout})",
                           height=430 + 35 * max(0, world - 4))  # rows of two text lines
    pairs = plots.ring_step_pairs(length, world, layout, step, causal)
    pairs.update_layout(title_text=f"Step {step}: who computes each score")
    pairs.update_xaxes(constrain="domain")  # a square map, no empty key range beside it
    pairs.update_yaxes(constrain="domain")
    diagram = plots.ring_diagram(world, step)
    if world > 1:  # the page says what a step does above the figure; the title stays short
        diagram.update_layout(title_text=f"Step {step}: the ring")
    return counts, ratios, diagram, work, pairs


def render():
    sliders = st.columns(3)
    with sliders[0]:
        world = state.int_slider("ranks W", "world", 1, MAX_WORLD, 4)
    with sliders[1]:
        length = state.int_slider("length T", "length", 1, MAX_LENGTH, 32)
    with sliders[2]:
        if world > 1:
            step = state.int_slider("step", "step", 0, world - 1, 0)
        else:
            step = 0
            st.caption("One rank: a single step, nothing travels.")
    choices = st.columns(3)
    with choices[0]:
        layout = state.choice("layout", "layout", list(ring.LAYOUTS), "contiguous")
    with choices[1]:
        mask = state.choice("mask", "causal", list(MASKS), "causal")
    if world > length:
        st.error(f"W = {world} ranks for T = {length} tokens: every rank needs at least one "
                 f"token. Move the length to at least {world} or the ranks to at most {length}.")
        return
    causal = mask == "causal"
    counts, ratios, diagram, work, pairs = ring_view(world, layout, causal, length, step)
    totals = counts.sum(1)
    numbers = st.columns(2)
    numbers[0].metric(f"pairs computed at step {step}", f"{int(counts[:, step].sum()):,}",
                      help="over all ranks")
    numbers[1].metric("busiest / idlest rank (whole ring)", f"{ratios[layout]:.2f}×",
                      help="total pairs of the busiest rank over those of the idlest")
    st.caption(" · ".join(f"{name}: {ratio:.2f}×" for name, ratio in ratios.items()))
    st.caption(f"Each step takes as long as its busiest rank: {layout} keeps "
               f"{totals.sum().item() / (world * counts.max(0).values.sum().item()):.0%} "
               "of the ranks' time busy.")
    if world > 1:
        st.markdown(f"**Step {step}**: each rank attends with its queries to the key/value block "
                    "it holds, then passes that block to rank + 1.")
    state.plot(diagram, key="diagram")
    st.markdown("**Work table**: the key/value block each rank holds at each step and the "
                f"query-key pairs it computes there ({layout} layout; step {step} framed).")
    state.plot(work, key="work")
    st.markdown(f"**Score matrix at step {step}**: each pair computed now, coloured by the rank "
                "computing it; grey pairs are computed at another step.")
    state.plot(pairs, key="pairs")
    st.caption("Positions are global: with striped and zigzag layouts a rank's queries are "
               "scattered rows, and every mask (and RoPE) must use these positions.")
