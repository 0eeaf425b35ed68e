"""Figures of topic 01 tiny transformer: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure


def loss_curve(history, title="Training loss"):
    """Training loss per step (faint) with its running mean, and held-out loss if recorded."""
    fig = new_figure()
    ax = fig.add_subplot()
    steps, loss = np.asarray(history["step"]), np.asarray(history["loss"])
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="train (per step)")
    k = max(1, len(loss) // 20)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax.plot(steps[k - 1:], smooth, color="tab:blue", lw=2, label=f"train (mean of {k})")
    if history.get("eval"):
        ax.plot(history["eval_step"], history["eval"], "o-", color="tab:orange", label="held-out")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def attention_heatmap(weights, tokens=None, title="Attention weights", ax=None):
    """Heatmap of one (T, S) attention matrix: row = query, column = key; tokens label the axes."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2:
        raise ValueError(f"weights must be 2-D (queries, keys), got shape {weights.shape}")
    if ax is None:  # axes placed by hand: the layout engine would triple the drawing time
        fig = new_figure(5.5, 4.8, layout=None)
        ax, colorbar_ax = fig.add_axes((0.16, 0.16, 0.66, 0.76)), fig.add_axes((0.85, 0.16, 0.03, 0.76))
    else:
        fig, colorbar_ax = ax.figure, None
    image = ax.imshow(weights, cmap="viridis", vmin=0, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, cax=colorbar_ax, fraction=0.046)
    if tokens is not None and len(tokens) <= 48:
        labels = [repr(t)[1:-1] for t in tokens]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel="key position (attended to)", ylabel="query position", title=title)
    return fig


def attention_grid(maps, tokens=None, title="Attention per layer and head"):
    """All heads of all layers: maps is a list of L arrays (H, T, S) (one batch element)."""
    n_layer, n_head = len(maps), maps[0].shape[0]
    fig = new_figure(2.3 * n_head, 2.3 * n_layer)
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    for layer, heads in enumerate(maps):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(np.asarray(heads[head], dtype=float), cmap="viridis", vmin=0,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
    fig.suptitle(title)
    return fig
