"""Figures of topic 07 activation beacons: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure


def budget_accuracy(curves, full_accuracy=None, title="Passkey accuracy against the KV budget"):
    """Whole-key accuracy against KV entries kept at the question: curves maps a method to a list
    of (kv entries, accuracy, label) points; full_accuracy (a number) is drawn as a line."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    for label, points in curves.items():
        points = sorted(points)
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=5, label=label)
        for kv, accuracy, note in points:
            ax.annotate(note, (kv, accuracy), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=line.get_color())
    if full_accuracy is not None:
        ax.axhline(full_accuracy, color="grey", ls="--", lw=1, label="full attention, all KV")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="KV entries the question attends to", ylabel="whole-key accuracy",
           ylim=(-0.03, 1.05), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def kept_tokens(tokens, kept, marked=(), title="Tokens kept by attention importance"):
    """One strip per row of 32 tokens: kept tokens dark, dropped light; `marked` positions (the
    key's digits) outlined in red."""
    kept_set, marked = {int(i) for i in kept}, {int(i) for i in marked}
    width = 32
    rows = (len(tokens) + width - 1) // width
    fig = new_figure(12, 0.5 + 0.42 * rows)
    ax = fig.add_subplot()
    grid = np.full((rows, width), np.nan)
    for i in range(len(tokens)):
        grid[i // width, i % width] = 1.0 if i in kept_set else 0.15
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.2, aspect="auto", interpolation="nearest")
    for i, token in enumerate(tokens):
        r, c = divmod(i, width)
        ax.text(c, r, token[:6], ha="center", va="center", fontsize=5.5,
                color="red" if i in marked else ("white" if i in kept_set else "black"))
    ax.set_xticks([])
    ax.set_yticks(range(rows), [f"{r * width}" for r in range(rows)], fontsize=7)
    ax.set(title=title + " (red: the key's digits)")
    return fig


# ---- interactive (plotly) versions ----------------------------------------------------------

FONT = {"size": 16}  # px: readable on a projector; the figure itself stretches with the page


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
    layout_ = {"title": {"text": title}, "font": FONT, "template": "plotly_white", "height": height,
               "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
               "xaxis": {**axis, "title": {"text": "key (ticks: first token of each chunk)"},
                         "constrain": "domain"},
               "yaxis": {**axis, "title": {"text": "query"}, "autorange": "reversed",
                         "scaleanchor": "x", "constrain": "domain"}}
    return go.Figure(heatmap, layout_)


def accuracy_by_ratio_plotly(models, title="Keys found at each condensing ratio", height=400):
    """Grouped bars: models maps a label to {ratio: (accuracy, prompts)}; hover gives k of n."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, by_ratio in models.items():
        ratios = sorted(by_ratio)
        counts = [[round(by_ratio[r][0] * by_ratio[r][1]), by_ratio[r][1]] for r in ratios]
        fig.add_trace(go.Bar(x=[str(r) for r in ratios], y=[by_ratio[r][0] for r in ratios],
                             customdata=counts, name=label,
                             hovertemplate=f"{label}, ratio %{{x}}: %{{customdata[0]}} of "
                                           "%{customdata[1]} keys (%{y:.0%})<extra></extra>"))
    fig.update_layout(title={"text": title}, font=FONT, template="plotly_white", height=height, barmode="group",
                      margin={"l": 70, "r": 20, "t": 60, "b": 60},
                      xaxis={"title": {"text": "condensing ratio (raw tokens per beacon)"},
                             "type": "category"},
                      yaxis={"title": {"text": "whole keys found"}, "tickformat": ".0%",
                             "range": [0, 1]},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    return fig
