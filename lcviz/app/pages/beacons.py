"""Beacons page: length, chunk size, ratio (only the divisors of the chunk) -> the beacon mask,
the KV budget it keeps, and the equal-budget comparison of notebook 07 for the chosen ratio
(data/bench-beacons.json).
"""

import streamlit as st

from lcviz import beacons, plots
from lcviz.app import state
from lcviz.checkpoints import load_results

HEATMAP_LENGTH = 128  # the mask is drawn up to this many raw tokens


def divisors(n):
    return [r for r in range(1, n + 1) if n % r == 0]


@st.cache_resource(max_entries=128, show_spinner=False)
def mask_figure(length, chunk, ratio, coverage):
    layout = beacons.beacon_layout(length, chunk, ratio, coverage)
    return plots.beacon_mask_plotly(
        layout, beacons.beacon_mask(layout),
        title=f"{length} tokens + {layout.length - length} beacons")


@st.cache_data(show_spinner=False)
def comparison():
    """The saved equal-budget comparison, or None when data/bench-beacons.json is missing."""
    try:
        return load_results("beacons")
    except FileNotFoundError:
        return None


def render():
    columns = st.columns(3)
    with columns[0]:
        length = state.int_slider("length (raw tokens)", "length", 8, 4096, 128)
    with columns[1]:
        chunk = state.int_slider("chunk size", "chunk", 2, 256, 16)
    with columns[2]:
        ratio = state.option_slider("condensing ratio (divides the chunk)", "ratio",
                                    divisors(chunk), 4 if chunk % 4 == 0 else chunk)
    coverage = state.choice("what a beacon reads", "coverage", beacons.COVERAGES, "stepwise",
                            format_func={"stepwise": "stepwise (beacon j: first (j+1)·ratio tokens)",
                                         "full": "its whole chunk"}.get)
    kv = beacons.kv_entries(length, chunk, ratio)
    counts = st.columns(3)
    counts[0].metric("KV entries kept", f"{kv:,}")
    counts[1].metric("of full attention's", f"{kv / length:.0%}")
    counts[2].metric("beacons per chunk", f"{chunk // ratio}")
    st.caption(f"The last token attends to {chunk // ratio} beacons per finished chunk of {chunk} "
               f"tokens + the raw tokens of its own chunk: {kv:,} of {length:,} entries. A "
               f"sliding window with the same budget would keep the last {kv:,} tokens and "
               "forget the rest.")
    if length <= HEATMAP_LENGTH:
        state.plot(mask_figure(length, chunk, ratio, coverage), key="mask")
    else:
        st.info(f"The mask is drawn up to {HEATMAP_LENGTH} tokens; the budget above is exact at "
                f"{length:,}.")
    results = comparison()
    if results is None:
        st.info("No saved comparison: `python -m lcviz.bench beacons` measures it.")
        return
    shown = results["comparison"].get(str(ratio)) if chunk == results["chunk"] else None
    if shown is None:
        st.info(f"The trained beacon models read chunks of {results['chunk']} at ratios "
                f"{', '.join(results['comparison'])}; choose one of those to see them against "
                "the other methods.")
        return
    st.markdown(f"**Same KV budget, {results['length']}-token prompts, {results['n']} per band.** "
                "Beacons (3 training runs pooled) against a sliding-window model trained with "
                "that window, full attention keeping only the recent entries, H2O and TOVA "
                "eviction, and SnapKV, which chooses after reading the question.")
    state.plot(plots.equal_budget_plotly(shown, ratio), key="comparison")
