"""Figures of topic 01 tiny transformer: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure


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
            ax.set_title(f"layer {layer} head {head}", fontsize=11)
    fig.suptitle(title)
    return fig


VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥"}  # characters that would print as nothing


def token_attention_heatmap(weights, tokens, title="Attention weights"):
    """One (T, T) causal attention matrix with one upright, readable label per character (a
    space shows as ␣, a newline as ↵). Future cells (above the diagonal, weight exactly 0 under
    the causal mask) are left white so the masked region is visibly empty. The figure grows
    with T so labels stay at projector size."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"weights must be a square (T, T) matrix, got shape {weights.shape}")
    if len(tokens) != weights.shape[0]:
        raise ValueError(f"tokens must have one label per row ({weights.shape[0]}), got "
                         f"{len(tokens)}")
    T = weights.shape[0]
    side = max(5.0, 0.2 * T)  # inches: 20 px per token at dpi 100
    width, height = side + 2.3, side + 1.4  # room for labels, colour bar and title
    fig = new_figure(width, height, layout=None)
    ax = fig.add_axes((1.1 / width, 0.8 / height, side / width, side / height))
    colorbar_ax = fig.add_axes(((1.3 + side) / width, (0.8 + 0.1 * side) / height, 0.22 / width,
                                0.8 * side / height))
    shown = np.where(np.triu(np.ones((T, T), dtype=bool), 1), np.nan, weights)
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=max(weights.max(), 1e-9),
                      interpolation="nearest", aspect="equal")
    fig.colorbar(image, cax=colorbar_ax).ax.tick_params(labelsize=11)
    labels = [VISIBLE.get(t, t) for t in tokens]
    ax.set_xticks(range(T), labels, fontsize=11, family="monospace")
    ax.set_yticks(range(T), labels, fontsize=11, family="monospace")
    ax.tick_params(length=0)
    ax.set_xlabel("key (the character attended to)", fontsize=13)
    ax.set_ylabel("query (the character predicting the next)", fontsize=13)
    ax.set_title(title, fontsize=14)
    return fig


# ---- interactive (plotly) version: hover a cell to read its query token, key token, weight ----

VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥"}  # characters that would be invisible on an axis


def shown_token(token):
    """A token as it can be read on an axis: spaces, newlines and tabs become visible marks."""
    return "".join(VISIBLE.get(c, c) for c in str(token)) or "∅"


def attention_heatmap_plotly(weights, tokens, title="Attention weights", max_ticks=32,
                             height=600):
    """One (T, T) attention matrix, row = query, column = key; hover gives the query token, the
    key token and the weight. Axes label at most max_ticks tokens (every k-th)."""
    import plotly.graph_objects as go

    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != len(tokens):
        raise ValueError(f"weights must be (queries, keys) with one key per token, got shape "
                         f"{weights.shape} for {len(tokens)} tokens")
    labels = [f"{i} {shown_token(t)}" for i, t in enumerate(tokens)]
    step = max(1, -(-len(labels) // max_ticks))
    axis = {"type": "category", "tickmode": "array", "tickvals": labels[::step],
            "ticktext": [shown_token(t) for t in tokens[::step]], "tickangle": 0}
    heatmap = go.Heatmap(z=weights, x=labels, y=labels[:len(weights)], zmin=0, colorscale="Viridis",
                         colorbar={"title": {"text": "weight"}}, name="attention",
                         hovertemplate="query %{y} → key %{x}<br>weight %{z:.3f}<extra></extra>")
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 60, "r": 20, "t": 60, "b": 60},
              "xaxis": {**axis, "title": {"text": "key (attended to)"}},
              "yaxis": {**axis, "title": {"text": "query"}, "autorange": "reversed"}}
    return plotly_figure(heatmap, layout)
