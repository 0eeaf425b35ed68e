"""Every figure of the course. Each function returns a matplotlib Figure and never calls show(),
so the notebooks and the Streamlit app draw with the same code."""

import numpy as np
from matplotlib.figure import Figure


def new_figure(width=6.0, height=4.0, layout="constrained"):
    """A Figure not registered with pyplot's global state (safe in a long-running app).
    layout=None skips the layout engine, for figures that place their axes by hand."""
    return Figure(figsize=(width, height), dpi=100, layout=layout)


# ---------------------------------------------------------------- 01 tiny transformer

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


# ---------------------------------------------------------------- 02 attention masks

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



# ---------------------------------------------------------------- 03 receptive fields

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
        ax.plot(layers, layers * (window - 1) + 1, "--", color="black", lw=1,
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



# ---------------------------------------------------------------- 04 memory and speed

def attention_benchmark(results):
    """Log-log time and peak memory against T for each method of `python -m lcviz.bench
    attention` (its JSON), with O(T²) and O(T·w) slopes drawn through the first points."""
    rows = [r for r in results["rows"] if "error" not in r]
    fig = new_figure(10.0, 4.0)
    ax_time, ax_mem = fig.subplots(1, 2)
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["length"])
        lengths = np.array([r["length"] for r in mine])
        ax_time.loglog(lengths, [r["seconds"] * 1e3 for r in mine], "o-", label=method)
        ax_mem.loglog(lengths, [max(r["peak_mb"], 0.1) for r in mine], "o-", label=method)
    lengths = np.array(sorted({r["length"] for r in rows}), dtype=float)
    for ax, key, scale in ((ax_time, "seconds", 1e3), (ax_mem, "peak_mb", 1.0)):
        dense = sorted((r for r in rows if r["method"] == "dense SDPA"), key=lambda r: r["length"])
        if dense:
            top = dense[-1][key] * scale
            ax.loglog(lengths, top * (lengths / lengths[-1]) ** 2, ":", color="gray",
                      label="∝ T² (dense)")
            ax.loglog(lengths, top / 8 * lengths / lengths[-1], "--", color="gray",
                      label="∝ T·w (windowed)")
        ax.set(xlabel="sequence length T")
        ax.grid(alpha=0.3, which="both")
    ax_time.set(ylabel="forward time (ms)", title=f"time, w={results['window']}")
    ax_mem.set(ylabel="peak memory above inputs (MB)", title="peak memory")
    ax_time.legend(fontsize=7)
    return fig


def memory_story(lengths, curves, measured=None, title="What grows with the context length"):
    """Bytes against length on log-log axes: curves maps a label to (len(lengths),) analytic
    sizes in MB; measured maps a label to (lengths, MB) points drawn as markers."""
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for label, sizes in curves.items():
        ax.loglog(lengths, sizes, "-", label=label)
    for label, (xs, ys) in (measured or {}).items():
        ax.loglog(xs, ys, "o", label=label)
    ax.set(xlabel="context length (tokens)", ylabel="memory (MB)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig



# ---------------------------------------------------------------- 05 RoPE scaling


# ---------------------------------------------------------------- 06 passkey retrieval


# ---------------------------------------------------------------- 07 activation beacons
