"""Figures of topic 08 streaming and KV-cache eviction: what each policy keeps (plotly heatmap,
hover shows step and position), loss along a stream, attention sinks per head, cost against
stream length, strided evaluation and chunk merging (matplotlib). None calls show()."""

import plotly.graph_objects as go
import torch

from lcviz.plots.core import new_figure, plotly_figure

POLICY_COLOURS = {"full": "#7f7f7f", "window": "#d62728", "recompute": "#2ca02c",
                  "sink": "#1f77b4", "h2o": "#9467bd", "snapkv": "#8c564b", "tova": "#ff7f0e"}
FONT = 15


def _style(ax, title, xlabel, ylabel):
    ax.set_title(title, fontsize=FONT + 2)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.tick_params(labelsize=FONT - 2)
    ax.grid(alpha=0.3)


def colour(label):
    """A policy's colour from its name or label ('sink', 'StreamingLLM (sinks) 4+60' ...)."""
    titles = {"dense": "full", "window with": "recompute", "window": "window",
              "StreamingLLM": "sink", "H2O": "h2o", "SnapKV": "snapkv", "TOVA": "tova"}
    for start, name in titles.items():  # titles first: "window with ..." is not "window"
        if label.startswith(start):
            return POLICY_COLOURS[name]
    for name, value in POLICY_COLOURS.items():
        if label.startswith(name):
            return value
    return "#333333"


def kept_heatmap(grid, title="Which tokens each step attends to", max_cells=160,
                 marks=None):
    """Plotly heatmap of a kept map, bool (steps, positions) from lcviz.streaming.kept_map:
    a row per step, dark where the step's query could see the token. Larger maps are shown at
    most max_cells per side (each cell: the fraction kept in its block). marks: {name: position}
    draws a labelled vertical line (e.g. a needle)."""
    grid = torch.as_tensor(grid).float()
    steps, positions = grid.shape
    every = max(1, -(-max(steps, positions) // max_cells))
    if every > 1:
        pad_s, pad_p = (-steps) % every, (-positions) % every
        padded = torch.nn.functional.pad(grid, (0, pad_p, 0, pad_s))
        grid = torch.nn.functional.avg_pool2d(padded[None, None], every)[0, 0]
    rows = [every * i for i in range(grid.size(0))]
    cols = [every * j for j in range(grid.size(1))]
    fig = plotly_figure(go.Heatmap(
        z=grid.numpy(), x=cols, y=rows, colorscale=[[0, "#f7f7f7"], [1, "#08306b"]], zmin=0,
        zmax=1, showscale=False,
        hovertemplate=("step %{y}, token %{x}: kept %{z:.0%}<extra></extra>" if every > 1 else
                       "step %{y}, token %{x}: %{z}<extra></extra>")))
    for name, position in (marks or {}).items():
        fig.add_vline(x=position, line_dash="dash", line_color="#d62728",
                      annotation_text=name, annotation_font_size=FONT)
    fig.update_yaxes(autorange="reversed", title_text="decoding step (query position)")
    fig.update_xaxes(title_text="token position in the stream")
    fig.update_layout(title={"text": title, "font": {"size": FONT + 5}}, font={"size": FONT + 1},
                      height=460, margin={"l": 80, "r": 20, "t": 60, "b": 60})
    return fig


def loss_along_stream(curves, training_length, bucket=64, title="Loss along the stream",
                      ylim=None):
    """Mean next-token loss in buckets of `bucket` tokens against stream position, one line per
    policy. curves: {label: per-token losses (N,)}; a dotted line marks the training length."""
    fig = new_figure(9, 4.6)
    ax = fig.add_subplot()
    for label, losses in curves.items():
        losses = torch.as_tensor(losses, dtype=torch.float64).flatten()
        n = len(losses) // bucket * bucket
        means = losses[:n].view(-1, bucket).mean(1)
        x = [bucket * (i + 0.5) for i in range(len(means))]
        ax.plot(x, means.tolist(), label=label, color=colour(label), lw=2.2,
                ls="--" if "original" in label else "-")
    ax.axvline(training_length, color="black", ls=":", lw=1.5)
    ax.text(training_length, ax.get_ylim()[1], f" training length {training_length}",
            va="top", fontsize=FONT - 2)
    if ylim is not None:
        ax.set_ylim(*ylim)
    _style(ax, title, "position in the stream (tokens)", f"loss (nats, mean of {bucket})")
    ax.legend(fontsize=FONT - 4, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def first_eviction(curves, budget, span=48, title="When the first token leaves the cache"):
    """Per-token loss around step `budget` (the first eviction), as a difference to a reference:
    curves {label: per-token loss difference (N,)}."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    start = max(0, budget - span // 3)
    for label, diff in curves.items():
        diff = torch.as_tensor(diff, dtype=torch.float64).flatten()[start:budget + span]
        ax.plot(range(start, start + len(diff)), diff.tolist(), label=label, color=colour(label),
                lw=2)
    ax.axvline(budget - 0.5, color="black", ls=":", lw=1.5)
    ax.axhline(0, color="black", lw=0.8)
    _style(ax, title, "step (predicting the next token)", "loss minus re-computation")
    ax.legend(fontsize=FONT - 3)
    return fig


def sink_mass_bars(masses, title="Attention on the first position, per head"):
    """Grouped bars: mean attention mass on the first position for every (layer, head), one
    group per model. masses: {model: (mass (L, H) tensor, uniform baseline)}."""
    fig = new_figure(9, 4.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(masses))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    labels = None
    for i, (name, (mass, uniform)) in enumerate(masses.items()):
        flat = torch.as_tensor(mass).flatten()
        L, H = torch.as_tensor(mass).shape
        labels = [f"L{layer}H{head}" for layer in range(L) for head in range(H)]
        x = [j + i * width for j in range(len(flat))]
        ax.bar(x, flat.tolist(), width, label=name, color=palette[i % len(palette)])
        ax.hlines(uniform, x[0] - width / 2, x[-1] + width / 2, color=palette[i % len(palette)],
                  ls=":", lw=1.5)
    ax.set_xticks([j + width * (len(masses) - 1) / 2 for j in range(len(labels))], labels,
                  rotation=0)
    _style(ax, title, "layer and head (dotted: attention spread evenly)", "attention mass")
    ax.legend(fontsize=FONT - 3)
    return fig


def cost_curves(results, title="Cost per generated token"):
    """Two panels from a streaming benchmark result (lcviz.streaming.benchmark): ms per token and
    KV entries against stream length, one line per policy."""
    fig = new_figure(12, 4.4)
    left, right = fig.subplots(1, 2)
    lengths = results["lengths"]
    for row in results["policies"]:
        c = colour(row["name"])
        left.plot(lengths, row["ms_per_token"], "o-", label=row["label"], color=c, lw=2)
        right.plot(lengths, row["kv_entries"], "o-", label=row["label"], color=c, lw=2)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.axvline(results["training_length"], color="black", ls=":", lw=1.2)
    right.set_yscale("log", base=2)
    _style(left, title, "stream length (tokens)", "ms per token")
    _style(right, "KV entries per layer and head", "stream length (tokens)", "entries")
    left.legend(fontsize=FONT - 5)
    return fig


def benchmark_figure(results):
    """Loss, ms per token and KV entries per policy at each stream length (three panels), from
    lcviz.streaming.benchmark()'s results."""
    fig = new_figure(16, 4.6)
    panels = fig.subplots(1, 3)
    lengths = results["lengths"]
    for row in results["policies"]:
        c = colour(row["name"])
        style = "s--" if row.get("positions") == "original" else "o-"
        for ax, key in zip(panels, ("loss", "ms_per_token", "kv_entries")):
            ax.plot(lengths, row[key], style, label=row["label"], color=c, lw=2)
    names = ("loss (nats per token)", "ms per token", "KV entries")
    for ax, name in zip(panels, names):
        ax.set_xscale("log", base=2)
        ax.axvline(results["training_length"], color="black", ls=":", lw=1.2)
        _style(ax, name, "stream length (tokens)", name)
    panels[2].set_yscale("log", base=2)
    panels[0].legend(fontsize=FONT - 6)
    return fig


def strided_losses(strides, losses, window, title="Strided evaluation: more overlap, more context"):
    """Loss against stride (log axis) for windows of `window` tokens."""
    fig = new_figure(6.5, 4)
    ax = fig.add_subplot()
    ax.plot(strides, losses, "o-", lw=2.2, color="#1f77b4")
    for s, v in zip(strides, losses):
        ax.annotate(f"{v:.3f}", (s, v), textcoords="offset points", xytext=(4, 6),
                    fontsize=FONT - 3)
    ax.set_xscale("log", base=2)
    ax.invert_xaxis()
    _style(ax, title, f"stride (window {window})", "loss (nats per token)")
    return fig


def merge_errors(errors, spans=None, title="Chunked output minus the unchunked output"):
    """Largest |difference| at each position, one line per merging rule: errors {label: (T,)};
    spans (from chunk_spans) draws the chunk seams."""
    fig = new_figure(9, 4)
    ax = fig.add_subplot()
    for label, error in errors.items():
        ax.semilogy(torch.as_tensor(error).clamp_min(1e-12).tolist(), label=label, lw=2)
    for start, _, keep_start, _ in spans or []:
        if keep_start:
            ax.axvline(keep_start - 0.5, color="black", ls=":", lw=1)
    _style(ax, title, "position", "largest |difference|")
    ax.legend(fontsize=FONT - 3)
    return fig


def stream_loss_plotly(curves, training_length, bucket=16, title="Loss along the stream"):
    """Plotly version of loss_along_stream (hover shows each bucket's mean): curves
    {label: per-token losses (N,)}; a dotted line marks the training length."""
    fig = plotly_figure()
    for label, losses in curves.items():
        losses = torch.as_tensor(losses, dtype=torch.float64).flatten()
        n = len(losses) // bucket * bucket
        if n == 0:
            continue
        means = losses[:n].view(-1, bucket).mean(1)
        x = [bucket * i for i in range(len(means))]
        fig.add_scatter(x=x, y=means.tolist(), mode="lines", name=label,
                        line={"color": colour(label), "width": 3,
                              "dash": "dash" if "original" in label else "solid"},
                        hovertemplate=(f"{label}<br>tokens %{{x}}-%{{x}}+{bucket - 1}: "
                                       "%{y:.3f} nats<extra></extra>"))
    fig.add_vline(x=training_length, line_dash="dot", line_color="black",
                  annotation_text=f"training length {training_length}",
                  annotation_font_size=FONT)
    fig.update_layout(title={"text": title, "font": {"size": FONT + 5}}, font={"size": FONT + 1},
                      height=400, xaxis_title="position in the stream",
                      yaxis_title=f"loss (nats, mean of {bucket})",
                      legend={"font": {"size": FONT}}, margin={"l": 70, "r": 20, "t": 60, "b": 60})
    return fig


def kept_heatmaps(grids, title="What each policy keeps", max_cells=120):
    """Kept maps of several policies side by side (one plotly heatmap each, shared axes):
    grids {label: bool (steps, positions)} from lcviz.streaming.kept_map."""
    from plotly.subplots import make_subplots
    labels = list(grids)
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, shared_yaxes=True,
                        horizontal_spacing=0.02, figure=plotly_figure())
    for i, label in enumerate(labels, start=1):
        one = kept_heatmap(grids[label], max_cells=max_cells)
        fig.add_trace(one.data[0], row=1, col=i)
        fig.update_xaxes(title_text="token", row=1, col=i)
    fig.update_yaxes(autorange="reversed", title_text="step", row=1, col=1)
    fig.update_annotations(font_size=FONT)
    fig.update_layout(title={"text": title, "font": {"size": FONT + 5}}, font={"size": FONT},
                      height=380, width=max(500, 260 * len(labels)),
                      margin={"l": 70, "r": 20, "t": 90, "b": 60})
    return fig
