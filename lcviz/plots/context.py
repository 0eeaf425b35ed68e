"""Figures of topic 13 adaptive context management: each returns a plotly go.Figure (hover shows
the exact token counts and intervals) and never calls show()."""

from lcviz.plots.core import plotly_figure, plotly_titled

KIND_COLOURS = {"summary": "#ff7f0e", "retrieved": "#2ca02c", "recent": "#1f77b4",
                "input": "#7f7f7f"}
POLICY_COLOURS = {"last_k": "#8c564b", "token_buffer": "#1f77b4", "summary_buffer": "#ff7f0e",
                  "summary_buffer_classic": "#d62728", "memory_pressure": "#9467bd",
                  "retrieval": "#2ca02c"}


def _budget_line(fig, x, budget):
    """The budget as a dashed line trace across x (cheaper than a layout shape)."""
    fig.add_scatter(x=[min(x), max(x)], y=[budget, budget], mode="lines", name=f"budget {budget}",
                    line={"color": "black", "dash": "dash", "width": 2},
                    hovertemplate=f"budget {budget} tokens<extra></extra>")


def context_composition(composition, title=None):
    """Stacked bars: what fills the context at each turn (summary, recalled items, recent turns,
    current input), with the budget as a dashed line. `composition` is lcviz.context.composition()."""
    fig = plotly_figure()
    turns = composition["turn"]
    for kind in ("summary", "retrieved", "recent", "input"):
        fig.add_bar(x=turns, y=composition[kind], name=kind, marker_color=KIND_COLOURS[kind],
                    hovertemplate=f"turn %{{x}}<br>{kind}: %{{y}} tokens<extra></extra>")
    if composition["budget"] is not None and turns:
        _budget_line(fig, turns, composition["budget"])
    fig.update_layout(barmode="stack", bargap=0.05)
    return plotly_titled(fig, title or f"What fills the context: {composition['policy']}",
                         "turn (history length)", "tokens in the context", height=420)


def survival_curves(curves, highlight=None, title="Fact survival against turns since stated"):
    """Rate at which a fact's current value is still in the context against the turns since it
    was stated, one line per policy with its Wilson 95% band. `curves`: survival_curve() dicts."""
    fig = plotly_figure()
    for curve in curves:
        policy = curve["policy"]
        colour = POLICY_COLOURS.get(policy, "#333333")
        width = 5 if policy == highlight else 2.5
        x = curve["distance"]
        fig.add_scatter(x=x + x[::-1], y=[100 * v for v in curve["high"]] +
                        [100 * v for v in curve["low"][::-1]], fill="toself", fillcolor=colour,
                        opacity=0.15, line={"width": 0}, hoverinfo="skip", showlegend=False)
        fig.add_scatter(x=x, y=[100 * v for v in curve["rate"]], mode="lines+markers",
                        name=policy, line={"color": colour, "width": width},
                        customdata=list(zip(curve["survived"], curve["n"])),
                        hovertemplate=(f"{policy}<br>%{{x}}+ turns ago: %{{y:.1f}}% "
                                       "(%{customdata[0]} of %{customdata[1]})<extra></extra>"))
    fig.update_yaxes(range=[-3, 103])
    return plotly_titled(fig, title, "turns since the fact was stated (bin start)",
                         "facts still in context (%)", height=420)


def prompt_growth(growth, budget, title="The summary nobody counts"):
    """Context tokens per turn for each policy in `growth` ({policy: [tokens per turn]}) against
    the budget: the classic summary buffer's prompt keeps growing."""
    fig = plotly_figure()
    for policy, totals in growth.items():
        fig.add_scatter(x=list(range(1, len(totals) + 1)), y=totals, mode="lines", name=policy,
                        line={"color": POLICY_COLOURS.get(policy, "#333333"), "width": 3},
                        hovertemplate=f"{policy}<br>turn %{{x}}: %{{y}} tokens<extra></extra>")
    longest = max((len(t) for t in growth.values()), default=1)
    _budget_line(fig, [1, longest], budget)
    return plotly_titled(fig, title, "turn", "tokens in the prompt", height=420)


def survival_bars(rows, turns, title=None):
    """Fact survival per policy (bars) at each budget (groups) for conversations of `turns`
    turns, with Wilson 95% error bars. `rows`: lcviz.context.survival_table() rows."""
    rows = [r for r in rows if r["turns"] == turns]
    fig = plotly_figure()
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == policy]
        rate = [100 * r["survived"] / r["n"] for r in mine]
        fig.add_bar(x=[str(r["budget"]) for r in mine], y=rate, name=policy,
                    marker_color=POLICY_COLOURS.get(policy, "#333333"),
                    error_y={"type": "data", "symmetric": False,
                             "array": [100 * r["survival_high"] - v for r, v in zip(mine, rate)],
                             "arrayminus": [v - 100 * r["survival_low"] for r, v in zip(mine, rate)]},
                    customdata=[r["survival_text"] for r in mine],
                    hovertemplate=f"{policy}<br>budget %{{x}}: %{{customdata}}<extra></extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 105])
    return plotly_titled(fig, title or f"Facts still in context after {turns} turns",
                         "budget (tokens)", "probes answered from the context (%)", height=420)


def document_bars(rows, title="Finding one sentence in a long document"):
    """Answer present in the context per method (bars) and budget (groups), Wilson 95% error
    bars. `rows`: lcviz.context.document_experiment() rows."""
    fig = plotly_figure()
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        rate = [100 * r["found"] / r["n"] for r in mine]
        fig.add_bar(x=[str(r["budget"]) for r in mine], y=rate, name=method,
                    error_y={"type": "data", "symmetric": False,
                             "array": [100 * r["high"] - v for r, v in zip(mine, rate)],
                             "arrayminus": [v - 100 * r["low"] for r, v in zip(mine, rate)]},
                    customdata=[r["text"] for r in mine],
                    hovertemplate=f"{method}<br>budget %{{x}}: %{{customdata}}<extra></extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 105])
    return plotly_titled(fig, title, "budget (tokens)", "answer in the context (%)", height=420)
