"""Beacons page: length, chunk size, ratio -> the beacon mask, the KV budget it keeps, and the
shipped beacon model's recorded accuracy per ratio (notebook 07)."""

import streamlit as st

from lcviz import beacons, plots
from lcviz.app import state
from lcviz.checkpoints import load_info

HEATMAP_LENGTH = 256  # the mask is drawn up to this many raw tokens


@st.cache_data(max_entries=128, show_spinner=False)
def mask_png(length, chunk, ratio):
    layout = beacons.beacon_layout(length, chunk, ratio)
    return state.png(plots.mask_heatmap(beacons.beacon_mask(layout),
                                        title=f"{length} tokens + {layout.length - length} beacons"))


@st.cache_data(show_spinner=False)
def recorded_accuracy(name):
    """{ratio: (whole-key, digit accuracy)} of data/<name> on the held-out prompts."""
    metrics = load_info(name)["metrics"]
    return {int(r): (m["key"], m["digit"]) for r, m in metrics["by_ratio"].items()}


def render():
    left, right = st.columns([1, 2])
    with left:
        length = state.int_slider("length (raw tokens)", "length", 8, 4096, 128)
        chunk = state.int_slider("chunk size", "chunk", 2, 256, 16)
        ratio = state.int_slider("condensing ratio", "ratio", 1, 256, 4)
    kv = beacons.kv_entries(length, chunk, ratio)  # raises a clear ValueError for a bad ratio
    with left:
        st.metric("KV entries the last token attends to", f"{kv:,}",
                  delta=f"{kv / length:.0%} of full attention's {length:,}", delta_color="off")
        st.caption(f"{chunk // ratio} beacons per finished chunk of {chunk} + the raw tokens of the "
                   "current chunk. A sliding window with the same budget would keep the last "
                   f"{kv:,} tokens and forget the rest.")
        deep, shallow = recorded_accuracy("beacon-passkey"), recorded_accuracy("beacon-passkey-l2")
        st.markdown("**Trained beacon models**, 128-token passkey prompts, chunk 16 "
                    "(whole key / single digit):")
        st.table({"ratio": list(deep),
                  "4 layers": [f"{k:.0%} / {d:.0%}" for k, d in deep.values()],
                  "2 layers": [f"{k:.0%} / {d:.0%}" for k, d in shallow.values()]})
        st.caption("Beacons need depth: in layer 0 they carry nothing yet. Both models were "
                   "trained at 128 tokens only and fail on other lengths (notebook 07, which "
                   "also compares token-importance selection at the same budgets).")
    with right:
        if length <= HEATMAP_LENGTH:
            st.image(mask_png(length, chunk, ratio))
        else:
            st.info(f"The mask is drawn up to {HEATMAP_LENGTH} tokens; the budget on the left is "
                    f"exact at {length:,}.")
