"""Streaming generation under a fixed KV budget: which keys and values a decoder keeps.

One decoding loop, `stream(model, ids, policy)`, reads a token stream one token at a time through
a TinyTransformer and keeps a KV cache per layer that a pluggable policy prunes after every step.
The kept positions are recorded at every step, so a figure can show what each policy remembers.

    "full"       every key (the dense baseline; past the training length it meets unseen distances)
    "window"     the last `budget` tokens (window attention without sinks)
    "recompute"  sliding window with re-computation: each step re-encodes the last `budget`
                 tokens from scratch, positions 0..budget-1 (the slow gold standard)
    "sink"       StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with
                 Attention Sinks", arXiv 2309.17453): the first n_sink tokens + the most recent
    "h2o"        H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle", arXiv 2306.14048): per head,
                 the keys with the most attention accumulated so far + a recent window
    "snapkv"     SnapKV (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before
                 Generation", arXiv 2404.14469): once, at the end of the prompt, the keys the
                 prompt's last `window` queries attend to most (pooled), per head, + that window
    "tova"       TOVA (Oren et al. 2024, "Transformers are Multi-State RNNs", arXiv 2401.06104):
                 drop the key the current query, averaged over heads, attends to least

Budget: a query attends to at most `budget` keys, its own included (for "window" this is the
course's window rule: itself and the budget - 1 tokens before it). After each step the cache is
pruned to budget - 1 entries, so the next token's key fills it again. The reference codes count
the entries kept between steps instead: StreamingLLM's `start_size + recent_size` of 4 + 2000 is
our budget 2005. SnapKV compresses the prompt to budget - 1 entries once and then, as in the
paper, lets the cache grow with the generated tokens.

Positions (RoPE models): "original" rotates every key once, at its position in the stream;
"cache" stores keys before RoPE and rotates them, at every step, to their slot in the cache
(0, 1, 2, ...), with the query at the next slot: StreamingLLM's rolling positions (paper sec. 3.2,
`pos_shift/modify_llama.py`). Re-rotating fixes only the positions: keys and values of deeper
layers were computed when the context was different, which is inherent to every cache policy.

Also here: attention-sink measurements, a model with a dedicated learnable sink token, strided
(chunked, overlapping) evaluation and centre-keep merging of chunk outputs, retrieval under a
budget, and the streaming benchmark. Shapes: B batch, H heads, N cached entries, D head width.
"""

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lcviz import rope
from lcviz.model import TinyTransformer
from lcviz.validate import check_choice, check_int

POLICIES = ("full", "window", "recompute", "sink", "h2o", "snapkv", "tova")
POSITION_MODES = ("original", "cache")
POOLINGS = ("avg", "max")
DEFAULT_POSITIONS = {"full": "original", "window": "cache", "recompute": "cache", "sink": "cache",
                     "h2o": "original", "snapkv": "original", "tova": "original"}
POLICY_TITLES = {"full": "dense (full cache)", "window": "window, no sinks",
                 "recompute": "window with re-computation", "sink": "StreamingLLM (sinks)",
                 "h2o": "H2O", "snapkv": "SnapKV", "tova": "TOVA"}


# ---------------------------------------------------------------- policies

@dataclass(frozen=True)
class Policy:
    """A KV-cache policy and its settings; the constructor checks every combination.

    name       one of POLICIES
    budget     keys a query may attend to, its own included (None only for "full")
    n_sink     "sink": first tokens always kept (StreamingLLM keeps 4)
    n_recent   "h2o": most recent tokens always kept, the query included (default budget // 2,
               H2O's equal split of heavy hitters and recent tokens)
    window     "snapkv": observation window, the prompt's last queries (SnapKV uses 32)
    kernel     "snapkv": odd pooling kernel over key positions (SnapKV: 5 or 7)
    pooling    "snapkv": "avg" or "max"
    positions  "original" or "cache" (module docstring); default per policy in DEFAULT_POSITIONS
    """
    name: str
    budget: int | None = None
    n_sink: int = 0
    n_recent: int | None = None
    window: int = 8
    kernel: int = 5
    pooling: str = "avg"
    positions: str | None = None

    def __post_init__(self):
        check_choice("policy", self.name, POLICIES)
        if self.name == "full":
            if self.budget is not None:
                raise ValueError(f"policy 'full' keeps every key and takes no budget; got "
                                 f"budget={self.budget!r} (use 'window' or 'sink' for a budget)")
        else:
            if self.budget is None:
                raise ValueError(f"policy {self.name!r} needs a budget (keys per query, its own "
                                 f"included), an integer >= 1")
            check_int("budget", self.budget, minimum=1)
        check_int("n_sink", self.n_sink, minimum=0)
        if self.name == "sink":
            if self.n_sink >= self.budget:
                raise ValueError(f"n_sink ({self.n_sink}) must be < budget ({self.budget}): the "
                                 f"query itself needs a recent slot; use n_sink <= "
                                 f"{self.budget - 1} or a larger budget")
        elif self.n_sink:
            raise ValueError(f"n_sink applies to policy 'sink' only; got n_sink={self.n_sink} "
                             f"with policy {self.name!r}")
        if self.name == "h2o":
            n_recent = self.budget // 2 if self.n_recent is None else self.n_recent
            check_int("n_recent", n_recent, minimum=1, maximum=self.budget)
            object.__setattr__(self, "n_recent", n_recent)
        elif self.n_recent is not None:
            raise ValueError(f"n_recent applies to policy 'h2o' only; got n_recent="
                             f"{self.n_recent!r} with policy {self.name!r}")
        check_int("window", self.window, minimum=1)
        check_int("kernel", self.kernel, minimum=1)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (pooling keeps the length with padding "
                             f"kernel // 2), got {self.kernel}")
        check_choice("pooling", self.pooling, POOLINGS)
        if self.name == "snapkv" and self.window > self.budget - 1:
            raise ValueError(f"snapkv window ({self.window}) must be <= budget - 1 "
                             f"({self.budget - 1}): the compressed prompt keeps the window")
        positions = DEFAULT_POSITIONS[self.name] if self.positions is None else self.positions
        check_choice("positions", positions, POSITION_MODES)
        object.__setattr__(self, "positions", positions)

    @property
    def label(self):
        """A short legend text, e.g. 'StreamingLLM (sinks) 4+60, cache positions'."""
        title = POLICY_TITLES[self.name]
        if self.name == "full":
            return title
        size = f"{self.n_sink}+{self.budget - self.n_sink}" if self.name == "sink" else \
            f"budget {self.budget}"
        moved = f", {self.positions} positions" if self.name in ("sink", "h2o", "tova") else ""
        return f"{title} {size}{moved}"

    @property
    def capacity(self):
        """Cache entries kept between steps (None: unbounded)."""
        if self.name in ("full", "snapkv"):
            return None
        return self.budget - 1


def make_policy(name, budget=None, **settings):
    """Policy(name, budget, **settings), e.g. make_policy("sink", 64, n_sink=4)."""
    return Policy(name, budget, **settings)


# ---------------------------------------------------------------- RoPE helpers

def rotate(x, positions, inv_freq):
    """RoPE in x's own precision: rotate x (..., N, D) by positions (N,) * inv_freq (D/2,), pairs
    (i, i + D/2) as lcviz.rope. Angles are computed in x.dtype, so fp64 inputs stay exact."""
    angle = positions.to(x.dtype)[:, None] * inv_freq.to(x.dtype)[None, :]  # (N, D/2)
    angle = torch.cat([angle, angle], dim=-1)  # (N, D)
    return x * angle.cos() + rope.rotate_half(x) * angle.sin()


def rerotate(k_rotated, old_positions, new_positions, inv_freq):
    """Move keys that were rotated at old_positions (N,) to new_positions (N,) without knowing
    the unrotated keys: one more rotation by the difference, (new - old) * inv_freq (the delta
    rotation of kvpress' KeyRerotationPress and of HF's SinkCache, cos/sin of A - B).
    k_rotated (..., N, D) -> (..., N, D)."""
    if old_positions.shape != new_positions.shape or old_positions.dim() != 1:
        raise ValueError(f"old_positions and new_positions must be 1-D of one length, got "
                         f"{tuple(old_positions.shape)} and {tuple(new_positions.shape)}")
    if k_rotated.size(-2) != old_positions.numel():
        raise ValueError(f"k_rotated has {k_rotated.size(-2)} entries but old_positions has "
                         f"{old_positions.numel()}")
    return rotate(k_rotated, new_positions - old_positions, inv_freq)


def sink_slots(n_entries, n_sink, capacity):
    """Cache slots StreamingLLM keeps when the cache holds n_entries and may keep `capacity`:
    the first n_sink and the last capacity - n_sink (`kv_cache.py` slicing); all if they fit."""
    check_int("n_entries", n_entries, minimum=0)
    check_int("capacity", capacity, minimum=0)
    check_int("n_sink", n_sink, minimum=0, maximum=capacity)
    if n_entries <= capacity:
        return torch.arange(n_entries)
    recent = capacity - n_sink
    return torch.cat([torch.arange(n_sink), torch.arange(n_entries - recent, n_entries)])


# ---------------------------------------------------------------- the cache of one layer

class LayerCache:
    """Keys, values, stream positions (and H2O scores, with_scores=True) of one layer:
    (B, H, capacity, ...) buffers with the first `n` slots in use, in stream order per head."""

    def __init__(self, batch, heads, head_dim, capacity, dtype, with_scores=False):
        self.k = torch.empty(batch, heads, capacity, head_dim, dtype=dtype)  # (B, H, cap, D)
        self.v = torch.empty(batch, heads, capacity, head_dim, dtype=dtype)  # (B, H, cap, D)
        self.pos = torch.empty(batch, heads, capacity, dtype=torch.long)  # (B, H, cap)
        self.score = torch.zeros(batch, heads, capacity, dtype=dtype) if with_scores else None
        self.names = ("k", "v", "pos", "score") if with_scores else ("k", "v", "pos")
        self.n = 0

    def grow(self, capacity):
        """Double the buffers when a stream outgrows them (unbounded policies)."""
        if capacity <= self.k.size(2):
            return
        size = max(capacity, 2 * self.k.size(2))
        for name in self.names:
            old = getattr(self, name)
            new = torch.zeros(*old.shape[:2], size, *old.shape[3:], dtype=old.dtype)
            new[:, :, :self.n] = old[:, :, :self.n]
            setattr(self, name, new)

    def append(self, k, v, position):
        """Add one token's k, v (B, H, 1, D) at stream position `position`."""
        self.grow(self.n + 1)
        self.k[:, :, self.n] = k[:, :, 0]
        self.v[:, :, self.n] = v[:, :, 0]
        self.pos[:, :, self.n] = position
        if self.score is not None:
            self.score[:, :, self.n] = 0
        self.n += 1

    def keep_ends(self, first, last):
        """Keep the first `first` and the last `last` slots (StreamingLLM's slicing)."""
        if last:
            for name in self.names:
                buffer = getattr(self, name)
                buffer[:, :, first:first + last] = buffer[:, :, self.n - last:self.n].clone()
        self.n = first + last

    def copy(self):
        """An independent copy (the buffers cloned)."""
        other = copy.copy(self)
        for name in self.names:
            setattr(other, name, getattr(self, name).clone())
        return other

    def keep_per_head(self, slots):
        """Keep slots (B, H, K), ascending along K, chosen per batch row and head."""
        count = slots.size(-1)
        for name in self.names:
            buffer = getattr(self, name)
            index = slots if buffer.dim() == 3 else slots[..., None].expand(-1, -1, -1,
                                                                           buffer.size(-1))
            buffer[:, :, :count] = torch.gather(buffer[:, :, :self.n], 2, index)
        self.n = count


# ---------------------------------------------------------------- the decoder

def check_streamable(model):
    """stream() runs TinyTransformers with RoPE or no positions and full causal attention."""
    if not isinstance(model, TinyTransformer):
        raise ValueError(f"model must be a lcviz TinyTransformer, got {type(model).__name__}")
    config = model.config
    if config.pos not in ("rope", "none"):
        raise ValueError(f"streaming needs relative positions (pos='rope' or 'none'); this model "
                         f"has pos={config.pos!r}, whose table ends at block_size "
                         f"{config.block_size}")
    if config.window is not None:
        raise ValueError(f"this model was built with window={config.window}; stream a copy with "
                         f"model.with_config(window=None) and policy 'window', budget "
                         f"{config.window}, which is the same computation")
    if config.pos == "rope" and config.rope_type == "dynamic":
        raise ValueError("rope_type 'dynamic' changes its frequencies with the length; stream "
                         "a static method (default, linear, ntk, yarn, llama3)")
    if model.training:
        raise ValueError("call model.eval() before streaming (dropout would make steps random)")


class StreamingDecoder:
    """The state of one stream: per-layer caches, the policy's statistics, the step counter.
    step(tokens (B,)) -> next-token logits (B, V). Use stream() unless you drive it yourself."""

    def __init__(self, model, policy, batch_size=1, prompt_length=None, record=False):
        check_streamable(model)
        if not isinstance(policy, Policy):
            raise ValueError(f"policy must be a lcviz.streaming.Policy, got {policy!r}")
        self.model, self.policy = model, policy
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        if prompt_length is not None:
            check_int("prompt_length", prompt_length, minimum=1)
        self.prompt_length = prompt_length
        self.record = record
        config = model.config
        self.H, self.D = config.n_head, config.head_dim
        self.dtype = model.tok_emb.weight.dtype
        capacity = policy.budget if policy.capacity is not None else 256
        self.caches = [LayerCache(batch_size, self.H, self.D, capacity, self.dtype,
                                  with_scores=policy.name == "h2o") for _ in model.blocks]
        self.window_rows = [[] for _ in model.blocks]  # SnapKV: the observation window's weights
        self.recent_tokens = []  # recompute: the last budget tokens
        self.t = 0  # stream position of the next token
        self.kept = []  # per step (L, B, H, n) stream positions the query attended to
        self.kv_entries = []  # per step: keys the query attended to (per layer and head)
        self.rope = config.pos == "rope"
        if self.rope:
            self.inv_freq, self.attention_factor = rope.rope_frequencies(
                config.rope_type, config.head_dim, config.rope_base, seq_len=config.block_size,
                **config.rope_params)
            self._cos = self._sin = torch.empty(0, self.D, dtype=self.dtype)

    def copy(self):
        """An independent copy of the stream's state (same model and policy): stepping one does
        not move the other."""
        other = copy.copy(self)
        other.caches = [cache.copy() for cache in self.caches]
        other.window_rows = [list(rows) for rows in self.window_rows]
        other.recent_tokens = list(self.recent_tokens)
        other.kept, other.kv_entries = list(self.kept), list(self.kv_entries)
        return other

    # -- RoPE tables with the model's own arithmetic (float32 angles, as lcviz.rope.apply_rope)
    def _table(self, length):
        if self._cos.size(0) < length:
            size = max(length, 2 * self._cos.size(0), 256)
            angle = torch.arange(size).to(torch.float32)[:, None] * self.inv_freq[None, :]
            angle = torch.cat([angle, angle], dim=-1)  # (size, D)
            self._cos = (angle.cos() * self.attention_factor).to(self.dtype)
            self._sin = (angle.sin() * self.attention_factor).to(self.dtype)
        return self._cos, self._sin

    def _rotate_at(self, x, start, length):
        """Rotate x (B, H, length, D) to positions start .. start + length - 1."""
        cos, sin = self._table(start + length)
        cos, sin = cos[start:start + length], sin[start:start + length]  # (length, D)
        return x * cos + rope.rotate_half(x) * sin

    @torch.no_grad()
    def step(self, tokens):
        """Feed tokens (B,) at stream position self.t; returns the logits (B, V) of the next."""
        tokens = torch.as_tensor(tokens)
        if tokens.shape != (self.batch_size,):
            raise ValueError(f"tokens must have shape ({self.batch_size},), got "
                             f"{tuple(tokens.shape)}")
        if self.policy.name == "recompute":
            return self._recompute_step(tokens)
        model, policy, t = self.model, self.policy, self.t
        B, H, D = self.batch_size, self.H, self.D
        cache_frame = self.rope and policy.positions == "cache"
        x = model.tok_emb(tokens)[:, None, :]  # (B, 1, C)
        C = x.size(-1)
        kept = []
        for layer, block in enumerate(model.blocks):
            cache = self.caches[layer]
            q, k, v = block.attn.qkv(block.ln1(x)).split(C, dim=2)  # 3 x (B, 1, C)
            q = q.view(B, 1, H, D).transpose(1, 2)  # (B, H, 1, D)
            k = k.view(B, 1, H, D).transpose(1, 2)  # (B, H, 1, D)
            v = v.view(B, 1, H, D).transpose(1, 2)  # (B, H, 1, D)
            if self.rope and not cache_frame:  # rotate once, at the stream position
                q, k = self._rotate_at(torch.cat([q, k], dim=2), t, 1).split(1, dim=2)
            cache.append(k, v, t)
            n = cache.n
            keys, values = cache.k[:, :, :n], cache.v[:, :, :n]  # (B, H, n, D)
            if cache_frame:  # keys cached before RoPE go to slots 0..n-1, the query to n-1
                keys = self._rotate_at(keys, 0, n)
                q = self._rotate_at(q, n - 1, 1)
            scores = q @ keys.transpose(-2, -1) / math.sqrt(D)  # (B, H, 1, n)
            weights = torch.softmax(scores, dim=-1)  # (B, H, 1, n)
            y = (weights @ values).transpose(1, 2).reshape(B, 1, C)  # (B, 1, C)
            x = x + block.attn.proj(y)
            mlp = block.mlp  # (eval mode: no dropout)
            x = x + mlp.down(F.gelu(mlp.up(block.ln2(x))))  # (B, 1, C)
            if self.record:
                kept.append(cache.pos[:, :, :n].clone())
            self._after_attention(layer, cache, weights[:, :, 0])
        self.kv_entries.append(n)
        if self.record:
            self.kept.append(torch.stack(kept))  # (L, B, H, n)
        self.t += 1
        return model.head(model.ln_f(x))[:, 0]  # (B, V)

    def _after_attention(self, layer, cache, weights):
        """The policy's bookkeeping and eviction after the query at self.t read the cache;
        weights (B, H, n) are its attention over the n cached entries (itself last)."""
        policy, n = self.policy, cache.n
        if policy.name in ("window", "sink"):
            if n > policy.capacity:  # = sink_slots(n, n_sink, capacity), by slicing
                cache.keep_ends(policy.n_sink, policy.capacity - policy.n_sink)
        elif policy.name == "h2o":
            cache.score[:, :, :n] += weights  # accumulated attention of every past query
            if n > policy.capacity:
                cache.keep_per_head(h2o_slots(cache.score[:, :, :n], policy.capacity,
                                              policy.n_recent - 1))
        elif policy.name == "tova":
            if n > policy.capacity:
                cache.keep_per_head(tova_slots(weights, policy.capacity))
        elif policy.name == "snapkv" and self.prompt_length is not None:
            first = self.prompt_length - policy.window
            if first <= self.t < self.prompt_length:
                self.window_rows[layer].append(weights)
            if self.t == self.prompt_length - 1 and n > policy.budget - 1:
                rows = self.window_rows[layer]  # w x (B, H, n_i), growing n_i: pad with zeros
                stacked = torch.stack([F.pad(r, (0, n - r.size(-1))) for r in rows], dim=2)
                cache.keep_per_head(snapkv_slots(stacked, policy.budget - 1, policy.kernel,
                                                 policy.pooling))
                self.window_rows[layer] = []

    def _recompute_step(self, tokens):
        budget = self.policy.budget
        self.recent_tokens = (self.recent_tokens + [tokens])[-budget:]
        window = torch.stack(self.recent_tokens, dim=1)  # (B, n)
        logits, _ = self.model(window)  # positions 0..n-1: every step starts from scratch
        n = window.size(1)
        self.kv_entries.append(n)
        if self.record:
            kept = torch.arange(self.t - n + 1, self.t + 1)
            L = len(self.model.blocks)
            self.kept.append(kept.expand(L, self.batch_size, self.H, n).clone())
        self.t += 1
        return logits[:, -1]  # (B, V)


# ---------------------------------------------------------------- eviction rules

def h2o_slots(scores, capacity, n_recent):
    """H2O (`H2OKVCache_LayerWise`): per batch row and head, the last n_recent slots plus the
    capacity - n_recent older slots with the largest accumulated attention `scores` (B, H, n).
    Returns ascending slots (B, H, capacity)."""
    n = scores.size(-1)
    check_int("capacity", capacity, minimum=0, maximum=n)
    check_int("n_recent", n_recent, minimum=0, maximum=capacity)
    older = scores[..., :n - n_recent]  # (B, H, n - n_recent)
    heavy = older.topk(capacity - n_recent, dim=-1).indices  # (B, H, capacity - n_recent)
    recent = torch.arange(n - n_recent, n).expand(*scores.shape[:2], n_recent)
    return torch.cat([heavy, recent], dim=-1).sort(dim=-1).values


def tova_slots(weights, capacity):
    """TOVA (`TOVACache.reduce`): the capacity slots the current query's attention, averaged over
    heads, ranks highest; one set for every head. weights (B, H, n) -> (B, H, capacity)."""
    B, H, n = weights.shape
    check_int("capacity", capacity, minimum=0, maximum=n)
    best = weights.mean(dim=1).topk(capacity, dim=-1).indices  # (B, capacity)
    return best.sort(dim=-1).values[:, None, :].expand(B, H, capacity)


def snapkv_scores(window_weights, kernel=5, pooling="avg"):
    """SnapKV's vote (`SnapKVCluster.update_kv`): the observation window's attention (B, H, w, n)
    summed over its w queries, for the n - w keys before the window, pooled along the keys with
    a 1-D kernel (padding kernel // 2, stride 1). Returns (B, H, n - w)."""
    check_int("kernel", kernel, minimum=1)
    check_choice("pooling", pooling, POOLINGS)
    B, H, w, n = window_weights.shape
    votes = window_weights[..., :n - w].sum(dim=-2)  # (B, H, n - w)
    flat = votes.reshape(B * H, 1, n - w)
    if pooling == "avg":
        pooled = F.avg_pool1d(flat, kernel, stride=1, padding=kernel // 2)
    else:
        pooled = F.max_pool1d(flat, kernel, stride=1, padding=kernel // 2)
    return pooled.reshape(B, H, n - w)


def snapkv_slots(window_weights, capacity, kernel=5, pooling="avg"):
    """Kept slots after SnapKV compression of a prompt of n entries: the top capacity - w prompt
    keys by snapkv_scores, per head, plus the w window slots. (B, H, w, n) -> (B, H, capacity)."""
    B, H, w, n = window_weights.shape
    check_int("capacity", capacity, minimum=w, maximum=n)
    scores = snapkv_scores(window_weights, kernel, pooling)  # (B, H, n - w)
    chosen = scores.topk(capacity - w, dim=-1).indices
    window = torch.arange(n - w, n).expand(B, H, w)
    return torch.cat([chosen, window], dim=-1).sort(dim=-1).values


# ---------------------------------------------------------------- the entry point

@dataclass
class StreamResult:
    """What stream() returns. logits (B, S, V) for every token fed; nll (B, N - 1) the loss of
    each stream token after the first; generated (B, new_tokens); kv_entries[t] keys the query
    at t attended to; kept[t] (L, B, H, n_t) their stream positions (record=True); seconds[t]
    wall time of step t (timed=True)."""
    policy: Policy
    logits: torch.Tensor
    nll: torch.Tensor
    generated: torch.Tensor
    kv_entries: list
    kept: list | None = None
    seconds: list | None = None
    extra: dict = field(default_factory=dict)

    @property
    def loss(self):
        """Mean next-token loss over the stream (nats per token)."""
        return self.nll.mean().item()


def stream(model, ids, policy, new_tokens=0, prompt_length=None, record=False, timed=False):
    """Read ids (N,) or (B, N) one token at a time under `policy`, then greedily generate
    new_tokens more. SnapKV compresses after prompt_length tokens (default: all of ids).
    Returns a StreamResult; record=True keeps the kept positions of every step."""
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.size(1) < 1:
        raise ValueError(f"ids must be (N,) or (B, N) token ids with N >= 1, got shape "
                         f"{tuple(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must be integer token ids, got dtype {ids.dtype}")
    check_int("new_tokens", new_tokens, minimum=0)
    vocab = model.config.vocab_size
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise ValueError(f"token ids must lie in 0..{vocab - 1}, got {int(ids.min())}.."
                         f"{int(ids.max())}")
    B, N = ids.shape
    if prompt_length is None:
        prompt_length = N
    check_int("prompt_length", prompt_length, minimum=1, maximum=N)
    decoder = StreamingDecoder(model, policy, B, prompt_length, record)
    logits, seconds, generated = [], [], []

    def step(token):
        start = time.perf_counter()
        logits.append(decoder.step(token))  # (B, V)
        if timed:
            seconds.append(time.perf_counter() - start)

    for t in range(N):
        step(ids[:, t])
    for g in range(new_tokens):
        generated.append(logits[-1].argmax(dim=-1))  # (B,) greedy
        if g + 1 < new_tokens:
            step(generated[-1])
    logits = torch.stack(logits, dim=1)  # (B, S, V)
    nll = F.cross_entropy(logits[:, :N - 1].transpose(1, 2), ids[:, 1:], reduction="none") \
        if N > 1 else logits.new_zeros(B, 0)  # (B, N - 1)
    generated = torch.stack(generated, dim=1) if generated else ids.new_zeros(B, 0)
    return StreamResult(policy, logits, nll, generated, decoder.kv_entries,
                        decoder.kept if record else None, seconds if timed else None)


def kept_map(result, layer=0, head=0, row=0):
    """bool (steps, positions): which stream positions step t's query attended to, for one layer,
    head and batch row of a stream(record=True) result."""
    if result.kept is None:
        raise ValueError("this result has no kept positions: run stream(..., record=True)")
    steps = len(result.kept)
    check_int("layer", layer, minimum=0, maximum=result.kept[0].size(0) - 1)
    check_int("head", head, minimum=0, maximum=result.kept[0].size(2) - 1)
    check_int("row", row, minimum=0, maximum=result.kept[0].size(1) - 1)
    grid = torch.zeros(steps, steps, dtype=torch.bool)
    for t, kept in enumerate(result.kept):
        grid[t, kept[layer, row, head]] = True
    return grid


# ---------------------------------------------------------------- attention sinks

SINK_TOKEN_LENGTH = 64  # the training length of the sink-token model (rope-charlm's)


def sink_mass(model, windows, first=1, skip=16):
    """Mean attention mass each layer and head puts on the first `first` positions, over the
    queries at positions >= skip (early queries see few keys and give position 0 a large share
    by necessity). windows (B, T) token ids. Returns (mass (L, H), uniform), where uniform is
    what attention spread evenly over the visible keys would give the same positions."""
    check_int("first", first, minimum=1)
    T = windows.size(1)
    check_int("skip", skip, minimum=first, maximum=T - 1)
    maps = model.attention_maps(windows)  # L x (B, H, T, T)
    mass = torch.stack([w[:, :, skip:, :first].sum(-1).mean(dim=(0, 2)) for w in maps])  # (L, H)
    uniform = (first / torch.arange(skip + 1, T + 1, dtype=torch.float64)).mean().item()
    return mass, uniform


def sink_windows(ids, length, batch_size, sink_token, generator=None):
    """Training windows with a dedicated sink token first (StreamingLLM sec. 3.3: a learnable
    placeholder token prepended to every training sample): x (B, length) = sink + length - 1
    characters, y (B, length) their next characters, the sink's own target ignored."""
    from lcviz.corpus import random_windows
    from lcviz.model import IGNORE_INDEX
    x, y = random_windows(ids, length - 1, batch_size, generator)  # (B, length - 1)
    first = torch.full((batch_size, 1), sink_token, dtype=x.dtype)
    return torch.cat([first, x], dim=1), torch.cat([torch.full_like(first, IGNORE_INDEX), y], dim=1)


def fit_sink_char_lm(seed=0, steps=700, block_size=SINK_TOKEN_LENGTH, batch_size=32, lr=3e-3):
    """Recipe sink-charlm: rope-charlm's recipe (RoPE, 2 layers, width 128, 4 heads, length 64,
    700 steps) with one more vocabulary entry, a learnable sink token, first in every training
    window. Its partner without a sink is rope-charlm itself (the same recipe, same batches)."""
    from lcviz import seed_everything
    from lcviz.model import ModelConfig
    from lcviz.tokenize import CharTokenizer
    from lcviz.train import train_loop
    from lcviz.transformer import char_lm_data
    seed_everything(seed)
    chars = CharTokenizer().vocab_size
    config = ModelConfig(vocab_size=chars + 1, block_size=block_size, n_layer=2, n_head=4,
                         n_embd=128, pos="rope")
    model = TinyTransformer(config)
    train_ids, val_ids = char_lm_data()
    generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def evaluate():
        held_out = torch.Generator().manual_seed(1234)
        return sum(model(*sink_windows(val_ids, block_size, 32, chars, held_out))[1].item()
                   for _ in range(4)) / 4

    history = train_loop(model, lambda step: sink_windows(train_ids, block_size, batch_size,
                                                          chars, generator),
                         steps, lr=lr, warmup=20, evaluate=evaluate, eval_every=100)
    return model, {"val_loss": history["eval"][-1], "sink_token": chars, "history": history}


# ---------------------------------------------------------------- strided (chunked) evaluation

@dataclass
class StridedResult:
    """strided_loss(): loss = token-weighted mean NLL over every scored target; nll (N - 1,) the
    NLL of targets ids[1:], counts (N - 1,) how often each was scored (1 everywhere when right);
    windows [(begin, end, first_new)]: inputs ids[begin:end] scored targets first_new..end."""
    loss: float
    nll: torch.Tensor
    counts: torch.Tensor
    windows: list

    @property
    def per_window_mean(self):
        """The mean of per-window mean losses: what averaging window losses gives (wrong when
        windows score different numbers of tokens)."""
        means = [self.nll[first - 1:end].mean().item() for _, end, first in self.windows]
        return sum(means) / len(means)


def strided_windows(n_tokens, window, stride):
    """Windows of strided evaluation over a stream of n_tokens (targets are tokens 1..N-1):
    each window reads `window` inputs ending where its newest target's prediction is made, and
    scores only the targets no earlier window scored. [(begin, end, first_new)], where inputs
    are ids[begin:end] and scored targets are first_new..end (token indices)."""
    check_int("n_tokens", n_tokens, minimum=2)
    check_int("window", window, minimum=1)
    check_int("stride", stride, minimum=1, maximum=window)
    windows, done = [], 0  # done: the last target index already scored
    end = min(window, n_tokens - 1)
    while True:
        windows.append((max(0, end - window), end, done + 1))
        done = end
        if end == n_tokens - 1:
            return windows
        end = min(end + stride, n_tokens - 1)


@torch.no_grad()
def strided_loss(model, ids, window, stride, prefix_token=None, batch_size=256):
    """Perplexity of a fixed-length model over a long text by overlapping windows (the HF
    "Perplexity of fixed-length models" recipe, with its four known bugs fixed): windows of
    `window` inputs move by `stride`; each scores only its newest targets, so every token is
    scored exactly once with at least window - stride tokens of context; the first window is
    full length; the loss is the sum of NLL over scored tokens divided by their count; and
    stride 1 is the true autoregressive loss with `window` tokens of context. prefix_token
    (e.g. a sink or BOS token) is put first in every window, taking one of its `window` slots."""
    ids = torch.as_tensor(ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D token stream, got shape {tuple(ids.shape)}")
    check_int("batch_size", batch_size, minimum=1)
    inputs = window
    if prefix_token is not None:
        check_int("prefix_token", prefix_token, minimum=0, maximum=model.config.vocab_size - 1)
        check_int("window", window, minimum=2)
        inputs = window - 1
    check_int("stride", stride, minimum=1)
    if stride > inputs:
        raise ValueError(f"stride ({stride}) must be <= the window's {inputs} text tokens "
                         f"(a larger stride would leave tokens unscored)")
    windows = strided_windows(len(ids), inputs, stride)
    nll = torch.zeros(len(ids) - 1, dtype=torch.float64)
    counts = torch.zeros(len(ids) - 1, dtype=torch.long)
    by_length = {}
    for begin, end, first in windows:
        by_length.setdefault(end - begin, []).append((begin, end, first))
    for length, group in by_length.items():
        for start in range(0, len(group), batch_size):
            part = group[start:start + batch_size]
            x = torch.stack([ids[b:e] for b, e, _ in part])  # (b, length)
            y = torch.stack([ids[b + 1:e + 1] for b, e, _ in part])  # (b, length)
            if prefix_token is not None:
                x = torch.cat([torch.full((len(part), 1), prefix_token, dtype=x.dtype), x], 1)
            logits, _ = model(x)
            logits = logits[:, -length:]  # (b, length, V): the predictions of the text tokens
            losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (b, length)
            for row, (b, e, first) in enumerate(part):
                new = slice(first - 1, e)  # targets first..e are nll indices first-1..e-1
                nll[new] = losses[row, first - 1 - b:].double()
                counts[new] += 1
    loss = (nll.sum() / counts.sum()).item()
    return StridedResult(loss, nll, counts, windows)


# ---------------------------------------------------------------- chunking with overlap

def chunk_spans(length, chunk, left, right):
    """Chunks of an input of `length` that overlap by left + right, and the centre each keeps
    (HF's ASR pipeline `chunk_iter`): chunks start every step = chunk - left - right; a chunk
    keeps its inputs except the first `left` (not for the first chunk) and the last `right`
    (not for the last). [(start, end, keep_start, keep_end)], the kept parts tile 0..length."""
    check_int("length", length, minimum=1)
    check_int("chunk", chunk, minimum=1)
    check_int("left", left, minimum=0)
    check_int("right", right, minimum=0)
    step = chunk - left - right
    if step < 1:
        raise ValueError(f"left + right ({left} + {right}) must be < chunk ({chunk}): each chunk "
                         f"must keep at least one new position")
    spans = []
    for start in range(0, length, step):
        end = min(start + chunk, length)
        last = end >= length
        spans.append((start, end, start + (left if start else 0), end if last else end - right))
        if last:
            return spans


def merge_chunks(fn, x, chunk, left, right):
    """Run fn on overlapping chunks of x (B, T, ...) along dim 1 and keep each chunk's centre:
    fn(x[:, start:end]) -> (B, end - start, F); returns (B, T, F). left = right = 0 is naive
    concatenation of disjoint chunks."""
    if x.dim() < 2:
        raise ValueError(f"x must be (B, T, ...), got shape {tuple(x.shape)}")
    pieces = []
    for start, end, keep_start, keep_end in chunk_spans(x.size(1), chunk, left, right):
        out = fn(x[:, start:end])
        if out.size(1) != end - start:
            raise ValueError(f"fn must return one output per position: got {out.size(1)} for a "
                             f"chunk of {end - start}")
        pieces.append(out[:, keep_start - start:keep_end - start])
    return torch.cat(pieces, dim=1)


def band_mask(length, half_width):
    """bool (T, T): query i sees key j when |i - j| < half_width (bidirectional, banded). An
    L-layer model with this mask has a receptive field of L * (half_width - 1) on each side."""
    check_int("length", length, minimum=1)
    check_int("half_width", half_width, minimum=1)
    i = torch.arange(length)
    return (i[:, None] - i[None, :]).abs() < half_width


# ---------------------------------------------------------------- retrieval under a budget

@torch.no_grad()
def retrieval_under_budget(model, prompts, tokenizer, policy, batch_size=64):
    """Stream passkey prompts (lcviz.passkey, one length) through `policy`, SnapKV compressing
    at the end of the prompt, then decode the key greedily over the ten digits, one token at a
    time with the pruned cache. Returns {"answers": [str], "correct": [bool], "digits_right":
    [[bool] per digit], "needle_seen": [float]}: needle_seen is the fraction of (layer, head) caches in which the query of the
    first answer digit (after the key's first digit was decoded; with one-digit keys, the last
    prompt token's) could still see every digit of the key's last mention."""
    from lcviz.passkey import DIGITS
    if not prompts:
        raise ValueError("prompts must be a non-empty list of PasskeyPrompt")
    lengths = {(p.length, len(p.key)) for p in prompts}
    if len(lengths) != 1:
        raise ValueError(f"prompts need one length and key size, got {sorted(lengths)}")
    check_int("batch_size", batch_size, minimum=1)
    digit_ids = torch.tensor([tokenizer.encode(d)[0] for d in DIGITS])  # (10,)
    answers, seen = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids = torch.stack([tokenizer.encode(p.text) for p in chunk])  # (B, T)
        B, T = ids.shape
        n = len(chunk[0].key)
        decoder = StreamingDecoder(model, policy, B, prompt_length=T, record=True)
        for t in range(T):
            logits = decoder.step(ids[:, t])
        digits = []
        for i in range(n):
            best = logits[:, digit_ids].argmax(-1)  # (B,)
            digits.append(best)
            if i + 1 < n:
                logits = decoder.step(digit_ids[best])
        answering = decoder.kept[min(T, len(decoder.kept) - 1)]  # (L, B, H, n) what the first
        # answer query reads: for SnapKV the compressed cache (the prompt's last query saw all)
        digits = torch.stack(digits, dim=1)  # (B, n)
        answers += ["".join(DIGITS[d] for d in row) for row in digits.tolist()]
        for b, prompt in enumerate(chunk):
            last = torch.tensor(prompt.key_positions[n:])  # the last mention's digits
            visible = (answering[:, b, :, :, None] == last).any(-2).all(-1)  # (L, H)
            seen.append(visible.float().mean().item())
    return {"answers": answers, "correct": [a == p.key for a, p in zip(answers, prompts)],
            "digits_right": [[x == y for x, y in zip(a, p.key)] for a, p in zip(answers, prompts)],
            "needle_seen": seen}


# ---------------------------------------------------------------- experiments and benchmark

def held_out_stream(n_tokens, offset=0):
    """n_tokens character ids of the held-out split of the stdlib corpus (never trained on),
    starting `offset` characters in: a long document to stream."""
    from lcviz.transformer import char_lm_data
    check_int("n_tokens", n_tokens, minimum=2)
    check_int("offset", offset, minimum=0)
    _, val = char_lm_data()
    if offset + n_tokens > len(val):
        raise ValueError(f"offset + n_tokens ({offset + n_tokens}) exceeds the held-out split "
                         f"({len(val)} characters)")
    return val[offset:offset + n_tokens]


def comparison_policies(budget, n_sink=4):
    """The policies of the streaming comparison at one budget, in plotting order."""
    check_int("budget", budget, minimum=n_sink + 2)
    return [Policy("full"), Policy("window", budget), Policy("recompute", budget),
            Policy("sink", budget, n_sink=n_sink),
            Policy("sink", budget, n_sink=n_sink, positions="original"),
            Policy("h2o", budget), Policy("h2o", budget, positions="cache"),
            Policy("tova", budget), Policy("tova", budget, positions="cache")]


def step_clock():
    """CPU seconds of this process (time.process_time): what a step costs in computation. On a
    shared machine wall time also counts the time other processes held the core, which says
    nothing about the policy; with torch.set_num_threads(1), CPU time is the wall time of the
    same step on an idle core."""
    return time.process_time()


def _fastest(values):
    """The fastest of several timed steps: other processes on the machine only ever add time to
    a step, so the minimum is the steadiest estimate of its own cost on a shared machine."""
    return min(values)


def _lockstep(decoders, ids, marks=()):
    """Feed ids (N,) to every decoder, token by token and decoder after decoder, so that any
    change in the machine's load hits all of them alike. Returns per decoder (step seconds,
    per-token NLL (N - 1,), {mark: a copy of the decoder after `mark` tokens})."""
    seconds = [[] for _ in decoders]
    logits = [[] for _ in decoders]
    copies = [{} for _ in decoders]
    for t in range(len(ids)):
        for i, decoder in enumerate(decoders):
            if t in marks:
                copies[i][t] = decoder.copy()
            start = step_clock()
            out = decoder.step(ids[t:t + 1])
            seconds[i].append(step_clock() - start)
            logits[i].append(out[0])
    return [(sec, F.cross_entropy(torch.stack(lg[:-1]), ids[1:], reduction="none"), cp)
            for sec, lg, cp in zip(seconds, logits, copies)]


def _round_robin(decoders, tokens):
    """Time one step of every decoder in turn, len(tokens) times: each decoder's steps are
    spread over the same stretch of wall time. tokens (n,); returns seconds per decoder."""
    seconds = [[] for _ in decoders]
    for token in tokens:
        for i, decoder in enumerate(decoders):
            start = step_clock()
            decoder.step(token[None])
            seconds[i].append(step_clock() - start)
    return seconds


def benchmark(model="rope-charlm", multiples=(1, 2, 4, 8, 16), timing_window=64,
              sweep_budgets=(64, 256, 1024), sweep_steps=64, plot=True):
    """_benchmark on one torch thread (so that a step's CPU time is its time on one core); the
    caller's thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _benchmark(model, multiples, timing_window, sweep_budgets, sweep_steps, plot)
    finally:
        torch.set_num_threads(threads)


def _benchmark(model, multiples, timing_window, sweep_budgets, sweep_steps, plot):
    """Per policy at the model's training length T: loss, CPU ms per token and KV entries at stream
    lengths multiples * T, and, for StreamingLLM against re-computation, ms per token at larger
    budgets (cost does not depend on what the weights learned). Losses come from one pass of all
    policies over the stream in lockstep; ms per token at length L is the fastest of
    timing_window steps taken from a copy of the decoder at L, all (policy, length) copies
    stepped in turn. Returns the results dict that `python -m lcviz.bench streaming` saves as
    data/bench-streaming.json; plot=True also writes data/bench-streaming.png."""
    from lcviz.checkpoints import DATA_DIR, load_checkpoint
    net, _ = load_checkpoint(model)
    T = net.config.block_size
    lengths = [m * T for m in multiples]
    ids = held_out_stream(max(lengths) + timing_window)
    policies = comparison_policies(T)
    decoders = [StreamingDecoder(net, policy) for policy in policies]
    marks = {L - 1 for L in lengths}  # a copy of every decoder just before its L-th token
    passes = _lockstep(decoders, ids[:max(lengths)], marks)
    # timing: from each copy, timing_window more steps; every (policy, length) in turn, so a
    # change of the machine's load cannot pass for a change of cost with the stream length
    snapshots = [copies[L - 1] for _, _, copies in passes for L in lengths]
    seconds = _round_robin(snapshots, ids[max(lengths):max(lengths) + timing_window])
    rows = []
    for i, (policy, decoder, (_, nll, _)) in enumerate(zip(policies, decoders, passes)):
        mine = seconds[i * len(lengths):(i + 1) * len(lengths)]
        rows.append({"name": policy.name, "label": policy.label, "positions": policy.positions,
                     "budget": policy.budget,
                     "loss": [nll[:L - 1].mean().item() for L in lengths],
                     "ms_per_token": [1000 * _fastest(sec) for sec in mine],
                     "kv_entries": [decoder.kv_entries[L - 1] for L in lengths]})
    sweep = {"budgets": list(sweep_budgets), "sink_ms": [], "recompute_ms": []}
    for budget in sweep_budgets:
        text = held_out_stream(budget + sweep_steps)
        pair = [StreamingDecoder(net, Policy("sink", budget, n_sink=4)),
                StreamingDecoder(net, Policy("recompute", budget))]
        (sink_s, _, _), (recompute_s, _, _) = _lockstep(pair, text)
        sweep["sink_ms"].append(1000 * _fastest(sink_s[budget:]))  # once the cache is full
        sweep["recompute_ms"].append(1000 * _fastest(recompute_s[budget:]))
    sweep["speedup"] = [r / s for r, s in zip(sweep["recompute_ms"], sweep["sink_ms"])]
    by = {(r["name"], r["positions"]): r for r in rows}
    sink, recompute = by[("sink", "cache")], by[("recompute", "cache")]
    at = lengths.index(8 * T) if 8 * T in lengths else len(lengths) - 1
    results = {
        "model": model, "training_length": T, "budget": T, "lengths": lengths,
        "timing_window": timing_window, "timing": ("process CPU time (time.process_time), fastest of timing_window steps; "
                                            "(policy, length) copies stepped in turn"),
        "threads": torch.get_num_threads(), "policies": rows, "budget_sweep": sweep,
        "summary": {
            "sink_time_last_over_first": sink["ms_per_token"][-1] / sink["ms_per_token"][0],
            "length_for_comparison": lengths[at],
            "recompute_over_sink_time": recompute["ms_per_token"][at] / sink["ms_per_token"][at],
            "sink_loss_over_recompute": sink["loss"][at] / recompute["loss"][at]}}
    if plot:
        from lcviz.plots.streaming import benchmark_figure
        benchmark_figure(results).savefig(DATA_DIR / "bench-streaming.png", dpi=90)
    return results
