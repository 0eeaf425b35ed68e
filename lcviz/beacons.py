"""Activation beacons (Zhang et al. 2024, "Soaring from 4K to 400K: Extending LLM's Context with
Activation Beacon", arXiv 2401.03462) and token-importance compression, on a tiny model.

The input is cut into chunks of `chunk` tokens. After each chunk come chunk // ratio beacon
tokens that attend to that chunk's raw tokens (and to all earlier beacons). Later chunks never see
earlier raw tokens, only the beacons' keys and values: the KV cache keeps chunk // ratio entries
per finished chunk instead of chunk.

    raw token of chunk c   sees  raw tokens of chunk c (causally) + beacons of chunks < c
    beacon of chunk c      sees  raw tokens of chunk c + beacons of chunks < c + earlier beacons of c

RoPE positions: raw tokens keep their positions 0..T-1, and beacon j of a chunk takes the position
of the last of the `ratio` tokens it stands for (the j-th group of the chunk). The paper's code
numbers the compressed cache consecutively instead; our tiny passkey models are tied to the
positions they were trained at, and shifting every raw token by the beacons before it cut the
retrieved keys (5% against 25% whole key at ratio 2 in our screening runs).

Shapes: B batch, T raw tokens, S = T + beacons (the interleaved sequence), C width.
"""

from dataclasses import dataclass

import torch
from torch import nn

from lcviz import seed_everything
from lcviz.checkpoints import load_checkpoint
from lcviz.masks import causal_mask
from lcviz.model import IGNORE_INDEX, ModelConfig, TinyTransformer
from lcviz.passkey import PASSKEY_LENGTH, passkey_batch, passkey_metrics, passkey_tokenizer
from lcviz.train import train_loop
from lcviz.validate import check_int


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
    raw_index: torch.Tensor  # (T,) index in the sequence of each raw token, in order
    positions: torch.Tensor  # (S,) RoPE position of every entry (module docstring)

    @property
    def length(self):
        return len(self.is_beacon)


def beacon_layout(n_tokens, chunk, ratio):
    """Raw tokens in chunks of `chunk`, each full chunk followed by chunk // ratio beacons (a last,
    partial chunk is the one still being read: it gets none yet)."""
    check_int("n_tokens", n_tokens, minimum=1)
    per_chunk = check_ratio(chunk, ratio)
    is_beacon, chunk_of, positions = [], [], []
    for c, start in enumerate(range(0, n_tokens, chunk)):
        size = min(chunk, n_tokens - start)
        is_beacon += [False] * size
        chunk_of += [c] * size
        positions += range(start, start + size)
        if size == chunk and start + chunk < n_tokens:  # a finished chunk with tokens after it
            is_beacon += [True] * per_chunk
            chunk_of += [c] * per_chunk
            positions += range(start + ratio - 1, start + chunk, ratio)  # each group's last token
    is_beacon = torch.tensor(is_beacon)
    return BeaconLayout(is_beacon, torch.tensor(chunk_of), (~is_beacon).nonzero()[:, 0],
                        torch.tensor(positions))


def beacon_mask(layout):
    """bool (S, S), True = may attend: the rule of the module docstring, from a causal mask and
    the chunk structure (tests check it against a brute-force loop)."""
    query_chunk, key_chunk = layout.chunk_of[:, None], layout.chunk_of[None, :]
    key_beacon, query_beacon = layout.is_beacon[None, :], layout.is_beacon[:, None]
    same_chunk_raw = (query_chunk == key_chunk) & ~key_beacon
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

    def __init__(self, config, chunk):
        super().__init__()
        check_int("chunk", chunk, minimum=1)
        self.model = TinyTransformer(config)
        self.beacon = nn.Parameter(torch.randn(config.n_embd) * 0.02)  # (C,)
        self.chunk = chunk

    @property
    def config(self):
        return self.model.config

    def settings(self):
        """What a checkpoint stores besides config and weights."""
        return {"chunk": self.chunk}

    def interleave(self, idx, layout):
        """The input of the blocks: idx (B, T) -> (B, S, C), the beacon embedding at every
        beacon's place and the raw tokens' embeddings at theirs."""
        x = self.beacon.expand(idx.size(0), layout.length, -1).clone()  # (B, S, C)
        x[:, layout.raw_index] = self.model.embed(idx)
        return x

    def forward(self, idx, targets=None, ratio=None):
        """idx (B, T) -> (logits (B, T, V) at the raw tokens, loss or None); `ratio` (a divisor
        of the chunk) is chosen per call, so one trained model serves every ratio."""
        layout = beacon_layout(idx.size(1), self.chunk, ratio)
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
    tiny, layout = model.model, beacon_layout(idx.size(1), model.chunk, ratio)
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


# ---------------------------------------------------------------- token-importance compression

def importance(weights, n_recent):
    """How much attention each token receives from the last n_recent queries, summed over layers
    and heads: weights is a list of L tensors (1, H, T, T); returns (T,)."""
    total = sum(w[0, :, -n_recent:, :].sum(dim=(0, 1)) for w in weights)  # (T,)
    return total


def keep_important(scores, budget, n_recent):
    """Indices to keep, in their original order: the n_recent last tokens plus the budget - n_recent
    older tokens with the highest scores (SnapKV/H2O-style selection, positions unchanged)."""
    T = len(scores)
    check_int("n_recent", n_recent, minimum=1, maximum=T)
    check_int("budget", budget, minimum=n_recent)
    older = scores[:T - n_recent]
    chosen = older.topk(min(budget - n_recent, len(older))).indices
    return torch.cat([chosen, torch.arange(T - n_recent, T)]).sort().values


def kept_keys_mask(length, kept, n_recent):
    """bool (T, T): causal, except that the last n_recent queries see only the kept keys."""
    mask = causal_mask(length)
    allowed = torch.zeros(length, dtype=torch.bool)
    allowed[kept] = True
    mask[length - n_recent:] &= allowed
    return mask


class KeepOnly(nn.Module):
    """A model whose queries from `first_query` on see only the `kept` earlier keys (and every
    token from `first_query` on): the compressed KV cache, with the kept tokens' original
    positions. For one prompt at a time (predict_keys with a one-prompt list)."""

    def __init__(self, model, kept, first_query):
        super().__init__()
        self.model, self.first_query = model, first_query
        self.kept = kept[kept < first_query]

    def forward(self, idx, targets=None):
        T = idx.size(1)
        kept = torch.cat([self.kept, torch.arange(self.first_query, T)])
        return self.model(idx, targets, attn_mask=kept_keys_mask(T, kept, T - self.first_query))


# ---------------------------------------------------------------- trained models (recipes)

BEACON_CHUNK = 16  # raw tokens per chunk
BEACON_RATIOS = (2, 4, 8, 16)  # condensing ratios drawn per training step (the paper: 2 .. 128)


def fit_beacons(seed=0, base="passkey-w32-l4", steps=400, lr=2e-3, batch_size=32):
    """Recipes beacon-passkey*: like the paper, which adds beacons to a trained LLM (Llama-2),
    start from a passkey model that already retrieves, plus a new beacon embedding; train on the
    same prompts with a ratio drawn per step, then score every ratio."""
    seed_everything(seed)
    tokenizer = passkey_tokenizer()
    trained, _ = load_checkpoint(base)
    config = ModelConfig(**{**trained.config.to_dict(), "window": None})  # the beacon mask rules
    model = BeaconTransformer(config, BEACON_CHUNK)
    model.model.load_state_dict(trained.state_dict())
    generator = torch.Generator().manual_seed(seed)

    def batch(step):
        ratio = BEACON_RATIOS[int(torch.randint(len(BEACON_RATIOS), (1,), generator=generator))]
        return (*passkey_batch(batch_size, PASSKEY_LENGTH, tokenizer, generator), ratio)
    history = train_loop(model, batch, steps, lr=lr, warmup=30)
    by_ratio = {str(ratio): passkey_metrics(model, ratio=ratio) for ratio in BEACON_RATIOS}
    return model, {"base": base, "key_by_ratio": {r: m["key"] for r, m in by_ratio.items()},
                   "by_ratio": by_ratio, "history": history}
