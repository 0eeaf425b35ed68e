"""RoPE page: method, factor, original length -> each method's frequencies and the score of
one query-key pair against distance, out to factor x the training length (notebook 05)."""

import streamlit as st
import torch

from lcviz import plots, rope
from lcviz.app import state

HEAD_DIM = 128  # LLaMA's head size, as in the PI paper's Figure 2


@st.cache_data(max_entries=128, show_spinner=False)
def rope_view(method, factor, original_length):
    """(PNG of the per-pair curves, PNG of the score curves, table rows) for one setting."""
    default = rope.default_frequencies(HEAD_DIM, 10000.0)
    methods = {name: rope.rope_frequencies(name, HEAD_DIM, seq_len=int(factor * original_length),
                                           **rope.rope_scaling(name, factor, original_length)["rope_params"])
               for name in rope.ROPE_TYPES}
    shown_methods = ("default", method) if method != "default" else ("default",)
    curves = plots.rope_method_curves({name: methods[name][0] for name in shown_methods}, default,
                                      original_length, factor, panels=("wavelength", "angle"))
    query = torch.randn(HEAD_DIM, generator=torch.Generator().manual_seed(0))  # (D,)
    distances = torch.linspace(0, factor * original_length, 1500).round()
    shown = {"default": rope.rope_scores(query, query, distances, default.float())}
    if method != "default":
        freq, attention_factor = methods[method]
        shown[method] = rope.rope_scores(query, query, distances, freq, attention_factor)
    scores = plots.score_curves(distances, shown, original_length,
                                title="q·k of one random vector with itself, against distance")
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
        st.caption(f"Head size {HEAD_DIM}. The score curve is one random vector's RoPE score "
                   f"with itself at each distance up to {factor:g}L: the method stretches the "
                   "curve that the model learned on [0, L].")
    with right:
        st.image(scores)
        st.image(curves)
