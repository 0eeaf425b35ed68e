"""RoPE page: method, factor, original length -> each method's frequencies and the score of
one query-key pair against distance, out to factor x the training length (notebook 05)."""

import numpy as np
import streamlit as st
import torch

from lcviz import plots, rope
from lcviz.app import state

HEAD_DIM = 128  # LLaMA's head size, as in the PI paper's Figure 2
TOLERANCE = 1e-4  # relative: float32 frequencies differ from float64 ones by ~1e-8


def count_pairs(inv_freq, default, factor):
    """{kept, interpolated, other}: pairs whose frequency is the default's, the default's divided
    by the factor, or anything else. At factor 1 nothing is scaled, so nothing is interpolated."""
    ratio = plots.frequency_ratio(inv_freq, default)
    kept = np.abs(ratio - 1) <= TOLERANCE
    interpolated = ~kept & (np.abs(ratio * factor - 1) <= TOLERANCE)
    return {"kept": int(kept.sum()), "interpolated": int(interpolated.sum()),
            "other": int((~kept & ~interpolated).sum())}


@st.cache_resource(max_entries=128, show_spinner=False)
def rope_view(method, factor, original_length):
    """(pairs figure, score figure, pair counts, attention factor) for one setting."""
    default = rope.default_frequencies(HEAD_DIM, 10000.0)
    scaling = rope.rope_scaling(method, factor, original_length)["rope_params"]
    freq, attention_factor = rope.rope_frequencies(method, HEAD_DIM,
                                                   seq_len=int(factor * original_length), **scaling)
    shown = {"default (no scaling)": default} if method == "default" else \
        {"default (no scaling)": default, method: freq}
    pairs = plots.rope_pairs_plotly(shown, default, original_length, factor)
    query = torch.randn(HEAD_DIM, generator=torch.Generator().manual_seed(0))  # (D,)
    distances = torch.linspace(0, factor * original_length, 1500).round()
    scores = {"default (no scaling)": rope.rope_scores(query, query, distances, default.float())}
    if method != "default":
        scores[method] = rope.rope_scores(query, query, distances, freq, attention_factor)
    curves = plots.score_curves_plotly(distances, scores, original_length)
    return pairs, curves, count_pairs(freq, default, factor), attention_factor


def render():
    columns = st.columns(3)
    with columns[0]:
        method = state.choice("method (HF rope_type)", "method", list(rope.ROPE_TYPES), "yarn")
    with columns[1]:
        factor = state.float_slider("scale factor s", "factor", 1.0, 32.0, 4.0, step=0.5)
    with columns[2]:
        original = state.int_slider("original length L", "original", 16, 8192, 2048, step=16)
    pairs, curves, counts, attention_factor = rope_view(method, factor, original)
    shown = st.columns(4)
    shown[0].metric("pairs kept", counts["kept"])
    shown[1].metric(f"pairs divided by {factor:g}", counts["interpolated"])
    shown[2].metric("pairs in between", counts["other"])
    shown[3].metric("attention factor", f"{attention_factor:.3f}")
    if factor == 1:
        st.info("At s = 1 there is nothing to scale: every method is the default RoPE.")
    st.caption(f"Head size {HEAD_DIM}: {HEAD_DIM // 2} rotation pairs, each kept, interpolated "
               "(its frequency divided by s) or scaled by an amount in between; the attention "
               "factor scales q and k. The score curve is one random vector's RoPE score with "
               f"itself at each distance up to {factor:g}L: a method stretches the curve the "
               "model learned on [0, L].")
    state.plot(curves, key="scores")
    state.plot(pairs, key="pairs")
