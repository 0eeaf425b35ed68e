"""Passkey page: model (window, layers), needle depth, prompt length -> the shipped models'
accuracy against distance from data/, and a live run of the chosen model on a fresh prompt with
the attention of its question (notebook 06's figures)."""

import streamlit as st
import torch

from lcviz import passkey, plots
from lcviz.app import state
from lcviz.checkpoints import load_checkpoint
from lcviz.passkey import PASSKEY_LENGTH
from lcviz.receptive import window_receptive_field
from lcviz.recipes import RECIPES

# the fixed-layout models, whose recorded metrics hold accuracy by key distance at 128 tokens
PASSKEY_MODELS = [name for name in RECIPES if name.startswith("passkey-layout")]

MAX_LENGTH = 4 * PASSKEY_LENGTH  # beyond the training length, to show what breaks


@st.cache_resource(show_spinner=False)
def passkey_model(name):
    return load_checkpoint(name)


def window_and_layers(name):
    config = passkey_model(name)[0].config
    return config.window, config.n_layer


def reach(name):
    window, layers = window_and_layers(name)
    return None if window is None else (window, window_receptive_field(window, layers))


@st.cache_data(show_spinner=False)
def accuracy_png():
    """Every shipped model's recorded accuracy by key distance (measured when it was trained)."""
    curves = {name: {int(start): cell[0] for start, cell in
                     passkey_model(name)[1]["metrics"]["key_by_distance"].items()}
              for name in PASSKEY_MODELS}
    return state.png(plots.accuracy_curves(
        curves, "distance from the key to the question (tokens)",
        {name: reach(name) for name in PASSKEY_MODELS},
        title=f"Held-out accuracy, {PASSKEY_LENGTH}-token prompts"))


@st.cache_data(max_entries=256, show_spinner=False)
def live_run(name, length, depth, seed):
    """(prompt, answer, PNG of the question's attention in the last layer) for one setting."""
    model, _ = passkey_model(name)
    prompt = passkey.make_passkey(length, depth, generator=torch.Generator().manual_seed(seed))
    tokenizer = passkey.passkey_tokenizer()
    answer = passkey.predict_keys(model, [prompt], tokenizer)[0]
    weights = model.attention_maps(tokenizer.encode(prompt.text)[None])[-1][0, :, -1, :]  # (H, T)
    figure = plots.query_attention(weights, prompt.tokens, prompt.key_positions,
                                   title=f"{name}: the question's attention, last layer")
    return prompt, answer, state.png(figure)


def render():
    names = list(PASSKEY_MODELS)
    left, right = st.columns([1, 2])
    with left:
        name = state.choice("model", "model", names, "passkey-layout",
                            format_func=lambda n: n.replace("passkey-", ""))
        length = state.int_slider("prompt length (tokens)", "length",
                                  passkey.min_passkey_length(), MAX_LENGTH, PASSKEY_LENGTH)
        depth = state.int_slider("needle depth (%)", "depth", 0, 100, 50)
        seed = state.int_slider("prompt seed (a new key)", "seed", 0, 999, 0)
    prompt, answer, attention_png = live_run(name, length, depth / 100, seed)
    window, layers = window_and_layers(name)
    with left:
        verdict = "✅ found" if answer == prompt.key else "❌ missed"
        st.metric(f"key {prompt.key}", f"answer {answer}", delta=verdict, delta_color="off")
        st.write(f"distance from the key to the question: **{prompt.distance}** tokens")
        if window is None:
            st.write("full attention: every distance is in reach")
        else:
            field = window_receptive_field(window, layers)
            side = "inside" if passkey.recoverable(prompt.distance, window, layers) else "beyond"
            st.write(f"window {window}, {layers} layers: receptive field L(w−1)+1 = **{field}** "
                     f"tokens — this key is **{side}** it")
        if length > PASSKEY_LENGTH:
            st.warning(f"The models were trained on {PASSKEY_LENGTH}-token prompts; at {length} "
                       "tokens RoPE positions run past what they saw (notebook 05).")
    with right:
        st.image(attention_png)
        st.image(accuracy_png())
