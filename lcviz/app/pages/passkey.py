"""Passkey page: model (the passkey recipes whose checkpoint is in data/; window and layers read
from the checkpoint), filler (random sentences, or Landmark's fixed layout that invites a
shortcut), needle depth, prompt length -> a live run of the chosen model on a fresh prompt with the
attention of its question, the accuracy recorded with the checkpoint, and on request a needle grid
(notebook 06)."""

import streamlit as st
import torch

from lcviz import passkey, plots
from lcviz.app import state
from lcviz.checkpoints import checkpoint_paths, load_checkpoint
from lcviz.passkey import PASSKEY_LENGTH
from lcviz.receptive import window_receptive_field
from lcviz.recipes import RECIPES

PASSKEY_RECIPES = [name for name, recipe in RECIPES.items() if recipe.topic == "passkey"]
# 4x the longest training prompt of any passkey recipe: far enough past it to show what breaks
MAX_LENGTH = 4 * max([PASSKEY_LENGTH] + [max(recipe.settings.get("lengths") or (PASSKEY_LENGTH,))
                                         for recipe in RECIPES.values() if recipe.topic == "passkey"])
GRID_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
GRID_PER_CELL = 8
FILLERS = {"random sentences": "random", "fixed layout (Landmark)": "layout"}


def make_prompt(length, depth, filler, generator):
    """A prompt with the needle after `depth` of the filler: random sentences (passkey_at, what
    the content models train on) or Landmark's fixed layout (make_passkey)."""
    if FILLERS[filler] == "layout":
        return passkey.make_passkey(length, depth, generator=generator)
    n_filler = length - passkey.min_passkey_length()
    return passkey.passkey_at(length, n_filler - round(depth * n_filler), generator=generator)


@st.cache_resource(show_spinner=False)
def passkey_model(name):
    return load_checkpoint(name)


def available_models():
    """The passkey recipes whose checkpoint is in data/, full-attention models first."""
    names = [name for name in PASSKEY_RECIPES if checkpoint_paths(name)[0].exists()]
    return sorted(names, key=lambda n: RECIPES[n].settings.get("window") is not None)


def window_and_layers(name):
    config = passkey_model(name)[0].config
    return config.window, config.n_layer


def trained_lengths(name):
    """(shortest, longest) prompt length the recipe trained on."""
    lengths = RECIPES[name].settings.get("lengths") or (PASSKEY_LENGTH, PASSKEY_LENGTH)
    return int(min(lengths)), int(max(lengths))


def short_name(name):
    return name.replace("passkey-", "")


def describe(name):
    window, layers = window_and_layers(name)
    attention = "full attention" if window is None else f"window {window}"
    return f"{short_name(name)}: {attention}, {layers} layers"


def cell(value):
    """(rate, prompts) of a recorded cell: [rate, n] or {"k", "n", ...}."""
    if isinstance(value, dict):
        return value["k"] / value["n"], value["n"]
    return float(value[0]), int(value[1])


def recorded_curve(name):
    """(x-axis words, hover words, {x: (rate, prompts)}) of the accuracy recorded with a
    checkpoint, in the form its recipe measured it (by key distance in buckets of 8, by prompt
    length, or around the receptive field), or None when it recorded none of these."""
    metrics = passkey_model(name)[1].get("metrics", {})
    try:
        if metrics.get("key_by_distance"):
            return ("distance from the key to the question (tokens)", "8 distances from %{x}",
                    {int(x): cell(v) for x, v in metrics["key_by_distance"].items()})
        if metrics.get("boundary"):
            length, points = max(metrics["boundary"].items(), key=lambda item: int(item[0]))
            return (f"distance from the key to the question (tokens), {length}-token prompts",
                    "distance %{x}", {int(x): cell(v) for x, v in points.items()})
        if metrics.get("key_by_length"):
            return ("prompt length (tokens)", "%{x} tokens",
                    {int(x): cell(v) for x, v in metrics["key_by_length"].items()})
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return None


@st.cache_resource(max_entries=32, show_spinner=False)
def accuracy_figure(name):
    """The chosen model's recorded accuracy (hover: k of n), its window and reach marked."""
    curve = recorded_curve(name)
    if curve is None:
        return None
    xlabel, xhover, points = curve
    window, layers = window_and_layers(name)
    reach = None if window is None else (window, window_receptive_field(window, layers))
    return plots.accuracy_by_distance_plotly(
        {short_name(name): points}, {short_name(name): reach}, highlight=short_name(name),
        title=f"{short_name(name)}: keys found on held-out prompts", xlabel=xlabel,
        xhover=xhover)


@st.cache_resource(max_entries=256, show_spinner=False)
def live_run(name, length, depth, seed, filler):
    """(prompt, answer, figure of the question's attention in the last layer) for one setting."""
    model, _ = passkey_model(name)
    prompt = make_prompt(length, depth, filler, torch.Generator().manual_seed(seed))
    tokenizer = passkey.passkey_tokenizer()
    answer = passkey.predict_keys(model, [prompt], tokenizer)[0]
    weights = model.attention_maps(tokenizer.encode(prompt.text)[None])[-1][0, :, -1, :]  # (H, T)
    figure = plots.query_attention_plotly(
        weights, prompt.tokens, prompt.key_positions,
        title=f"{short_name(name)}: the question's attention, last layer")
    return prompt, answer, figure


@st.cache_resource(max_entries=16, show_spinner=False)
def needle_grid(name, filler):
    """{(length, depth): (found, prompts)} of one model on fresh seeded prompts."""
    model, _ = passkey_model(name)
    tokenizer = passkey.passkey_tokenizer()
    lengths = (PASSKEY_LENGTH // 2, PASSKEY_LENGTH, 2 * PASSKEY_LENGTH)
    generator = torch.Generator().manual_seed(7)
    found = {}
    for length in lengths:
        for depth in GRID_DEPTHS:
            prompts = [make_prompt(length, depth, filler, generator) for _ in range(GRID_PER_CELL)]
            answers = passkey.predict_keys(model, prompts, tokenizer)
            found[length, depth] = (sum(a == p.key for a, p in zip(answers, prompts)),
                                    len(prompts))
    return found


def render():
    names = available_models()
    if not names:
        st.error("No passkey checkpoint in data/: `python -m lcviz.train "
                 + " ".join(PASSKEY_RECIPES) + "` trains them.")
        return
    columns = st.columns([3, 2, 2, 2])
    with columns[0]:
        name = state.choice("model", "model", names, names[0], format_func=describe)
        filler = state.choice("filler", "filler", list(FILLERS), "random sentences",
                              help="random sentences: only the key's content finds it; the fixed "
                                   "layout lets a model learn where the key sits instead")
    with columns[1]:
        length = state.int_slider("prompt length (tokens)", "length",
                                  passkey.min_passkey_length(), MAX_LENGTH, PASSKEY_LENGTH)
    with columns[2]:
        depth = state.int_slider("needle depth (%)", "depth", 0, 100, 50)
    with columns[3]:
        seed = state.int_slider("prompt seed (a new key)", "seed", 0, 999, 0)
    prompt, answer, attention = live_run(name, length, depth / 100, seed, filler)
    window, layers = window_and_layers(name)
    found = answer == prompt.key
    result, reach_column = st.columns([2, 3])
    with result:
        st.markdown(f"#### Key `{prompt.key}` · answer `{answer}`")
        (st.success if found else st.warning)(
            "found: the model copied the key" if found else
            f"missed: {sum(a == b for a, b in zip(answer, prompt.key))} of {len(prompt.key)} "
            "digits right")
    with reach_column:
        st.write(f"distance from the key to the question: **{prompt.distance}** tokens")
        if window is None:
            st.write("full attention: every distance is in reach")
        else:
            field = window_receptive_field(window, layers)
            side = "inside" if passkey.recoverable(prompt.distance, window, layers) else "beyond"
            st.write(f"window {window}, {layers} layers: receptive field L(w−1)+1 = **{field}** "
                     f"tokens — this key is **{side}** it")
        shortest, longest = trained_lengths(name)
        if not shortest <= length <= longest:
            st.warning(f"{short_name(name)} was trained on {shortest}–{longest}-token prompts; "
                       f"at {length} tokens it reads positions it never saw (notebook 05).")
    state.plot(attention, key="attention")
    figure = accuracy_figure(name)
    if figure is None:
        st.info(f"data/{name}.json records no accuracy to draw: "
                f"`python -m lcviz.train {name}` records it.")
    else:
        state.plot(figure, key="accuracy")
    if st.toggle("needle grid of this model (fresh prompts; the first time takes a few "
                 "seconds)", key="grid"):
        with st.spinner("running the model on the grid's prompts"):
            grid = needle_grid(name, filler)
        state.plot(plots.needle_grid_plotly({describe(name): grid}), key="needle")
