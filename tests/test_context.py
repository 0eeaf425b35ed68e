"""Adaptive context management: budgets, summaries, BM25 retrieval, strided chunks."""

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcviz import context as cm
from lcviz.context import (
    POLICIES,
    AdaptiveContextManager,
    BM25Index,
    KeyPointSummary,
    bm25_scores,
    chunk_document,
    count_tokens,
    extract_key_points,
    make_conversation,
    retrieval_terms,
    retrieve_chunks,
)

STRICT = [p for p in POLICIES if p != "summary_buffer_classic"]
SENTENCES = [
    "My locker code is 4821.", "Actually, my locker code is now 7310.",
    "My manager's name is Priya.", "I walked 12 kilometres with Bekaro on Monday.",
    "The weather has been quiet all week.", "Could you explain that part again?",
    "The locker room was crowded again today.", "Her favourite sport is chess.",
    "Sure.", "Ok", "42",
    ("A very long sentence about pottery, jazz, hiking and 300 other things, told by Tavo and "
     "Mirela on Sunday at 9 o'clock."),
]
turn = st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=3).map(" ".join).map(
    lambda s: random.Random(len(s)).choice(["User: ", "Assistant: ", ""]) + s)


def _policy_options(policy):
    return {"documents": ["The access code for the north archive is 5521. " * 3]} \
        if policy == "retrieval" else {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(turn, min_size=0, max_size=40), budget=st.integers(8, 160),
       policy=st.sampled_from(STRICT), question=st.sampled_from(
           ["What is my locker code?", "Who is my manager?", "Hi", "?"]),
       k=st.integers(1, 8))
def test_budget_never_exceeded_and_newest_turn_kept(history, budget, policy, question, k):
    options = {"k": k} if policy == "last_k" else _policy_options(policy)
    manager = AdaptiveContextManager(budget, policy, **options)
    ctx = manager.build_context(history, question)
    text = manager.manage_context(history, question)
    assert text == ctx.text
    assert count_tokens(text) == ctx.tokens <= budget
    assert text.endswith(question)                      # the current input is always there
    if history and count_tokens(history[-1]) + count_tokens(question) <= budget:
        assert ctx.parts[-2].text == history[-1]


@pytest.mark.parametrize("policy", STRICT)
@pytest.mark.parametrize("budget", [40, 96, 256])
def test_budget_held_on_every_turn_of_a_chat(policy, budget):
    turns = 60 if policy == "retrieval" else 120   # retrieval re-indexes every turn: slower
    conv = make_conversation(turns, seed=3)
    manager = AdaptiveContextManager(budget, policy)
    for t in range(1, turns):
        ctx = manager.build_context(conv.turns[:t], conv.turns[t])
        assert ctx.tokens <= budget and count_tokens(ctx.text) == ctx.tokens
        newest = conv.turns[t - 1]
        if count_tokens(newest) + count_tokens(conv.turns[t]) <= budget:
            assert ctx.parts[-2].text == newest, (policy, t)


@pytest.mark.parametrize("policy", POLICIES)
def test_unlimited_budget_returns_the_whole_history(policy):
    conv = make_conversation(60, seed=1)
    options = {"k": 60} if policy == "last_k" else {}
    text = AdaptiveContextManager(None, policy, **options).manage_context(conv.turns, "Hi?")
    assert text == "\n".join(conv.turns + ["Hi?"])
    # a budget the whole conversation fits in behaves the same (memory pressure acts at 75% of
    # the budget: it needs the conversation to fit in that fraction)
    total = sum(count_tokens(t) for t in conv.turns) + 2
    if policy == "memory_pressure":
        total = math.ceil(total / cm.MESSAGE_SUMMARY_WARNING_FRAC)
    text = AdaptiveContextManager(total, policy, **options).manage_context(conv.turns, "Hi?")
    assert text == "\n".join(conv.turns + ["Hi?"])


def test_last_k_keeps_k_turns_even_without_a_limit():
    history = [f"turn {i}" for i in range(10)]
    text = AdaptiveContextManager(None, "last_k", k=3).manage_context(history, "now")
    assert text.split("\n") == ["turn 7", "turn 8", "turn 9", "now"]


@pytest.mark.parametrize("policy", POLICIES)
def test_turn_by_turn_equals_a_fresh_manager(policy):
    conv = make_conversation(80, seed=5)
    incremental = AdaptiveContextManager(96, policy)
    for t in range(1, 80):
        incremental.manage_context(conv.turns[:t], "User: What is my locker code?")
    fresh = AdaptiveContextManager(96, policy)
    q = "User: What is my locker code?"
    assert incremental.manage_context(conv.turns, q) == fresh.manage_context(conv.turns, q)
    # another conversation through the same manager starts afresh
    other = make_conversation(40, seed=6)
    assert incremental.manage_context(other.turns, q) == \
        AdaptiveContextManager(96, policy).manage_context(other.turns, q)


def test_update_replaces_the_stale_fact_in_the_summary():
    summary = KeyPointSummary()
    summary.fold("User: Quick thing. My locker code is 4821. Keep that in mind.")
    summary.fold("Assistant: Noted. I walked 12 kilometres with Bekaro on Monday.")
    summary.fold("User: Actually, my locker code is now 7310.")
    assert "7310" in summary.text and "4821" not in summary.text
    assert sum("locker code" in p.text for p in summary.points) == 1
    assert "Bekaro" in summary.text
    # the same through a manager: the update has been folded, only the new value remains
    history = (["User: My locker code is 4821."] + ["Assistant: Sure. That sounds good."] * 5
               + ["User: Actually, my locker code is now 7310."]
               + ["Assistant: Sure. That sounds good."] * 30)
    for policy in ("summary_buffer", "summary_buffer_classic", "memory_pressure"):
        manager = AdaptiveContextManager(40, policy)
        text = manager.manage_context(history, "What is my locker code?")
        assert "7310" in manager.state.summary.text and "4821" not in text, policy


def test_extract_key_points():
    text = ("User: Nice weather. My locker code is 4821. Bye. What is your name? "
            "I walked 12 kilometres with Bekaro on Monday.")
    points = extract_key_points(text)
    assert points == ["My locker code is 4821.", "I walked 12 kilometres with Bekaro on Monday."]
    assert extract_key_points(text) == points                     # deterministic
    assert extract_key_points(text, kept=points) == []            # nothing new
    assert extract_key_points("My locker code is now 7310.", kept=points) == \
        ["My locker code is now 7310."]                           # an update is new
    assert extract_key_points("The weather has been quiet all week.") == []
    manager = AdaptiveContextManager(64, "summary_buffer")
    assert manager.extract_key_points(text) == points


def test_bm25_by_hand_equals_bm25s():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(30)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) for _ in range(60)]
    index = BM25Index(texts)
    for _ in range(20):
        query = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 5)))
        lib = index.scores(query)
        hand = np.array(bm25_scores([retrieval_terms(t) for t in texts], retrieval_terms(query)))
        np.testing.assert_allclose(lib, hand, rtol=1e-5, atol=1e-6)
        # same ranking (ties broken by index, scores rounded to float32 precision)
        assert sorted(range(60), key=lambda i: (-round(lib[i], 4), i)) == \
            sorted(range(60), key=lambda i: (-round(hand[i], 4), i))


def test_bm25_formula_on_a_tiny_corpus():
    docs = [["a", "b", "c"], ["a", "a", "d"], [], ["e", "b"]]
    avgdl = 2.0
    idf_a = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))
    want = idf_a * 2 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / avgdl))
    assert bm25_scores(docs, ["a"])[1] == pytest.approx(want)
    assert bm25_scores(docs, ["a", "a"])[1] == pytest.approx(2 * want)   # repeats count twice
    assert bm25_scores(docs, ["zzz"]) == [0, 0, 0, 0]


def test_retrieval_brings_an_old_fact_back():
    conv = make_conversation(300, seed=2, paraphrase_rate=0.0)
    fact = conv.facts[0]
    q = fact.question
    assert fact.current not in AdaptiveContextManager(96, "token_buffer").manage_context(
        conv.turns, q)
    ctx = AdaptiveContextManager(96, "retrieval").build_context(conv.turns, q)
    assert cm.contains_value(ctx.text, fact.current)
    assert any(p.kind == "retrieved" and fact.current in p.text for p in ctx.parts)


def test_classic_summary_buffer_grows_past_the_budget():
    totals = cm.composition("summary_buffer_classic", 64, turns=200, seed=0)["total"]
    counted = cm.composition("summary_buffer", 64, turns=200, seed=0)["total"]
    assert max(counted) <= 64
    assert totals[-1] > 4 * 64                                 # the uncounted summary
    assert np.mean(totals[150:]) > np.mean(totals[50:100]) + 50   # and it keeps growing


def test_memory_pressure_flushes_at_the_threshold_and_keeps_the_last_turns():
    conv = make_conversation(100, seed=4)
    manager = AdaptiveContextManager(200, "memory_pressure")
    for t in range(1, 101):
        manager.manage_context(conv.turns[:t], "Hi")
        state = manager.state
        in_context = state.summary.tokens + sum(state.counts[state.first:])
        assert in_context <= 0.75 * 200 or len(state.turns) - state.first <= 3
        assert state.archive == list(range(state.first))   # evicted turns archived, in order
    assert state.flushes > 3
    assert len(state.turns) - state.first >= cm.MESSAGE_SUMMARY_TRUNC_KEEP_N_LAST
    assert (cm.MESSAGE_SUMMARY_WARNING_FRAC, cm.MESSAGE_SUMMARY_TRUNC_TOKEN_FRAC,
            cm.MESSAGE_SUMMARY_TRUNC_KEEP_N_LAST) == (0.75, 0.75, 3)


@given(n=st.integers(1, 120), chunk=st.integers(1, 30), data=st.data())
@settings(max_examples=80, deadline=None)
def test_chunks_cover_every_token_with_the_stated_overlap(n, chunk, data):
    stride = data.draw(st.integers(1, chunk))
    text = " ".join(f"w{i % 7}" if i % 3 else str(i % 10) for i in range(n))  # w, digit tokens
    tokens = cm.split_words(text)
    chunks = chunk_document(text, chunk, stride)
    starts = list(range(0, len(tokens), stride))[:len(chunks)]
    for c, begin in zip(chunks, starts):
        assert c in text
        assert cm.split_words(c) == tokens[begin:begin + chunk]
    assert cm.split_words(chunks[-1])[-1] == tokens[-1]
    # any span of chunk - stride + 1 tokens lies inside one chunk
    m = min(chunk - stride + 1, len(tokens))
    for s in range(len(tokens) - m + 1):
        assert any(b <= s and s + m <= b + chunk for b in starts)


def test_retrieve_chunks_fits_and_keeps_document_order():
    text, question, code = cm.make_document(600, seed=1)
    chunks = chunk_document(text, 24, 12)
    got = retrieve_chunks(chunks, question, 60)
    assert sum(count_tokens(c) for c in got) <= 60
    assert [chunks.index(c) for c in got] == sorted(chunks.index(c) for c in got)
    assert any(code in c for c in got)
    assert code not in cm.head_of_document(text, 60) or text.find(code) < 200


def test_experiments_are_seeded_and_counted():
    a = cm.evaluate_policy("summary_buffer", 96, 60, conversations=3, seed=1)
    b = cm.evaluate_policy("summary_buffer", 96, 60, conversations=3, seed=1)
    assert a == b and a["n"] == 12 and a["over_budget"] == 0
    assert a["n_direct"] + a["n_other_words"] == a["n"]
    c = cm.evaluate_policy("summary_buffer_classic", 96, 60, conversations=3, seed=1)
    assert c["over_budget"] > 0
    assert make_conversation(50, 9).turns == make_conversation(50, 9).turns
    assert make_conversation(50, 9).turns != make_conversation(50, 10).turns


def test_failure_examples_name_what_happened():
    example = cm.failure_example("token_buffer", 64, turns=60)
    assert example is not None and "dropped" in example["why"]
    assert example["value"] in example["statement"]
    assert not cm.contains_value(example["context"], example["value"])
    example = cm.failure_example("summary_buffer", 64, turns=100)
    assert example is not None and "summary" in example["why"]


@pytest.mark.parametrize("bad, match", [
    (lambda: AdaptiveContextManager(5, "token_buffer").manage_context([], "one two three four "
                                                                          "five six"),
     "current_input has 6 tokens, more than max_context=5"),
    (lambda: AdaptiveContextManager(50, "token_buffer").manage_context(["a", 7], "q"),
     r"history\[1\] must be a str, got 7 \(int\)"),
    (lambda: AdaptiveContextManager(50, "token_buffer").manage_context("a turn", "q"),
     "history must be a list of str turns, got str"),
    (lambda: AdaptiveContextManager(50, "token_buffer").manage_context(["a"], None),
     "current_input must be a str, got None"),
    (lambda: AdaptiveContextManager(0, "token_buffer"), "max_context must be >= 1, got 0"),
    (lambda: AdaptiveContextManager(10.5, "token_buffer"), "max_context must be an integer"),
    (lambda: AdaptiveContextManager(50, "fifo"), "policy must be one of"),
    (lambda: AdaptiveContextManager(50, "last_k", window=3), r"unknown \['window'\]"),
    (lambda: AdaptiveContextManager(50, "last_k", k=0), "k must be >= 1, got 0"),
    (lambda: AdaptiveContextManager(50, "summary_buffer", summary_share=1.5),
     "summary_share must be <= 1"),
    (lambda: AdaptiveContextManager(50, "retrieval", documents="one doc"),
     "documents must be a list of str"),
    (lambda: AdaptiveContextManager(50, "retrieval", documents=["abc"], chunk_tokens=8,
                                    stride=9), "stride must be <= 8, got 9"),
    (lambda: chunk_document("", 8, 4), "text must contain at least one token"),
    (lambda: chunk_document("a b c", 8, 0), "stride must be >= 1, got 0"),
    (lambda: retrieve_chunks([], "q", 10), "chunks must be a non-empty list"),
    (lambda: bm25_scores([], ["a"]), "documents must be a non-empty list"),
    (lambda: extract_key_points(["My code is 1."]), "text must be a str"),
    (lambda: count_tokens(None), "text must be a str, got None"),
    (lambda: make_conversation(10, 0), "turns must be >= 2 \\* n_facts \\+ 4 = 12"),
    (lambda: make_conversation(50, -1), "seed must be >= 0"),
])
def test_bad_input_raises_a_value_error_naming_it(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_empty_history_is_the_first_turn():
    ctx = AdaptiveContextManager(20, "summary_buffer").build_context([], "Hello there")
    assert ctx.text == "Hello there" and ctx.tokens == 2


# ------------------------------------------------------------------ checkers

def test_check_fact_keeper_passes_the_reference_and_fails_the_library_policies():
    from lcviz.checks import context as cc
    assert cc.check_fact_keeper(cc._keep_facts).passed
    for policy in ("summary_buffer", "retrieval"):
        result = cc.check_fact_keeper(
            lambda h, q, b, policy=policy: AdaptiveContextManager(b, policy).manage_context(h, q))
        assert result.status == "fail", policy
    cases = cc.fact_keeper_cases()
    assert len(cases) == 9 and sum(bool(cc._requirement(**c)["stale"]) for c in cases) >= 2
    assert any(c["current_input"] != f.question for c in cases
               for f in make_conversation(300, 11, plant_within=10).facts)

    def stub(history, current_input, budget):
        raise NotImplementedError
    assert cc.check_fact_keeper(stub).status == "not attempted"


def test_check_max_stride_formula_is_the_largest_by_brute_force():
    from lcviz.checks import context as cc
    assert cc.check_max_stride(lambda c, m: c - m + 1).passed
    assert cc.check_max_stride(lambda c, m: c - m).status == "fail"
    text = " ".join(f"w{i}" for i in range(60))

    def covers(chunk, stride, span):
        starts = range(0, 60, stride)
        return all(any(b <= s and s + span <= b + chunk for b in starts)
                   for s in range(60 - span + 1))
    for chunk, span in ((8, 3), (10, 10), (12, 1), (9, 5)):
        best = chunk - span + 1
        assert covers(chunk, best, span) and (best == chunk or not covers(chunk, best + 1, span))
        assert len(chunk_document(text, chunk, best)) >= 1


def test_check_stale_recall():
    from lcviz.checks import context as cc
    filler = ["Assistant: Sure. I am reading a book about chess."] * 12
    update = ("User: Actually, my locker code is now 7310, because the old one stopped working "
              "after the renovation of the whole building last week, so please use the new one.")
    history = (["User: My locker code is 4821. The locker code is for the locker at the gym."]
               + filler[:3] + [update] + filler)
    question = "User: What is my locker code?"
    assert cc.check_stale_recall(lambda: (history, question, 48)).passed
    assert cc.check_stale_recall(lambda: (history, question, 400)).status == "fail"  # both fit
    assert cc.check_stale_recall(lambda: (history[:1], question, 48)).status == "fail"
