"""Figures of topic 12, the long-context benchmark: each returns a figure and never calls show().
`results` is the dict of lcviz.longcontext.benchmark (data/bench-longcontext.json)."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure

TASK_TITLES = {"needle": "needle in a haystack (whole key)",
               "multikey": "multi-key recall (string_match_all)",
               "vt": "variable tracking (exact match)",
               "middle": "lost in the middle (exact match)"}
TASK_AXES = {"needle": "prompt length (tokens)", "multikey": "prompt length (tokens)",
             "vt": "hops in the chain", "middle": "place of the gold pair (of 16)"}


def needle_grid_figure(results, labels, columns=4):
    """The gkamradt layout, one panel per technique: depth (rows, 0% = needle first) against
    prompt length (columns), colour = whole keys found, each cell annotated with its rate."""
    grids = results["needle"]
    rows = -(-len(labels) // columns)
    fig = new_figure(3.3 * columns, 2.9 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    image = None
    for ax, label in zip(axes, labels):
        grid = grids[label]
        lengths = list(grid)
        depths = list(grid[lengths[0]])
        rates = np.array([[grid[length][d]["rate"] for length in lengths] for d in depths])
        image = ax.imshow(rates, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(rates):
            ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(lengths)), lengths, fontsize=8)
        ax.set_yticks(range(len(depths)), [f"{d}%" for d in depths], fontsize=8)
        ax.set_title(label, fontsize=10)
    for ax in axes[len(labels):]:
        ax.set_axis_off()
    fig.supxlabel("prompt length (tokens)")
    fig.supylabel("needle depth")
    if image is not None:
        fig.colorbar(image, ax=axes.tolist(), shrink=0.6, label="whole keys found")
    return fig


def needle_heatmap_plotly(results, label, height=460):
    """One technique's needle grid as an interactive heatmap: hover gives k of n and the
    interval."""
    import plotly.graph_objects as go

    grid = results["needle"][label]
    lengths = list(grid)
    depths = list(grid[lengths[0]])
    cells = [[grid[length][d] for length in lengths] for d in depths]
    fig = plotly_figure(go.Heatmap(
        z=[[c["rate"] for c in row] for row in cells], x=lengths, y=[f"{d}%" for d in depths],
        zmin=0, zmax=1, colorscale="RdYlGn", texttemplate="%{z:.0%}",
        customdata=[[[c["k"], c["n"], c["low"], c["high"]] for c in row] for row in cells],
        hovertemplate="length %{x}, depth %{y}: %{customdata[0]} of %{customdata[1]} keys "
                      "(95%: %{customdata[2]:.0%}-%{customdata[3]:.0%})<extra></extra>",
        colorbar={"title": {"text": "found"}, "tickformat": ".0%"}))
    fig.update_layout(title={"text": f"Needle in a haystack: {label}"}, height=height,
                      margin={"l": 80, "r": 20, "t": 60, "b": 60},
                      xaxis={"title": {"text": "prompt length (tokens)"}, "type": "category"},
                      yaxis={"title": {"text": "needle depth"}, "autorange": "reversed"})
    return fig


def task_cells(results, task, label):
    """{x: cell} of one technique on one task: needle rows pooled over depth, else as saved."""
    from lcviz.longcontext import pooled_cells
    if task == "needle":
        return {length: pooled_cells(row.values())
                for length, row in results["needle"][label].items()}
    return results[task][label]


def task_figure(results, task, labels):
    """Accuracy (95% intervals) against the task's axis, one line per technique (matplotlib)."""
    fig = new_figure(8, 4.6)
    ax = fig.add_subplot()
    for label in labels:
        cells = task_cells(results, task, label)
        xs = list(cells)
        rates = [cells[x]["rate"] for x in xs]
        errors = np.clip([[r - cells[x]["low"] for x, r in zip(xs, rates)],
                          [cells[x]["high"] - r for x, r in zip(xs, rates)]], 0, None)
        ax.errorbar(range(len(xs)), rates, yerr=errors, marker="o", capsize=3, label=label)
        ax.set_xticks(range(len(xs)), xs)
    if task in ("needle", "multikey"):
        ax.axhline(results["threshold"], color="k", ls=":", lw=1,
                   label=f"threshold {results['threshold']:.0%}")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(TASK_AXES[task])
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_title(TASK_TITLES[task])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def compare_plotly(rows, title, height=560):
    """Horizontal bars for the app: one per technique (its memory in the label), accuracy with
    its 95% interval, grey when the technique holds more than the budget; rows = [(label, cell,
    bytes or None, within budget)]. Hover: k of n and the interval."""
    import plotly.graph_objects as go

    labels = [f"{r[0]} · {'—' if r[2] is None else human_bytes(r[2])}" for r in rows]
    cells = [r[1] for r in rows]
    fig = plotly_figure(go.Bar(
        y=labels, x=[c["rate"] for c in cells], orientation="h",
        marker_color=["#2ca02c" if r[3] else "#c7c7c7" for r in rows],
        customdata=[[c["k"], c["n"], c["low"], c["high"]] for c in cells],
        error_x={"type": "data", "symmetric": False,
                 "array": [c["high"] - c["rate"] for c in cells],
                 "arrayminus": [c["rate"] - c["low"] for c in cells]},
        hovertemplate="%{y}: %{customdata[0]} of %{customdata[1]} (%{x:.0%}, 95% "
                      "%{customdata[2]:.0%}-%{customdata[3]:.0%})<extra></extra>"))
    fig.update_layout(title={"text": title},
                      height=max(height, 60 + 34 * len(rows)),
                      margin={"l": 20, "r": 30, "t": 60, "b": 50},
                      xaxis={"title": {"text": "accuracy (95% interval)"}, "tickformat": ".0%",
                             "range": [0, 1.05]},
                      yaxis={"autorange": "reversed", "automargin": True})
    return fig


def human_bytes(n):
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def document_figure(results):
    """Seconds against length (log-log) at 50K-200K tokens for every measured method; methods
    that could not run are listed with their reason under the axes."""
    rows = results["document"]["rows"]
    fig = new_figure(9, 5.2)
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(r["method"] for r in rows if "reason" not in r))
    for method in methods:
        done = [r for r in rows if r["method"] == method and "seconds" in r]
        if done:
            ax.plot([r["length"] for r in done], [r["seconds"] for r in done], "o-",
                    label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel("seconds (one run, one thread)")
    ax.set_title("Cost at document scale")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
