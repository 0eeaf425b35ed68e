"""Tiny transformer page: the shipped char-level model's attention on text the lecturer types
(the text, layer and head live in the URL); hover a cell for the query and key characters."""

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


@st.cache_resource(max_entries=256, show_spinner=False)
def attention_figure(text, layer, head):
    ids = CharTokenizer().encode(text)[None]  # (1, T)
    weights = charlm().attention_maps(ids)[layer][0, head]  # (T, T)
    return plots.attention_heatmap_plotly(weights, list(text),
                                          title=f"layer {layer}, head {head}: who reads whom")


def render():
    model = charlm()
    config = model.config
    text_column, layer_column, head_column = st.columns([2, 1, 1])
    with text_column:
        text = state.text("text (Python works best: the model read the standard library)",
                          "text", DEFAULT_TEXT, max_chars=config.block_size, height=110)
    with layer_column:
        layer = state.int_slider("layer", "layer", 0, config.n_layer - 1, 1)
    with head_column:
        head = state.int_slider("head", "head", 0, config.n_head - 1, 0)
    st.caption(f"data/charlm.pt: {config.n_layer} layers, {config.n_head} heads, width "
               f"{config.n_embd}, {model.num_parameters():,} parameters. Each row is one "
               "character (the query) spreading its attention over the characters before it; "
               "␣ is a space, ⏎ a new line. Hover a cell for both characters and the weight.")
    if not text:
        st.warning("Type some text to see what the model attends to.")
        return
    state.plot(attention_figure(text, layer, head), key="attention")
