"""Figures of topic 06 passkey retrieval: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure


def accuracy_curves(curves, xlabel, reach=None, title="Passkey accuracy"):
    """Whole-key accuracy per bucket: curves maps a label to {bucket start: accuracy}; reach
    maps a label to (window, exact receptive field), drawn as dotted / dashed lines."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    for index, (label, points) in enumerate(curves.items()):
        color = f"C{index}"
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], "o-", color=color, label=label, ms=4)
        if reach and reach.get(label):
            window, field = reach[label]
            ax.axvline(window, color=color, ls=":", lw=1.2)
            ax.axvline(field, color=color, ls="--", lw=1.2)
    ax.set(xlabel=xlabel, ylabel="whole-key accuracy", ylim=(-0.03, 1.03), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="dotted: window w, dashed: L(w-1)+1" if reach else None,
              title_fontsize=8)
    return fig


def needle_grids(grids, title="Needle in a haystack: whole-key accuracy"):
    """One heatmap per model: grids maps a label to {(length, depth): accuracy}."""
    fig = new_figure(3.2 * len(grids), 3.4)
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (label, grid) in zip(axes, grids.items()):
        lengths = sorted({length for length, _ in grid})
        depths = sorted({depth for _, depth in grid})
        values = np.array([[grid[(length, depth)] for depth in depths] for length in lengths])
        ax.imshow(values, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", origin="lower")
        for i in range(len(lengths)):
            for j in range(len(depths)):
                ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(depths)), [f"{d:.0%}" for d in depths], fontsize=7)
        ax.set_yticks(range(len(lengths)), lengths, fontsize=7)
        ax.set(xlabel="needle depth", title=label)
    axes[0].set_ylabel("prompt length (tokens)")
    fig.suptitle(title)
    return fig


def query_attention(weights, tokens, key_positions, title="What the question attends to"):
    """Attention of the last (query) position in every head: weights (H, T); the key's digit
    positions are marked so an induction-style head stands out."""
    weights = np.asarray(weights, dtype=float)
    height = 1.3 + 0.45 * len(weights)  # inches: 0.95 below for the rotated tokens, 0.35 above
    fig = new_figure(9.0, height, layout=None)  # placed by hand: the app redraws it per prompt
    ax = fig.add_axes((0.09, 0.95 / height, 0.89, 1 - 1.3 / height))
    ax.imshow(weights, cmap="magma", aspect="auto", interpolation="nearest", vmin=0)
    for position in key_positions:
        ax.axvline(position, color="cyan", lw=0.6, alpha=0.7)
    ax.set_yticks(range(len(weights)), [f"head {h}" for h in range(len(weights))], fontsize=8)
    step = max(1, len(tokens) // 40)
    ax.set_xticks(range(0, len(tokens), step), [tokens[i] for i in range(0, len(tokens), step)],
                  rotation=90, fontsize=6)
    ax.set(title=title + " (cyan: the key's digits)")
    return fig


# ---- interactive (plotly) versions ----------------------------------------------------------

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def query_attention_plotly(weights, tokens, key_positions, title="What the question attends to",
                           max_ticks=24, height=None):
    """Attention of the last (query) position in every head: weights (H, T), hover gives the
    head, the token and the weight; the key's digits are outlined. The token axis labels at most
    max_ticks tokens (every k-th)."""
    import plotly.graph_objects as go

    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != len(tokens):
        raise ValueError(f"weights must be (heads, tokens) with one column per token, got shape "
                         f"{weights.shape} for {len(tokens)} tokens")
    labels = [f"{i} {t}" for i, t in enumerate(tokens)]
    heads = [f"head {h}" for h in range(len(weights))]
    step = max(1, -(-len(labels) // max_ticks))
    heatmap = go.Heatmap(z=weights, x=labels, y=heads, zmin=0, colorscale="Blues",
                         colorbar={"title": {"text": "weight"}}, name="attention",
                         hovertemplate="%{y}, token %{x}<br>weight %{z:.3f}<extra></extra>")
    layout = {"title": {"text": title}, "height": height or 170 + 34 * len(weights),
              "margin": {"l": 90, "r": 20, "t": 60, "b": 100},
              "xaxis": {"type": "category", "tickmode": "array", "tickvals": labels[::step],
                        "ticktext": [str(t) for t in tokens[::step]], "tickangle": -60,
                        "title": {"text": "prompt tokens (outlined: the key's digits)"}},
              "yaxis": {"autorange": "reversed"}}
    fig = plotly_figure(heatmap, layout)
    for position in key_positions:
        fig.add_shape(type="rect", x0=position - 0.5, x1=position + 0.5, y0=-0.5,
                      y1=len(weights) - 0.5, line={"color": "#d62728", "width": 2})
    return fig


def accuracy_by_distance_plotly(curves, reach=None, highlight=None,
                                title="Passkey accuracy by distance",
                                xlabel="distance from the key to the question (tokens)",
                                xhover="distance %{x}", height=440):
    """Whole-key accuracy per distance bucket: curves maps a model to {bucket start: (accuracy,
    prompts)}; hover gives k of n (after `xhover`, which names x). reach maps a model to (window, exact receptive field) or None;
    the reach of the `highlight` model (drawn thicker) is marked: a dotted line at its window, a
    dashed one at what its layers can reach (or a note when that lies beyond every prompt)."""
    import plotly.graph_objects as go

    fig = plotly_figure()
    longest = max(max(points) for points in curves.values())
    for index, (label, points) in enumerate(curves.items()):
        color = COLORS[index % len(COLORS)]
        starts = sorted(points)
        accuracy = [points[s][0] for s in starts]
        counts = [[round(points[s][0] * points[s][1]), points[s][1]] for s in starts]
        chosen = label == highlight
        fig.add_trace(go.Scatter(x=starts, y=accuracy, customdata=counts, name=label,
                                 mode="lines+markers", opacity=1 if chosen or not highlight else 0.45,
                                 line={"color": color, "width": 5 if chosen else 2},
                                 marker={"size": 10 if chosen else 6},
                                 hovertemplate=f"{label}<br>{xhover}: %{{customdata[0]}} of "
                                               "%{customdata[1]} keys (%{y:.0%})<extra></extra>"))
    marks = (reach or {}).get(highlight)
    if marks:
        window, field = marks
        for x, dash, words in ((window, "dot", f"window {window}"),
                               (field, "dash", f"its layers reach {field}")):
            if x <= longest * 1.25:
                fig.add_vline(x=x, line={"dash": dash, "width": 2, "color": "black"},
                              annotation_text=words, annotation_position="bottom right",
                              annotation_font_size=15)
            else:
                fig.add_annotation(x=1, xref="paper", y=0.05, yref="paper", showarrow=False,
                                   xanchor="right", text=f"{highlight}: {words}, beyond every "
                                                         "distance here", font={"size": 15})
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
              "xaxis": {"title": {"text": xlabel}},
              "yaxis": {"title": {"text": "keys found"}, "tickformat": ".0%", "range": [-0.03, 1.05]},
              "legend": {"orientation": "h", "y": -0.22, "x": 0}}
    fig.update_layout(layout)
    return fig


def needle_grid_plotly(grids, title="Needle in a haystack: keys found", height=420):
    """One heatmap per model: grids maps a label to {(length, depth): (found, prompts)}; each cell
    shows the share found and hover gives k of n."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(1, len(grids), subplot_titles=list(grids), shared_yaxes=True,
                        horizontal_spacing=0.04, figure=plotly_figure())
    for column, grid in enumerate(grids.values(), start=1):
        lengths = sorted({length for length, _ in grid})
        depths = sorted({depth for _, depth in grid})
        found = np.array([[grid[(length, depth)][0] for depth in depths] for length in lengths])
        total = np.array([[grid[(length, depth)][1] for depth in depths] for length in lengths])
        share = found / total
        fig.add_trace(go.Heatmap(
            z=share, x=[f"{d:.0%}" for d in depths], y=[str(length) for length in lengths],
            zmin=0, zmax=1, colorscale="RdYlGn", showscale=column == len(grids),
            text=[[f"{s:.0%}" for s in row] for row in share], texttemplate="%{text}",
            customdata=np.stack([found, total], axis=-1),
            colorbar={"title": {"text": "found"}, "tickformat": ".0%"},
            hovertemplate="length %{y}, depth %{x}<br>%{customdata[0]} of %{customdata[1]} "
                          "keys found<extra></extra>"), 1, column)
        fig.update_xaxes(title_text="needle depth", type="category", row=1, col=column)
    fig.update_yaxes(title_text="prompt length (tokens)", type="category", row=1, col=1)
    fig.update_annotations(font_size=16)
    fig.update_layout(title={"text": title}, height=height,
                      margin={"l": 80, "r": 20, "t": 90, "b": 60})
    return fig
