"""Figures of topic 06 passkey retrieval: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure


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
