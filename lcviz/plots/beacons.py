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
