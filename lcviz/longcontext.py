"""One long-context benchmark of every technique in the course: quality, memory and time.

RULER (Hsieh et al. 2024, arXiv 2404.06654) and LongBench need GPUs and 7B models; this is the
same kind of table for the course's tiny CPU models, on tasks that are generated without layout
shortcuts and scored by exact match:

- needle in a haystack (the gkamradt grid): length x depth, whole-key exact match;
- multi-key recall in the spirit of RULER's multikey / multiquery needles: every example holds
  several key-value pairs (each one a distractor for the others) and asks for all of them, scored
  with RULER's string_match_all (the fraction of the asked values returned);
- variable tracking (RULER's `vt`): a chain of assignments `X1 = v, X2 = X1, ...` among
  distractor chains, asking for the value at the end of the chain;
- lost in the middle (Liu et al. 2023, arXiv 2307.03172): key-value retrieval with the gold pair
  at one of 5+ places, accuracy against the place.

Techniques are one registry entry each (TECHNIQUES): the model family they read (the course's
passkey models, the segment-recurrent models of notebook 11, or associative-recall models), how
they answer a batch of prompts and how many numbers their KV cache or state holds. Effective
context length follows RULER: the largest tested length whose score is at least THRESHOLD.

    python -m lcviz.bench longcontext            # data/bench-longcontext.json (<= 20 min)
    python -m lcviz.bench longcontext --quick    # a few prompts per cell (seconds)
"""

import time
from dataclasses import dataclass

import torch
from torch import nn

from lcviz.memory import PEAK_AND_TIME_CHILD, run_child
from lcviz.validate import check_int

THRESHOLD = 0.85  # RULER's bar: Llama-2-7B's score at 4K (85.6%), read as a fixed fraction

# ---------------------------------------------------------------- tasks in associative-recall tokens
# The recall models read the token space of lcviz.subquadratic's MQAR: filler 0, keys (variable
# names) 1 .. V/2 - 1, values V/2 .. V - 1.


def _keys_and_values(batch, n_keys, n_values, vocab_size, generator):
    """(keys (B, n_keys), values (B, n_values)): distinct within an example."""
    keys = torch.rand(batch, vocab_size // 2 - 1, generator=generator).argsort(1)[:, :n_keys] + 1
    values = (torch.rand(batch, vocab_size - vocab_size // 2, generator=generator).argsort(1)
              [:, :n_values] + vocab_size // 2)
    return keys, values


def variable_tracking_batch(batch, length, hops, chains, vocab_size, generator=None,
                            trace=False):
    """Variable tracking (RULER's `vt`, in MQAR tokens): `chains` chains of `hops` + 1 variables,
    `X0 v` then `X1 X0`, `X2 X1`, ... (each statement two tokens: the variable, then what is
    assigned to it), the statements of all chains interleaved at random (a chain's own order
    kept) and spread over filler; the last token asks the last variable of chain 0, whose answer
    is chain 0's value v. Returns (x, y) (B, length): y = v at the last position, -100 elsewhere.
    trace=True (training only) also asks, at every statement's second token, the value its
    variable holds from then on: a dense signal that resolves one hop per statement.
    """
    check_int("batch", batch, minimum=1)
    check_int("hops", hops, minimum=0)
    check_int("chains", chains, minimum=1)
    statements = chains * (hops + 1)
    if 2 * statements + 1 > length:
        raise ValueError(f"{chains} chains of {hops} hops need length >= {2 * statements + 1}, "
                         f"got length={length}")
    if chains * (hops + 1) > vocab_size // 2 - 1:
        raise ValueError(f"{chains * (hops + 1)} variables need vocab_size >= "
                         f"{2 * chains * (hops + 1) + 2}, got {vocab_size}")
    g = generator
    names, values = _keys_and_values(batch, statements, chains, vocab_size, g)
    names = names.view(batch, chains, hops + 1)  # (B, chains, hops + 1)
    x = torch.zeros(batch, length, dtype=torch.long)
    y = torch.full((batch, length), -100, dtype=torch.long)
    slots = (length - 1) // 2  # statement slots, filler where none is placed
    for b in range(batch):
        order = torch.randperm(statements, generator=g)  # interleave, then restore chain order
        owner = torch.arange(chains).repeat_interleave(hops + 1)[order]
        where = torch.randperm(slots, generator=g)[:statements].sort().values * 2
        step = [0] * chains
        for position, chain in zip(where.tolist(), owner.tolist()):
            hop = step[chain]
            step[chain] += 1
            x[b, position] = names[b, chain, hop]
            x[b, position + 1] = values[b, chain] if hop == 0 else names[b, chain, hop - 1]
            if trace:
                y[b, position + 1] = values[b, chain]
        x[b, -1] = names[b, 0, hops]
        y[b, -1] = values[b, 0]
    return x, y


def middle_batch(batch, pairs, gold, length, vocab_size, generator=None):
    """Key-value retrieval for the lost-in-the-middle curve: `pairs` pairs (k1 v1 ... kN vN)
    first, filler, and the last token asks one key: the gold pair's, at place `gold` (0 = first).
    Returns (x, y) (B, length): y = the gold value at the last position, -100 elsewhere."""
    check_int("batch", batch, minimum=1)
    check_int("pairs", pairs, minimum=1)
    check_int("gold", gold, minimum=0, maximum=pairs - 1)
    check_int("length", length, minimum=2 * pairs + 1)
    keys, values = _keys_and_values(batch, pairs, pairs, vocab_size, generator)
    x = torch.zeros(batch, length, dtype=torch.long)
    x[:, 0:2 * pairs:2], x[:, 1:2 * pairs:2] = keys, values
    x[:, -1] = keys[:, gold]
    y = torch.full_like(x, -100)
    y[:, -1] = values[:, gold]
    return x, y


# ---------------------------------------------------------------- the recall models (recipes)

RECALL_LENGTH = 128  # training examples' tokens (MQAR) and the shortest tested length
RECALL_PAIRS = tuple(range(1, 17))  # pairs per training example, drawn per example
VT_HOPS = (0, 1, 2)  # hops of the variable-tracking chains in training, drawn per batch
VT_CHAINS = 4  # chains per example: the asked one and three distractors


def fit_recall(seed=0, mixer="attention", state=16, n_layer=4, steps=1500, lr=3e-3, batch=64,
               vt_share=0.5, max_cpu_seconds=540.0):
    """A RecallModel (lcviz.subquadratic: short convolution + mixer, no MLP) trained on MQAR
    examples of RECALL_LENGTH tokens with 1..16 pairs and, for `vt_share` of the batches, on
    variable-tracking chains of VT_HOPS hops (with the trace targets of variable_tracking_batch;
    evaluation asks the question only); AdamW with warm-up and cosine decay. Stops at
    `max_cpu_seconds` of CPU time. Returns (model, metrics with the held-out checks)."""
    from lcviz.subquadratic import (
        RecallConfig,
        RecallModel,
        cosine_scale,
        mqar_mixture,
        optimizer_groups,
    )
    config = RecallConfig(mixer=mixer, state=state, n_layer=n_layer, length=RECALL_LENGTH)
    torch.manual_seed(seed)
    model = RecallModel(config)
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.1), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    losses, start, cpu_start = [], time.perf_counter(), time.process_time()
    for step in range(steps):
        if time.process_time() - cpu_start > max_cpu_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_scale(step, steps, max(1, steps // 20))
        if torch.rand(1, generator=g).item() < vt_share:
            hops = VT_HOPS[int(torch.randint(len(VT_HOPS), (1,), generator=g))]
            x, y = variable_tracking_batch(batch, RECALL_LENGTH, hops, VT_CHAINS,
                                           config.vocab_size, g, trace=True)
        else:
            x, y = mqar_mixture(batch, RECALL_LENGTH, RECALL_PAIRS, config.vocab_size, g)
        model.train()
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(round(loss.item(), 4))
    model.eval()
    metrics = {"steps_run": len(losses), "steps": steps, "lr": lr, "batch": batch,
               "vt_share": vt_share, "loss": losses[::10],
               "seconds": round(time.perf_counter() - start, 1),
               "cpu_seconds": round(time.process_time() - cpu_start, 1),
               "multikey": multikey_cell(model, RECALL_LENGTH, 8, n=200, seed=99),
               "variable_tracking": {str(h): variable_tracking_cell(model, RECALL_LENGTH, h, n=200,
                                                                    seed=99)
                                     for h in VT_HOPS}}
    return model, metrics


def load_recall(name):
    """(RecallModel in eval mode, info) from data/<name>.pt (`python -m lcviz.train <name>`)."""
    from lcviz.checkpoints import load_weights
    from lcviz.subquadratic import RecallConfig, RecallModel
    return load_weights(name, lambda saved: RecallModel(RecallConfig(**saved["config"])))


# ---------------------------------------------------------------- scoring


def rate(k, n):
    """{"k", "n", "rate", "low", "high"}: an exact-match rate with its Wilson 95% interval."""
    from lcviz.stats import wilson_interval
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n, "low": low, "high": high}


@torch.no_grad()
def _answered(model, x, y):
    """Per asked position (y != -100): is the argmax the asked value? (bool tensor, row-major)."""
    logits, _ = model(x)
    asked = y != -100
    return logits.argmax(-1)[asked] == y[asked]


def multikey_cell(model, length, pairs, n=100, seed=0):
    """RULER-style multikey / multiquery recall: n MQAR examples of `length` tokens with `pairs`
    pairs, every key asked once (query gaps uniform: a = 1, not the training generator's mostly
    short gaps). string_match_all per example (the fraction of its values returned), averaged;
    the interval counts the n * pairs answers as trials."""
    from lcviz.subquadratic import mqar_batch
    x, y = mqar_batch(n, length, pairs, model.config.vocab_size,
                      torch.Generator().manual_seed(seed), power_a=1.0)
    right = _answered(model, x, y)
    return rate(int(right.sum()), right.numel())


def variable_tracking_cell(model, length, hops, n=100, seed=0):
    """Variable tracking: n examples of `length` tokens, VT_CHAINS chains of `hops` hops; exact
    match of the asked chain's value."""
    x, y = variable_tracking_batch(n, length, hops, VT_CHAINS, model.config.vocab_size,
                                   torch.Generator().manual_seed(seed))
    right = _answered(model, x, y)
    return rate(int(right.sum()), right.numel())


def middle_cell(model, pairs, gold, n=100, seed=0, length=RECALL_LENGTH):
    """Lost in the middle: n examples of `pairs` pairs asking the pair at place `gold`."""
    x, y = middle_batch(n, pairs, gold, length, model.config.vocab_size,
                        torch.Generator().manual_seed(seed))
    right = _answered(model, x, y)
    return rate(int(right.sum()), right.numel())


def string_match_all(prediction, references):
    """RULER's multi-value score: the fraction of reference strings found in the prediction,
    case-insensitive (scripts/eval/synthetic/constants.py)."""
    if not references:
        raise ValueError("references must name at least one expected string")
    text = str(prediction).lower()
    return sum(str(r).lower() in text for r in references) / len(references)


def effective_length(by_length, threshold=THRESHOLD):
    """RULER's effective context length: the largest tested length whose score is >= threshold,
    every shorter tested length passing too; 0 when even the shortest fails. by_length maps a
    length (int or str) to a cell with "rate"."""
    best = 0
    for length in sorted(by_length, key=int):
        if by_length[length]["rate"] < threshold:
            break
        best = int(length)
    return best


# ---------------------------------------------------------------- techniques: one entry each

FAMILIES = {  # the model family a technique reads -> what its prompts are
    "passkey": "the course's passkey models (notebook 06): instruction, random filler, a 5-digit "
               "needle, the question",
    "segments": "the segment-recurrent models (notebook 11): random filler words, a 3-digit "
                "needle, read in segments of 16 tokens",
    "recall": "associative-recall models (short convolution + mixer, 4 layers): MQAR pairs, "
              "variable-tracking chains",
}


@dataclass(frozen=True)
class Technique:
    label: str        # the name in every table
    family: str       # a key of FAMILIES
    models: tuple     # checkpoint names in data/; several = training runs, pooled
    how: str          # what it keeps for the question: one line
    policy: tuple = ()  # passkey family: lcviz.streaming Policy arguments (name, budget, extra)
    ratio: int | None = None    # beacons: condensing ratio
    global_window: int | None = None  # window + global tokens: the window (global: GLOBAL_TOKENS)
    block: int | None = None    # recall family: hierarchical attention's block size


BUDGET = 64  # KV entries per layer of every eviction policy: the window of passkey-w64-*
GLOBAL_TOKENS = 4  # window + global tokens: the prompt's first tokens are global (Longformer)
HIERARCHICAL_BLOCK = 8  # the recall attention model read with hierarchical attention, b = 8
WINDOW_MODELS = ((16, 2), (32, 2), (64, 2), (16, 4), (32, 4), (64, 4))  # passkey-w{w}-l{L}
BEACON_TECHNIQUE_RATIOS = (2, 4, 8)

TECHNIQUES = {t.label: t for t in (
    Technique("full attention", "passkey", ("passkey-full",), "every key and value"),
    *(Technique(f"trained window {w}, {n} layers", "passkey", (f"passkey-w{w}-l{n}",),
                f"the last {w} entries per layer (trained so)") for w, n in WINDOW_MODELS),
    Technique(f"window {BUDGET} + {GLOBAL_TOKENS} global tokens", "passkey", ("passkey-full",),
              f"the first {GLOBAL_TOKENS} and the last {BUDGET} entries (full model, mask at "
              "inference)", global_window=BUDGET),
    Technique("recent entries", "passkey", ("passkey-full",), f"the last {BUDGET} entries",
              policy=("window", BUDGET, (("positions", "original"),))),
    Technique("StreamingLLM", "passkey", ("passkey-full",),
              f"4 sink entries + the last {BUDGET - 4}, positions in the cache",
              policy=("sink", BUDGET, (("n_sink", 4),))),
    Technique("H2O", "passkey", ("passkey-full",),
              f"{BUDGET} entries: half recent, half by accumulated attention",
              policy=("h2o", BUDGET, ())),
    Technique("TOVA", "passkey", ("passkey-full",),
              f"{BUDGET} entries by the current query's attention", policy=("tova", BUDGET, ())),
    Technique("SnapKV (sees the question)", "passkey", ("passkey-full",),
              f"{BUDGET} entries chosen by the question's attention (pooling kernel 11)",
              policy=("snapkv", BUDGET, (("kernel", 11),))),
    *(Technique(f"beacons, ratio {r}", "passkey", ("beacons-run0", "beacons-run1", "beacons-run2"),
                f"one beacon per {r} tokens of every finished chunk of 16 + the current chunk",
                ratio=r) for r in BEACON_TECHNIQUE_RATIOS),
    Technique("segments: local only", "segments", ("recurrent-local",),
              "the current segment of 16 tokens"),
    Technique("Transformer-XL", "segments", ("recurrent-xl",),
              "the current and the previous segment, per layer"),
    Technique("Infini-attention, linear", "segments", ("recurrent-linear",),
              "the current segment + a 16 x 16 memory per head (linear rule)"),
    Technique("Infini-attention, delta", "segments", ("recurrent-delta",),
              "the current segment + a 16 x 16 memory per head (delta rule)"),
    Technique("segments: full attention", "segments", ("recurrent-full",),
              "every key and value (the ceiling of this family)"),
    Technique("recall: softmax attention", "recall", ("longcontext-attention",),
              "every key and value"),
    Technique(f"recall: hierarchical (b = {HIERARCHICAL_BLOCK})", "recall",
              ("longcontext-attention",),
              f"exact attention to near blocks, one mean key per far block of {HIERARCHICAL_BLOCK}"
              " (the softmax model, read so)", block=HIERARCHICAL_BLOCK),
    Technique("recall: linear attention", "recall", ("longcontext-linear",),
              "a 16 x 64 state per layer"),
    Technique("recall: Mamba (selective SSM)", "recall", ("longcontext-mamba",),
              "a 64 x 16 state per layer"),
)}
RING = "ring attention (exact)"  # its quality is full attention's; its column is memory per rank


class MaskedReader(nn.Module):
    """A passkey model read through another mask, built for every length it is called at:
    model(idx, attn_mask=make_mask(T)). Used for window + global tokens on passkey-full."""

    def __init__(self, model, make_mask):
        super().__init__()
        self.model, self.make_mask = model, make_mask

    def forward(self, idx, targets=None):
        return self.model(idx, targets, attn_mask=self.make_mask(idx.size(1)))


def load_models(technique):
    """The technique's models, ready to answer: passkey models (masked when it says so),
    segment-recurrent models, or recall models (hierarchical when it says so)."""
    from lcviz.checkpoints import load_checkpoint
    from lcviz.masks import global_local_mask
    from lcviz.recurrent import load_model
    models = []
    for name in technique.models:
        if technique.family == "passkey":
            model = load_checkpoint(name)[0]
            if technique.global_window is not None:
                window = technique.global_window
                model = MaskedReader(model, lambda T, w=window: global_local_mask(
                    T, min(w, T), list(range(min(GLOBAL_TOKENS, T)))))
        elif technique.family == "segments":
            model = load_model(name)[0]
        else:
            model = load_recall(name)[0]
            for mixer in model.mixers:
                if hasattr(mixer, "block"):
                    mixer.block = technique.block
        models.append(model)
    return models


def passkey_hits(technique, models, prompts):
    """Whole-key exact match of every model of a passkey-family technique on `prompts` (one
    length): a list of hit lists, one per model (training run)."""
    from lcviz.passkey import key_hits, passkey_tokenizer
    from lcviz.streaming import Policy, retrieval_under_budget
    tokenizer = passkey_tokenizer()
    if technique.policy:
        name, budget, extra = technique.policy
        return [retrieval_under_budget(m, prompts, tokenizer, Policy(name, budget, **dict(extra)),
                                       batch_size=128)["correct"] for m in models]
    forward = {} if technique.ratio is None else {"ratio": technique.ratio}
    return [key_hits(m, prompts, tokenizer, **forward) for m in models]


def pooled(hit_lists):
    """One rate over several runs' hit lists, with the runs' spread when there are several."""
    k, n = sum(sum(h) for h in hit_lists), sum(len(h) for h in hit_lists)
    cell = rate(k, n)
    if len(hit_lists) > 1:
        cell["runs"] = [round(sum(h) / len(h), 4) for h in hit_lists]
    return cell


# ---------------------------------------------------------------- task 1: needle in a haystack

NEEDLE_LENGTHS = (128, 256, 512, 1024)  # tokens; the passkey models trained at <= 256
NEEDLE_DEPTHS = (0, 25, 50, 75, 100)  # percent of the filler before the needle (gkamradt)


def needle_prompts(length, depth, n, seed):
    """n passkey prompts of `length` tokens, the needle after `depth` percent of the filler
    (random filler, random key: lcviz.passkey.passkey_at)."""
    from lcviz.passkey import min_passkey_length, passkey_at
    check_int("depth", depth, minimum=0, maximum=100)
    n_filler = length - min_passkey_length()
    before = round(depth / 100 * n_filler)
    generator = torch.Generator().manual_seed(seed)
    return [passkey_at(length, n_filler - before, generator=generator) for _ in range(n)]


def segment_needles(length, depth, n, seed, segment=16):
    """n segment-passkey prompts of `length` tokens (length / segment segments), the needle in
    the segment `depth` percent of the way from the first to the last."""
    from lcviz.recurrent import segment_passkey
    check_int("depth", depth, minimum=0, maximum=100)
    if length % segment:
        raise ValueError(f"length {length} must be a multiple of the segment {segment}")
    n_segments = length // segment
    gap = n_segments - 1 - round(depth / 100 * (n_segments - 1))
    return segment_passkey(n, n_segments, segment, gap,
                           generator=torch.Generator().manual_seed(seed))


def needle_row(technique, models, length, n, seed, depths=NEEDLE_DEPTHS):
    """{depth: whole-key exact match of `technique`, runs pooled} at one length: n prompts per
    depth (seed + depth), all read in one pass."""
    if technique.family == "passkey":
        prompts = [p for d in depths for p in needle_prompts(length, d, n, seed + d)]
        hits = passkey_hits(technique, models, prompts)
    elif technique.family == "segments":
        from lcviz.recurrent import key_hits
        batches = [segment_needles(length, d, n, seed + d) for d in depths]
        hits = [[bool(h) for b in batches for h in key_hits(m, b).tolist()] for m in models]
    else:
        raise ValueError(f"the needle task reads the passkey and segments families, not "
                         f"{technique.family!r}")
    return {str(d): pooled([h[i * n:(i + 1) * n] for h in hits]) for i, d in enumerate(depths)}


# ---------------------------------------------------------------- tasks 2-4: recall models

MULTIKEY_LENGTHS = (128, 256, 512, 1024)  # tokens; the recall models trained at 128
MULTIKEY_PAIRS = 8  # pairs (= queries) per example: 7 distractor keys for every query
VT_TEST_HOPS = (0, 1, 2, 3)  # 3 hops: longer chains than any in training
MIDDLE_PAIRS = 16  # pairs in the lost-in-the-middle prompts (the most in training)
MIDDLE_PLACES = (0, 4, 8, 12, 15)  # the gold pair's place (Liu et al.: 0, 4, 9, 14, 19 of 20)


def recall_cell(task, models, n, seed, length=RECALL_LENGTH, hops=0, gold=0):
    """One cell of a recall-family task ("multikey", "vt" or "middle"), runs pooled."""
    cells = []
    for model in models:
        if task == "multikey":
            cells.append(multikey_cell(model, length, MULTIKEY_PAIRS, n, seed))
        elif task == "vt":
            cells.append(variable_tracking_cell(model, length, hops, n, seed))
        else:
            cells.append(middle_cell(model, MIDDLE_PAIRS, gold, n, seed, length))
    k, total = sum(c["k"] for c in cells), sum(c["n"] for c in cells)
    return rate(k, total)


# ---------------------------------------------------------------- memory and time per technique


def kept_entries(technique, model, length):
    """KV entries per layer a passkey-family technique holds when the question is asked."""
    from lcviz.beacons import kv_entries
    if technique.policy:
        return min(length, technique.policy[1])
    if technique.ratio is not None:
        return kv_entries(length, model.chunk, technique.ratio)
    if technique.global_window is not None:
        return min(length, technique.global_window + GLOBAL_TOKENS)
    window = model.config.window
    return length if window is None else min(length, window)


def _seconds(fn, repeats=3):
    """Median wall seconds of fn() over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return _median(times)


def _median(values):
    return sorted(values)[len(values) // 2]


@torch.no_grad()
def _stream_seconds(model, policy, length, steps=8):
    """(seconds to stream `length` random prompt tokens through a StreamingDecoder, median
    seconds of each of the next `steps` tokens)."""
    from lcviz.streaming import StreamingDecoder
    ids = torch.randint(0, model.config.vocab_size, (length + steps,),
                        generator=torch.Generator().manual_seed(0))
    decoder = StreamingDecoder(model, policy, 1, prompt_length=length)
    start = time.perf_counter()
    for t in range(length):
        decoder.step(ids[t:t + 1])
    prefill, times = time.perf_counter() - start, []
    for t in range(length, length + steps):
        start = time.perf_counter()
        decoder.step(ids[t:t + 1])
        times.append(time.perf_counter() - start)
    return prefill, _median(times)


@torch.no_grad()
def cost(technique, models, length):
    """Numbers held for the question (KV cache or state, all layers, one sequence), bytes in
    fp32, prefill seconds (one prompt of `length`, B = 1) and per-token decode seconds where
    lcviz has a step-by-step decoder for the technique (else None, with the reason)."""
    from lcviz.recurrent import state_numel
    from lcviz.streaming import Policy
    model = models[0]
    ids = torch.randint(1, 10, (1, length), generator=torch.Generator().manual_seed(0))
    decode, note = None, None
    if technique.family == "passkey":
        inner = model.model if isinstance(model, MaskedReader) else model
        config = inner.model.config if technique.ratio is not None else inner.config
        numbers = 2 * config.n_layer * config.n_embd * kept_entries(technique, inner, length)
        if technique.policy:
            name, budget, extra = technique.policy
            prefill, decode = _stream_seconds(model, Policy(name, budget, **dict(extra)), length)
        else:
            forward = {} if technique.ratio is None else {"ratio": technique.ratio}
            prefill = _seconds(lambda: model(ids, **forward))
            if technique.ratio is None and technique.global_window is None:
                window = inner.config.window
                policy = (Policy("full") if window is None
                          else Policy("window", window, positions="original"))
                streamed = inner if window is None else inner.with_config(window=None)
                decode = _stream_seconds(streamed, policy, length)[1]
            else:
                note = "read chunk by chunk / through a mask: no token-step decoder in lcviz"
    elif technique.family == "segments":
        prefill = _seconds(lambda: model.stream(ids))
        state = model.empty_state(1, capacity=length + 8)
        model.stream(ids[:, :-1], state=state)
        numbers = state_numel(state)  # what the last prompt token reads besides itself
        times = []
        for t in range(8):  # the next tokens, one at a time, as in generation
            start = time.perf_counter()
            model.stream(ids[:, t:t + 1], chunk=1, state=state)
            times.append(time.perf_counter() - start)
        decode = _median(times)
    else:
        from lcviz.subquadratic import state_numbers
        numbers = state_numbers(model.config, length)
        prefill = _seconds(lambda: model(ids))
        note = "the recall models have no token-step decoder (notebook 10 times the layers' steps)"
    return {"numbers": numbers, "bytes": 4 * numbers, "prefill_seconds": prefill,
            "decode_seconds": decode, "decode_note": note}


# ---------------------------------------------------------------- cost at document scale

DOCUMENT_LENGTHS = (50_000, 100_000, 200_000)
DOCUMENT_HEADS, DOCUMENT_HEAD_DIM = 4, 16  # one attention layer of the course's models (C = 64)
DOCUMENT_TIMEOUT = 150  # seconds per measurement; a method still running then is reported so
DOCUMENT_WINDOW = 256

# One fresh process per (method, T): time and peak resident memory above the inputs of one run
# (lcviz.memory.PEAK_AND_TIME_CHILD with repeats = 0).
_DOCUMENT_CHILD = """
import json, sys, time
import torch, torch.nn.functional as F
from lcviz import longcontext as lc, subquadratic as sq
from lcviz.memory import sliding_window_attention
torch.set_num_threads(1)
method, T, H, D, W = sys.argv[1], *map(int, sys.argv[2:6])
repeats, extra = 0, {}  # one run: its time and peak
g = torch.Generator().manual_seed(0)
if method.startswith("layer"):
    q, k, v = (torch.randn(1, H, T, D, generator=g) for _ in range(3))
    C = H * D
    u, delta = torch.randn(1, T, C, generator=g), torch.rand(1, T, C, generator=g) * 0.1
    A, Bm, Cm = -torch.rand(C, 16, generator=g), torch.randn(1, T, 16, generator=g), torch.randn(1, T, 16, generator=g)
    run = {"layer: softmax, SDPA kernel": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
           "layer: sliding window (lcviz)": lambda: sliding_window_attention(q, k, v, W),
           "layer: hierarchical, b = best": lambda: sq.hierarchical_attention(q, k, v, sq.best_block(T)),
           "layer: linear, chunked (C = 64)": lambda: sq.linear_attention_chunked(q, k, v, 64),
           "layer: Mamba selective scan": lambda: sq.selective_scan(u, delta, A, Bm, Cm, torch.ones(C)),
           }[method]
else:
    technique = lc.TECHNIQUES[method.split(": ", 1)[1]]
    model = lc.load_models(technique)[0]
    ids = torch.randint(1, 10, (1, T), generator=g)
    run = (lambda: model.stream(ids)) if technique.family == "segments" else (lambda: model(ids))
""" + PEAK_AND_TIME_CHILD

DOCUMENT_METHODS = ("layer: softmax, SDPA kernel", "layer: sliding window (lcviz)",
                    "layer: hierarchical, b = best", "layer: linear, chunked (C = 64)",
                    "layer: Mamba selective scan", "model: Transformer-XL",
                    "model: Infini-attention, delta", "model: recall: Mamba (selective SSM)")


def document_reasons(length):
    """{method: why it is not run at `length`}: the sizes of what it would have to hold."""
    gb = 1e9
    scores = DOCUMENT_HEADS * length * length * 4 / gb
    mask = length * length / gb
    return {
        "layer: softmax, explicit T x T": f"the (H, T, T) fp32 score matrix alone is "
                                          f"{scores:,.0f} GB",
        "model: full attention": f"lcviz's TinyTransformer builds a (T, T) bool mask "
                                 f"({mask:,.1f} GB) and SDPA with an explicit mask materialises "
                                 f"the {scores:,.0f} GB scores",
        "model: beacons, ratio 8": f"beacons.stream builds the interleaved (T', T') beacon mask "
                                   f"up front: {(length * 9 / 8) ** 2 / gb:,.1f} GB",
        "model: recall: linear attention": f"the recall models' linear mixer uses the masked "
                                           f"quadratic form: {length * length * 4 / gb:,.0f} GB "
                                           f"per layer"}


def measure_document(method, length, timeout=DOCUMENT_TIMEOUT):
    """{"seconds", "peak_mb"} of one DOCUMENT_METHODS entry at `length` in a fresh process (one
    thread), or {"error": what happened} (e.g. no result within `timeout` s)."""
    from lcviz.validate import check_choice
    check_choice("method", method, DOCUMENT_METHODS)
    check_int("length", length, minimum=1)
    return run_child(_DOCUMENT_CHILD, [method, length, DOCUMENT_HEADS, DOCUMENT_HEAD_DIM,
                                       DOCUMENT_WINDOW], timeout)


def document_costs(lengths=DOCUMENT_LENGTHS, methods=DOCUMENT_METHODS, timeout=DOCUMENT_TIMEOUT):
    """Rows {method, length, seconds, peak_mb | error | reason}: every method measured at every
    length; a method whose result did not come within `timeout` s (or, for softmax, whose
    quadratic prediction from the last length exceeds it) is not tried at longer lengths
    (recorded as such); the ones that cannot run say why (document_reasons)."""
    rows = []
    for method in methods:
        stopped, last = None, None
        for length in lengths:
            if last is not None and "softmax" in method:  # quadratic: predict before waiting
                predicted = 2 * last["seconds"] * (length / last["length"]) ** 2  # 2 runs
                if predicted > timeout:
                    stopped = (f"not tried: {predicted:,.0f} s predicted from T = "
                               f"{last['length']:,} (time x T^2, two runs) > {timeout} s")
            if stopped:
                rows.append({"method": method, "length": length, "error": stopped})
                continue
            row = {"method": method, "length": length, **measure_document(method, length,
                                                                            timeout)}
            if "error" in row:
                stopped = f"not tried: {row['error']} at T = {length:,}"
            last = row
            rows.append(row)
    for length in lengths:
        rows += [{"method": m, "length": length, "reason": why}
                 for m, why in document_reasons(length).items()]
    return rows


# ---------------------------------------------------------------- ring attention: exact


def ring_check(length=1024, world=4, seed=0):
    """Ring attention is exact: passkey-full's layer-0 queries, keys and values on one held-out
    prompt of `length`, attended by lcviz.ring.simulate_ring over `world` ranks (causal, zigzag)
    against torch SDPA. Returns {"max_abs_error", "world", "length", "kv_bytes_per_rank"}."""
    import torch.nn.functional as F

    from lcviz.checkpoints import load_checkpoint
    from lcviz.passkey import passkey_tokenizer
    from lcviz.ring import simulate_ring
    from lcviz.subquadratic import model_qkv
    model = load_checkpoint("passkey-full")[0]
    prompt = needle_prompts(length, 50, 1, seed)[0]
    idx = passkey_tokenizer().encode(prompt.text)[None]  # (1, T)
    q, k, v = model_qkv(model, idx, 0)  # (1, H, T, D)
    with torch.no_grad():
        ring = simulate_ring(q, k, v, world, causal=True, layout="zigzag")
        exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    config = model.config
    return {"max_abs_error": (ring - exact).abs().max().item(), "world": world, "length": length,
            "kv_bytes_per_rank": 2 * config.n_layer * config.n_embd * 4 * length // world}


# ---------------------------------------------------------------- the benchmark


def _progress(done, total, what, start):
    print(f"\r[{'#' * (30 * done // total):30s}] {done}/{total} {time.perf_counter() - start:6.0f} s "
          f"{what[:50]:50s}", end="\n" if done == total else "", flush=True)


def benchmark(quick=False):
    """`python -m lcviz.bench longcontext`: every technique on its family's tasks (needle grid,
    multikey, variable tracking, lost in the middle) with n and Wilson intervals, effective
    lengths, memory and time per technique and length, ring attention's exactness, and the cost
    of one layer and of whole models at 50K-200K tokens. quick: a few prompts per cell, the two
    shortest lengths, no document-scale part (seconds, for the test suite)."""
    from concurrent.futures import ThreadPoolExecutor
    n_needle, n_recall = (2, 4) if quick else (20, 100)
    needle_lengths, recall_lengths = ((NEEDLE_LENGTHS[:2], MULTIKEY_LENGTHS[:2]) if quick
                                      else (NEEDLE_LENGTHS, MULTIKEY_LENGTHS))
    torch.set_num_threads(1)  # the document-scale processes run on the other core
    start = time.perf_counter()
    pool = ThreadPoolExecutor(1)
    doc = None if quick else pool.submit(document_costs)
    results = {"quick": quick, "threshold": THRESHOLD, "n_needle": n_needle, "n_recall": n_recall,
               "families": FAMILIES, "budget": BUDGET, "techniques": {}, "needle": {},
               "multikey": {}, "vt": {}, "middle": {}, "cost": {}, "effective_length": {}}
    techniques = list(TECHNIQUES.values())
    for i, technique in enumerate(techniques):
        _progress(i, len(techniques), technique.label, start)
        models = load_models(technique)
        label = technique.label
        results["techniques"][label] = {"family": technique.family, "how": technique.how,
                                        "models": list(technique.models)}
        if technique.family in ("passkey", "segments"):
            grid = {str(length): needle_row(technique, models, length, n_needle, seed=1000 * length)
                    for length in needle_lengths}
            results["needle"][label] = grid
            by_length = {length: pooled_cells(row.values()) for length, row in grid.items()}
        else:
            by_length = {str(length): recall_cell("multikey", models, n_recall, seed=length,
                                                  length=length)
                         for length in recall_lengths}
            results["multikey"][label] = by_length
            results["vt"][label] = {str(h): recall_cell("vt", models, n_recall, seed=10 + h,
                                                        hops=h) for h in VT_TEST_HOPS}
            results["middle"][label] = {str(p): recall_cell("middle", models, n_recall,
                                                            seed=20 + p, gold=p)
                                        for p in MIDDLE_PLACES}
        results["effective_length"][label] = effective_length(by_length)
        lengths = needle_lengths if technique.family != "recall" else recall_lengths
        results["cost"][label] = {str(length): cost(technique, models, length)
                                  for length in lengths}
    _progress(len(techniques), len(techniques), "done", start)
    results["ring"] = ring_check(length=256 if quick else 1024)
    if doc is not None:
        results["document"] = {"lengths": list(DOCUMENT_LENGTHS), "heads": DOCUMENT_HEADS,
                               "head_dim": DOCUMENT_HEAD_DIM, "window": DOCUMENT_WINDOW,
                               "timeout": DOCUMENT_TIMEOUT, "threads": 1,
                               "rows": doc.result()}
    pool.shutdown()
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results


def pooled_cells(cells):
    """One rate over several cells (e.g. a needle row's depths)."""
    cells = list(cells)
    return rate(sum(c["k"] for c in cells), sum(c["n"] for c in cells))
