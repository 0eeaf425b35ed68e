"""Compare techniques page: task, length (or hops, or the gold pair's place) and a memory budget
-> every technique's accuracy with its 95% interval, its memory and its time, from the saved
long-context benchmark (python -m lcviz.bench longcontext, notebook 12)."""

import streamlit as st

from lcviz import longcontext
from lcviz.app import state
from lcviz.checkpoints import load_results
from lcviz.plots import longcontext as lcplots

TASKS = {"needle in a haystack": "needle", "multi-key recall": "multikey",
         "variable tracking": "vt", "lost in the middle": "middle"}
AXES = {"needle": ("length (tokens)", longcontext.NEEDLE_LENGTHS, 256),
        "multikey": ("length (tokens)", longcontext.MULTIKEY_LENGTHS, 512),
        "vt": ("hops in the chain", longcontext.VT_TEST_HOPS, 1),
        "middle": ("place of the gold pair", longcontext.MIDDLE_PLACES, 8)}
BUDGETS_KB = (4, 16, 64, 256, 1024, 4096)  # memory budgets; 4 MB holds every tested cache


@st.cache_data(show_spinner=False)
def saved():
    return load_results("longcontext")


def rows_for(results, task, at, budget_bytes):
    """[(label, cell, bytes, within budget)] of every technique that has this task's cell."""
    length = str(at) if task in ("needle", "multikey") else str(longcontext.RECALL_LENGTH)
    rows = []
    for label in results["techniques"]:
        if label not in results[task]:
            continue
        cell = lcplots.task_cells(results, task, label).get(str(at))
        if cell is None:
            continue
        size = results["cost"][label].get(length, {}).get("bytes")
        rows.append((label, cell, size, size is not None and size <= budget_bytes))
    return rows


@st.cache_resource(max_entries=64, show_spinner=False)
def compare_view(task, at, budget_kb):
    results = saved()
    rows = rows_for(results, task, at, budget_kb * 1024)
    axis = AXES[task][0]
    title = f"{lcplots.TASK_TITLES[task]}, {axis.split(' (')[0]} {at}"
    return rows, lcplots.compare_plotly(rows, title)


def render():
    results = saved()
    columns = st.columns(3)
    with columns[0]:
        task = TASKS[state.choice("task", "task", list(TASKS), "needle in a haystack")]
    axis, values, default = AXES[task]
    with columns[1]:
        at = state.option_slider(axis, f"at_{task}", values, default,
                                 format_func=lambda v: f"{v:,}")
    with columns[2]:
        budget = state.option_slider("memory budget (KB)", "budget", BUDGETS_KB, BUDGETS_KB[-1],
                                     format_func=lambda kb: f"{kb:,}")
    rows, fig = compare_view(task, at, budget)
    inside = [r for r in rows if r[3]]
    best = max(inside, key=lambda r: r[1]["rate"]) if inside else None
    tied = [r for r in inside if best and r[1]["high"] >= best[1]["low"]]
    counts = st.columns(3)
    counts[0].metric("techniques within the budget", f"{len(inside)} of {len(rows)}")
    counts[1].metric("highest score within it", f"{best[1]['rate']:.0%}" if best else "—",
                     help=best[0] if best else "no technique fits this budget")
    counts[2].metric("techniques tied for it", f"{len(tied)}" if best else "—",
                     help="their 95% intervals reach the highest score: "
                          + ", ".join(r[0] for r in tied))
    family = {results["techniques"][r[0]]["family"] for r in rows}
    st.caption(" ".join(f"{results['families'][f][0].upper()}{results['families'][f][1:]}."
                        for f in sorted(family))
               + f" Grey bars keep more than {budget:,} KB for the question. Memory (after each "
               f"name): the KV cache "
               f"or state at {'this length' if task in ('needle', 'multikey') else '128 tokens'}"
               f", fp32, one sequence.")
    state.plot(fig, key="compare")
    table = []
    for label, cell, size, _ in rows:
        length = str(at) if task in ("needle", "multikey") else str(longcontext.RECALL_LENGTH)
        cost = results["cost"][label].get(length, {})
        decode = cost.get("decode_seconds")
        table.append({"technique": label, "found": f"{cell['k']} of {cell['n']}",
                      "95% interval": f"{cell['low']:.0%}–{cell['high']:.0%}",
                      "memory": "—" if size is None else lcplots.human_bytes(size),
                      "prefill ms": f"{1e3 * cost['prefill_seconds']:,.1f}" if cost else "—",
                      "decode ms/token": "—" if decode is None else f"{1e3 * decode:.2f}",
                      "effective length": f"{results['effective_length'][label]:,}"})
    st.table(table)
    ring = results["ring"]
    st.caption(f"Ring attention is exact: over {ring['world']} simulated ranks it gives "
               f"full attention's layer output to {ring['max_abs_error']:.1e} on a "
               f"{ring['length']:,}-token prompt, so its accuracy is full attention's; each rank "
               f"holds {lcplots.human_bytes(ring['kv_bytes_per_rank'])} of the KV cache. Effective "
               f"length: the longest tested length scoring ≥ {results['threshold']:.0%} "
               f"(RULER's bar), every shorter one passing too.")
