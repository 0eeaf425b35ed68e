"""Recurrent memory page: segment, layers, tokens read, update rule, keys and d_k -> what each
segment model keeps (state size, Transformer-XL's reach), the compressive memory's retrieval
error against the pairs written (computed live, no training) and the trained models' recorded
passkey accuracy by gap (notebook 11)."""

import streamlit as st

from lcviz import plots, recurrent
from lcviz.app import state
from lcviz.checkpoints import load_info
from lcviz.plots.recurrent import KIND_LABELS

READS = {"normalised (eq. 3)": True, "M only": False}
HEADS, WIDTH = 4, 64  # the width of the state-size table (the trained models' config)


@st.cache_resource(max_entries=64, show_spinner=False)
def retrieval_view(keys, normalise, d_k):
    """(rows of recurrent.retrieval_table, their error figure) for one setting."""
    rows = recurrent.retrieval_table(d_k=d_k, settings=((keys, normalise),), trials=20)
    return rows, state.legend_below(plots.retrieval_error_figure(rows, title="Retrieval error"))


@st.cache_resource(max_entries=8, show_spinner=False)
def passkey_view(rule):
    """The trained models' passkey accuracy by gap with `rule` highlighted (None when no model's
    info is at hand)."""
    results, _, _ = recorded()
    if not results:
        return None
    return state.legend_below(plots.passkey_gap_figure(
        results, highlight=rule, title="Whole key right, by gap",
        xaxis="segments between needle and question"))


@st.cache_resource(show_spinner=False)
def recorded():
    """({kind: {gap: [hits, n]}}, segment, segments, [kinds whose checkpoint info is missing])."""
    results, missing, task = {}, [], {}
    for kind, name in recurrent.RECIPE_NAMES.items():
        try:
            metrics = load_info(name)["metrics"]
        except FileNotFoundError:
            missing.append(name)
            continue
        results[kind], task = metrics["by_gap"], metrics["task"]
    return results, task, missing


def state_numbers(kind, length, segment, d_k):
    """Numbers one layer keeps after reading `length` tokens (the current segment's keys and
    values, plus the memory or the cache): lcviz.recurrent.state_numel per layer."""
    current = length % segment if kind != "full" else length
    per_token = 2 * WIDTH
    if kind == "full":
        return per_token * length
    if kind == "xl":
        return per_token * (current + (segment if length >= segment else 0))
    if kind == "local":
        return per_token * current
    return (per_token + WIDTH) * current + HEADS * d_k * (d_k + 1)


def render():
    sliders = st.columns(4)
    with sliders[0]:
        segment = state.option_slider("segment S (tokens)", "segment",
                                      [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], 16)
    with sliders[1]:
        length = state.option_slider("tokens read", "length",
                                     [2 ** p for p in range(4, 21)], 4096)
    with sliders[2]:
        layers = state.int_slider("layers", "layers", 1, 12, 2,
                                  help="layers of Transformer-XL: its reach grows with each")
    with sliders[3]:
        d_k = state.option_slider("d_k = d_v", "dk", [8, 16, 32, 64, 128], 32,
                                  help="memory per head of the compressive memory")
    choices = st.columns(3)
    with choices[0]:
        rule = state.choice("update rule", "rule", list(recurrent.UPDATE_RULES), "delta")
    with choices[1]:
        keys = state.choice("keys written", "keys", list(recurrent.KEY_KINDS), "orthogonal")
    with choices[2]:
        read = state.choice("memory read", "read", list(READS), "M only")
    reach = min(length - 1, recurrent.xl_reach_distance(layers, segment, segment - 1))
    reach_column, table_column = st.columns([2, 3])
    with reach_column:
        st.metric("Transformer-XL reach", f"{reach:,}",
                  help="tokens back that a segment's last token can see")
        st.caption(f"layers × segment + position in the segment = {layers} × {segment} + "
                   f"{segment - 1}, at most the {length - 1:,} tokens before it")
    with table_column:
        st.markdown(f"**Numbers kept per layer** after {length:,} tokens (width {WIDTH}, "
                    f"{HEADS} heads of d_k = {d_k}):")
        st.table({"model": [KIND_LABELS[k] for k in recurrent.MEMORY_KINDS],
                  "state": [f"{state_numbers(k, length, segment, d_k):,}"
                            for k in recurrent.MEMORY_KINDS]})
        st.caption("Infini keeps a d_k × d_v matrix and a normaliser per head whatever the "
                   "length; full attention's KV cache grows with every token.")
    rows, figure = retrieval_view(keys, READS[read], d_k)
    chosen = [r for r in rows if r["rule"] == rule]
    error = chosen[0]["error"][chosen[0]["ratio"].index(1.0)]
    st.markdown(f"**Reading back n pairs from a d_k × d_k memory** ({keys} keys, {read} read): "
                f"the {rule} rule at n = d_k has error **{error:.2f}**.")
    state.plot(figure, key="retrieval")
    results, task, missing = recorded()
    if results:
        st.markdown(f"**Trained models**: passkey retrieval across segments of "
                    f"{task.get('segment')} tokens, {task.get('max_segments')} segments, a "
                    f"{task.get('n_digits')}-digit key.")
        state.plot(passkey_view(rule), key="passkey")
    if missing:
        st.info("Recorded passkey accuracy is missing for "
                f"{', '.join(missing)}: rebuild with `python -m lcviz.train NAME`.")
