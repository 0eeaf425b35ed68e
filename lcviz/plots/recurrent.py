"""Figures of topic 11 recurrent memory across segments: each returns a figure and never calls
show(). plotly where hovering helps (curves with exact numbers and intervals), matplotlib for
the reach matrices and the gates."""

import numpy as np

from lcviz import recurrent
from lcviz.plots.core import new_figure, plotly_figure, plotly_titled
from lcviz.stats import wilson_interval

KIND_COLOURS = {"local": "#7f7f7f", "xl": "#ff7f0e", "linear": "#1f77b4", "delta": "#2ca02c",
                "full": "#000000"}
KIND_LABELS = {"local": "local only", "xl": "Transformer-XL", "linear": "Infini, linear",
               "delta": "Infini, delta", "full": "full attention"}


def retrieval_error_figure(rows, title="Reading back n pairs from a d_k × d_k memory"):
    """Relative retrieval error against n / d_k, one line per row of
    lcviz.recurrent.retrieval_table (keys, read, rule); the delta rule dashed."""
    fig = plotly_figure()
    for row in rows:
        name = f"{row['keys']} keys, {row['read']} read, {row['rule']}"
        fig.add_scatter(x=row["ratio"], y=row["error"], name=name, mode="lines+markers",
                        line={"dash": "dash" if row["rule"] == "delta" else "solid",
                              "width": 3},
                        customdata=row["n"],
                        hovertemplate=f"{name}<br>n = %{{customdata}} pairs (n/d_k = %{{x}})"
                                      "<br>error %{y:.3f}<extra></extra>")
    fig.add_vline(x=1.0, line_dash="dot", line_color="grey")
    # on a log axis an annotation sits at log10 of its x (a line at x itself)
    fig.add_annotation(x=0.0, xref="x", y=1, yref="paper", yanchor="bottom", text="n = d_k",
                       showarrow=False, font={"size": 15})
    fig.update_xaxes(type="log", dtick=np.log10(2), tickformat="~g")
    return plotly_titled(fig, title, "pairs written / d_k", "relative error |read − v| / |v|",
                         height=440)


def passkey_gap_figure(results, title="Passkey across segments: whole key by gap",
                       highlight=None, xaxis="segments between the needle and the question"):
    """Whole-key accuracy against the number of segments between the needle and the question
    (or, with another `xaxis` title, any count: e.g. segments in the prompt), with Wilson 95%
    intervals. results maps a memory kind (or any label) to {gap: [hits, n]}."""
    fig = plotly_figure()
    for kind, by_gap in results.items():
        gaps = sorted(int(g) for g in by_gap)
        hits = [by_gap[str(g)][0] if str(g) in by_gap else by_gap[g][0] for g in gaps]
        ns = [by_gap[str(g)][1] if str(g) in by_gap else by_gap[g][1] for g in gaps]
        rate = [h / n for h, n in zip(hits, ns)]
        low, high = zip(*(wilson_interval(h, n) for h, n in zip(hits, ns)))
        fig.add_scatter(
            x=gaps, y=rate, name=KIND_LABELS.get(kind, kind), mode="lines+markers",
            line={"color": KIND_COLOURS.get(kind), "width": 5 if kind == highlight else 2.5},
            error_y={"type": "data", "symmetric": False,
                     "array": [h - r for h, r in zip(high, rate)],
                     "arrayminus": [r - lo for r, lo in zip(rate, low)]},
            customdata=np.stack([hits, ns, np.array(low) * 100, np.array(high) * 100], axis=1),
            hovertemplate=f"{KIND_LABELS.get(kind, kind)}<br>gap %{{x}} segments<br>"
                          "%{customdata[0]} of %{customdata[1]} = %{y:.1%}"
                          "<br>95% interval [%{customdata[2]:.1f}, %{customdata[3]:.1f}]%"
                          "<extra></extra>")
    fig.update_yaxes(range=[-0.03, 1.03], tickformat=".0%")
    fig.update_xaxes(dtick=1)
    return plotly_titled(fig, title, xaxis, "whole key right", height=440)


def reach_figure(length, segment, n_layer, kinds=("local", "xl", "linear")):
    """The reach (lcviz.recurrent.reach) of each kind after n_layer layers: dark = key j can
    change the output at query i. Segment boundaries are drawn as lines."""
    fig = new_figure(4.2 * len(kinds), 4.6)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        field = recurrent.reach(length, segment, kind, n_layer).numpy()
        ax.imshow(field, cmap="Blues", vmin=0, vmax=1.2, interpolation="nearest")
        for edge in range(segment, length, segment):
            ax.axhline(edge - 0.5, color="grey", lw=0.6)
            ax.axvline(edge - 0.5, color="grey", lw=0.6)
        title = f"{KIND_LABELS.get(kind, kind)}, {n_layer} layer{'s' * (n_layer > 1)}"
        ax.set_title(title, fontsize=15)
        ax.set_xlabel("key j", fontsize=14)
        ax.set_ylabel("query i", fontsize=14)
        ax.tick_params(labelsize=12)
    return fig


def gate_figure(gates, title="Infini gate sigmoid(β): share of the memory read"):
    """Heatmap of the gates (L, H) of an Infini model, each value written in its cell."""
    gates = np.asarray(gates, dtype=float)
    fig = new_figure(1.2 + 1.1 * gates.shape[1], 1.4 + 0.8 * gates.shape[0])
    ax = fig.add_subplot()
    ax.imshow(gates, cmap="coolwarm", vmin=0, vmax=1, aspect="auto")
    for (layer, head), value in np.ndenumerate(gates):
        ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=14)
    ax.set_xticks(range(gates.shape[1]), [f"head {h}" for h in range(gates.shape[1])],
                  fontsize=13)
    ax.set_yticks(range(gates.shape[0]), [f"layer {l}" for l in range(gates.shape[0])],
                  fontsize=13)
    ax.set_title(title, fontsize=15)
    return fig


def token_time_figure(rows, title="Time per token while reading on"):
    """Per-token time (ms) against the position read, one line per model: rows are
    {"kind", "position": [...], "ms_per_token": [...]} (lcviz.recurrent.token_times)."""
    fig = plotly_figure()
    for row in rows:
        label = KIND_LABELS.get(row["kind"], row["kind"])
        fig.add_scatter(x=row["position"], y=row["ms_per_token"], name=label,
                        mode="lines+markers", line={"color": KIND_COLOURS.get(row["kind"])},
                        hovertemplate=f"{label}<br>tokens %{{x}}<br>%{{y:.3f}} ms per token"
                                      "<extra></extra>")
    fig.update_yaxes(rangemode="tozero")
    return plotly_titled(fig, title, "tokens already read", "ms per token", height=440)
