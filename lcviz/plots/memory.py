"""Figures of topic 04 memory and speed: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure


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
            if ax is ax_time:  # windowed memory is nearly flat here, not ∝ T·w: no guide line
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


# ---- interactive (plotly) version ------------------------------------------------------------



def attention_benchmark_plotly(results, length=None, window=None, height=480):
    """The measured benchmark (`python -m lcviz.bench attention`, its JSON) as two log-log
    panels, forward time and peak memory against T, one line per method, hover for the numbers.
    With `window`, the memory panel adds the analytic size of the scores that dense attention and
    a window of that size keep (heads and fp32 as in the benchmark); `length` is marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from lcviz.masks import sliding_window_pairs

    rows = [r for r in results["rows"] if "error" not in r]
    heads = results.get("heads", 4)
    fig = make_subplots(1, 2, horizontal_spacing=0.12,
                        subplot_titles=(f"time (measured, w = {results['window']})",
                                        "memory (grey: the scores)"), figure=plotly_figure())
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    for index, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["length"])
        lengths = [r["length"] for r in mine]
        style = {"mode": "lines+markers", "legendgroup": method,
                 "line": {"color": colors[index % len(colors)]}}
        fig.add_trace(go.Scatter(x=lengths, y=[r["seconds"] * 1e3 for r in mine], name=method,
                                 hovertemplate=f"{method}<br>T = %{{x:,}}: %{{y:,.1f}} ms"
                                               "<extra></extra>", **style), 1, 1)
        fig.add_trace(go.Scatter(x=lengths, y=[max(r["peak_mb"], 0.1) for r in mine], name=method,
                                 showlegend=False, hovertemplate=f"{method}<br>T = %{{x:,}}: "
                                 "%{y:,.1f} MB peak<extra></extra>", **style), 1, 2)
    if window is not None:
        top = max([r["length"] for r in rows] + [length or 0])
        grid = [2 ** p for p in range(9, max(10, top.bit_length()))]
        grid = [t for t in grid if t >= window] or [window]
        dense = [heads * t * t * 4 / 2**20 for t in grid]
        kept = [heads * sliding_window_pairs(t, window) * 4 / 2**20 for t in grid]
        for sizes, name, dash in ((dense, f"dense scores: {heads}·T² numbers", "dot"),
                                  (kept, f"scores a window of {window} keeps", "dash")):
            fig.add_trace(go.Scatter(x=grid, y=sizes, mode="lines", name=name,
                                     line={"dash": dash, "color": "grey"},
                                     hovertemplate=f"{name}<br>T = %{{x:,}}: %{{y:,.1f}} MB"
                                                   "<extra></extra>"), 1, 2)
    if length is not None:
        for column in (1, 2):
            fig.add_vline(x=length, line={"color": "black", "width": 1.5}, row=1, col=column)
        fig.add_annotation(x=np.log10(length), y=0, yref="paper", xref="x2", showarrow=False,
                           text=f" T = {length:,}", xanchor="left", yanchor="bottom",
                           font={"size": 15})
    fig.update_xaxes(type="log", title_text="sequence length T", dtick=np.log10(2) * 2,
                     tickformat=",d")
    fig.update_yaxes(type="log", title_text="milliseconds", dtick=1, tickformat=",~g", row=1, col=1)
    fig.update_yaxes(type="log", title_text="megabytes", dtick=1, tickformat=",~g", row=1, col=2)
    fig.update_annotations(font_size=16)
    fig.update_layout(height=height, margin={"l": 70, "r": 20, "t": 70, "b": 60},
                      legend={"orientation": "h", "y": -0.22, "x": 0})
    return fig
