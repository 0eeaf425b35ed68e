"""Adaptive context management: what a chat system puts in a fixed token budget, turn after turn.

Attention needs the tokens in the window; when a conversation outgrows the window something must
decide which words stay. `AdaptiveContextManager(max_context, policy)` assembles, from the history
and the current input, a context of at most `max_context` tokens (word tokens of
`lcviz.tokenize.split_words`: words, single digits and punctuation marks):

    "last_k"                  the last k turns (LangChain ConversationBufferWindowMemory)
    "token_buffer"            the newest turns that fit, the oldest dropped
                              (LangChain ConversationTokenBufferMemory)
    "summary_buffer"          pruned turns are folded into a running extractive summary of key
                              points; the summary is counted against the budget and capped at
                              summary_share of it (lowest-scoring points dropped first)
    "summary_buffer_classic"  LangChain ConversationSummaryBufferMemory as written: only the
                              turns are kept under the limit, the summary is NOT counted, so the
                              prompt grows without bound (langchainjs #2181, langchain #17888)
    "memory_pressure"         MemGPT (Packer et al. 2023, "MemGPT: Towards LLMs as Operating
                              Systems", arXiv 2310.08560): past MESSAGE_SUMMARY_WARNING_FRAC of
                              the budget the oldest MESSAGE_SUMMARY_TRUNC_TOKEN_FRAC of the
                              message buffer (the previous summary first, so it is summarised
                              again: recursive) is folded into the summary and moved to the
                              archive; the last MESSAGE_SUMMARY_TRUNC_KEEP_N_LAST turns stay
    "retrieval"               recent turns fill recent_share of the budget; older turns and the
                              chunks of long documents are ranked by BM25 against the current
                              input and the best that fit are brought back

Departures, named where they occur: MemGPT's code warns the model at 0.75 of the window and
summarises only on overflow; with no model here to heed the warning, "memory_pressure" summarises
at the warning threshold. The summaries are extractive (`extract_key_points`): sentences scored by
numbers, names, fact form ("my X is Y") and novelty against what is kept; an LLM summariser would
paraphrase. A restated fact ("my X is now Z") replaces the stale point with the same key.

BM25 comes from bm25s (Lu 2024, "BM25S: Orders of magnitude faster lexical search via eager
sparse scoring", arXiv 2407.03618), chosen over rank-bm25 because bm25s is maintained (releases
through 2026; rank-bm25's last release is 0.2.2 of 2022), needs only numpy, and implements the
Lucene variant of Kamphuis et al. 2020 that `bm25_scores` writes out by hand:
    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d) = sum over query terms t of idf(t) * tf(t, d) / (tf(t, d) + k1 (1 - b + b |d| / avgdl))
with k1 = 1.5, b = 0.75 (bm25s defaults). A query term repeated counts twice, as in bm25s.

Long documents are split with overlap (`chunk_document`, strided like the Hugging Face
"Perplexity of fixed-length models" windows): a span of m tokens lies wholly inside some chunk
exactly when stride <= chunk_tokens - m + 1.

    manager = AdaptiveContextManager(256, "summary_buffer")
    text = manager.manage_context(history, "User: What is my locker code?")   # <= 256 tokens
    ctx = manager.build_context(history, question)   # the same, with its parts (kind, tokens)
"""

import math
import random
import re
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from lcviz.stats import rate_text, wilson_interval
from lcviz.tokenize import split_words
from lcviz.validate import check_choice, check_float, check_int

# MemGPT's constants (memgpt/constants.py, letta/constants.py)
MESSAGE_SUMMARY_WARNING_FRAC = 0.75    # memory pressure: past this fraction of the window
MESSAGE_SUMMARY_TRUNC_TOKEN_FRAC = 0.75  # the oldest fraction of message-buffer tokens summarised
MESSAGE_SUMMARY_TRUNC_KEEP_N_LAST = 3    # the last turns never summarised

POLICIES = ("last_k", "token_buffer", "summary_buffer", "summary_buffer_classic",
            "memory_pressure", "retrieval")

# Options of each policy and their defaults.
POLICY_OPTIONS = {
    "last_k": {"k": 6},
    "token_buffer": {},
    "summary_buffer": {"summary_share": 0.5},
    "summary_buffer_classic": {},
    "memory_pressure": {"warning_frac": MESSAGE_SUMMARY_WARNING_FRAC,
                        "trunc_frac": MESSAGE_SUMMARY_TRUNC_TOKEN_FRAC,
                        "keep_last": MESSAGE_SUMMARY_TRUNC_KEEP_N_LAST, "summary_share": 0.5},
    "retrieval": {"recent_share": 0.5, "documents": (), "chunk_tokens": 64, "stride": 32},
}

SUMMARY_HEADER = "Summary:"     # 2 tokens, counted
RECALL_HEADER = "Recalled:"     # 2 tokens per recalled item, counted
HEADER_TOKENS = 2
MIN_KEY_POINT_SCORE = 2.0       # a sentence below this is not a key point

def _words(text):
    return tuple(text.split())


STOPWORDS = frozenset(_words("""a an and are as at be been but by can could did do does for from had has
have he her hers him his how i if in into is it its just me my of on or our ours she so than that
the their them then there these they this to too us was we were what when where which who why will
with would you your yours user assistant system s"""))
PREFERENCE_WORDS = frozenset(_words("favourite favorite prefer prefers preferred love loves like "
                                    "likes hate hates allergic"))
SPEAKER_TAG = re.compile(r"^\s*(?:User|Assistant|System)\s*:\s*")
LEAD_FILLER = re.compile(r"^(?:(?:actually|update|correction|by the way|so|now|also|oh|well|note|"
                         r"quick note|reminder)\b\s*[,:]?\s*)+", re.IGNORECASE)
FACT_FORM = re.compile(r"^(?P<owner>my|our|his|her|their)\s+(?P<key>[A-Za-z' ]+?)\s+"
                       r"(?:is|are|was|were)\s+(?:now\s+|still\s+)?(?P<value>[^.!?]+)",
                       re.IGNORECASE)
SENTENCE = re.compile(r"[^.!?]*[.!?]+|[^.!?]+$")
TERM = re.compile(r"\d+|[A-Za-z]+")
NAME = re.compile(r"^[A-Z][a-z]+$")


# ------------------------------------------------------------------------- text helpers

def _check_text(name, value):
    if not isinstance(value, str):
        raise ValueError(
            f"{name} must be a str, got {value!r} ({type(value).__name__})")
    return value


def count_tokens(text):
    """Number of word tokens of `text` (lcviz.tokenize.split_words): 'Key 123.' -> 5."""
    return len(split_words(_check_text("text", text)))


def retrieval_terms(text):
    """BM25 terms: lower-case words and whole numbers, stop words and speaker tags left out.
    'User: My locker code is 4821.' -> ['locker', 'code', '4821']"""
    return [t for t in (m.lower() for m in TERM.findall(_check_text("text", text)))
            if t not in STOPWORDS]


def split_sentences(text):
    """'A b. C d?' -> ['A b.', 'C d?'] (speaker tags stay with the first sentence)."""
    return [s.strip() for s in SENTENCE.findall(_check_text("text", text)) if s.strip()]


def _bare(sentence):
    """The sentence without a speaker tag or leading filler ('Actually, '), capitalised."""
    bare = LEAD_FILLER.sub("", SPEAKER_TAG.sub("", sentence)).strip()
    return bare[:1].upper() + bare[1:]


def fact_key(sentence):
    """'User: Actually, my locker code is now 7310.' -> 'my locker code'; None when the sentence
    is not of the form '<my|our|his|her|their> <key> is <value>'."""
    match = FACT_FORM.match(_bare(_check_text("sentence", sentence)))
    if match is None:
        return None
    return " ".join((match["owner"] + " " + match["key"]).lower().split())


def entities(sentence):
    """What a sentence is about, lower-cased: its numbers, its names (capitalised words after the
    first word) and, for a fact ('my X is Y'), the terms of its value Y."""
    bare = _bare(_check_text("sentence", sentence))
    words = TERM.findall(bare)
    out = {w for w in words if w.isdigit()} | {w.lower() for w in words[1:] if NAME.match(w)}
    match = FACT_FORM.match(bare)
    if match:
        out |= set(retrieval_terms(match["value"]))
    return out


def _score(bare, kept_terms, kept_entities):
    key = fact_key(bare)
    terms = set(retrieval_terms(bare))
    if not terms or bare.endswith("?"):
        return 0.0, key
    words = TERM.findall(bare)
    numbers = sum(w.isdigit() for w in words)
    names = sum(bool(NAME.match(w)) for w in words[1:])
    preference = any(w.lower() in PREFERENCE_WORDS for w in words)
    ents = entities(bare)
    if ents:
        novelty = sum(e not in kept_entities for e in ents) / len(ents)
    else:
        novelty = 1 - max((len(terms & k) for k in kept_terms), default=0) / len(terms)
    raw = 2 * numbers + names + 2 * (key is not None) + preference
    return raw * novelty, key


def score_sentence(sentence, kept=()):
    """(score, key) of one sentence against the kept sentences `kept`: (2 per number + 1 per name
    + 2 for the fact form 'my X is Y' + 1 for a preference word) times novelty. Novelty is the
    share of the sentence's entities (numbers, names, fact value) that no kept sentence mentions;
    for a sentence without entities, 1 - the largest share of its terms found in one kept
    sentence. Questions score 0; key is fact_key(sentence)."""
    bare = _bare(_check_text("sentence", sentence))
    kept = [_check_text(f"kept[{i}]", k) for i, k in enumerate(kept)]
    kept_entities = set().union(*(entities(k) for k in kept))
    return _score(bare, [set(retrieval_terms(k)) for k in kept], kept_entities)


@dataclass
class KeyPoint:
    text: str      # the sentence, without speaker tag
    key: str       # fact key ('my locker code') or None
    score: float   # score_sentence at the time it was kept
    order: int     # when it was kept (ties in trimming drop the oldest)
    tokens: int    # count_tokens(text)
    terms: frozenset     # set(retrieval_terms(text)), for novelty
    entities: frozenset  # entities(text), for novelty


class KeyPointSummary:
    """A running extractive summary: key points in the order they were kept.

    fold(text) adds the text's key points (a fact with a key already kept replaces that point:
    the update wins over the stale value); trim(max_tokens) drops the lowest-scoring points (ties:
    the oldest) until the summary line fits. `dropped` records what was lost, for explanations."""

    def __init__(self):
        self.points = []
        self.dropped = deque(maxlen=256)   # (text, reason) of the latest losses
        self._order = 0
        self._tokens = 0             # sum of the points' tokens
        self._entities = Counter()   # entities of the points

    def copy(self):
        """An independent copy (key points themselves are never modified, so they are shared)."""
        new = KeyPointSummary()
        new.points = list(self.points)
        new.dropped = deque(self.dropped, maxlen=self.dropped.maxlen)
        new._order, new._tokens, new._entities = self._order, self._tokens, Counter(self._entities)
        return new

    @property
    def tokens(self):
        """Tokens of the summary line 'Summary: ...' (0 when empty)."""
        return HEADER_TOKENS + self._tokens if self.points else 0

    @property
    def text(self):
        return f"{SUMMARY_HEADER} " + " ".join(p.text for p in self.points) if self.points else ""

    def _remove(self, point, reason):
        self.points.remove(point)
        self._tokens -= point.tokens
        self._entities.subtract(point.entities)
        self._entities = +self._entities   # drop zero counts
        self.dropped.append((point.text, reason))

    def _add(self, text, key, score):
        tokens = count_tokens(text)
        ents = frozenset(entities(text))
        self.points.append(KeyPoint(text, key, score, self._order, tokens,
                                    frozenset(retrieval_terms(text)), ents))
        self._entities.update(ents)
        self._order += 1
        self._tokens += tokens

    def fold(self, text):
        """Add the key points of `text`; returns the texts added."""
        added = []
        for sentence in split_sentences(text):
            bare = _bare(sentence)
            score, key = _score(bare, [p.terms for p in self.points], self._entities)
            same_key = [p for p in self.points if key is not None and p.key == key]
            if same_key:
                if same_key[0].text == bare:
                    continue  # a repeat, nothing new
                self._remove(same_key[0], f"replaced by the update {bare!r}")
                score = max(score, same_key[0].score)  # an update keeps its fact's rank
            elif score < MIN_KEY_POINT_SCORE:
                if key is not None:
                    reason = f"not a key point: score {score:.2f} < {MIN_KEY_POINT_SCORE}"
                    self.dropped.append((bare, reason))
                continue
            self._add(bare, key, score)
            added.append(bare)
        return added

    def trim(self, max_tokens):
        """Drop the lowest-scoring points (oldest first among equals) until tokens <= max_tokens."""
        while self.points and self.tokens > max_tokens:
            worst = min(self.points, key=lambda p: (p.score, p.order))
            self._remove(worst, f"trimmed (score {worst.score:.2f}) to fit {max_tokens} tokens")
        return self


def extract_key_points(text, kept=()):
    """Key points of `text`: its sentences that score >= MIN_KEY_POINT_SCORE (numbers, names, fact
    form, preference; times novelty against `kept` and the points already taken), without speaker
    tags, in order. A later statement of the same fact replaces an earlier one. Deterministic.

    >>> extract_key_points("User: Nice weather. My locker code is 4821. Bye.")
    ['My locker code is 4821.']"""
    _check_text("text", text)
    summary = KeyPointSummary()
    for i, item in enumerate(kept):
        _check_text(f"kept[{i}]", item)
        summary._add(_bare(item), fact_key(item), math.inf)
    summary.fold(text)
    return [p.text for p in summary.points if p.order >= len(kept)]


# ------------------------------------------------------------------------- BM25

def bm25_scores(documents, query, k1=1.5, b=0.75):
    """BM25 (Lucene variant) of each tokenised document against the tokenised query, by hand.
    documents: list of lists of terms; query: list of terms. Returns a list of floats."""
    check_float("k1", k1, minimum=0)
    check_float("b", b, minimum=0, maximum=1)
    if not isinstance(documents, (list, tuple)) or not documents:
        raise ValueError(f"documents must be a non-empty list of term lists, got {documents!r}")
    n = len(documents)
    avgdl = sum(len(d) for d in documents) / n
    counts = [Counter(d) for d in documents]
    df = Counter(t for c in counts for t in c)
    scores = []
    for c, d in zip(counts, documents):
        s = 0.0
        for t in query:
            if df[t] == 0:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = c[t]
            s += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl)) if avgdl > 0 else 0.0
        scores.append(s)
    return scores


class BM25Index:
    """bm25s.BM25 (method 'lucene', k1=1.5, b=0.75) over texts, terms from retrieval_terms.
    `terms` (one list per text) may be given when already computed."""

    def __init__(self, texts, terms=None, k1=1.5, b=0.75):
        import bm25s  # imported here so the rest of the course does not need it

        self.texts = [_check_text(f"texts[{i}]", t) for i, t in enumerate(texts)]
        self.terms = [retrieval_terms(t) for t in self.texts] if terms is None else list(terms)
        self.vocab = {}
        ids = [[self.vocab.setdefault(t, len(self.vocab)) for t in doc] for doc in self.terms]
        self._retriever = None
        if self.vocab:
            self._retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
            # token ids and our vocabulary: bm25s skips re-tokenising (2x faster than strings)
            self._retriever.index((ids, dict(self.vocab)), show_progress=False)

    def scores(self, query):
        """(len(texts),) float64 BM25 scores of every text against `query`."""
        out = np.zeros(len(self.texts))
        q = [self.vocab[t] for t in retrieval_terms(_check_text("query", query)) if t in self.vocab]
        if q:
            out[:] = self._retriever.get_scores(q)
        return out


# ------------------------------------------------------------------------- documents

def token_spans(text):
    """(start, end) character offsets of each word token of `text`."""
    return [m.span() for m in re.finditer(r"\d|[A-Za-z]+|[^\sA-Za-z\d]", _check_text("text", text))]


def chunk_document(text, chunk_tokens, stride):
    """Strided chunks of `text`: windows of chunk_tokens tokens starting every `stride` tokens,
    the last one ending at the end of the text, each a substring of the original text (so its
    token count is exact). Overlap = chunk_tokens - stride."""
    spans = token_spans(text)
    if not spans:
        raise ValueError(f"text must contain at least one token, got {text[:40]!r}")
    check_int("chunk_tokens", chunk_tokens, minimum=1)
    check_int("stride", stride, minimum=1, maximum=chunk_tokens)
    chunks = []
    for begin in range(0, len(spans), stride):
        end = min(begin + chunk_tokens, len(spans))
        chunks.append(text[spans[begin][0]:spans[end - 1][1]])
        if end == len(spans):
            break
    return chunks


def head_of_document(text, budget):
    """The first `budget` tokens of `text` (the naive way to fit a document)."""
    spans = token_spans(text)
    check_int("budget", budget, minimum=1)
    if not spans:
        raise ValueError(f"text must contain at least one token, got {text[:40]!r}")
    return text[:spans[min(budget, len(spans)) - 1][1]]


def retrieve_chunks(chunks, query, budget, index=None):
    """The chunks ranked best by BM25 against `query` that fit together in `budget` tokens, in
    document order. Zero-score chunks are never taken."""
    if not isinstance(chunks, (list, tuple)) or not chunks:
        raise ValueError(f"chunks must be a non-empty list of str, got {chunks!r}")
    check_int("budget", budget, minimum=1)
    index = index or BM25Index(chunks)
    scores = index.scores(query)
    used, taken = 0, []
    for i in sorted(range(len(chunks)), key=lambda i: (-scores[i], i)):
        cost = count_tokens(chunks[i])
        if scores[i] > 0 and used + cost <= budget:
            taken.append(i)
            used += cost
    return [chunks[i] for i in sorted(taken)]


# ------------------------------------------------------------------------- assembled context

@dataclass
class ContextPart:
    kind: str      # "summary" | "retrieved" | "recent" | "input"
    text: str
    tokens: int
    source: int = -1   # history index of a turn (recent, retrieved), -1 otherwise


@dataclass
class Context:
    parts: list = field(default_factory=list)

    @property
    def text(self):
        return "\n".join(p.text for p in self.parts)

    @property
    def tokens(self):
        return sum(p.tokens for p in self.parts)

    def tokens_by_kind(self):
        """{'summary': ..., 'retrieved': ..., 'recent': ..., 'input': ...} token counts."""
        out = dict.fromkeys(("summary", "retrieved", "recent", "input"), 0)
        for p in self.parts:
            out[p.kind] += p.tokens
        return out

    def recent_sources(self):
        return [p.source for p in self.parts if p.kind == "recent"]


def _newest_that_fit(counts, budget, stop=0):
    """Start index i >= stop such that counts[i:] is the longest suffix within budget."""
    i, used = len(counts), 0
    while i > stop and used + counts[i - 1] <= budget:
        i -= 1
        used += counts[i]
    return i


# ------------------------------------------------------------------------- policies

class _Policy:
    """State built from the history alone (push), then a context for one input (assemble)."""

    def __init__(self, budget, **options):
        self.budget = budget   # math.inf when unlimited
        self.options = options
        self.turns, self.counts = [], []

    def push(self, turn):
        self.turns.append(turn)
        self.counts.append(count_tokens(turn))

    def _recent_parts(self, start, stop=None):
        stop = len(self.turns) if stop is None else stop
        return [ContextPart("recent", self.turns[i], self.counts[i], i) for i in range(start, stop)]


class _LastK(_Policy):
    def assemble(self, current_input, avail):
        k = self.options["k"]
        start = max(0, len(self.turns) - k)
        return self._recent_parts(_newest_that_fit(self.counts, avail, stop=start))


class _TokenBuffer(_Policy):
    def __init__(self, budget, **options):
        super().__init__(budget, **options)
        self.first = 0   # turns before it were dropped for good

    def push(self, turn):
        super().push(turn)
        self.first = _newest_that_fit(self.counts, self.budget, stop=self.first)

    def assemble(self, current_input, avail):
        return self._recent_parts(_newest_that_fit(self.counts, avail, stop=self.first))


class _SummaryBuffer(_Policy):
    """Turns in a buffer; the oldest folded into the summary while summary + buffer > budget."""

    counted = True

    def __init__(self, budget, **options):
        super().__init__(budget, **options)
        self.summary = KeyPointSummary()
        self.first = 0   # index of the oldest turn still in the buffer

    def _cap(self):
        return self.options["summary_share"] * self.budget

    def _fit(self, summary, first, avail):
        """Fold the oldest buffered turns into `summary` (in place) until it fits; the newest
        turn is folded last, after the summary has been trimmed to make room for it."""
        buffered = sum(self.counts[first:])
        while first < len(self.turns):
            if summary.tokens + buffered <= avail:
                break
            if first < len(self.turns) - 1 or summary.tokens == 0:
                summary.fold(self.turns[first])
                buffered -= self.counts[first]
                first += 1
                summary.trim(min(self._cap(), avail))   # the summary keeps its share
            else:
                summary.trim(max(0, avail - buffered))
        return first

    def push(self, turn):
        super().push(turn)
        if self.counted:
            self.first = self._fit(self.summary, self.first, self.budget)
        else:  # LangChain: pop(0) into pruned while the buffer exceeds the limit; summary on top
            buffered = sum(self.counts[self.first:])
            while buffered > self.budget:
                self.summary.fold(self.turns[self.first])
                buffered -= self.counts[self.first]
                self.first += 1

    def assemble(self, current_input, avail):
        summary, first = self.summary, self.first
        if self.counted and summary.tokens + sum(self.counts[first:]) > avail:
            summary = summary.copy()
            first = self._fit(summary, first, avail)
        parts = [ContextPart("summary", summary.text, summary.tokens)] if summary.points else []
        return parts + self._recent_parts(first)


class _ClassicSummaryBuffer(_SummaryBuffer):
    counted = False


class _MemoryPressure(_Policy):
    """MemGPT: summary message + FIFO queue of turns; the archive keeps every evicted turn."""

    def __init__(self, budget, **options):
        super().__init__(budget, **options)
        self.summary = KeyPointSummary()
        self.first = 0
        self.archive = []     # history indices of archived (evicted) turns
        self.flushes = 0

    def _flush(self, summary, first):
        """Summarise the oldest trunc_frac of the buffer's tokens (summary message included),
        never the last keep_last turns. Returns the new first index (unchanged if none)."""
        keep = self.options["keep_last"]
        candidates = len(self.turns) - keep - first
        if candidates <= 0:
            return first
        total = summary.tokens + sum(self.counts[first:])
        desired = int(self.options["trunc_frac"] * total)
        so_far, cutoff = summary.tokens, first
        for i in range(first, first + candidates):
            cutoff = i + 1
            so_far += self.counts[i]
            if so_far > desired:
                break
        for i in range(first, cutoff):
            summary.fold(self.turns[i])
        summary.trim(self.options["summary_share"] * self.budget)
        return cutoff

    def push(self, turn):
        super().push(turn)
        threshold = self.options["warning_frac"] * self.budget
        if self.summary.tokens + sum(self.counts[self.first:]) > threshold:
            new_first = self._flush(self.summary, self.first)
            self.archive.extend(range(self.first, new_first))
            self.flushes += new_first > self.first
            self.first = new_first

    def assemble(self, current_input, avail):
        summary, first = self.summary, self.first
        if summary.tokens + sum(self.counts[first:]) > avail:
            summary = summary.copy()
            while summary.tokens + sum(self.counts[first:]) > avail:
                new_first = self._flush(summary, first)
                if new_first == first:
                    break
                first = new_first
            # the kept turns alone are too long for this input: the summary shrinks first, then
            # the oldest kept turns go
            first = max(first, _newest_that_fit(self.counts, avail, stop=first))
            summary.trim(max(0, avail - sum(self.counts[first:])))
        parts = [ContextPart("summary", summary.text, summary.tokens)] if summary.points else []
        return parts + self._recent_parts(first)


class _Retrieval(_Policy):
    """Recent turns + BM25 over older turns and document chunks (indexed once per history)."""

    def __init__(self, budget, **options):
        super().__init__(budget, **options)
        docs = options["documents"]
        self.chunks = [c for d in docs
                       for c in chunk_document(d, options["chunk_tokens"], options["stride"])]
        self.chunk_counts = [count_tokens(c) for c in self.chunks]
        self.terms = [retrieval_terms(c) for c in self.chunks]   # chunks', then turns'
        self._index, self._indexed = None, -1
        self.last_ranking = []   # (score, kind, index) of the last assemble, for explanations

    def push(self, turn):
        super().push(turn)
        self.terms.append(retrieval_terms(turn))

    def _scores(self, query):
        if self._indexed != len(self.turns):
            self._index = BM25Index(self.chunks + self.turns, self.terms)
            self._indexed = len(self.turns)
        return self._index.scores(query)

    def assemble(self, current_input, avail):
        n = len(self.turns)
        # 1. the newest turn (if it fits), then newer turns within recent_share of the budget
        start = _newest_that_fit(self.counts, min(avail, max(
            self.options["recent_share"] * avail, self.counts[-1] if n else 0)))
        used = sum(self.counts[start:])
        # 2. BM25 over chunks and older turns, best first (ties: newer first)
        retrieved = []   # (kind, index)
        candidates = len(self.chunks) + start
        self.last_ranking = []
        if candidates and avail - used > HEADER_TOKENS:
            scores = self._scores(current_input)[:candidates]
            c = len(self.chunks)
            self.last_ranking = sorted(
                ((float(scores[j]), "chunk" if j < c else "turn", j if j < c else j - c)
                 for j in range(candidates) if scores[j] > 0),
                key=lambda r: (-r[0], r[1] == "chunk", -r[2]))
            for _, kind, i in self.last_ranking:
                cost = HEADER_TOKENS + (self.chunk_counts[i] if kind == "chunk" else self.counts[i])
                if used + cost <= avail:
                    retrieved.append((kind, i))
                    used += cost
        # 3. leftover budget: the recent window grows back in time (a retrieved turn it reaches
        #    moves into the window, giving back its header)
        taken = {i for kind, i in retrieved if kind == "turn"}
        while start > 0:
            i = start - 1
            cost = self.counts[i] - (HEADER_TOKENS + self.counts[i] if i in taken else 0)
            if used + cost > avail:
                break
            used += cost
            start = i
            if i in taken:
                retrieved.remove(("turn", i))
                taken.discard(i)
        parts = []
        for kind, i in sorted(retrieved, key=lambda r: (r[0] == "turn", r[1])):
            text = self.chunks[i] if kind == "chunk" else self.turns[i]
            tokens = HEADER_TOKENS + (self.chunk_counts[i] if kind == "chunk" else self.counts[i])
            parts.append(ContextPart("retrieved", f"{RECALL_HEADER} {text}", tokens,
                                     i if kind == "turn" else -1))
        return parts + self._recent_parts(start)


_POLICY_CLASSES = {"last_k": _LastK, "token_buffer": _TokenBuffer,
                   "summary_buffer": _SummaryBuffer,
                   "summary_buffer_classic": _ClassicSummaryBuffer,
                   "memory_pressure": _MemoryPressure, "retrieval": _Retrieval}


def _check_options(policy, options):
    allowed = POLICY_OPTIONS[policy]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"policy {policy!r} takes options {sorted(allowed) or 'none'}; "
                         f"got unknown {unknown}")
    out = {**allowed, **options}
    if policy == "last_k":
        check_int("k", out["k"], minimum=1)
    for name in ("summary_share", "warning_frac", "trunc_frac", "recent_share"):
        if name in out:
            check_float(name, out[name], greater_than=0, maximum=1)
    if "keep_last" in out:
        check_int("keep_last", out["keep_last"], minimum=0)
    if policy == "retrieval":
        docs = out["documents"]
        if isinstance(docs, str) or not isinstance(docs, (list, tuple)):
            raise ValueError(f"documents must be a list of str, got {type(docs).__name__}")
        for i, d in enumerate(docs):
            _check_text(f"documents[{i}]", d)
        check_int("chunk_tokens", out["chunk_tokens"], minimum=1)
        check_int("stride", out["stride"], minimum=1, maximum=out["chunk_tokens"])
        out["documents"] = tuple(docs)
    return out


class AdaptiveContextManager:
    """Assemble a context of at most `max_context` tokens from a conversation history.

    max_context: int >= 1, or None for no limit (every policy then returns the whole history,
    except last_k, which keeps its k turns). policy: one of POLICIES; options: see POLICY_OPTIONS.

    The state (buffer, summary, archive) is a function of the history alone: a call whose history
    extends the previous one only processes the new turns; any other history starts afresh. So
    calling turn by turn costs one step per turn and gives the same context as a fresh manager."""

    def __init__(self, max_context, policy="summary_buffer", **options):
        if max_context is not None:
            check_int("max_context", max_context, minimum=1)
        self.max_context = max_context
        self.policy = check_choice("policy", policy, POLICIES)
        self.options = _check_options(policy, options)
        self.reset()

    def reset(self):
        """Forget the state (a new conversation)."""
        budget = math.inf if self.max_context is None else self.max_context
        self.state = _POLICY_CLASSES[self.policy](budget, **self.options)
        self._seen = []

    @property
    def budget_is_strict(self):
        """False only for the classic summary buffer, whose uncounted summary exceeds the limit."""
        return self.policy != "summary_buffer_classic"

    def _sync(self, history):
        if not isinstance(history, (list, tuple)):
            raise ValueError(
                f"history must be a list of str turns, got {type(history).__name__}")
        for i, turn in enumerate(history):
            _check_text(f"history[{i}]", turn)
        n = len(self._seen)
        if len(history) < n or list(history[:n]) != self._seen:
            self.reset()
            n = 0
        for turn in history[n:]:
            self.state.push(turn)
            self._seen.append(turn)

    def build_context(self, history, current_input):
        """The assembled Context (parts with kind and tokens); the current input is the last part."""
        _check_text("current_input", current_input)
        n_input = count_tokens(current_input)
        if self.max_context is not None and n_input > self.max_context:
            raise ValueError(f"current_input has {n_input} tokens, more than max_context="
                             f"{self.max_context}: raise max_context or shorten the input")
        self._sync(history)
        avail = self.state.budget - n_input
        parts = self.state.assemble(current_input, avail) if history else []
        context = Context(parts + [ContextPart("input", current_input, n_input)])
        if self.budget_is_strict and context.tokens > self.state.budget:
            raise RuntimeError(f"{self.policy} assembled {context.tokens} tokens over the budget "
                               f"{self.max_context}")  # a bug in this module, never expected
        return context

    def manage_context(self, history, current_input):
        """The context that fits: (summary line), (recalled items), recent turns, current input,
        one per line; at most max_context word tokens (except summary_buffer_classic)."""
        return self.build_context(history, current_input).text

    def extract_key_points(self, text):
        """Key points of `text` that are new against this manager's current summary."""
        summary = getattr(self.state, "summary", None)
        return extract_key_points(text, kept=[p.text for p in summary.points] if summary else ())


# ------------------------------------------------------------------------- synthetic conversations

FACTS = (  # (statement key, probe question, the same question in other words, value pool)
    ("my locker code", "What is my locker code?", "Which number opens my locker?", "number"),
    ("my flight number", "What is my flight number?", "Which plane am I booked on?", "number"),
    ("my manager's name", "What is my manager's name?", "Who is my boss at work?", "name"),
    ("my dentist's name", "What is my dentist's name?", "Who looks after my teeth?", "name"),
    ("my sister's city", "Which city does my sister live in?", "Where does my sister live?",
     "city"),
    ("my favourite fruit", "Which fruit is my favourite?", "What do I most like to eat?", "fruit"),
    ("my favourite colour", "What is my favourite colour?", "Which colour suits me best?",
     "colour"),
    ("my preferred tea", "Which tea do I prefer?", "What should you brew for me?", "tea"),
)
VALUES = {
    "name": _words("Priya Okonkwo Svetlana Mateus Ingrid Haruto Amara Tobias Leilani Dmitri "
                   "Catalina Oluwaseun"),
    "city": _words("Lisbon Tbilisi Montevideo Hobart Quito Tromso Nagoya Accra Valparaiso Bergen"),
    "fruit": _words("mango papaya quince lychee persimmon guava tamarind rambutan"),
    "colour": _words("teal maroon ochre lavender crimson olive saffron indigo"),
    "tea": _words("oolong sencha rooibos darjeeling assam genmaicha"),
}
_FACT_WORDS = frozenset(w for pool in VALUES.values() for w in pool)
_DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_TOPICS = ("gardening", "chess", "baking", "astronomy", "jazz", "hiking", "pottery", "football",
           "poetry", "cycling", "painting", "history")
_ADJ = ("quiet", "busy", "pleasant", "strange", "long", "relaxing", "tiring", "good")
_NOUNS = ("locker room", "flight", "manager", "dentist", "sister", "fruit market", "colour",
          "tea shop")
_PLAIN = (
    "The weather has been {adj} all week.", "I am reading a book about {topic}.",
    "That sounds {adj}, tell me more.", "Let me think about the {topic} question for a while.",
    "Today was {adj} but I learned something about {topic}.",
    "I would like some ideas for a {adj} weekend.", "Could you explain that part again?",
    "I never understood why people enjoy {topic} so much.",
    "It was a {adj} day and I am a bit tired now.",
)
_DISTRACTORS = (
    "I walked {n} kilometres with {name} on {day}.",
    "{name} says the {topic} meeting moved to {n} o'clock.",
    "The {topic} course costs {n} euros and {name} teaches it.",
    "{name} bought {n} tickets for the {topic} show on {day}.",
    "Her favourite sport is {topic}.",
)
_HARD = ("The {noun} was crowded again today.", "I keep forgetting things about the {noun}.",
         "Someone asked me about the {noun} yesterday.")
_ACKS = ("Sure.", "Got it.", "Understood.", "Noted.", "Of course.", "Interesting.")
_LEADS = ("", "Oh, before I forget.", "Quick thing.", "By the way, something useful.")
_TAILS = ("", "Please remember that.", "Anyway.", "Keep that in mind.")


@dataclass
class Fact:
    key: str                       # 'my locker code'
    question: str                  # 'User: What is my locker code?'
    values: list                   # [(turn index, value)], the first planted, then the updates
    other_words: bool = False      # the question shares no wording with the statement's key

    @property
    def current(self):
        return self.values[-1][1]

    @property
    def stale(self):
        return [v for _, v in self.values[:-1]]

    def value_at(self, turn):
        """The value stated last before history length `turn` (None if not planted yet)."""
        known = [v for t, v in self.values if t < turn]
        return known[-1] if known else None

    def stated_at(self, turn):
        known = [t for t, _ in self.values if t < turn]
        return known[-1] if known else None


@dataclass
class Conversation:
    turns: list
    facts: list
    seed: int


def _value(kind, rng, used):
    while True:
        v = str(rng.randint(1000, 9999)) if kind == "number" else rng.choice(VALUES[kind])
        if v not in used:
            used.add(v)
            return v


def _random_name(rng):
    """A new person for every distractor ('Bekaro'): a real chat keeps meeting new names, so an
    extractive summary keeps finding new events (never one of the facts' values)."""
    while True:
        name = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                       for _ in range(rng.randint(2, 3))).capitalize()
        if name not in _FACT_WORDS:
            return name


def _filler(rng, user, distractor_rate, hard_rate):
    slots = {"adj": rng.choice(_ADJ), "topic": rng.choice(_TOPICS), "n": rng.randint(2, 300),
             "name": _random_name(rng), "day": rng.choice(_DAYS),
             "noun": rng.choice(_NOUNS)}
    sentences = [rng.choice(_PLAIN).format(**slots)]
    u = rng.random()
    if u < distractor_rate:
        sentences.append(rng.choice(_DISTRACTORS).format(**slots))
    elif u < distractor_rate + hard_rate:
        sentences.append(rng.choice(_HARD).format(**slots))
    rng.shuffle(sentences)
    if user:
        return "User: " + " ".join(sentences)
    return "Assistant: " + rng.choice(_ACKS) + " " + " ".join(sentences)


def make_conversation(turns, seed, n_facts=4, n_updates=2, distractor_rate=0.35, hard_rate=0.1,
                      paraphrase_rate=0.25, plant_within=None):
    """A seeded synthetic chat of `turns` turns (User/Assistant alternating) with `n_facts` facts
    (numbers, names, preferences) stated by the user early (within the first `plant_within` turns,
    default turns // 5), `n_updates` of them restated later with a new value, and filler with
    distractor sentences (numbers, new names) and hard negatives (the facts' nouns, no value).
    A fact's probe question is asked in other words with probability `paraphrase_rate` ('Who is
    my boss at work?' for 'my manager's name'): a reader understands it, word matching may not."""
    check_int("turns", turns, minimum=8)
    check_int("seed", seed, minimum=0)
    check_int("n_facts", n_facts, minimum=1, maximum=len(FACTS))
    check_int("n_updates", n_updates, minimum=0, maximum=n_facts)
    check_float("distractor_rate", distractor_rate, minimum=0, maximum=1)
    check_float("hard_rate", hard_rate, minimum=0, maximum=1 - distractor_rate)
    check_float("paraphrase_rate", paraphrase_rate, minimum=0, maximum=1)
    if turns < 2 * n_facts + 4:
        raise ValueError(f"turns must be >= 2 * n_facts + 4 = {2 * n_facts + 4} to plant "
                         f"{n_facts} facts, got {turns}")
    plant_within = max(2 * n_facts, turns // 5) if plant_within is None else plant_within
    check_int("plant_within", plant_within, minimum=2 * n_facts, maximum=turns - 4)
    rng = random.Random(seed)
    templates = rng.sample(FACTS, n_facts)
    user_slots = list(range(0, plant_within, 2))
    plants = sorted(rng.sample(user_slots, n_facts))
    used, facts, statements = set(), [], {}
    for (key, question, paraphrase, kind), t in zip(templates, plants):
        value = _value(kind, rng, used)
        other_words = rng.random() < paraphrase_rate
        facts.append(Fact(key, "User: " + (paraphrase if other_words else question), [(t, value)],
                          other_words))
        lead, tail = rng.choice(_LEADS), rng.choice(_TAILS)
        sentence = f"{key[0].upper()}{key[1:]} is {value}."
        statements[t] = " ".join(x for x in ("User:", lead, sentence, tail) if x)
    # updates: later user turns, at least 2 turns after the plant, before the last 10%
    last = max(plant_within + 2, turns - max(2, turns // 10))
    for fact in rng.sample(facts, n_updates):
        slots = [t for t in range(fact.values[0][0] + 2, last, 2) if t not in statements]
        if not slots:
            continue
        t = rng.choice(slots)
        kind = next(f[-1] for f in FACTS if f[0] == fact.key)
        value = _value(kind, rng, used)
        fact.values.append((t, value))
        statements[t] = f"User: Actually, {fact.key} is now {value}."
    history = [statements.get(t) or _filler(rng, t % 2 == 0, distractor_rate, hard_rate)
               for t in range(turns)]
    return Conversation(history, facts, seed)


def contains_value(text, value):
    """True when `value` occurs in `text` as a whole word or number."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text) is not None


def probe(context_text, fact, turn=None):
    """(survived, stale_only) of one probe: the current value is in the context; a superseded
    value is in it while the current one is not (a reader could only answer the old value)."""
    current = fact.current if turn is None else fact.value_at(turn)
    stale = fact.stale if turn is None else [v for t, v in fact.values if t < turn][:-1]
    survived = contains_value(context_text, current)
    stale_only = not survived and any(contains_value(context_text, v) for v in stale)
    return survived, stale_only


# ------------------------------------------------------------------------- experiments

def _conversation_seed(seed, turns, c):
    return seed * 1_000_003 + turns * 1009 + c


def evaluate_policy(policy, budget, turns, conversations=20, seed=0, **options):
    """Probe every fact at the end of `conversations` seeded chats of `turns` turns.

    Returns {survived, n, stale_only, n_updated, tokens_mean, tokens_max, over_budget}: how many
    probes found the current value in the assembled context, how many updated facts found only a
    superseded value, the context sizes, and how many contexts exceeded the budget."""
    check_int("conversations", conversations, minimum=1)
    survived = stale = n_updated = over = 0
    by_wording = {False: [0, 0], True: [0, 0]}   # other_words -> [survived, n]
    tokens = []
    for c in range(conversations):
        conv = make_conversation(turns, _conversation_seed(seed, turns, c))
        manager = AdaptiveContextManager(budget, policy, **options)
        for fact in conv.facts:
            ctx = manager.build_context(conv.turns, fact.question)
            ok, stale_only = probe(ctx.text, fact)
            survived += ok
            by_wording[fact.other_words][0] += ok
            by_wording[fact.other_words][1] += 1
            if fact.stale:
                n_updated += 1
                stale += stale_only
            tokens.append(ctx.tokens)
            over += budget is not None and ctx.tokens > budget
    n = len(tokens)
    return {"policy": policy, "budget": budget, "turns": turns, "conversations": conversations,
            "survived": survived, "n": n, "stale_only": stale, "n_updated": n_updated,
            "survived_direct": by_wording[False][0], "n_direct": by_wording[False][1],
            "survived_other_words": by_wording[True][0], "n_other_words": by_wording[True][1],
            "tokens_mean": statistics.fmean(tokens), "tokens_max": max(tokens),
            "over_budget": over}


def survival_table(policies=POLICIES, budgets=(128, 256, 512), lengths=(20, 100, 500),
                   conversations=20, seed=0):
    """evaluate_policy for every policy x budget x length, with Wilson 95% intervals."""
    rows = []
    for turns in lengths:
        for budget in budgets:
            for policy in policies:
                row = evaluate_policy(policy, budget, turns, conversations, seed)
                low, high = wilson_interval(row["survived"], row["n"])
                row.update(survival_low=low, survival_high=high,
                           survival_text=rate_text(row["survived"], row["n"]))
                if row["n_updated"]:
                    low, high = wilson_interval(row["stale_only"], row["n_updated"])
                    row.update(stale_low=low, stale_high=high,
                               stale_text=rate_text(row["stale_only"], row["n_updated"]))
                rows.append(row)
    return rows


def survival_curve(policy, budget, turns=300, conversations=10, step=10, seed=0, bins=None,
                   **options):
    """Fact survival against turns since the fact was last stated.

    Every `step` turns of each chat, every fact stated so far is probed with its question.
    Returns {'distance': [bin starts], 'survived': [...], 'n': [...], 'rate', 'low', 'high'}."""
    check_int("step", step, minimum=1)
    bins = bins or list(range(0, turns, max(step, turns // 10)))
    survived, n = [0] * len(bins), [0] * len(bins)
    for c in range(conversations):
        conv = make_conversation(turns, _conversation_seed(seed, turns, c))
        manager = AdaptiveContextManager(budget, policy, **options)
        for t in range(step, turns + 1, step):
            history = conv.turns[:t]
            for fact in conv.facts:
                stated = fact.stated_at(t)
                if stated is None:
                    continue
                ok, _ = probe(manager.manage_context(history, fact.question), fact, t)
                b = max(i for i, start in enumerate(bins) if start <= t - 1 - stated)
                survived[b] += ok
                n[b] += 1
    rate = [s / k if k else float("nan") for s, k in zip(survived, n)]
    intervals = [wilson_interval(s, k) if k else (float("nan"),) * 2 for s, k in zip(survived, n)]
    return {"policy": policy, "budget": budget, "distance": bins, "survived": survived, "n": n,
            "rate": rate, "low": [i[0] for i in intervals], "high": [i[1] for i in intervals]}


def composition(policy, budget, turns=200, seed=0, every=1, **options):
    """Chat loop over one seeded conversation: at turn t the history is turns[:t] and the input
    is turns[t]. Returns token counts by kind (summary, retrieved, recent, input) and the total
    at every `every`-th turn (the state still sees every turn): the stacked-bar data."""
    check_int("every", every, minimum=1)
    conv = make_conversation(turns, seed)
    manager = AdaptiveContextManager(budget, policy, **options)
    rows = {k: [] for k in ("summary", "retrieved", "recent", "input", "total")}
    sampled = list(range(1, turns, every))
    for t in sampled:
        ctx = manager.build_context(conv.turns[:t], conv.turns[t])
        for kind, value in ctx.tokens_by_kind().items():
            rows[kind].append(value)
        rows["total"].append(ctx.tokens)
    return {"policy": policy, "budget": budget, "turn": sampled, **rows}


def time_per_turn(policy, budget, turns=500, seed=0, **options):
    """Wall-clock seconds of each manage_context call in a chat loop (history grows one turn per
    call, the next turn is the input). Returns {'median', 'p90', 'total', 'calls'}."""
    conv = make_conversation(turns, seed)
    manager = AdaptiveContextManager(budget, policy, **options)
    times = []
    for t in range(1, turns):
        history = conv.turns[:t]
        start = time.perf_counter()
        manager.manage_context(history, conv.turns[t])
        times.append(time.perf_counter() - start)
    times.sort()
    return {"policy": policy, "budget": budget, "turns": turns, "median": times[len(times) // 2],
            "p90": times[int(0.9 * len(times))], "total": sum(times), "calls": len(times)}


def failure_example(policy, budget, turns=200, seed=0, tries=20, **options):
    """The first seeded chat (of `tries`) where `policy` loses a fact, and why.

    Returns None if no probe fails, else a dict: seed, fact key, the value, the turn it was stated,
    the first later history length at which its probe no longer finds it, and a sentence saying
    what happened there (evicted from the recent turns, trimmed from or never taken into the
    summary, outranked in retrieval)."""
    for c in range(tries):
        conv = make_conversation(turns, _conversation_seed(seed, turns, c))
        manager = AdaptiveContextManager(budget, policy, **options)
        for t in range(1, turns + 1):
            history = conv.turns[:t]
            for fact in conv.facts:
                stated = fact.stated_at(t)
                if stated is None:
                    continue
                ctx = manager.build_context(history, fact.question)
                ok, stale_only = probe(ctx.text, fact, t)
                if not ok:
                    return {"seed": conv.seed, "fact": fact.key, "value": fact.value_at(t),
                            "stated_at": stated, "lost_at": t, "stale_only": stale_only,
                            "statement": conv.turns[stated], "context": ctx.text,
                            "why": _why_lost(manager, ctx, fact, stated, t)}
    return None


def _why_lost(manager, ctx, fact, stated, t):
    state, value = manager.state, fact.value_at(t)
    recent = ctx.recent_sources()
    first = min(recent) if recent else t
    where = (f"the recent turns hold turns {first}-{t - 1}" if recent else
             "no recent turn fits")
    if manager.policy == "last_k":
        return f"turn {stated} fell out of the last {manager.options['k']} turns; {where}"
    if manager.policy == "token_buffer":
        return f"turn {stated} was dropped to fit {manager.max_context} tokens; {where}"
    if manager.policy == "retrieval":
        ranks = [i for i, r in enumerate(state.last_ranking) if r[1] == "turn" and r[2] == stated]
        rank = (f"BM25 ranked it #{ranks[0] + 1} of {len(state.last_ranking)}" if ranks else
                "BM25 gave it score 0 for this question")
        taken = sum(p.kind == "retrieved" for p in ctx.parts)
        return (f"turn {stated} left the recent turns ({where}); {rank}, and {taken} recalled "
                f"items fit the budget")
    summary = getattr(state, "summary", None)
    lost = [reason for text, reason in summary.dropped if contains_value(text, value)]
    if lost:
        return (f"turn {stated} was folded into the summary, then its key point was {lost[-1]}; "
                f"{where}; the summary holds {len(summary.points)} points")
    return f"turn {stated} is neither in the summary nor in the recent turns; {where}"


def prompt_growth(turns=300, budget=128, seed=0):
    """Context tokens per turn of the classic (uncounted) and the counted summary buffer."""
    return {p: composition(p, budget, turns, seed)["total"]
            for p in ("summary_buffer_classic", "summary_buffer")}


# ------------------------------------------------------------------------- long documents

_DOC_FILLER = (
    "The committee reviewed the {topic} report and asked for a shorter draft.",
    "Several members noted that the {topic} budget was discussed at length.",
    "A short break followed and the meeting resumed with questions about {topic}.",
    "The minutes of the previous session were approved without changes.",
    "Room {n} will be used for the {topic} workshop next month.",
    "{name} presented figures on {topic} and answered {n} questions.",
)
_VAULTS = ("north archive", "east annex", "river depot", "glass pavilion", "old library",
           "harbour office", "west tower", "stone cellar")


def make_document(tokens, seed, vault=None):
    """A seeded report of about `tokens` tokens with one planted sentence 'The access code for
    the <vault> is <4 digits>, valid until the end of the quarter.' at a random sentence position
    (and the other vaults mentioned without a code). Returns (text, question, code)."""
    check_int("tokens", tokens, minimum=50)
    rng = random.Random(seed)
    vault = vault or rng.choice(_VAULTS)
    code = str(rng.randint(1000, 9999))
    sentences, total = [], 0
    while total < tokens:
        s = rng.choice(_DOC_FILLER).format(topic=rng.choice(_TOPICS), n=rng.randint(2, 300),
                                           name=_random_name(rng))
        if rng.random() < 0.1:
            s = f"The {rng.choice([v for v in _VAULTS if v != vault])} was inspected on " \
                f"{rng.choice(_DAYS)}."
        sentences.append(s)
        total += count_tokens(s)
    fact = f"The access code for the {vault} is {code}, valid until the end of the quarter."
    sentences.insert(rng.randint(0, len(sentences)), fact)   # anywhere, the head included
    return " ".join(sentences), f"What is the access code for the {vault}?", code


def document_experiment(budgets=(32, 64, 128), doc_tokens=2000, documents=40, chunk_tokens=24,
                        seed=0):
    """Answer present in the context, over `documents` seeded reports, for: the head of the
    document, BM25 over chunks without overlap (stride = chunk_tokens), and with half overlap
    (stride = chunk_tokens // 2). Rows with n and Wilson 95% intervals."""
    check_int("documents", documents, minimum=1)
    methods = {"head of document": None, "chunks, no overlap": chunk_tokens,
               "chunks, half overlap": max(1, chunk_tokens // 2)}
    hits = {(m, b): 0 for m in methods for b in budgets}
    for d in range(documents):
        text, question, code = make_document(doc_tokens, seed * 7919 + d)
        for method, stride in methods.items():
            chunks = chunk_document(text, chunk_tokens, stride) if stride else None
            index = BM25Index(chunks) if stride else None
            for budget in budgets:
                got = (head_of_document(text, budget) if stride is None else
                       "\n".join(retrieve_chunks(chunks, question, budget, index)))
                hits[method, budget] += contains_value(got, code)
    rows = []
    for (method, budget), k in hits.items():
        low, high = wilson_interval(k, documents)
        rows.append({"method": method, "budget": budget, "found": k, "n": documents,
                     "low": low, "high": high, "text": rate_text(k, documents)})
    return rows


# ------------------------------------------------------------------------- benchmark

def benchmark(budgets=(64, 128, 256, 512), lengths=(20, 100, 500), conversations=30, seed=0):
    """Everything the notebook and the app show from data/bench-context.json: the survival table
    (policy x budget x length), survival curves (300-turn chats) at every budget, the prompt
    growth of the classic summary buffer, the long-document experiment and the time per turn
    (500-turn chat, budget 256)."""
    start = time.perf_counter()
    table = survival_table(POLICIES, budgets, lengths, conversations, seed)
    curves = [survival_curve(p, b, turns=300, conversations=8, step=10, seed=seed)
              for b in budgets for p in POLICIES]
    growth = prompt_growth(turns=500, budget=128, seed=seed)
    docs = document_experiment(seed=seed)
    timing = [time_per_turn(p, 256, turns=500, seed=seed) for p in POLICIES]
    return {"settings": {"budgets": list(budgets), "lengths": list(lengths),
                         "conversations": conversations, "facts_per_conversation": 4,
                         "updates_per_conversation": 2, "seed": seed,
                         "curve_turns": 300, "curve_conversations": 8, "growth_budget": 128},
            "survival": table, "curves": curves, "growth": growth, "documents": docs,
            "timing": timing, "seconds": time.perf_counter() - start}
