"""Beacons page: length, chunk size, ratio (only the divisors of the chunk) -> the beacon mask,
the KV budget it keeps, and the shipped beacon models' recorded accuracy per ratio (notebook 07).
"""

import streamlit as st

from lcviz import beacons, plots
from lcviz.app import state
from lcviz.checkpoints import load_info
from lcviz.recipes import RECIPES

HEATMAP_LENGTH = 128  # the mask is drawn up to this many raw tokens
BEACON_MODELS = [name for name, recipe in RECIPES.items() if recipe.topic == "beacons"]


def divisors(n):
    return [r for r in range(1, n + 1) if n % r == 0]


@st.cache_resource(max_entries=128, show_spinner=False)
def mask_figure(length, chunk, ratio):
    layout = beacons.beacon_layout(length, chunk, ratio)
    return plots.beacon_mask_plotly(
        layout, beacons.beacon_mask(layout),
        title=f"{length} tokens + {layout.length - length} beacons")


@st.cache_data(show_spinner=False)
def recorded_accuracy():
    """{model label: {ratio: (whole-key accuracy, prompts)}} of the beacon checkpoints in data/
    that recorded accuracy per ratio (labels from their config: layers and chunk)."""
    models = {}
    for name in BEACON_MODELS:
        try:
            info = load_info(name)
        except FileNotFoundError:
            continue
        by_ratio = info.get("metrics", {}).get("by_ratio") or {}
        config = info.get("config", {})
        chunk = (info.get("beacon") or {}).get("chunk")
        label = f"{name}: {config.get('n_layer', '?')} layers" + (f", chunk {chunk}" if chunk else "")
        models[label] = {int(r): (m["key"], m.get("eval", {}).get("n", 0))
                         for r, m in by_ratio.items() if "key" in m}
    return {label: cells for label, cells in models.items() if cells}


def render():
    columns = st.columns(3)
    with columns[0]:
        length = state.int_slider("length (raw tokens)", "length", 8, 4096, 128)
    with columns[1]:
        chunk = state.int_slider("chunk size", "chunk", 2, 256, 16)
    with columns[2]:
        ratio = state.option_slider("condensing ratio (divides the chunk)", "ratio",
                                    divisors(chunk), 4 if chunk % 4 == 0 else chunk)
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
        state.plot(mask_figure(length, chunk, ratio), key="mask")
    else:
        st.info(f"The mask is drawn up to {HEATMAP_LENGTH} tokens; the budget above is exact at "
                f"{length:,}.")
    models = recorded_accuracy()
    if models:
        state.plot(plots.accuracy_by_ratio_plotly(models), key="accuracy")
        st.caption("Both models were trained and evaluated on passkey prompts of one length; "
                   "beacons need depth (in layer 0 they carry nothing yet). Notebook 07 "
                   "compares token-importance selection at the same budgets.")
    else:
        st.info("No beacon checkpoint with accuracy per ratio in data/: "
                f"`python -m lcviz.train {' '.join(BEACON_MODELS)}` records it.")
