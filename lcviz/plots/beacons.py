"""Figures of topic 07 activation beacons: each returns a figure and never calls show()."""

import numpy as np

from lcviz.beacons import BEACONS, EVICTION, FULL, VARIANTS, WINDOW
from lcviz.plots.core import new_figure, plotly_figure

# one colour per method of the equal-budget comparison, in drawing order
METHOD_COLORS = dict(zip([FULL, WINDOW, *EVICTION, BEACONS, *VARIANTS],
                         ["#7f7f7f", "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd",
                          "#c5b0d5", "#ff7f0e", "#ffbb78", "#d62728", "#8c564b"], strict=True))
BAND_TITLES = {"inside": "key inside the window", "relayed": "key relayed (window < d < field)",
               "beyond": "key beyond the window's field"}


def _errors(cells):
    """Wilson interval half-widths (2, m) below/above each cell's rate, for errorbar()."""
    errors = [[c["rate"] - c["low"] for c in cells], [c["high"] - c["rate"] for c in cells]]
    return np.clip(np.array(errors), 0, None)  # float rounding can leave -1e-17 at 0 or 1


def equal_budget_figure(comparison, methods=tuple(METHOD_COLORS)):
    """One panel per key-distance band: whole-key accuracy (95% intervals) of every method at
    each ratio's KV budget; comparison is lcviz.beacons.equal_budget_comparison's result."""
    ratios = list(comparison)
    bands = list(BAND_TITLES)
    fig = new_figure(13, 4.4)
    axes = fig.subplots(1, len(bands), sharey=True)
    width = 0.8 / len(methods)
    for ax, band in zip(axes, bands):
        for m, method in enumerate(methods):
            xs, cells = [], []
            for i, ratio in enumerate(ratios):
                cell = (comparison[ratio]["bands"][band] or {}).get("cells", {}).get(method)
                if cell:
                    xs.append(i - 0.4 + width * (m + 0.5))
                    cells.append(cell)
            if cells:
                ax.bar(xs, [c["rate"] for c in cells], width, yerr=_errors(cells), capsize=1.5,
                       color=METHOD_COLORS[method], label=method if band == bands[0] else None)
        ax.set_xticks(range(len(ratios)), [f"ratio {r}\nKV {comparison[r]['budget']}"
                                           for r in ratios], fontsize=9)
        ax.set_title(BAND_TITLES[band], fontsize=11)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("whole keys found (95% interval)")
    fig.legend(loc="outside lower center", ncol=5, fontsize=9)
    return fig


def cache_size_figure(lengths, ratios, chunk, kv_entries):
    """KV entries the last token reads against prompt length: full attention (all of them)
    beside beacons at each ratio; kv_entries(n_tokens, chunk, ratio) gives the beacons' count."""
    fig = new_figure(7, 4.2)
    ax = fig.add_subplot()
    ax.plot(lengths, lengths, "k--", label="full attention (every token)")
    for ratio in ratios:
        ax.plot(lengths, [kv_entries(n, chunk, ratio) for n in lengths], "o-", ms=3,
                label=f"beacons, ratio {ratio}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set(xlabel="prompt length (tokens)", ylabel="KV entries per layer and head",
           title=f"Cache size while reading (chunks of {chunk})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return fig


# ---- interactive (plotly) versions ----------------------------------------------------------



def beacon_labels(layout):
    """One label per entry of the interleaved sequence: "token 17" or "beacon 2 of chunk 0"."""
    labels, beacon_in_chunk = [], {}
    for index in range(layout.length):
        chunk = int(layout.chunk_of[index])
        if layout.is_beacon[index]:
            k = beacon_in_chunk[chunk] = beacon_in_chunk.get(chunk, -1) + 1
            labels.append(f"beacon {k} of chunk {chunk}")
        else:
            labels.append(f"token {int(layout.positions[index])}")
    return labels


def beacon_mask_plotly(layout, mask, title="Beacon attention mask", max_ticks=16, height=600):
    """The (S, S) mask of an interleaved sequence (lcviz.beacons.beacon_layout / beacon_mask),
    row = query, column = key: blue where the key is a raw token, orange where it is a beacon,
    blank where masked. Hover names the query and the key."""
    import plotly.graph_objects as go

    mask = np.asarray(mask, dtype=bool)
    is_beacon = np.asarray(layout.is_beacon, dtype=bool)
    kind = np.where(mask, np.where(is_beacon[None, :], 2.0, 1.0), np.nan).astype(np.float32)
    labels = beacon_labels(layout)
    chunk_starts = [labels[i] for i in range(layout.length) if not is_beacon[i]
                    and (i == 0 or layout.chunk_of[i] != layout.chunk_of[i - 1])]
    step = max(1, -(-len(chunk_starts) // max_ticks))
    axis = {"type": "category", "tickmode": "array", "tickvals": chunk_starts[::step],
            "ticktext": [label.split()[1] for label in chunk_starts[::step]]}
    heatmap = go.Heatmap(z=kind, x=labels, y=labels, zmin=1, zmax=2, hoverongaps=False,
                         colorscale=[[0, "#1f77b4"], [0.5, "#1f77b4"], [0.5, "#ff7f0e"],
                                     [1, "#ff7f0e"]],
                         colorbar={"title": {"text": "key is"}, "tickvals": [1.25, 1.75],
                                   "ticktext": ["a token", "a beacon"]},
                         name="mask", hovertemplate="query: %{y}<br>key: %{x}<extra></extra>")
    layout_ = {"title": {"text": title}, "height": height,
               "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
               "xaxis": {**axis, "title": {"text": "key (ticks: first token of each chunk)"},
                         "constrain": "domain"},
               "yaxis": {**axis, "title": {"text": "query"}, "autorange": "reversed",
                         "scaleanchor": "x", "constrain": "domain"}}
    return plotly_figure(heatmap, layout_)


def equal_budget_plotly(ratio_result, ratio, height=520):
    """Grouped bars for one ratio of the equal-budget comparison: per key-distance band, every
    method's whole-key accuracy with its 95% interval; hover gives k of n."""
    import plotly.graph_objects as go

    fig = plotly_figure()
    bands = [b for b in BAND_TITLES if ratio_result["bands"].get(b)]
    for method, color in METHOD_COLORS.items():
        cells = [ratio_result["bands"][b]["cells"].get(method) for b in bands]
        shown = [(BAND_TITLES[b], c) for b, c in zip(bands, cells) if c]
        if not shown:
            continue
        fig.add_trace(go.Bar(
            x=[b for b, _ in shown], y=[c["rate"] for _, c in shown], name=method,
            marker_color=color, customdata=[[c["k"], c["n"]] for _, c in shown],
            error_y={"type": "data", "symmetric": False,
                     "array": [c["high"] - c["rate"] for _, c in shown],
                     "arrayminus": [c["rate"] - c["low"] for _, c in shown]},
            hovertemplate=f"{method}: %{{customdata[0]}} of %{{customdata[1]}} keys "
                          "(%{y:.0%})<extra></extra>"))
    fig.update_layout(title={"text": f"Ratio {ratio}: every method keeps {ratio_result['budget']} "
                                     "KV entries"},
                      height=height, barmode="group",
                      margin={"l": 70, "r": 20, "t": 60, "b": 40},
                      yaxis={"title": {"text": "whole keys found"}, "tickformat": ".0%",
                             "range": [0, 1.05]},
                      legend={"orientation": "h", "y": -0.15, "x": 0})
    return fig
