"""Every figure of the course. Each function returns a matplotlib Figure and never calls show(),
so the notebooks and the Streamlit app draw with the same code."""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator


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

def rope_rotations(inv_freq, length, pairs=None):
    """Left: where pair j's rotation lands on the unit circle at positions 0..length-1 (five
    pairs from fastest to slowest unless `pairs` are given).
    Right: each pair's wavelength 2*pi/theta_j against the training length."""
    inv_freq = np.asarray(inv_freq, dtype=float)
    pairs = list(pairs) if pairs is not None else sorted(set(np.linspace(0, len(inv_freq) - 1, 5,
                                                                         dtype=int).tolist()))
    fig = new_figure(10, 4.2)
    circle_ax, wave_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
    positions = np.arange(length)
    for j in pairs:
        angle = positions * inv_freq[j]
        radius = 1 - 0.12 * pairs.index(j)
        circle_ax.plot(radius * np.cos(angle), radius * np.sin(angle), ".", ms=3,
                       label=f"pair {j}: {angle[-1] / (2 * np.pi):.2g} turns")
    circle_ax.set(aspect="equal", xticks=[], yticks=[],
                  title=f"angles at positions 0..{length - 1}")
    circle_ax.legend(fontsize=7, loc="center", frameon=False)
    wavelength = 2 * np.pi / inv_freq
    wave_ax.semilogy(wavelength, "o-", ms=3, label="wavelength 2π/θ_j")
    wave_ax.axhline(length, color="tab:red", ls="--", label=f"training length {length}")
    wave_ax.fill_between(range(len(wavelength)), length, wavelength, where=wavelength > length,
                         color="tab:red", alpha=0.15, label="never completes a turn in training")
    wave_ax.set(xlabel="pair index j", ylabel="tokens per full turn", title="Wavelength per pair")
    wave_ax.grid(alpha=0.3, which="both")
    wave_ax.legend(fontsize=8)
    return fig


def rope_method_curves(methods, default, original_length, factor,
                       panels=("wavelength", "ratio", "angle")):
    """Per pair j, one panel each: "wavelength" each method ends up with; "ratio" of its
    frequency to the default's (1 = kept, 1/factor = interpolated); "angle": the largest angle
    reached at factor * original_length divided by the largest angle seen in training (> 1 =
    unseen angles, which matter only for pairs that never completed a turn in training).
    methods: {label: inv_freq (D/2,)}; default: the unscaled inv_freq."""
    default = np.asarray(default, dtype=float)
    fig = new_figure(4.3 * len(panels) + 0.4, 4, layout=None)  # placed by hand: fast in the app
    width = 1 / len(panels)
    axes = {name: fig.add_axes(((i + 0.24) * width, 0.13, 0.68 * width, 0.77))
            for i, name in enumerate(panels)}
    for label, inv_freq in methods.items():
        inv_freq = np.asarray(inv_freq, dtype=float)
        values = {"wavelength": 2 * np.pi / inv_freq, "ratio": inv_freq / default,
                  "angle": factor * inv_freq / default}
        for name, ax in axes.items():
            ax.plot(values[name], lw=1.8, label=label)
    if "wavelength" in axes:
        ax = axes["wavelength"]
        for length, style in ((original_length, "--"), (factor * original_length, ":")):
            ax.axhline(length, color="grey", ls=style, lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # no mathtext
        ax.yaxis.set_minor_locator(NullLocator())  # and no minor ticks: each costs ~2 ms to draw
        ax.set(ylabel="wavelength (tokens)", title=f"-- L = {original_length}, ·· {factor:g}L")
    if "ratio" in axes:
        axes["ratio"].axhline(1 / factor, color="grey", ls=":", lw=1)
        axes["ratio"].set(ylabel="θ_j (method) / θ_j (default)", title="1 = kept, 1/s = interpolated")
    if "angle" in axes:
        ax = axes["angle"]
        ax.axhline(1, color="grey", ls="--", lw=1)
        never_turned = np.nonzero(2 * np.pi / default > original_length)[0]
        if len(never_turned):
            ax.axvspan(never_turned[0] - 0.5, len(default) - 0.5, color="tab:red", alpha=0.1,
                       label="pairs that never turned once in training")
        ax.set(ylabel="max angle at sL / max angle in training",
               title="> 1 = angles never seen in training")
    for ax in axes.values():
        ax.set(xlabel="pair index j")
        ax.grid(alpha=0.3)
    axes[panels[-1]].legend(fontsize=7)
    return fig


def pi_figure2(points, targets, fitted, extrapolated, interpolated, original_length):
    """The Position Interpolation paper's Figure 2 idea, three panels. fitted, extrapolated and
    interpolated are (s, a(s)) pairs: the score fitted on [0, L], the same function beyond L,
    and a zoom between integer positions (fractional s, as interpolation produces)."""
    fig = new_figure(13, 3.8)
    fit_ax, extra_ax, inter_ax = fig.subplots(1, 3)
    fit_ax.plot(*fitted, color="tab:red", lw=1, label="fitted a(s)")
    fit_ax.plot(points, targets, ".", color="black", ms=4, label="random points")
    fit_ax.set(xlabel="relative distance s", ylabel="attention score a(s)",
               title=f"fitted on [0, L = {original_length}]")
    extra_ax.plot(*extrapolated, color="tab:red", lw=1)
    extra_ax.axvline(original_length, color="grey", ls="--", lw=1)
    extra_ax.set(xlabel="relative distance s", title="extrapolation: the same a(s) beyond L")
    s, a = interpolated
    inter_ax.plot(s, a, color="tab:green", lw=1.5)
    for grid_point in np.arange(np.ceil(s[0]), s[-1] + 1e-9):
        inter_ax.axvline(grid_point, color="grey", ls=":", lw=1)
    inter_ax.set(xlabel="relative distance s", title="interpolation: between integers, smooth")
    for ax in (fit_ax, extra_ax, inter_ax):
        ax.grid(alpha=0.3)
    fit_ax.legend(fontsize=8)
    return fig


def score_curves(distances, curves, original_length, title="One query-key score read by each method"):
    """a(s) against relative distance s for each {label: (N,) scores}, the training length marked."""
    fig = new_figure(8, 3.6, layout=None)  # axes placed by hand: drawn per slider move in the app
    ax = fig.add_axes((0.09, 0.15, 0.88, 0.74))
    for label, scores in curves.items():
        ax.plot(np.asarray(distances), np.asarray(scores, dtype=float), lw=1.2, label=label)
    ax.axvline(original_length, color="grey", ls="--", lw=1, label=f"training length {original_length}")
    ax.set(xlabel="relative distance s", ylabel="attention score a(s)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def loss_by_position(curves, original_length, bucket=16, title="Loss against position"):
    """Next-token loss per position (bucketed means) for each {label: (T,) losses}, with the
    training length marked."""
    fig = new_figure(8, 4.2)
    ax = fig.add_subplot()
    for label, losses in curves.items():
        losses = np.asarray(losses, dtype=float)
        starts = np.arange(0, len(losses), bucket)
        means = [losses[i:i + bucket].mean() for i in starts]
        ax.plot(starts + bucket / 2, means, "o-", ms=3, lw=1.6, label=label)
    ax.axvline(original_length, color="grey", ls="--", lw=1, label=f"training length {original_length}")
    ax.set(xlabel="position in the sequence", ylabel=f"loss (mean over {bucket} positions)",
           title=title)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig



# ---------------------------------------------------------------- 06 passkey retrieval

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



# ---------------------------------------------------------------- 07 activation beacons

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
    kept_set, marked = set(int(i) for i in kept), set(int(i) for i in marked)
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
