"""Figures of topic 04 memory and speed: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure


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
