"""Linear attention page: length and state size -> what each model carries from token to token
(a KV cache that grows against fixed recurrent states), the measured recall of models with those
states (python -m lcviz.bench subquadratic), and the hierarchical attention layout for a block
size (notebook 10)."""

import math

import streamlit as st

from lcviz import plots, subquadratic
from lcviz.app import state
from lcviz.checkpoints import load_results

LENGTHS = [2**p for p in range(6, 18)]  # 64 .. 131072 tokens
STATES = [1, 2, 4, 8, 16, 32, 64]  # key / state dimension n of a fixed-state layer
WIDTH, LAYERS, D_CONV = 64, 2, 4  # the recall models of the benchmark
HEATMAP_MAX = 256  # the hierarchical layout is drawn up to this length


@st.cache_data(show_spinner=False)
def recall_models():
    """The recall benchmark's models, or None when data/bench-subquadratic.json has none."""
    try:
        return load_results("subquadratic").get("recall", {}).get("models")
    except FileNotFoundError:
        return None


@st.cache_resource(max_entries=64, show_spinner=False)
def growth_figure(length, n):
    lengths = [2**p for p in range(6, 18)]
    kv = [subquadratic.state_numbers(subquadratic.RecallConfig(mixer="attention", length=t))
          for t in lengths]
    fixed = {f"{plots.recall_label(m, n)}": subquadratic.state_numbers(
        subquadratic.RecallConfig(mixer=m, state=n)) for m in ("linear", "mamba")}
    return plots.state_growth_plotly(lengths, kv, fixed, current_length=length)


@st.cache_resource(max_entries=64, show_spinner=False)
def recall_figure(length, n):
    models = recall_models()
    numbers = subquadratic.state_numbers(subquadratic.RecallConfig(mixer="linear", state=n))
    fig = plots.recall_curves_plotly(models, highlight_state=numbers, length=length)
    fig.add_vline(x=n, line={"color": "grey", "dash": "dot"})
    # an annotation on a log axis is placed at log10 of its value (a shape at the value itself)
    fig.add_annotation(x=math.log10(n), xref="x", y=1, yref="paper", yanchor="bottom",
                       xanchor="right", text=f"pairs = n = {n}", showarrow=False,
                       font={"size": 15})
    return fig


@st.cache_resource(max_entries=64, show_spinner=False)
def layout_figure(length, block):
    return plots.hierarchical_layout_plotly(length, block)


def render():
    columns = st.columns(2)
    with columns[0]:
        length = state.option_slider("length T", "length", LENGTHS, 4096,
                                     format_func=lambda t: f"{t:,}")
    with columns[1]:
        n = state.option_slider("state size n", "state", STATES, 16,
                                help="key features of linear attention; d_state per channel of "
                                     "Mamba")
    kv = subquadratic.state_numbers(subquadratic.RecallConfig(mixer="attention", length=length),
                                    length)
    fixed = subquadratic.state_numbers(subquadratic.RecallConfig(mixer="linear", state=n))
    counts = st.columns(2)
    counts[0].metric(f"KV cache at T = {length:,}", f"{kv:,}",
                     help="numbers softmax attention carries per sequence")
    counts[1].metric(f"linear state, n = {n}", f"{fixed:,}",
                     help="numbers linear attention carries per sequence, at any length")
    st.caption(f"Numbers carried from token to token by {LAYERS} layers of width {WIDTH}: the KV "
               f"cache is 2·T·{WIDTH} per layer and grows with every token; the linear state is "
               f"n·{WIDTH} + n (+ a {D_CONV - 1}-token convolution window) per layer, the same "
               f"at any length. At this length the cache is {kv / fixed:,.1f}× the state. A "
               f"linear memory with n-dimensional keys stores at most n pairs exactly (first "
               f"failure measured at {subquadratic.first_failing_pairs(n)} pairs).")
    state.plot(growth_figure(length, n), key="growth")
    if recall_models():
        st.markdown("**Multi-query associative recall** (MQAR): can the model give back the value "
                    "of every key it was shown? The legend gives the numbers each model carries "
                    "per sequence.")
        state.plot(recall_figure(length, n), key="recall")
        st.caption("MQAR (Zoology, arXiv 2312.04927, scaled down: vocabulary 128, 64 tokens, "
                   "2 layers of width 64, each mixer after the same short convolution). One "
                   "model per line, trained on 1 to 16 pairs by `python -m lcviz.bench "
                   "subquadratic`; accuracy over every query of 500 held-out examples per "
                   "point, with its Wilson 95% interval. Hollow markers: did not converge "
                   "within the training budget (hover for the learning rates tried). Thick "
                   "lines: the fixed states closest to n.")
    else:
        st.info("No recall results in data/: `python -m lcviz.bench subquadratic` trains and "
                "measures them.")
    st.subheader("Hierarchical attention: exact near, coarse far")
    if length > HEATMAP_MAX:
        st.info(f"The layout is drawn for T up to {HEATMAP_MAX}; move the length slider down to "
                f"see it. At T = {length:,} the cheapest block is "
                f"b = {subquadratic.best_block(length)}: "
                f"{subquadratic.hierarchical_scores(length, subquadratic.best_block(length)):,} "
                f"scores instead of {length * length:,}.")
        return
    divisors = [b for b in range(1, length + 1) if length % b == 0]
    block = state.option_slider("block size b", "block", divisors,
                                subquadratic.best_block(length))
    scores = subquadratic.hierarchical_scores(length, block)
    st.caption(f"Blue: exact scores (near blocks). Orange: one coarse entry per far block "
               f"(at most T/b = {length // block} per query). White: masked (future). "
               f"T (2b + T/b) = {scores:,} scores for T = {length}, b = {block} "
               f"({scores / length ** 2:.0%} of T²). b = 1 and b = T are exact and cost the most; "
               f"in between the far blocks are blurred to their mean key.")
    state.plot(layout_figure(length, block), key="layout")
