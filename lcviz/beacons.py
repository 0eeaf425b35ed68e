"""Activation beacons (Zhang et al. 2024, "Soaring from 4K to 400K: Extending LLM's Context with
Activation Beacon", arXiv 2401.03462) and token-importance compression, on a tiny model.

The input is cut into chunks of `chunk` tokens. After each chunk come chunk // ratio beacon
tokens that attend to that chunk's raw tokens (and to all earlier beacons). Later chunks never see
earlier raw tokens, only the beacons' keys and values: the KV cache keeps chunk // ratio entries
per finished chunk instead of chunk.

    raw token of chunk c   sees  raw tokens of chunk c (causally) + beacons of chunks < c
    beacon j of chunk c    sees  beacons of chunks < c + beacons 0..j of chunk c + raw tokens of
                                 chunk c: the first (j + 1) * ratio of them ("stepwise", the
                                 paper's stepwise expansion) or all of them ("full" coverage)

Where lcviz departs from the paper (notebook 07 measures the coverage choice; the others are
stated, not measured):
- weights: the paper freezes the LLM and trains beacon-specific copies of the attention
  projections plus the beacon embedding; here every weight of the base model is fine-tuned and
  beacons share the raw tokens' projections (the base is tiny, a frozen one has no spare capacity);
- positions: raw tokens keep their positions 0..T-1 and beacon j of a chunk takes the position of
  the last of the `ratio` tokens it stands for; the paper's code numbers the entries of the
  compressed cache consecutively. Our base was trained on raw positions only, and keeping them
  makes the question's distance to a beacon the distance to the text it condenses;
- ratios: drawn per step from (2, 4, 8, 16) (the paper: 2 to 128), one chunk size (16).

Shapes: B batch, T raw tokens, S = T + beacons (the interleaved sequence), C width.
"""

import time
from dataclasses import dataclass

import torch
from torch import nn

from lcviz import seed_everything
from lcviz.checkpoints import load_checkpoint
from lcviz.masks import causal_mask
from lcviz.model import IGNORE_INDEX, ModelConfig, TinyTransformer
from lcviz.passkey import (
    CONTENT_EVAL_SEED,
    RetrievalLoss,
    band_passkeys,
    content_batch,
    deepen,
    key_hits,
    passkey_tokenizer,
    rate_cell,
)
from lcviz.receptive import window_receptive_field
from lcviz.streaming import Policy, retrieval_under_budget
from lcviz.train import train_loop
from lcviz.validate import check_choice, check_int

COVERAGES = ("stepwise", "full")  # which raw tokens of its chunk a beacon reads (docstring)


def check_ratio(chunk, ratio):
    """A condensing ratio must be a whole divisor of the chunk: chunk // ratio beacons per chunk."""
    check_int("chunk", chunk, minimum=1)
    check_int("ratio", ratio, minimum=1, maximum=chunk)
    if chunk % ratio:
        raise ValueError(f"ratio {ratio} must divide the chunk size {chunk} (a chunk of {chunk} "
                         f"tokens keeps chunk / ratio beacons); divisors: "
                         f"{[r for r in range(1, chunk + 1) if chunk % r == 0]}")
    return chunk // ratio


@dataclass(frozen=True)
class BeaconLayout:
    """Where raw tokens and beacons sit in the interleaved sequence of length S."""
    is_beacon: torch.Tensor  # (S,) bool
    chunk_of: torch.Tensor   # (S,) chunk index of every entry
    slot: torch.Tensor       # (S,) a raw token's index inside its chunk, a beacon's j
    raw_index: torch.Tensor  # (T,) index in the sequence of each raw token, in order
    positions: torch.Tensor  # (S,) RoPE position of every entry (module docstring)
    ratio: int
    coverage: str            # one of COVERAGES

    @property
    def length(self):
        return len(self.is_beacon)


def beacon_layout(n_tokens, chunk, ratio, coverage="stepwise"):
    """Raw tokens in chunks of `chunk`, each full chunk followed by chunk // ratio beacons (a last,
    partial chunk is the one still being read: it gets none yet)."""
    check_int("n_tokens", n_tokens, minimum=1)
    per_chunk = check_ratio(chunk, ratio)
    check_choice("coverage", coverage, COVERAGES)
    is_beacon, chunk_of, slot, positions = [], [], [], []
    for c, start in enumerate(range(0, n_tokens, chunk)):
        size = min(chunk, n_tokens - start)
        is_beacon += [False] * size
        chunk_of += [c] * size
        slot += range(size)
        positions += range(start, start + size)
        if size == chunk and start + chunk < n_tokens:  # a finished chunk with tokens after it
            is_beacon += [True] * per_chunk
            chunk_of += [c] * per_chunk
            slot += range(per_chunk)
            positions += range(start + ratio - 1, start + chunk, ratio)  # each group's last token
    is_beacon = torch.tensor(is_beacon)
    return BeaconLayout(is_beacon, torch.tensor(chunk_of), torch.tensor(slot),
                        (~is_beacon).nonzero()[:, 0], torch.tensor(positions), ratio, coverage)


def beacon_mask(layout):
    """bool (S, S), True = may attend: the rule of the module docstring, from a causal mask and
    the chunk structure (tests check it against a brute-force loop)."""
    query_chunk, key_chunk = layout.chunk_of[:, None], layout.chunk_of[None, :]
    key_beacon, query_beacon = layout.is_beacon[None, :], layout.is_beacon[:, None]
    same_chunk_raw = (query_chunk == key_chunk) & ~key_beacon
    if layout.coverage == "stepwise":  # beacon j reads raw slots < (j + 1) * ratio
        covered = layout.slot[None, :] < (layout.slot[:, None] + 1) * layout.ratio  # (S, S)
        same_chunk_raw &= covered | ~query_beacon
    earlier_beacons = (key_chunk < query_chunk) & key_beacon
    own_beacons = (query_chunk == key_chunk) & key_beacon & query_beacon
    return causal_mask(layout.length) & (same_chunk_raw | earlier_beacons | own_beacons)


def kv_entries(n_tokens, chunk, ratio):
    """KV entries the last token attends to: chunk // ratio per finished chunk before its own,
    plus the raw tokens of its own chunk (a full attention model keeps n_tokens)."""
    per_chunk = check_ratio(chunk, ratio)
    finished = (n_tokens - 1) // chunk
    return finished * per_chunk + (n_tokens - finished * chunk)


class BeaconTransformer(nn.Module):
    """A TinyTransformer that reads its input in chunks condensed into beacons. The beacons share
    one learned embedding and all the model's weights; they differ by RoPE position (see
    beacon_layout). config.window is not used: the beacon mask replaces it."""

    def __init__(self, config, chunk, coverage="stepwise"):
        super().__init__()
        check_int("chunk", chunk, minimum=1)
        self.model = TinyTransformer(config)
        self.beacon = nn.Parameter(torch.randn(config.n_embd) * 0.02)  # (C,)
        self.chunk = chunk
        self.coverage = check_choice("coverage", coverage, COVERAGES)
        self.ratio = None  # the ratio forward() reads at when none is given (set while training)

    @property
    def config(self):
        return self.model.config

    def settings(self):
        """What a checkpoint stores besides config and weights."""
        return {"chunk": self.chunk, "coverage": self.coverage}

    def interleave(self, idx, layout):
        """The input of the blocks: idx (B, T) -> (B, S, C), the beacon embedding at every
        beacon's place and the raw tokens' embeddings at theirs."""
        x = self.beacon.expand(idx.size(0), layout.length, -1).clone()  # (B, S, C)
        x[:, layout.raw_index] = self.model.embed(idx)
        return x

    def forward(self, idx, targets=None, ratio=None):
        """idx (B, T) -> (logits (B, T, V) at the raw tokens, loss or None); `ratio` (a divisor
        of the chunk) is chosen per call, so one trained model serves every ratio."""
        ratio = self.ratio if ratio is None else ratio
        if ratio is None:
            raise ValueError("a beacon model needs a condensing ratio: model(idx, ratio=4)")
        layout = beacon_layout(idx.size(1), self.chunk, ratio, self.coverage)
        x = self.interleave(idx, layout)  # (B, S, C)
        logits, _ = self.model.run_blocks(x, beacon_mask(layout), layout.positions)  # (B, S, V)
        logits = logits[:, layout.raw_index]  # (B, T, V)
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                               targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss


@torch.no_grad()
def stream(model, idx, ratio):
    """Read idx (B, T) one chunk at a time, as at inference: each layer keeps a KV cache of the
    finished chunks' beacons only, and the raw tokens' keys and values are dropped when their
    chunk ends. Returns (logits (B, T, V), KV entries cached per layer before each chunk).
    Gives model(idx, ratio=ratio)'s numbers (tests check it) with at most kv_entries keys."""
    tiny, layout = model.model, beacon_layout(idx.size(1), model.chunk, ratio, model.coverage)
    inputs, full_mask = model.interleave(idx, layout), beacon_mask(layout)  # (B, S, C), (S, S)
    cache = [None] * tiny.config.n_layer  # per layer: (k, v) of earlier beacons, (B, H, P, D)
    logits, cached = [], []
    for c in range(int(layout.chunk_of[-1]) + 1):
        rows = (layout.chunk_of == c).nonzero()[:, 0]  # this chunk's raw tokens, then its beacons
        is_beacon = layout.is_beacon[rows]
        x = inputs[:, rows]  # (B, n, C)
        n_past = 0 if cache[0] is None else cache[0][0].size(2)
        cached.append(n_past)
        within = full_mask[rows][:, rows]  # (n, n): the rule inside one chunk
        mask = torch.cat([torch.ones(len(rows), n_past, dtype=torch.bool), within], dim=1)
        for layer, block in enumerate(tiny.blocks):
            x, _, (k, v) = block.forward_with_kv(x, mask, layout.positions[rows], past=cache[layer])
            keep = (k[:, :, is_beacon], v[:, :, is_beacon])  # only the beacons live on
            cache[layer] = keep if cache[layer] is None else tuple(
                torch.cat([old, new], dim=2) for old, new in zip(cache[layer], keep))
        logits.append(tiny.head(tiny.ln_f(x[:, ~is_beacon])))  # (B, raw tokens of c, V)
    return torch.cat(logits, dim=1), cached


# ---------------------------------------------------------------- trained models (recipes)

BEACON_CHUNK = 16  # raw tokens per chunk
BEACON_RATIOS = (2, 4, 8, 16)  # condensing ratios drawn per training step (the paper: 2 .. 128)
BEACON_LENGTHS = (128, 256)  # training prompt lengths, one drawn per step
BEACON_RUNS = (0, 1, 2)  # three training runs of the main recipe, for the seed spread
EVAL_LENGTH = 256  # the held-out prompts of the recorded accuracy and the equal-budget comparison
# {ratio: KV entries the question reads at EVAL_LENGTH}: the window of the equal-budget baseline
BEACON_BUDGETS = {r: kv_entries(EVAL_LENGTH, BEACON_CHUNK, r) for r in BEACON_RATIOS}


def ratio_accuracy(model, ratio, n=100, length=EVAL_LENGTH, seed=CONTENT_EVAL_SEED):
    """Whole-key accuracy (rate_cell) of a beacon model at `ratio` on n held-out random-filler
    prompts of `length` with the needle anywhere."""
    generator = torch.Generator().manual_seed(seed + length)
    prompts = band_passkeys(n, length, 0, length, generator)
    return rate_cell(key_hits(model, prompts, passkey_tokenizer(), ratio=ratio))


def fit_beacons(seed=0, run=0, base="passkey-full", coverage="stepwise", steps=2500, lr=1e-3,
                batch_size=16, lengths=BEACON_LENGTHS, n_layer=None, eval_n=100):
    """Recipes beacons-*: like the paper, which adds beacons to a trained LLM (Llama-2), start
    from a passkey model that retrieves by content (random filler) plus a new beacon embedding;
    fine-tune on random-filler prompts of `lengths` with RetrievalLoss, a ratio drawn per step,
    then score every ratio. `run` shifts the seed: the three runs of one recipe. n_layer above
    the base's: the extra blocks start as the identity (lcviz.passkey.deepen)."""
    seed_everything(seed + run)
    tokenizer = passkey_tokenizer()
    trained, _ = load_checkpoint(base)
    config = ModelConfig(**{**trained.config.to_dict(), "window": None,  # the beacon mask rules
                            "n_layer": n_layer or trained.config.n_layer})
    model = BeaconTransformer(config, BEACON_CHUNK, coverage)
    deepen(model.model, trained)
    generator = torch.Generator().manual_seed(seed + run)

    def batch(step):
        model.ratio = BEACON_RATIOS[int(torch.randint(len(BEACON_RATIOS), (1,), generator=generator))]
        length = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=generator))
        return content_batch(batch_size, length, tokenizer, generator)
    start, start_cpu = time.perf_counter(), time.process_time()
    history = train_loop(RetrievalLoss(model), batch, steps, lr=lr, warmup=30)
    history["loop_seconds"] = round(time.perf_counter() - start, 1)
    history["loop_cpu_seconds"] = round(time.process_time() - start_cpu, 1)
    model.ratio = None
    by_ratio = {str(r): ratio_accuracy(model, r, eval_n) for r in BEACON_RATIOS}
    return model, {"base": base, "run": run, "training_seed": seed + run, "coverage": coverage,
                   "steps": steps, "n_layer": config.n_layer, "lengths": list(lengths),
                   "key_by_ratio": by_ratio, "history": history}


# ---------------------------------------------------------------- the equal-budget comparison
# Every method reads the same held-out prompts and keeps the same number of KV entries for the
# question: kv_entries(length, chunk, ratio) of the beacons at that ratio.

# label -> the lcviz.streaming policy that keeps `budget` entries of passkey-full's cache
EVICTION = {
    "recent entries": lambda budget: Policy("window", budget, positions="original"),
    "H2O (accumulated attention)": lambda budget: Policy("h2o", budget),
    "TOVA (current query)": lambda budget: Policy("tova", budget),
    "SnapKV (sees the question)": lambda budget: Policy("snapkv", budget),
    "SnapKV, kernel 11 (sees the question)": lambda budget: Policy("snapkv", budget, kernel=11),
}
FULL, WINDOW, BEACONS = "full attention (all entries)", "trained window", "beacons"
# the controlled experiments: beacons-run0 trained 1000 steps, and one change each against that
VARIANTS = {f"{BEACONS}, 1000 steps": "beacons-1000-steps",
            f"{BEACONS}, 1000 steps, full coverage": "beacons-full-coverage",
            f"{BEACONS}, 1000 steps, 4 layers": "beacons-4-layers"}


def distance_bands(window, layers=2):
    """Key-distance bands of a sliding-window model with `layers` layers: inside one window
    (d <= w - 1), relayed (w <= d < field) and beyond its receptive field (d >= L(w - 1) + 1)."""
    field = window_receptive_field(window, layers)
    return {"inside": (0, window - 1), "relayed": (window, field - 1), "beyond": (field, 10 ** 9)}


def pooled_cell(cells):
    """One rate_cell over several runs' cells (same prompts), with the runs' spread."""
    hits = [True] * sum(c["k"] for c in cells) + [False] * sum(c["n"] - c["k"] for c in cells)
    rates = [c["rate"] for c in cells]
    return {**rate_cell(hits), "runs": len(cells), "spread": [min(rates), max(rates)]}


def comparison_models():
    """{"full": passkey-full, "runs": [beacons-run*], "variants": {label: the VARIANTS model},
    "windows": {ratio: beacons-window-w<budget>}} loaded from data/."""
    return {"full": load_checkpoint("passkey-full")[0],
            "runs": [load_checkpoint(f"beacons-run{run}")[0] for run in BEACON_RUNS],
            "variants": {label: load_checkpoint(name)[0] for label, name in VARIANTS.items()},
            "windows": {r: load_checkpoint(f"beacons-window-w{b}")[0]
                        for r, b in BEACON_BUDGETS.items()}}


def compare_at_budget(models, prompts, ratio, methods=None):
    """{method: rate_cell} on `prompts` (one length), every method keeping the beacons' KV budget
    at `ratio`; `methods` (labels) restricts the list, None = all."""
    budget = kv_entries(prompts[0].length, BEACON_CHUNK, ratio)
    tokenizer = passkey_tokenizer()
    runs = {f"{BEACONS} run {run}": lambda model=model: key_hits(model, prompts, tokenizer,
                                                                   ratio=ratio)
            for run, model in zip(BEACON_RUNS, models["runs"])}
    jobs = {FULL: lambda: key_hits(models["full"], prompts, tokenizer),
            WINDOW: lambda: key_hits(models["windows"][ratio], prompts, tokenizer),
            **{label: lambda make=make: retrieval_under_budget(
                models["full"], prompts, tokenizer, make(budget))["correct"]
               for label, make in EVICTION.items()},
            **runs,
            **{label: lambda model=model: key_hits(model, prompts, tokenizer, ratio=ratio)
               for label, model in models.get("variants", {}).items()}}
    cells = {label: rate_cell(job()) for label, job in jobs.items()
             if methods is None or label in methods}
    run_cells = [cells[label] for label in runs if label in cells]
    if run_cells and (methods is None or BEACONS in methods):
        cells[BEACONS] = pooled_cell(run_cells)
    return cells


def comparison_prompts(ratio, n=100, length=EVAL_LENGTH, seed=CONTENT_EVAL_SEED):
    """{band: held-out prompts} of the equal-budget comparison at `ratio`: n per key-distance band
    of the window that keeps the beacons' budget ([] when no distance of the band fits)."""
    budget = kv_entries(length, BEACON_CHUNK, ratio)
    generator = torch.Generator().manual_seed(seed + ratio)
    return {band: band_passkeys(n, length, low, high, generator)
            for band, (low, high) in distance_bands(budget).items()}


def equal_budget_comparison(models, n=100, length=EVAL_LENGTH, ratios=BEACON_RATIOS,
                            seed=CONTENT_EVAL_SEED, methods=None):
    """Per ratio: {"budget", "field" (of the equal-budget 2-layer window), "bands": {band:
    {"distances": [low, high], "cells": {method: rate_cell}}, or None when no key distance of the
    band fits in `length`}}. comparison_prompts(ratio, ...) gives any cell's prompts again."""
    out = {}
    for ratio in ratios:
        budget = kv_entries(length, BEACON_CHUNK, ratio)
        bands = distance_bands(budget)
        prompts = comparison_prompts(ratio, n, length, seed)
        out[str(ratio)] = {"budget": budget, "field": window_receptive_field(budget, 2), "bands": {
            band: {"distances": list(bands[band]),
                   "cells": compare_at_budget(models, prompts[band], ratio, methods)}
            if prompts[band] else None for band in bands}}
    return out


def beyond_training(models, lengths=(256, 512, 1024), ratios=(4, 8), n=100,
                    seed=CONTENT_EVAL_SEED):
    """Whole-key accuracy with the needle anywhere, at and beyond the beacons' longest training
    prompt, for the beacon runs (pooled) and passkey-full (the control, same prompts)."""
    tokenizer = passkey_tokenizer()
    out = {}
    for length in lengths:
        prompts = band_passkeys(n, length, 0, length, torch.Generator().manual_seed(seed + length))
        row = {FULL: rate_cell(key_hits(models["full"], prompts, tokenizer))}
        for ratio in ratios:
            row[f"{BEACONS} ratio {ratio}"] = pooled_cell(
                [rate_cell(key_hits(m, prompts, tokenizer, ratio=ratio)) for m in models["runs"]])
        out[str(length)] = row
    return out


def by_chunk_offset(models, ratios=BEACON_RATIOS, n=400, length=EVAL_LENGTH, groups=4,
                    seed=CONTENT_EVAL_SEED + 7):
    """Beacon accuracy (runs pooled) by where the key's last mention starts inside its chunk, in
    `groups` equal groups of offsets, keys beyond the last chunk only (those are condensed)."""
    tokenizer = passkey_tokenizer()
    prompts = band_passkeys(n, length, 0, length, torch.Generator().manual_seed(seed))
    last_chunk = (length - 1) // BEACON_CHUNK * BEACON_CHUNK
    n_digits = len(prompts[0].key)
    start = [p.key_positions[n_digits] for p in prompts]  # the last mention's first digit
    condensed = [i for i, s in enumerate(start) if s + n_digits <= last_chunk]
    size = BEACON_CHUNK // groups
    out = {}
    for ratio in ratios:
        hits = [key_hits(m, [prompts[i] for i in condensed], tokenizer, ratio=ratio)
                for m in models["runs"]]
        cells = {}
        for g in range(groups):
            rows = [j for j, i in enumerate(condensed) if start[i] % BEACON_CHUNK // size == g]
            if rows:
                cells[f"{g * size}-{g * size + size - 1}"] = pooled_cell(
                    [rate_cell([run[j] for j in rows]) for run in hits])
        out[str(ratio)] = cells
    return out


def benchmark(n=100, quick=False):
    """`python -m lcviz.bench beacons`: the equal-budget comparison (every method x ratio x key
    distance band, n prompts per cell), accuracy beyond the training length and by the key's
    offset inside its chunk. quick: n = 10 (seconds, for the test suite)."""
    n = 10 if quick else n
    models = comparison_models()
    start = time.perf_counter()
    results = {"length": EVAL_LENGTH, "chunk": BEACON_CHUNK, "n": n,
               "comparison": equal_budget_comparison(models, n)}
    results["beyond_training"] = beyond_training(models, n=n)
    results["by_chunk_offset"] = by_chunk_offset(models, n=4 * n)
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results
