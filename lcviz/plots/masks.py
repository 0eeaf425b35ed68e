"""Figures of topic 02 attention masks: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure


def mask_heatmap(mask, title="Attention mask", ax=None):
    """One bool (T, T) mask: dark = may attend; row = query, column = key."""
    mask = np.asarray(mask, dtype=float)
    if ax is None:  # placed by hand: no layout engine, so the app redraws it quickly
        fig = new_figure(4.2, 4.0, layout=None)
        ax = fig.add_axes((0.16, 0.13, 0.8, 0.78))
    fig = ax.figure
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xlabel="key j", ylabel="query i", title=title)
    return fig


def mask_gallery(named_masks, columns=4):
    """Several masks side by side: named_masks maps a title to a bool (T, T) mask."""
    rows = -(-len(named_masks) // columns)
    fig = new_figure(3.0 * columns, 3.1 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax, (name, mask) in zip(axes, named_masks.items()):
        kept = float(np.asarray(mask).mean())
        mask_heatmap(mask, title=f"{name}\n{kept:.0%} of T²", ax=ax)
        ax.set(xlabel="", ylabel="")
    for ax in axes[len(named_masks):]:
        ax.set_axis_off()
    return fig
