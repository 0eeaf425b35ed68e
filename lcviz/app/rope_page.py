"""RoPE page: method, factor, original length -> each method's frequencies and one query-key
score read out to factor x the training length (notebook 05's figures)."""

import streamlit as st
import torch

from lcviz import plots, rope
from lcviz.app import state
from lcviz.train import rope_scaling

HEAD_DIM = 128  # LLaMA's head size, as in the PI paper's Figure 2


@st.cache_data(max_entries=128, show_spinner=False)
def rope_view(method, factor, original_length):
    """(PNG of the per-pair curves, PNG of the score curves, table rows) for one setting."""
    default = rope.default_frequencies(HEAD_DIM, 10000.0)
    methods = {name: rope.rope_frequencies(name, HEAD_DIM, seq_len=int(factor * original_length),
                                           **rope_scaling(name, factor, original_length)["rope_params"])
               for name in rope.ROPE_TYPES}
    curves = plots.rope_method_curves({name: freq for name, (freq, _) in methods.items()}, default,
                                      original_length, factor)
    generator = torch.Generator().manual_seed(0)  # notebook 05's fit: 128 random points on [0, L]
    points = torch.rand(128, generator=generator, dtype=torch.float64) * original_length
    targets = torch.rand(128, generator=generator, dtype=torch.float64) * 2 - 1
    h = rope.fit_score_function(points, targets, default)
    distances = torch.linspace(0, factor * original_length, 1500, dtype=torch.float64)
    shown = {"default (extrapolation)": rope.score_function(h, distances, default)}
    if method != "default":
        freq, attention_factor = methods[method]
        shown[method] = attention_factor ** 2 * rope.score_function(h, distances, freq)
    scores = plots.score_curves(distances, shown, original_length)
    freq = methods[method][0].double()
    ratio = freq / default
    rows = {"pairs kept": int((ratio > 0.99).sum()), "pairs interpolated": int((ratio < 1.01 / factor).sum()),
            "attention factor": methods[method][1]}
    return state.png(curves), state.png(scores), rows


def render():
    left, right = st.columns([1, 2])
    with left:
        method = state.choice("method (HF rope_type)", "method", list(rope.ROPE_TYPES), "yarn")
        factor = state.float_slider("scale factor s", "factor", 1.0, 32.0, 4.0, step=0.5)
        original = state.int_slider("original length L", "original", 16, 8192, 2048, step=16)
    curves, scores, rows = rope_view(method, factor, original)
    with left:
        st.metric("pairs kept", rows["pairs kept"])
        st.metric(f"pairs interpolated (divided by {factor:g})", rows["pairs interpolated"])
        st.metric("attention factor (scales q and k)", f"{rows['attention factor']:.3f}")
        st.caption(f"Head size {HEAD_DIM}. The score curve is one query-key pair fitted on "
                   f"[0, {original}] (the PI paper's Figure 2) and read out to {factor:g}L.")
    with right:
        st.image(scores)
        st.image(curves)
