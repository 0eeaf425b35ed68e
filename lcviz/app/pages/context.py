"""Adaptive context page: policy, budget, turns -> what fills the context turn by turn (stacked
bars), which planted facts are still there at the end, and the measured fact-survival curves."""

import streamlit as st

from lcviz import context, plots
from lcviz.app import state
from lcviz.checkpoints import load_results

MAX_TURNS = 500
SAMPLES = 40  # stacked bars drawn at about this many turns (the state still sees every turn)


@st.cache_resource(max_entries=64, show_spinner=False)
def context_view(policy, budget, turns, seed):
    """(stacked-bar figure of the composition at ~SAMPLES turns, its last total, [(fact key,
    value, question, found, stale only)] at the end, (question, final context) of the first
    fact)."""
    conv = context.make_conversation(turns, seed)
    manager = context.AdaptiveContextManager(budget, policy)
    sampled = list(range(1, turns, max(1, turns // SAMPLES)))
    comp = {"policy": policy, "budget": budget, "turn": sampled, "total": []}
    for kind in ("summary", "retrieved", "recent", "input"):
        comp[kind] = []
    for t in sampled:   # the chat loop of context.composition, on the manager probed below
        ctx = manager.build_context(conv.turns[:t], conv.turns[t])
        for kind, value in ctx.tokens_by_kind().items():
            comp[kind].append(value)
        comp["total"].append(ctx.tokens)
    facts, final = [], None
    for fact in conv.facts:
        text = manager.manage_context(conv.turns, fact.question)
        final = final or (fact.question, text)
        found, stale_only = context.probe(text, fact)
        facts.append((fact.key, fact.current, fact.question, found, stale_only))
    figure = state.legend_below(plots.context_composition(comp, title=f"Context by turn: {policy}"))
    return figure, comp["total"][-1], facts, final


@st.cache_data(show_spinner=False)
def measured():
    return load_results("context")


@st.cache_resource(max_entries=64, show_spinner=False)
def survival_figure(budget, policy):
    """(figure of the measured survival curves at the measured budget nearest `budget`, that
    budget, the measured results)."""
    results = measured()
    budgets = results["settings"]["budgets"]
    nearest = min(budgets, key=lambda b: abs(b - budget))
    curves = [c for c in results["curves"] if c["budget"] == nearest]
    title = f"Facts still in context, budget {nearest}"
    figure = state.legend_below(plots.survival_curves(curves, highlight=policy, title=title))
    figure.update_xaxes(title_text="turns since the fact was stated")
    return figure, nearest, results


def render():
    columns = st.columns([3, 2, 2, 2])
    with columns[0]:
        policy = state.choice("policy", "policy", list(context.POLICIES), "summary_buffer")
    with columns[1]:
        budget = state.int_slider("budget (tokens)", "budget", 16, 1024, 128)
    with columns[2]:
        turns = state.int_slider("turns", "turns", 20, MAX_TURNS, 200)
    with columns[3]:
        seed = state.int_slider("conversation seed", "seed", 0, 99, 0)
    try:
        figure, total, facts, (question, final) = context_view(policy, budget, turns, seed)
    except ValueError as error:
        st.error(f"{error}. A turn of this chat is longer than the budget of {budget} tokens: "
                 "move the budget up (or pick another conversation seed).")
        return
    found = sum(f[3] for f in facts)
    counts = st.columns(2)
    counts[0].metric(f"facts in context after {turns} turns", f"{found} of {len(facts)}")
    counts[1].metric(f"tokens at the last turn (budget {budget})", f"{total}",
                     delta=f"{total - budget:+d} over" if total > budget else None,
                     delta_color="inverse")
    for key, value, asked, ok, stale_only in facts:
        mark = "✅" if ok else ("⚠️ stale" if stale_only else "❌")
        st.caption(f"{mark} {key} = {value} — asked: “{asked.removeprefix('User: ')}”")
    st.markdown("**What fills the context** at each turn: the summary, recalled items, recent "
                "turns and the current input, against the budget (dashed).")
    state.plot(figure, key="composition")
    try:
        survival, nearest, results = survival_figure(budget, policy)
    except FileNotFoundError as error:
        st.info(f"Survival curves: {error}")
    else:
        st.markdown("**Fact survival**: how often a fact's current value is still in the "
                    "context, against the turns since it was stated (bins by their first turn; "
                    "bands: Wilson 95% intervals).")
        state.plot(survival, key="survival")
        settings = results["settings"]
        st.caption(f"Measured on {settings['curve_conversations']} chats of "
                   f"{settings['curve_turns']} turns at budgets {settings['budgets']}"
                   + (f"; showing {nearest}." if nearest != budget else "."))
    with st.expander(f"The context for “{question.removeprefix('User: ')}” at the last turn"):
        st.text(final)
