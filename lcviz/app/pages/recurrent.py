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


@st.cache_data(max_entries=64, show_spinner=False)
def retrieval_rows(keys, normalise, d_k):
    return recurrent.retrieval_table(d_k=d_k, settings=((keys, normalise),), trials=20)


@st.cache_data(show_spinner=False)
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
    left, right = st.columns([1, 3])
    with left:
        segment = state.option_slider("segment S (tokens)", "segment",
                                      [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], 16)
        length = state.option_slider("tokens read", "length",
                                     [2 ** p for p in range(4, 21)], 4096)
        layers = state.int_slider("layers (Transformer-XL reach)", "layers", 1, 12, 2)
        rule = state.choice("update rule", "rule", list(recurrent.UPDATE_RULES), "delta")
        keys = state.choice("keys written", "keys", list(recurrent.KEY_KINDS), "orthogonal")
        read = state.choice("memory read", "read", list(READS), "M only")
        d_k = state.option_slider("d_k = d_v (memory per head)", "dk", [8, 16, 32, 64, 128], 32)
    reach = min(length - 1, recurrent.xl_reach_distance(layers, segment, segment - 1))
    with left:
        st.metric("Transformer-XL reach of a segment's last token", f"{reach:,} tokens")
        st.caption(f"layers × segment + position in the segment = {layers} × {segment} + "
                   f"{segment - 1}, at most the {length - 1:,} tokens before it")
        st.markdown(f"**Numbers kept per layer** after {length:,} tokens (width {WIDTH}, "
                    f"{HEADS} heads of d_k = {d_k}):")
        st.table({"model": [KIND_LABELS[k] for k in recurrent.MEMORY_KINDS],
                  "state": [f"{state_numbers(k, length, segment, d_k):,}"
                            for k in recurrent.MEMORY_KINDS]})
        st.caption("Infini keeps a d_k × d_v matrix and a normaliser per head whatever the "
                   "length; full attention's KV cache grows with every token.")
    rows = retrieval_rows(keys, READS[read], d_k)
    chosen = [r for r in rows if r["rule"] == rule]
    with right:
        state.plot(plots.retrieval_error_figure(
            rows, title=f"{keys} keys, {read} read: {rule} rule at n = d_k has error "
                        f"{chosen[0]['error'][chosen[0]['ratio'].index(1.0)]:.2f}"),
            key="retrieval")
        results, task, missing = recorded()
        if results:
            state.plot(plots.passkey_gap_figure(
                results, highlight=rule,
                title=f"Trained models: segments of {task.get('segment')} tokens, "
                      f"{task.get('max_segments')} segments, {task.get('n_digits')}-digit key"),
                key="passkey")
        if missing:
            st.info("Recorded passkey accuracy is missing for "
                    f"{', '.join(missing)}: rebuild with `python -m lcviz.train NAME`.")
