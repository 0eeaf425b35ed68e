"""Figures of topic 09 ring attention: the ring schedule, who computes which scores at each step,
the work per rank and step of each layout, and memory per rank. Each returns a figure and never
calls show()."""

import math

import numpy as np

from lcviz import ring
from lcviz.plots.core import new_figure, plotly_figure
from lcviz.validate import check_int

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _color(rank):
    return PALETTE[rank % len(PALETTE)]


def ring_schedule(world, step=None):
    """Left: the W ranks on a ring at `step` (default 0), each holding its own queries and the
    key/value block of rank (r - step) mod W, arrows showing where that block goes next. Right:
    the whole schedule, rank x step, each cell coloured by the block it holds; the current step
    is framed."""
    world = check_int("world", world, minimum=1, maximum=len(PALETTE))
    step = 0 if step is None else check_int("step", step, minimum=0, maximum=world - 1)
    schedule = ring.ring_schedule(world).numpy()
    fig = new_figure(11.5, 4.8, layout=None)
    ax = fig.add_axes((0.01, 0.02, 0.42, 0.86))
    angles = [math.pi / 2 - 2 * math.pi * r / world for r in range(world)]
    radius = 1.0
    for r, a in enumerate(angles):
        x, y = radius * math.cos(a), radius * math.sin(a)
        src = int(schedule[r, step])
        ax.add_patch(_box(x, y, _color(src)))
        ax.text(x, y + 0.13, f"rank {r}", ha="center", va="center", fontsize=13, weight="bold")
        ax.text(x, y - 0.1, f"Q{r} · KV{src}", ha="center", va="center", fontsize=13,
                color="white", weight="bold")
        if world > 1:
            b = angles[(r + 1) % world]
            start = np.array([math.cos(a), math.sin(a)]) * radius * 0.78
            end = np.array([math.cos(b), math.sin(b)]) * radius * 0.78
            ax.annotate("", xy=end, xytext=start, arrowprops={
                "arrowstyle": "-|>", "color": _color(src), "lw": 2.2,
                "connectionstyle": "arc3,rad=-0.25", "shrinkA": 18, "shrinkB": 18})
    ax.set(xlim=(-1.55, 1.55), ylim=(-1.45, 1.45), aspect="equal")
    ax.set_axis_off()
    ax.set_title(f"step {step} (of 0..{world - 1}): attend to the KV block held, pass it on"
                 if world > 1 else "one rank: nothing to pass on", fontsize=14)
    grid = fig.add_axes((0.55, 0.16, 0.42, 0.7))
    colors = np.array([[_rgb(_color(int(s))) for s in row] for row in schedule])
    grid.imshow(colors, interpolation="nearest", aspect="auto")
    for r in range(world):
        for s in range(world):
            grid.text(s, r, f"KV{schedule[r, s]}", ha="center", va="center", fontsize=12,
                      color="white", weight="bold")
    grid.add_patch(_frame(step, world))
    grid.set_xticks(range(world), [str(s) for s in range(world)], fontsize=12)
    grid.set_yticks(range(world), [f"rank {r}" for r in range(world)], fontsize=12)
    grid.set_xlabel("step", fontsize=13)
    grid.set_title("block held: (rank − step) mod W", fontsize=14)
    return fig


def _box(x, y, color):
    from matplotlib.patches import FancyBboxPatch
    return FancyBboxPatch((x - 0.33, y - 0.24), 0.66, 0.48, boxstyle="round,pad=0.02",
                          facecolor=color, edgecolor="black", alpha=0.9)


def _frame(step, world):
    from matplotlib.patches import Rectangle
    return Rectangle((step - 0.5, -0.5), 1, world, fill=False, edgecolor="black", lw=3)


def _rgb(hex_color):
    return [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]


def ring_ownership(length, world):
    """One strip per layout: which rank holds each token position (colour = rank)."""
    fig = new_figure(10, 2.8, layout=None)
    ax = fig.add_axes((0.13, 0.22, 0.85, 0.62))
    owner = np.zeros((len(ring.LAYOUTS), length, 3))
    for i, layout in enumerate(ring.LAYOUTS):
        for r, positions in enumerate(ring.all_positions(length, world, layout)):
            owner[i, positions.numpy()] = _rgb(_color(r))
    ax.imshow(owner, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(ring.LAYOUTS)), ring.LAYOUTS, fontsize=13)
    ax.set_xlabel("token position", fontsize=13)
    ax.set_title(f"Which rank holds each token (T = {length}, W = {world}; colour = rank)",
                 fontsize=14)
    return fig


def ring_balance(length, world, causal=True):
    """Work (allowed query-key pairs) per rank, summed over the steps, for each layout: bars per
    rank, one panel per layout, the max/min ratio in each title."""
    fig = new_figure(11, 3.6)
    axes = fig.subplots(1, len(ring.LAYOUTS), sharey=True)
    for ax, layout in zip(axes, ring.LAYOUTS):
        work = ring.pairs_per_step(length, world, layout, causal).sum(1).numpy()
        ax.bar(range(world), work, color=[_color(r) for r in range(world)])
        ax.set_title(f"{layout}: max/min {work.max() / work.min():.2f}", fontsize=14)
        ax.set_xticks(range(world), [str(r) for r in range(world)], fontsize=12)
        ax.set_xlabel("rank", fontsize=13)
    axes[0].set_ylabel("query-key pairs", fontsize=13)
    return fig


def ring_work(counts, step=None, title="Pairs per rank and step", height=430):
    """Plotly heatmap of a (W, W) work table (rank x step, e.g. lcviz.ring.pairs_per_step): each
    cell names the key/value block the rank holds at that step and the pairs it computes; the
    column `step` is outlined."""
    import plotly.graph_objects as go

    counts = np.asarray(counts)
    world = counts.shape[0]
    schedule = ring.ring_schedule(world).numpy()
    text = [[f"KV{schedule[r, s]}<br>{counts[r, s]:,}" for s in range(world)]
            for r in range(world)]
    fig = plotly_figure(go.Heatmap(
        z=counts, x=[f"step {s}" for s in range(world)], y=[f"rank {r}" for r in range(world)],
        colorscale="Blues", zmin=0, text=text, texttemplate="%{text}" if world <= 8 else "",
        customdata=schedule, colorbar={"title": "pairs"},
        hovertemplate="%{y}, %{x}: holds KV of rank %{customdata}, %{z:,} pairs<extra></extra>"))
    if step is not None:
        fig.add_shape(type="rect", x0=step - 0.5, x1=step + 0.5, y0=-0.5, y1=world - 0.5,
                      line={"color": "black", "width": 4})
    fig.update_layout(title={"text": title}, height=height,
                      yaxis={"autorange": "reversed"}, margin={"l": 90, "r": 20, "t": 60, "b": 50})
    return fig


def ring_diagram(world, step=0, height=420):
    """Plotly version of the ring at `step`: the ranks on a circle, each coloured by the
    key/value block it holds (rank (r - step) mod W), arrows to rank + 1 where that block goes
    next."""
    import plotly.graph_objects as go

    world = check_int("world", world, minimum=1, maximum=len(PALETTE))
    step = check_int("step", step, minimum=0, maximum=world - 1)
    schedule = ring.ring_schedule(world).numpy()
    angles = [math.pi / 2 - 2 * math.pi * r / world for r in range(world)]
    xs, ys = [math.cos(a) for a in angles], [math.sin(a) for a in angles]
    held = [int(schedule[r, step]) for r in range(world)]
    fig = plotly_figure(go.Scatter(
        x=xs, y=ys, mode="markers+text", marker={"size": 74, "color": [_color(h) for h in held],
                                                   "line": {"color": "black", "width": 2}},
        text=[f"<b>rank {r}</b><br>Q{r}·KV{h}" for r, h in enumerate(held)],
        textfont={"color": "white", "size": 15}, hoverinfo="text",
        hovertext=[f"rank {r} holds its queries Q{r} and the key/value block of rank {h}"
                   for r, h in enumerate(held)]))
    if world > 1:
        for r in range(world):
            n = (r + 1) % world
            fig.add_annotation(x=0.72 * xs[n], y=0.72 * ys[n], ax=0.72 * xs[r], ay=0.72 * ys[r],
                               xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                               arrowhead=3, arrowsize=1.4, arrowwidth=2.5,
                               arrowcolor=_color(held[r]), standoff=4, startstandoff=4)
    title = (f"Step {step}: each rank attends to the block it holds, then passes it to rank + 1"
             if world > 1 else "One rank: nothing travels")
    fig.update_layout(title={"text": title}, height=height,
                      showlegend=False, margin={"l": 10, "r": 10, "t": 60, "b": 10},
                      xaxis={"visible": False, "range": [-1.45, 1.45]},
                      yaxis={"visible": False, "range": [-1.35, 1.35], "scaleanchor": "x"})
    return fig


def ring_step_pairs(length, world, layout="contiguous", step=0, causal=True, height=560):
    """Plotly heatmap of the T x T score matrix: each (query, key) pair that is computed at
    `step` coloured by the rank computing it (the rank holding the query); pairs computed at other
    steps light grey, masked pairs white. Positions are global: striped and zigzag ranks hold
    scattered rows."""
    import plotly.graph_objects as go

    length, world = check_int("length", length, minimum=1), check_int("world", world,
                                                                             minimum=1)
    step = check_int("step", step, minimum=0, maximum=world - 1)
    positions = ring.all_positions(length, world, layout)
    allowed = np.tril(np.ones((length, length), dtype=bool)) if causal else np.ones(
        (length, length), dtype=bool)
    z = np.where(allowed, -1.0, np.nan)  # -1: computed at another step
    for r in range(world):
        src = (r - step) % world
        rows, cols = positions[r].numpy(), positions[src].numpy()
        block = allowed[np.ix_(rows, cols)]
        z[np.ix_(rows, cols)] = np.where(block, r, z[np.ix_(rows, cols)])
    fig = plotly_figure(go.Heatmap(
        z=z, zmin=-1.5, zmax=world - 0.5, colorscale=_steps(world), showscale=True,
        colorbar={"title": "rank", "tickvals": list(range(-1, world)),
                  "ticktext": ["other step"] + [str(r) for r in range(world)]},
        hovertemplate="query %{y}, key %{x}: %{z}<extra></extra>"))
    fig.update_layout(title={"text": f"Step {step}: scores computed, by rank ({layout})"},
                      height=height,
                      xaxis={"title": "key position"},
                      yaxis={"title": "query position", "autorange": "reversed",
                             "scaleanchor": "x"},
                      margin={"l": 80, "r": 20, "t": 60, "b": 60})
    return fig


def _steps(world):
    """A discrete colour scale for z in -1 (grey) .. world - 1 (rank colours)."""
    n = world + 1
    scale = []
    colors = ["#dddddd"] + [_color(r) for r in range(world)]
    for i, c in enumerate(colors):
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale


def ring_memory(worlds, peaks_mb, dense_mb=None, title="Peak memory per rank (measured)"):
    """Measured peak memory per rank (MB) against the number of ranks W, with the 1/W line
    through the W=1 point, and the dense single-process peak as a horizontal line."""
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    worlds, peaks_mb = np.asarray(worlds), np.asarray(peaks_mb)
    ax.plot(worlds, peaks_mb, "o-", lw=2, ms=8, label="ring, max over ranks")
    if worlds[0] == 1:
        ax.plot(worlds, peaks_mb[0] / worlds, ":", color="grey", label="W=1 peak / W")
    if dense_mb is not None:
        ax.axhline(dense_mb, color="#d62728", ls="--", label="dense SDPA, one process")
    ax.set_xticks(worlds, [str(w) for w in worlds])
    ax.set_xlabel("ranks W", fontsize=13)
    ax.set_ylabel("MB above the torch runtime", fontsize=13)
    ax.set_title(title, fontsize=14)
    ax.legend(fontsize=11)
    return fig
