"""Tiny transformer page: the shipped char-level model's attention on text the lecturer types."""

import streamlit as st

from lcviz import plots
from lcviz.app import state
from lcviz.checkpoints import load_checkpoint
from lcviz.tokenize import CharTokenizer

DEFAULT_TEXT = "    def __init__(self, x):\n        self.x = x\n"


@st.cache_resource(show_spinner=False)
def charlm():
    model, _ = load_checkpoint("charlm")
    return model


@st.cache_data(max_entries=256, show_spinner=False)
def attention_png(text, layer, head):
    ids = CharTokenizer().encode(text)[None]  # (1, T)
    weights = charlm().attention_maps(ids)[layer][0, head]  # (T, T)
    return state.png(plots.attention_heatmap(weights, tokens=list(text),
                                             title=f"layer {layer}, head {head}"))


def render():
    model = charlm()
    config = model.config
    left, right = st.columns([1, 2])
    with left:
        text = st.text_area("text (Python works best: the model read the standard library)",
                            DEFAULT_TEXT, max_chars=config.block_size)
        layer = state.int_slider("layer", "layer", 0, config.n_layer - 1, 1)
        head = state.int_slider("head", "head", 0, config.n_head - 1, 0)
        st.caption(f"data/charlm.pt: {config.n_layer} layers, {config.n_head} heads, width "
                   f"{config.n_embd}, {model.num_parameters():,} parameters.")
    if not text:
        right.warning("Type some text to see what the model attends to.")
        return
    right.image(attention_png(text, layer, head))
