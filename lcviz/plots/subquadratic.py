"""Figures of topic 10 sub-quadratic attention: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure

MIXER_COLORS = {"attention": "#1f77b4", "linear": "#d62728", "mamba": "#2ca02c"}
MIXER_NAMES = {"attention": "softmax attention", "linear": "linear attention (elu+1)",
               "mamba": "selective SSM (Mamba)"}


def recall_label(mixer, state, state_numbers=None):
    """'linear attention (elu+1), n = 16' (+ the state in numbers when given)."""
    label = MIXER_NAMES.get(mixer, mixer) + ("" if mixer == "attention" else f", n = {state}")
    return label if state_numbers is None else f"{label} ({state_numbers:,} numbers)"


def hierarchical_error_figure(curves, length, causal=True, title=None):
    """Relative error of two-level hierarchical attention against exact attention (left axis) and
    the scores it computes (right axis, T (k b + T/b)) against the block size b. curves maps a
    label ("random q, k", "trained layer 0", ...) to {block: error}."""
    from lcviz.subquadratic import hierarchical_scores

    fig = new_figure(8.0, 4.4)
    ax = fig.add_subplot()
    for label, errors in curves.items():
        blocks = sorted(errors)
        ax.plot(blocks, [errors[b] for b in blocks], "o-", lw=2, ms=6, label=label)
    blocks = sorted({b for errors in curves.values() for b in errors})
    ax.set_xscale("log", base=2)
    ax.set_xticks(blocks, [str(b) for b in blocks])
    ax.set(xlabel="block size b", ylabel="relative error ||y - y_exact|| / ||y_exact||")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(blocks, [hierarchical_scores(length, b, causal) / length ** 2 for b in blocks],
              "k--", lw=1.5, label="scores computed / T²")
    twin.set_ylabel("scores computed / T² (dashed)")
    twin.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=10, loc="upper center")
    ax.set_title(title or f"Hierarchical attention at T = {length}: error and cost per block size")
    return fig


def hierarchical_layout(length, block, causal=True, title=None):
    """Which score each (query, key) pair gets, as an image: dark blue exact (near blocks), a band
    of orange per far block (one coarse entry for the whole band), white masked."""
    from matplotlib.colors import ListedColormap

    from lcviz.subquadratic import block_index, near_mask

    near = near_mask(length, block, causal).numpy()
    i, j = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    allowed = (j <= i) if causal else np.ones_like(near)
    blocks = block_index(length, block).numpy()
    shade = np.where(blocks[None, :].repeat(length, 0) % 2 == 0, 1.0, 2.0)  # alternate far bands
    image = np.where(near, 3.0, np.where(allowed, shade, 0.0))
    fig = new_figure(5.6, 5.0)
    ax = fig.add_subplot()
    ax.imshow(image, cmap=ListedColormap(["white", "#fdd0a2", "#fd8d3c", "#08519c"]), vmin=0,
              vmax=3, interpolation="nearest")
    ax.set(xlabel="key position", ylabel="query position",
           title=title or f"T = {length}, b = {block}: blue exact, orange one entry per far block")
    return fig


def hierarchical_layout_plotly(length, block, causal=True, height=520):
    """Which score each (query, key) pair gets: exact (near block), the coarse block-mean entry
    (far block, one per block: the colour band), or none (masked). Hover says which."""
    import plotly.graph_objects as go

    from lcviz.subquadratic import block_index, near_mask

    near = near_mask(length, block, causal).numpy()
    i, j = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    allowed = (j <= i) if causal else np.ones_like(near)
    kind = np.where(near, 2.0, np.where(allowed, 1.0, np.nan))
    blocks = block_index(length, block).numpy()
    text = np.where(near, "exact score", np.where(
        allowed, "coarse: one entry for key block " + blocks[None, :].astype(str).repeat(length, 0),
        "masked (future)"))
    fig = plotly_figure(go.Heatmap(
        z=kind, text=text, colorscale=[[0, "#fdae6b"], [0.5, "#fdae6b"], [0.5, "#3182bd"],
                                        [1, "#3182bd"]],
        zmin=1, zmax=2, showscale=False,
        hovertemplate="query %{y}, key %{x}: %{text}<extra></extra>"))
    fig.update_layout(  # blue: exact (near blocks); orange: one coarse entry per far block
        title=f"T = {length}, b = {block}: exact near, coarse far",
        height=height, margin={"l": 60, "r": 20, "t": 70, "b": 50},
        xaxis={"title": "key position", "constrain": "domain"},
        yaxis={"title": "query position", "autorange": "reversed", "scaleanchor": "x"})
    return fig


def recall_curves(models, title="Associative recall against the number of key-value pairs"):
    """MQAR accuracy (with its Wilson 95% interval) against pairs, one line per trained model (the
    records of lcviz.subquadratic.recall_curve). A model that did not converge (still improving
    when its budget ran out, or never above 5x chance: lcviz.subquadratic.run_converged) is drawn
    with hollow markers."""
    fig = new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    for model in models:
        points = model["points"]
        pairs = [p["pairs"] for p in points]
        acc = np.array([p["accuracy"] for p in points])
        err = np.array([acc - [p["low"] for p in points], [p["high"] for p in points] - acc])
        small = model["mixer"] != "attention" and model["state"] <= 4
        color = MIXER_COLORS.get(model["mixer"])
        ax.errorbar(pairs, acc, yerr=err, fmt=":" if small else "-", color=color, lw=2, capsize=4,
                    marker="o", ms=8, mfc=color if model["converged"] else "white",
                    label=recall_label(model["mixer"], model["state"], model["state_numbers"]))
    ax.set_xscale("log", base=2)
    all_pairs = sorted({p["pairs"] for m in models for p in m["points"]})
    ax.set_xticks(all_pairs, [str(n) for n in all_pairs])
    ax.set(xlabel="key-value pairs in the context", ylabel="recall accuracy (95% interval)",
           ylim=(-0.03, 1.05), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left", title="numbers carried per sequence (2 layers)",
              title_fontsize=9)
    return fig


def recall_curves_plotly(models, highlight_state=None, length=None, height=480):
    """Interactive recall curves: hover shows accuracy, its interval, n, the learning rate kept and
    the rates tried. `highlight_state` (a count of numbers) thickens the fixed-state models
    closest to it; `length` relabels attention with its KV cache at that length."""
    import plotly.graph_objects as go

    fig = plotly_figure()
    fixed = [m["state_numbers"] for m in models if m["mixer"] != "attention"]
    nearest = None
    if highlight_state is not None and fixed:
        nearest = min(fixed, key=lambda v: abs(np.log(v) - np.log(highlight_state)))
    for model in models:
        numbers = model["state_numbers"]
        if model["mixer"] == "attention" and length is not None:
            numbers = numbers * length // model["config"]["length"]
        wide = (nearest is None or model["mixer"] == "attention"
                or model["state_numbers"] == nearest)
        tried = ", ".join(format(r["lr"], "g") for r in model["runs"])
        note = "" if model["converged"] else "<br>did not converge within its budget"
        hover = [f"{p['correct']}/{p['n']} = {100 * p['accuracy']:.1f}% "
                 f"[{100 * p['low']:.1f}, {100 * p['high']:.1f}]<br>lr kept "
                 f"{model['best_lr']:g}; tried {tried}{note}" for p in model["points"]]
        points = model["points"]
        fig.add_trace(go.Scatter(
            x=[p["pairs"] for p in points], y=[p["accuracy"] for p in points],
            mode="lines+markers", name=recall_label(model["mixer"], model["state"], numbers),
            text=hover, hovertemplate="%{x} pairs: %{text}<extra></extra>",
            line={"color": MIXER_COLORS.get(model["mixer"]), "width": 4 if wide else 1.5,
                  "dash": "solid" if wide else "dot"},
            marker={"size": 10, "symbol": "circle" if model["converged"] else "circle-open"},
            error_y={"type": "data", "symmetric": False,
                     "array": [p["high"] - p["accuracy"] for p in points],
                     "arrayminus": [p["accuracy"] - p["low"] for p in points]}))
    fig.update_layout(  # the legend (below the axes) gives the numbers carried per sequence
        title="Recall against key-value pairs",
        height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50},
        xaxis={"title": "key-value pairs", "type": "log", "dtick": np.log10(2),
               "automargin": True},
        yaxis={"title": "accuracy (95% interval)", "range": [-0.03, 1.05], "automargin": True},
        legend={"font": {"size": 14}, "orientation": "h", "yref": "container",
                "yanchor": "bottom", "y": 0, "x": 0})
    return fig


def forward_cost_figure(forward, title="Forward pass against length (B = 1, H = 4, D = 64)"):
    """Two panels from the benchmark's forward rows: time and peak memory against length."""
    fig = new_figure(11.0, 4.4)
    ax_time, ax_mem = fig.subplots(1, 2)
    methods = list(dict.fromkeys(row["method"] for row in forward["rows"]))
    for method in methods:
        rows = [r for r in forward["rows"] if r["method"] == method and "seconds" in r]
        lengths = [r["length"] for r in rows]
        ax_time.plot(lengths, [1e3 * r["seconds"] for r in rows], "o-", label=method)
        ax_mem.plot(lengths, [max(r["peak_mb"], 0.1) for r in rows], "o-", label=method)
    for ax, ylabel in ((ax_time, "forward time (ms)"), (ax_mem, "peak memory above inputs (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel="length T", ylabel=ylabel)
        ax.grid(alpha=0.3, which="both")
    ax_time.legend(fontsize=9)
    fig.suptitle(title)
    return fig


def decode_figure(decode, title="Time per generated token"):
    """Per-token decode time: a KV cache against its length, the recurrent forms at the start and
    at the end of the stream (flat: their state does not grow)."""
    fig = new_figure(8.0, 4.4)
    ax = fig.add_subplot()
    rows = decode["kv_cache"]
    ax.plot([r["position"] for r in rows], [1e6 * r["seconds"] for r in rows], "o-",
            color=MIXER_COLORS["attention"], lw=2, label="softmax attention, KV cache")
    ends = [decode["window"], decode["length"]]
    for form, label in (("linear", "linear attention, recurrent step"),
                        ("mamba", "Mamba layer, recurrent step")):
        ax.plot(ends, [1e6 * decode[form]["first"], 1e6 * decode[form]["last"]], "s--",
                color=MIXER_COLORS[form], lw=2,
                label=f"{label} (last/first {decode[form]['last_over_first']:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="tokens already in the context", ylabel="µs per token (median)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=10)
    return fig


def state_growth_plotly(lengths, kv_numbers, fixed, current_length=None, height=420):
    """Numbers carried from token to token against length: the KV cache (a line that grows) and
    fixed recurrent states (flat lines). fixed maps a label to a number."""
    import plotly.graph_objects as go

    fig = plotly_figure()
    fig.add_trace(go.Scatter(x=list(lengths), y=list(kv_numbers), mode="lines",
                             name="softmax attention: KV cache",
                             line={"color": MIXER_COLORS["attention"], "width": 4}))
    palette = ["#d62728", "#2ca02c", "#9467bd", "#8c564b"]
    for (label, numbers), color in zip(fixed.items(), palette):
        fig.add_trace(go.Scatter(x=[lengths[0], lengths[-1]], y=[numbers, numbers], mode="lines",
                                 name=label, line={"color": color, "width": 3, "dash": "dash"}))
    if current_length is not None:
        fig.add_vline(x=current_length, line={"color": "grey", "dash": "dot"})
    fig.update_layout(  # log axes labelled at powers of ten only (no small 2 and 5 labels)
        title="Numbers carried per sequence", height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        xaxis={"title": "length T", "type": "log", "dtick": 1, "automargin": True},
        yaxis={"title": "numbers", "type": "log", "dtick": 1, "automargin": True},
        legend={"font": {"size": 14}, "yanchor": "top", "y": 0.98, "x": 0.02})
    return fig


def capacity_figure(curves, title="Recall (closest stored value) from an outer-product state"):
    """Fraction of pairs recalled against pairs stored, one line per key dimension d: curves maps
    d to {pairs: fraction}. The dotted verticals mark pairs = d."""
    fig = new_figure(8.0, 4.2)
    ax = fig.add_subplot()
    for d, curve in curves.items():
        pairs = sorted(curve)
        line, = ax.plot(pairs, [curve[n] for n in pairs], "o-", lw=2, label=f"key dimension {d}")
        ax.axvline(d, color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel="pairs stored", ylabel="fraction recalled", ylim=(-0.03, 1.05), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    return fig


def passkey_distance_figure(models, title="Passkey retrieval against the key's distance"):
    """Whole-key accuracy (Wilson 95% interval) per band of key distance, one line per trained
    model (the records of lcviz.subquadratic.passkey_curve: "bands" maps "low-high" to a
    rate cell {"k", "n", "rate", "low", "high"}). The x position is each band's middle."""
    fig = new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    for model in models:
        bands = model["bands"]
        middles = [sum(map(int, band.split("-"))) / 2 for band in bands]
        cells = list(bands.values())
        rate = np.array([c["rate"] for c in cells])
        err = np.array([rate - [c["low"] for c in cells], [c["high"] for c in cells] - rate])
        err = np.clip(err, 0, None)  # an interval ending at the rate (0 or n of n): no rounding below
        ax.errorbar(middles, rate, yerr=err, fmt="-", color=MIXER_COLORS.get(model["mixer"]),
                    lw=2, capsize=4, marker="o", ms=8,
                    label=recall_label(model["mixer"], model["state"], model["state_numbers"]))
    ax.set(xlabel="key distance (tokens between the key and the question, band middle)",
           ylabel="whole-key accuracy (95% interval)", ylim=(-0.03, 1.05), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best", title="numbers carried per sequence (2 layers)",
              title_fontsize=9)
    return fig


def benchmark_figures(results):
    """{part: figure} for every part of a `python -m lcviz.bench subquadratic` result that has one:
    forward, decode, recall, passkey (the benchmark saves each as data/bench-subquadratic-<part>.png)."""
    makers = {"forward": lambda r: forward_cost_figure(r),
              "decode": lambda r: decode_figure(r),
              "recall": lambda r: recall_curves(r["models"]),
              "passkey": lambda r: passkey_distance_figure(r["models"])}
    return {part: make(results[part]) for part, make in makers.items() if part in results}
