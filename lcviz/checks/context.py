"""Exercise checkers of topic 13 adaptive context management (see lcviz.checks.core for how a
check reports)."""

from lcviz import context
from lcviz.checks.core import compare_values, run_check

FACT_BUDGET = 96     # tokens: the exercise's context budget
FACT_TURNS = 300     # the fact must survive this many turns


def _key_of_question(question):
    bare = context.SPEAKER_TAG.sub("", question).strip()
    for key, direct, other, _ in context.FACTS:
        if bare in (direct, other):
            return key
    raise ValueError(f"question {question!r} is not one of lcviz.context.FACTS")


def fact_values(history, key):
    """Every value stated for fact `key` ('my locker code') in `history`, in order."""
    values = []
    for turn in history:
        for sentence in context.split_sentences(turn):
            if context.fact_key(sentence) == key:
                match = context.FACT_FORM.match(context._bare(sentence))
                values.append(match["value"].strip())
    return values


def _keep_facts(history, current_input, budget):
    """A reference answer: the latest statement of every fact ('my X is Y'), then the newest
    turns that fit, then the input. Facts are dropped oldest first if they alone do not fit."""
    facts = {}
    for turn in history:
        for sentence in context.split_sentences(turn):
            key = context.fact_key(sentence)
            if key is not None:
                facts.pop(key, None)
                facts[key] = context._bare(sentence)   # the latest statement wins
    lines = list(facts.values())
    room = budget - context.count_tokens(current_input)

    def cost(items):
        return context.HEADER_TOKENS + sum(context.count_tokens(x) for x in items) if items else 0
    while lines and cost(lines) > room:
        lines.pop(0)
    room -= cost(lines)
    recent = []
    for turn in reversed(history):
        if context.count_tokens(turn) > room:
            break
        recent.insert(0, turn)
        room -= context.count_tokens(turn)
    head = ["Facts: " + " ".join(lines)] if lines else []
    return "\n".join(head + recent + [current_input])


def _requirement(history, current_input, budget):
    values = fact_values(history, _key_of_question(current_input))
    return {"budget": budget, "input": current_input, "newest": history[-1],
            "value": values[-1], "stale": values[:-1]}


def _compare_context(got, need):
    if not isinstance(got, str):
        return f"expected a str (the context), got {type(got).__name__}"
    tokens = context.count_tokens(got)
    if tokens > need["budget"]:
        return f"{tokens} tokens, over the budget of {need['budget']}"
    if not got.endswith(need["input"]):
        return "the context must end with the current input"
    if need["newest"] not in got.split("\n"):
        return f"the newest turn is missing (as its own line): {need['newest']!r}"
    if not context.contains_value(got, need["value"]):
        return f"the current value {need['value']!r} is not in the context"
    stale = [v for v in need["stale"] if context.contains_value(got, v)]
    if stale:
        return f"the stale value {stale[0]!r} (since updated to {need['value']!r}) is still there"
    return None


class History(list):
    """A list of turns that prints short in a failing case's report."""

    def __repr__(self):
        return f"<{len(self)} turns: {self[0][:40]!r} ... {self[-1][:40]!r}>"


def fact_keeper_cases():
    """(history, question, budget) cases: facts stated in the first 10 turns of seeded 300-turn
    chats, some updated later, probed after 100, 200 and 300 turns, never within 40 turns of
    their last statement; half the questions use other words than the statement."""
    cases = []
    for seed in (11, 12, 13):
        conv = context.make_conversation(FACT_TURNS, seed, n_updates=4, paraphrase_rate=0.5,
                                          plant_within=10)
        for t in (100, 200, 300):
            start = (seed + t // 100) % len(conv.facts)
            for fact in conv.facts[start:] + conv.facts[:start]:
                if all(s < t - 40 or s >= t for s, _ in fact.values):
                    cases.append({"history": History(conv.turns[:t]),
                                  "current_input": fact.question, "budget": FACT_BUDGET})
                    break
    return cases


def check_fact_keeper(fn):
    """fn(history, current_input, budget) -> str: a context of at most `budget` tokens that ends
    with the current input, holds the newest turn, and still holds the current value of the fact
    the input asks about, 100 to 300 turns after it was stated, without its stale values."""
    return run_check("check_fact_keeper", fn, fact_keeper_cases(), _requirement,
                     compare=_compare_context)


def check_max_stride(fn):
    """fn(chunk_tokens, span) -> int: the largest stride for which every run of `span`
    consecutive tokens lies wholly inside one chunk of `chunk_tokens` tokens."""
    cases = [{"chunk_tokens": c, "span": m}
             for c, m in ((24, 12), (64, 1), (10, 10), (512, 100), (7, 3), (32, 17))]
    return run_check("check_max_stride", fn, cases, lambda chunk_tokens, span:
                     chunk_tokens - span + 1, compare=compare_values)


def _compare_stale_recall(got, _):
    try:
        history, question, budget = got
        manager = context.AdaptiveContextManager(budget, "retrieval")
        text = manager.manage_context(list(history), question)
        values = fact_values(history, _key_of_question(question))
    except (TypeError, ValueError) as error:
        return f"expected (history, question, budget) that retrieval accepts: {error}"
    if len(values) < 2:
        return f"the history must state the fact and then update it; found values {values}"
    if context.contains_value(text, values[-1]):
        return f"retrieval found the current value {values[-1]!r}: no failure yet"
    if not any(context.contains_value(text, v) for v in values[:-1]):
        return "retrieval found neither value: that is a miss, not a stale answer"
    return None


def check_stale_recall(fn):
    """fn() -> (history, question, budget): a conversation in which the "retrieval" policy
    brings back only a superseded value of the fact the question asks about."""
    return run_check("check_stale_recall", fn, [{}], lambda: None, compare=_compare_stale_recall)
