"""Figures of topic 03 receptive fields: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure
from lcviz.receptive import window_receptive_field


def reachability_heatmaps(reach, title="Which inputs reach each output"):
    """One heatmap per layer: reach is a list of L bool (T, T) matrices (lcviz.receptive)."""
    fig = new_figure(2.8 * len(reach), 3.2)
    axes = fig.subplots(1, len(reach), squeeze=False)[0]
    for layer, (ax, matrix) in enumerate(zip(axes, reach), start=1):
        ax.imshow(np.asarray(matrix, dtype=float), cmap="Oranges", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set(title=f"after {layer} layer{'s' if layer > 1 else ''}", xlabel="input j")
    axes[0].set_ylabel("output t")
    fig.suptitle(title)
    return fig


def receptive_growth(curves, window=None, title="Receptive field of the last position"):
    """Field size against depth: curves maps a label to sizes per layer (1..L). With `window`,
    the naive w·L and the exact L(w-1)+1 lines are drawn for comparison."""
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    for label, sizes in curves.items():
        layers = np.arange(1, len(sizes) + 1)
        ax.plot(layers, sizes, "o-", label=label)
    if window is not None:
        layers = np.arange(1, max(len(s) for s in curves.values()) + 1)
        ax.plot(layers, window * layers, ":", color="gray", label=f"w·L (w={window})")
        ax.plot(layers, [window_receptive_field(window, int(n)) for n in layers], "--", color="black", lw=1,
                label="L(w-1)+1 exact")
    ax.set(xlabel="layers L", ylabel="input positions reached", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def effective_field(grads, cone, position, title="Effective receptive field"):
    """Gradient norm of the prediction at `position` per input (bars, log scale) over the
    theoretical cone (shaded): grads and cone are (T,) arrays."""
    grads, cone = np.asarray(grads, dtype=float), np.asarray(cone, dtype=bool)
    fig = new_figure(6.5, 3.2)
    ax = fig.add_subplot()
    positions = np.arange(len(grads))
    ax.fill_between(positions, 0, 1, where=cone, step="mid", color="tab:orange", alpha=0.15,
                    transform=ax.get_xaxis_transform(), label="reachable (exact cone)")
    ax.bar(positions, np.where(grads > 0, grads, np.nan), width=1.0, color="tab:blue",
           label="|d loss / d input|")
    ax.axvline(position, color="black", lw=1, ls="--", label=f"output position {position}")
    ax.set_yscale("log")
    ax.set(xlabel="input position j", ylabel="gradient norm", title=title)
    ax.legend(fontsize=8, loc="upper left")
    return fig
