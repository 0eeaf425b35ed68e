"""Figures of topic 02 attention masks: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure


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
    for index, (ax, (name, mask)) in enumerate(zip(axes, named_masks.items())):
        kept = float(np.asarray(mask).mean())
        mask_heatmap(mask, title=f"{name}\n{kept:.0%} of T²", ax=ax)
        last_row = index + columns >= len(named_masks)  # nothing drawn below this panel
        ax.set(xlabel="key j" if last_row else "", ylabel="query i" if index % columns == 0 else "")
    for ax in axes[len(named_masks):]:
        ax.set_axis_off()
    return fig


# ---- interactive (plotly) versions: hover a cell to read its query, key and value ----------



def downsample_mask(mask, max_cells=256):
    """(counts, starts, b) of a bool (T, T) mask summed into blocks of b x b pairs, b = ceil(T /
    max_cells): counts[r, c] is how many pairs of query block r and key block c may attend
    (blocks at the end may be smaller); starts are the blocks' first positions. b = 1 leaves the
    mask as it is (counts 0 or 1)."""
    mask = np.asarray(mask, dtype=bool)
    length = mask.shape[0]
    block = -(-length // max_cells)
    cells = -(-length // block)
    bytes_ = mask.view(np.uint8)
    if cells * block != length:
        bytes_ = np.zeros((cells * block, cells * block), dtype=np.uint8)
        bytes_[:length, :length] = mask
    rows = bytes_.reshape(cells, block, cells * block).sum(axis=1, dtype=np.uint16)  # (cells, T')
    counts = rows.reshape(cells, cells, block).sum(axis=2, dtype=np.uint16)  # (cells, cells)
    return counts, np.arange(0, length, block), block


def _position_axis(starts, block, length, max_ticks=12):
    """Category labels of the blocks ("4080-4095", or "7" for single positions) and thinned
    ticks that show the blocks' first positions."""
    labels = [f"{s}" if block == 1 else f"{s}–{min(s + block, length) - 1}" for s in starts]
    step = max(1, -(-len(labels) // max_ticks))
    return labels, {"type": "category", "tickmode": "array", "tickvals": labels[::step],
                    "ticktext": [f"{s}" for s in starts[::step]]}


def mask_heatmap_plotly(mask, title="Attention mask", max_cells=256, height=620):
    """One bool (T, T) mask, row = query, column = key, hover: query, key and whether it may
    attend. Masks longer than max_cells are summed into blocks (downsample_mask), so the figure
    stays small; hover then gives how many of the block's pairs may attend."""
    import plotly.graph_objects as go

    counts, starts, block = downsample_mask(mask, max_cells)
    length = np.asarray(mask).shape[0]
    labels, axis = _position_axis(starts, block, length)
    if block == 1:
        z, hover = counts.astype(np.uint8), "query %{y} → key %{x}<br>may attend: %{z} (1 = yes)"
        colorbar = {"title": {"text": "may attend"}, "tickvals": [0.25, 0.75],
                    "ticktext": ["no", "yes"]}
        colorscale = [[0, "#f7fbff"], [0.5, "#f7fbff"], [0.5, "#08519c"], [1, "#08519c"]]
    else:
        z = counts
        hover = (f"queries %{{y}}, keys %{{x}}<br>%{{z}} of {block * block} pairs may attend")
        colorbar = {"title": {"text": f"pairs that may<br>attend, of {block}×{block}"}}
        colorscale = "Blues"
    heatmap = go.Heatmap(z=z, x=labels, y=labels, zmin=0, zmax=block * block,
                         colorscale=colorscale, colorbar=colorbar, name="mask",
                         hovertemplate=hover + "<extra></extra>")
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
              "xaxis": {**axis, "title": {"text": "key j (attended to)"}, "constrain": "domain"},
              "yaxis": {**axis, "title": {"text": "query i"}, "autorange": "reversed",
                        "scaleanchor": "x", "constrain": "domain"}}
    fig = plotly_figure(heatmap, layout)
    return fig
