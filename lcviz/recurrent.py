"""Recurrent memory across segments: Transformer-XL and Infini-attention on a tiny model.

A long input is read in segments of S tokens. Inside a segment, tokens attend to each other
causally (softmax attention, RoPE). Across segments, one of these carries information forward:

    local   nothing: each segment is on its own (the baseline that forgets)
    xl      Transformer-XL (Dai et al. 2019, arXiv 1901.02860): every layer also attends to the
            previous segment's hidden states, cached without gradient (stop-gradient). Layer l of
            segment s sees layer l-1 of segment s-1, which saw segment s-2 ...: the reach grows
            by S tokens per layer (`xl_reach_distance`); the gradient never leaves the segment
            (training teaches how to read the cache, never what to leave in it)
    linear  Infini-attention (Munkhdalai et al. 2024, arXiv 2404.07143) with the linear update:
            a d_k x d_v compressive memory per head, read before it is updated (eq. 3), written
            with every finished segment (eq. 4), mixed with local attention by a learned gate
            sigmoid(beta) per head (eq. 6)
    delta   Infini-attention with the delta update (eq. 5): only what the memory does not already
            return for a key is written
    full    ordinary causal attention over the whole input (the ceiling, memory grows with T)

Two forms of the same model, tested equal: `forward` runs layer by layer over all segments at
once (training), `stream` reads the input chunk by chunk keeping only a constant-size state (an
Infini memory, an XL cache of one segment, or for `full` a KV cache that grows).

Decisions where the papers leave room (called out again where they occur):
- The memory path uses sigma(q), sigma(k) of the *un-rotated* q and k (as lucidrains'
  infini-transformer-pytorch does); local attention uses RoPE with positions inside the segment.
- An empty memory reads as 0 (eps in the normaliser, as fast-transformers' linear attention);
  the gate mixes it in on the first segment too, so every segment is computed the same way.
- Gradients flow through the Infini memory across segments (back-propagation through time over
  the whole input); the XL cache is detached, as in the paper.

Shapes: B batch, T time, C width, H heads, D = C // H head dim (d_k = d_v = D for the memory),
n segments of S tokens.
"""

import math
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lcviz import rope, seed_everything
from lcviz.model import MLP, ModelConfig, TinyTransformer
from lcviz.stats import wilson_interval
from lcviz.validate import check_choice, check_float, check_int

MEMORY_KINDS = ("local", "xl", "linear", "delta", "full")
UPDATE_RULES = ("linear", "delta")
EPS = 1e-6  # added to the memory normaliser: an empty memory reads as 0


# ---------------------------------------------------------------- compressive memory

def sigma(x):
    """The memory's feature map sigma(x) = elu(x) + 1 > 0 (Katharopoulos et al. 2020, arXiv
    2006.16236; Infini-attention eq. 3). x (..., D) -> (..., D)."""
    return F.elu(x) + 1


class Memory(NamedTuple):
    """An associative memory per head: M (B, H, d_k, d_v) and normaliser z (B, H, d_k)."""
    M: torch.Tensor
    z: torch.Tensor

    def numel(self):
        return self.M.numel() + self.z.numel()


def empty_memory(batch, heads, d_k, d_v, dtype=torch.float32):
    """M_0 = 0, z_0 = 0: a memory that has seen nothing (it reads as 0)."""
    check_int("batch", batch, minimum=1)
    check_int("heads", heads, minimum=1)
    check_int("d_k", d_k, minimum=1)
    check_int("d_v", d_v, minimum=1)
    return Memory(torch.zeros(batch, heads, d_k, d_v, dtype=dtype),
                  torch.zeros(batch, heads, d_k, dtype=dtype))


def _check_memory(memory):
    if not isinstance(memory, Memory):
        raise ValueError(f"memory must be a lcviz.recurrent.Memory (see empty_memory), got "
                         f"{type(memory).__name__}")
    if memory.M.dim() != 4 or memory.z.shape != memory.M.shape[:3]:
        raise ValueError(f"memory must hold M (B, H, d_k, d_v) and z (B, H, d_k); got "
                         f"{tuple(memory.M.shape)} and {tuple(memory.z.shape)}")
    if memory.M.shape[2] == 0 or memory.M.shape[3] == 0:
        raise ValueError(f"memory has a zero-size state d_k x d_v = {memory.M.shape[2]} x "
                         f"{memory.M.shape[3]}; both must be >= 1")


def _check_features(name, x, memory, last):
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B, H, T, {last}), got "
                         f"{type(x).__name__}")
    B, H, d_k, d_v = memory.M.shape
    want = {"d_k": d_k, "d_v": d_v}[last]
    if x.dim() != 4 or x.shape[:2] != (B, H) or x.shape[3] != want:
        raise ValueError(f"{name} must be (B, H, T, {last}) = ({B}, {H}, T, {want}) for this "
                         f"memory, got {tuple(x.shape)}")


def memory_read(memory, phi_q, normalize=True):
    """A_mem = phi_q M / (phi_q z) (Infini-attention eq. 3), phi_q = sigma(q) (B, H, T, d_k)
    -> (B, H, T, d_v). normalize=False returns phi_q M alone (a plain fast-weight read)."""
    _check_memory(memory)
    _check_features("phi_q", phi_q, memory, "d_k")
    numerator = phi_q @ memory.M  # (B, H, T, d_v)
    if not normalize:
        return numerator
    denominator = phi_q @ memory.z.unsqueeze(-1)  # (B, H, T, 1)
    return numerator / (denominator + EPS)


def memory_update(memory, phi_k, v, rule="linear", normalize=True):
    """Write a segment's keys phi_k = sigma(k) (B, H, S, d_k) and values v (B, H, S, d_v).

    linear (eq. 4): M += phi_k^T v                      z += sum_t phi_k[t]
    delta  (eq. 5): M += phi_k^T (v - read(phi_k))      z += sum_t phi_k[t]
    The delta rule reads the memory *before* the segment is added; normalize picks the read
    (eq. 3's normalised one, or phi_k M alone: the classic delta rule). Returns a new Memory.

    As the equations are written (and as lucidrains' reimplementation codes them), z grows on
    every write while the delta rule only corrects M: a key overwritten once reads back, through
    eq. 3, its new value divided by 2 (tests/test_recurrent.py shows it; notebook 11 too).
    """
    check_choice("rule", rule, UPDATE_RULES)
    _check_memory(memory)
    _check_features("phi_k", phi_k, memory, "d_k")
    _check_features("v", v, memory, "d_v")
    if v.shape[2] != phi_k.shape[2]:
        raise ValueError(f"phi_k and v need one length, got {phi_k.shape[2]} and {v.shape[2]}")
    if rule == "delta":
        v = v - memory_read(memory, phi_k, normalize)  # (B, H, S, d_v): what is new
    return Memory(memory.M + phi_k.transpose(-2, -1) @ v,  # (B, H, d_k, d_v)
                  memory.z + phi_k.sum(dim=-2))  # (B, H, d_k)


# ---------------------------------------------------------------- memory without training

KEY_KINDS = ("orthogonal", "random", "sigma")


def memory_keys(n, d_k, kind, generator=None, trials=1):
    """n keys (trials, 1, n, d_k) written into a d_k memory, and for each write the index of
    the latest write with the same key (trials, n) (the value a read should return):

    orthogonal  one-hot keys e_0 .. e_{d_k-1} in a random order, cycled: past d_k writes every
                key is written again with a new value (the latest value is the right answer)
    random      random unit vectors: no two equal, all interfering a little
    sigma       sigma(x) of Gaussian x, what an Infini layer writes before training shapes k
    """
    check_int("n", n, minimum=1)
    check_int("d_k", d_k, minimum=1)
    check_int("trials", trials, minimum=1)
    check_choice("kind", kind, KEY_KINDS)
    latest = torch.arange(n).expand(trials, n).clone()  # (trials, n)
    if kind == "orthogonal":
        order = torch.stack([torch.randperm(d_k, generator=generator) for _ in range(trials)])
        slot = order[:, torch.arange(n) % d_k]  # (trials, n) which one-hot each write uses
        keys = F.one_hot(slot, d_k).float()
        last_write = n - 1 - (n - 1 - torch.arange(n)) % d_k  # latest write of the same slot
        latest = last_write.expand(trials, n).clone()
    elif kind == "random":
        keys = F.normalize(torch.randn(trials, n, d_k, generator=generator), dim=-1)
    else:
        keys = sigma(torch.randn(trials, n, d_k, generator=generator))
    return keys.unsqueeze(1), latest  # (trials, 1, n, d_k), (trials, n)


def retrieval_error(n, d_k, rule, keys="random", normalize=False, per_write=1, trials=20,
                    seed=0):
    """Write n (key, value) pairs, per_write at a time, into an empty d_k x d_k memory with
    `rule`, then read every key back: the mean relative error |read - v| / |v| against the
    latest value written with that key (Gaussian values). No training: the memory alone. The
    linear rule's sums do not depend on how the writes are grouped, so it writes all n at once;
    the delta rule reads before each write and goes per_write at a time."""
    check_int("per_write", per_write, minimum=1)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    phi_k, latest = memory_keys(n, d_k, keys, generator, trials)  # (R, 1, n, d_k), (R, n)
    values = torch.randn(trials, 1, n, d_k, generator=generator)  # (R, 1, n, d_v)
    memory = empty_memory(trials, 1, d_k, d_k)
    step = n if rule == "linear" else per_write
    for start in range(0, n, step):
        memory = memory_update(memory, phi_k[:, :, start:start + step],
                               values[:, :, start:start + step], rule, normalize)
    read = memory_read(memory, phi_k, normalize)  # (R, 1, n, d_v)
    want = torch.gather(values, 2, latest[:, None, :, None].expand(-1, -1, -1, d_k))
    error = (read - want).norm(dim=-1) / want.norm(dim=-1)  # (R, 1, n)
    return float(error.mean())


RETRIEVAL_SETTINGS = (  # (keys, normalize): the rows of the retrieval table
    ("orthogonal", False), ("orthogonal", True), ("random", False), ("sigma", True))
RETRIEVAL_RATIOS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)  # n / d_k


def retrieval_table(d_k=32, ratios=RETRIEVAL_RATIOS, settings=RETRIEVAL_SETTINGS, trials=20,
                    seed=0):
    """Relative retrieval error for each (keys, read, rule) against n / d_k: a list of rows
    {"keys", "read", "rule", "n": [...], "error": [...]}. read is "M" (phi_q M) or
    "normalised" (eq. 3)."""
    check_int("d_k", d_k, minimum=1)
    ns = [max(1, round(r * d_k)) for r in ratios]
    rows = []
    for keys, normalize in settings:
        for rule in UPDATE_RULES:
            rows.append({"keys": keys, "read": "normalised" if normalize else "M", "rule": rule,
                         "n": ns, "ratio": list(ratios),
                         "error": [retrieval_error(n, d_k, rule, keys, normalize, trials=trials,
                                                   seed=seed) for n in ns]})
    return rows


def crosstalk_prediction(n, d_k):
    """Expected relative error of the linear rule with random unit keys, read through M: each of
    the n - 1 other keys adds (k_i . k_j) v_j with E[(k_i . k_j)^2] = 1 / d_k, so the error
    is about sqrt((n - 1) / d_k)."""
    check_int("n", n, minimum=1)
    check_int("d_k", d_k, minimum=1)
    return math.sqrt((n - 1) / d_k)


def capacity_pairs(d_k, error):
    """How many (key, value) pairs with random unit keys a linear d_k memory holds before its
    relative read error reaches `error`: solve sqrt((n - 1) / d_k) = error for n (rounded)."""
    check_int("d_k", d_k, minimum=1)
    check_float("error", error, greater_than=0.0)
    return max(1, round(1 + error * error * d_k))


# ---------------------------------------------------------------- segments and reach

def check_segment(length, segment, divides=True):
    """A segment has 1 <= S tokens; where the parallel form needs whole segments, S divides T."""
    check_int("length", length, minimum=1)
    check_int("segment", segment, minimum=1)
    if divides and length % segment:
        divisors = [d for d in range(1, length + 1) if length % d == 0]
        raise ValueError(f"segment {segment} must divide the length {length} (the parallel form "
                         f"reads whole segments; use stream() for a partial last segment); "
                         f"divisors of {length}: {divisors}")
    return segment


def segment_mask(length, segment, kind):
    """bool (T, T), True = query i's output depends on key j in one layer:
    local: its own segment; xl: its own and the previous segment; linear/delta: every earlier
    token (through the memory, compressed); full: every earlier token. All causal."""
    check_choice("kind", kind, MEMORY_KINDS)
    check_segment(length, segment, divides=False)
    i = torch.arange(length)[:, None]  # (T, 1)
    j = torch.arange(length)[None, :]  # (1, T)
    causal = j <= i
    back = i // segment - j // segment  # (T, T) segments between query and key
    if kind == "local":
        return causal & (back == 0)
    if kind == "xl":
        return causal & (back <= 1)
    return causal


def reach(length, segment, kind, n_layer):
    """bool (T, T): can token j influence the output at token i through n_layer layers? The
    one-layer mask composed n_layer times (the residual stream keeps each token's own path)."""
    check_int("n_layer", n_layer, minimum=1)
    one = segment_mask(length, segment, kind).float()  # (T, T)
    total = one
    for _ in range(n_layer - 1):
        total = ((total @ one) > 0).float()
    return total.bool()


def xl_reach_distance(n_layer, segment, offset):
    """How far back a Transformer-XL token at `offset` in its segment sees after n_layer layers:
    each layer adds one cached segment, so offset + n_layer * segment tokens (if they exist)."""
    check_int("n_layer", n_layer, minimum=1)
    check_int("segment", segment, minimum=1)
    check_int("offset", offset, minimum=0, maximum=segment - 1)
    return offset + n_layer * segment


# ---------------------------------------------------------------- the model

@dataclass
class RecurrentConfig:
    vocab_size: int = 44        # lcviz.recurrent.passkey_vocab_size() for the segment passkey
    n_layer: int = 2            # transformer blocks
    n_head: int = 4             # heads per block; each has its own d_k x d_v memory
    n_embd: int = 64            # width C; head dim D = n_embd // n_head = d_k = d_v
    mlp_ratio: int = 4          # MLP hidden width = mlp_ratio * n_embd
    segment: int = 16           # tokens per segment S
    memory: str = "linear"      # "local" | "xl" | "linear" | "delta" | "full" (module docstring)
    gate_init: float = 0.0      # initial beta per head; sigmoid(0) = half memory, half local
    rope_base: float = 10000.0  # RoPE base theta for the softmax attention
    xl_detach: bool = True      # Transformer-XL's stop-gradient on the cached segment
    dropout: float = 0.0        # MLP dropout (lcviz.model.MLP)

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, minimum=1)
        check_int("n_layer", self.n_layer, minimum=1)
        check_int("n_head", self.n_head, minimum=1)
        check_int("n_embd", self.n_embd, minimum=1)
        check_int("mlp_ratio", self.mlp_ratio, minimum=1)
        check_int("segment", self.segment, minimum=1)
        check_choice("memory", self.memory, MEMORY_KINDS)
        check_float("gate_init", self.gate_init, minimum=-20.0, maximum=20.0)
        check_float("rope_base", self.rope_base, greater_than=1.0)
        check_float("dropout", self.dropout, minimum=0.0, maximum=0.99)
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_head ({self.n_head}) must divide n_embd ({self.n_embd}) into an "
                             f"even head dim (RoPE rotates pairs)")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def infini(self):
        return self.memory in UPDATE_RULES

    def to_dict(self):
        return asdict(self)

    def mlp_config(self):
        """The lcviz.model.ModelConfig whose MLP, LayerNorm and embeddings these blocks reuse."""
        return ModelConfig(vocab_size=self.vocab_size, n_layer=self.n_layer, n_head=self.n_head,
                           n_embd=self.n_embd, mlp_ratio=self.mlp_ratio, dropout=self.dropout,
                           pos="rope", rope_base=self.rope_base)


def _causal_block(queries, keys, offset=0):
    """bool (queries, keys): query i (at key index offset + i) sees keys 0 .. offset + i."""
    return torch.arange(keys)[None, :] <= offset + torch.arange(queries)[:, None]


def _exclusive_cumsum(x):
    """Sum over dim 2 of the entries before each one (the first gets 0): no segment's own
    write enters its read, not even as rounding (cumsum - x would leak it)."""
    return torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, :-1].cumsum(dim=2)], dim=2)


class SegmentAttention(nn.Module):
    """Multi-head attention read in segments, with one of MEMORY_KINDS across them. The q, k, v
    and output projections are laid out as lcviz.model.CausalSelfAttention's."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.register_buffer("inv_freq", rope.default_frequencies(config.head_dim,
                                                                  config.rope_base).float(),
                             persistent=False)
        self.beta = nn.Parameter(torch.full((config.n_head,), float(config.gate_init))) \
            if config.infini else None  # (H,) eq. 6's gate, one scalar per head

    def heads(self, a):
        """a (B, T, C) -> q, k, v, each (B, H, T, D)."""
        B, T, C = a.shape
        H, D = self.config.n_head, self.config.head_dim
        return [t.view(B, T, H, D).transpose(1, 2) for t in self.qkv(a).split(C, dim=2)]

    def rotate(self, x, positions):
        return rope.apply_rope(x, positions, self.inv_freq)

    def gate(self):
        """sigmoid(beta) per head, shaped to broadcast over (B, H, ..., D)."""
        return torch.sigmoid(self.beta)

    def forward(self, a, a_cache=None):
        """All segments at once. a = ln(h) (B, T, C); a_cache = ln(h.detach()) for XL's cached
        segment (None: a itself). Returns (B, T, C)."""
        cfg = self.config
        B, T, C = a.shape
        H, D = cfg.n_head, cfg.head_dim
        q, k, v = self.heads(a)  # (B, H, T, D) each
        if cfg.memory == "full":
            pos = torch.arange(T)
            y = F.scaled_dot_product_attention(self.rotate(q, pos), self.rotate(k, pos), v,
                                               is_causal=True)  # (B, H, T, D)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        S = check_segment(T, cfg.segment)
        n = T // S
        pos = torch.arange(S)
        qs = self.rotate(q.reshape(B, H * n, S, D), pos).view(B, H, n, S, D)
        ks = self.rotate(k.reshape(B, H * n, S, D), pos).view(B, H, n, S, D)
        vs = v.reshape(B, H, n, S, D)
        if cfg.memory == "xl":
            _, k_c, v_c = self.heads(a if a_cache is None else a_cache)  # (B, H, T, D)
            k_c = self.rotate(k_c.reshape(B, H * n, S, D), pos - S).view(B, H, n, S, D)
            v_c = v_c.reshape(B, H, n, S, D)
            # segment s sees the cache of segment s - 1 (none before segment 0)
            k_prev = torch.cat([torch.zeros_like(k_c[:, :, :1]), k_c[:, :, :-1]], dim=2)
            v_prev = torch.cat([torch.zeros_like(v_c[:, :, :1]), v_c[:, :, :-1]], dim=2)
            keys = torch.cat([k_prev, ks], dim=3)  # (B, H, n, 2S, D)
            values = torch.cat([v_prev, vs], dim=3)  # (B, H, n, 2S, D)
            mask = _causal_block(S, 2 * S, S).expand(n, S, 2 * S).clone()  # (n, S, 2S)
            mask[0, :, :S] = False
            y = F.scaled_dot_product_attention(qs, keys, values, attn_mask=mask)  # (B,H,n,S,D)
        else:
            y = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)  # (B, H, n, S, D)
        if cfg.infini:
            phi_q = sigma(q).view(B, H, n, S, D)  # un-rotated (module docstring)
            phi_k = sigma(k).view(B, H, n, S, D)
            a_mem = torch.stack(list(self._memory_reads(phi_q, phi_k, vs)), dim=2)  # (B,H,n,S,D)
            g = self.gate().view(1, H, 1, 1, 1)
            y = g * a_mem + (1 - g) * y  # eq. 6
        return self.proj(y.reshape(B, H, T, D).transpose(1, 2).reshape(B, T, C))

    def _memory_reads(self, phi_q, phi_k, vs):
        """Yield each segment's read of the memory of all earlier segments (B, H, S, D)."""
        B, H, n, _, D = phi_q.shape
        if self.config.memory == "linear":  # parallel form: an exclusive cumulative sum
            writes = phi_k.transpose(-2, -1) @ vs  # (B, H, n, D, D) each segment's phi_k^T v
            M = _exclusive_cumsum(writes)  # (B, H, n, D, D) the memory before segment s
            z = _exclusive_cumsum(phi_k.sum(dim=3))  # (B, H, n, D)
            for s in range(n):
                yield memory_read(Memory(M[:, :, s], z[:, :, s]), phi_q[:, :, s])
            return
        memory = empty_memory(B, H, D, D, phi_q.dtype)
        for s in range(n):  # the delta rule has no parallel form across segments
            yield memory_read(memory, phi_q[:, :, s])
            memory = memory_update(memory, phi_k[:, :, s], vs[:, :, s], "delta")

    def step(self, a, state, start):
        """Read a chunk a = ln(h) (B, c, C) at offset `start` of its segment (of the input, for
        `full`), with this layer's `state` (RecurrentTransformer.empty_state): the chunk's
        rotated keys and values join the buffers, its queries attend to them (and to the XL
        cache), and read the Infini memory. Returns (B, c, C)."""
        cfg = self.config
        B, c, C = a.shape
        q, k, v = self.heads(a)  # (B, H, c, D)
        end = start + c
        positions = torch.arange(start, end)
        state["k"][:, :, start:end] = self.rotate(k, positions)  # a KV cache keeps rotated keys
        state["v"][:, :, start:end] = v
        keys, values = state["k"][:, :, :end], state["v"][:, :, :end]
        mask = _causal_block(c, end, start)  # (c, end)
        if cfg.memory == "xl" and state["prev_k"] is not None:
            keys = torch.cat([state["prev_k"], keys], dim=2)  # (B, H, S + end, D)
            values = torch.cat([state["prev_v"], values], dim=2)
            mask = torch.cat([torch.ones(c, cfg.segment, dtype=torch.bool), mask], dim=1)
        y = F.scaled_dot_product_attention(self.rotate(q, positions), keys, values,
                                           attn_mask=mask)  # (B, H, c, D)
        if cfg.infini:
            state["phi_k"][:, :, start:end] = sigma(k)  # un-rotated, for the memory write
            g = self.gate().view(1, -1, 1, 1)
            y = g * memory_read(state["memory"], sigma(q)) + (1 - g) * y  # eq. 3 then eq. 6
        return self.proj(y.transpose(1, 2).reshape(B, c, C))

    def end_segment(self, state):
        """The segment in the buffers is finished: write it to the memory (Infini) or keep it as
        the cache (XL, its keys moved to positions -S .. -1); the buffers start over."""
        cfg = self.config
        S = cfg.segment
        if cfg.infini:
            state["memory"] = memory_update(state["memory"], state["phi_k"], state["v"],
                                            cfg.memory)
        elif cfg.memory == "xl":
            state["prev_k"] = self.rotate(state["k"], torch.full((S,), -S))
            state["prev_v"] = state["v"].clone()


class SegmentBlock(nn.Module):
    """Pre-LN block as lcviz.model.Block: h + attn(ln(h)), then h + mlp(ln(h))."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = SegmentAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config.mlp_config())

    def forward(self, h):
        a = self.ln1(h)
        a_cache = None
        if self.config.memory == "xl" and self.config.xl_detach:
            a_cache = self.ln1(h.detach())  # Transformer-XL: SG(h) of the cached segment
        h = h + self.attn(a, a_cache)
        return h + self.mlp(self.ln2(h))

    def step(self, h, state, start):
        h = h + self.attn.step(self.ln1(h), state, start)
        return h + self.mlp(self.ln2(h))


class RecurrentTransformer(nn.Module):
    """A TinyTransformer-like decoder (token embedding, pre-LN blocks, tied head, no absolute
    positions: RoPE inside the attention) whose attention is read in segments."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(SegmentBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight
        self.apply(TinyTransformer._init_weights)  # the same initialisation as the tiny model

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be a (B, T) tensor of token ids (torch.long), got "
                             f"{getattr(idx, 'shape', type(idx).__name__)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1}, got "
                             f"{int(idx.min())}..{int(idx.max())}")

    def forward(self, idx, targets=None):
        """idx (B, T) with T a multiple of the segment -> (logits (B, T, V), loss or None);
        targets -100 are ignored."""
        self._check_idx(idx)
        h = self.tok_emb(idx)  # (B, T, C)
        for block in self.blocks:
            h = block(h)
        logits = self.head(self.ln_f(h))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-100)
        return logits, loss

    def empty_state(self, batch, capacity=None):
        """Per layer: buffers for the current segment's rotated keys and values (for `full`:
        of all `capacity` tokens, a KV cache), plus the Infini memory and its segment's
        sigma(k), or the XL cache of the previous segment."""
        cfg = self.config
        check_int("batch", batch, minimum=1)
        size = cfg.segment
        if cfg.memory == "full":
            size = check_int("capacity", capacity, minimum=1)
        H, D = cfg.n_head, cfg.head_dim
        states = []
        for _ in self.blocks:
            state = {"k": torch.zeros(batch, H, size, D), "v": torch.zeros(batch, H, size, D),
                     "filled": 0}
            if cfg.infini:
                state["phi_k"] = torch.zeros(batch, H, size, D)
                state["memory"] = empty_memory(batch, H, D, D)
            if cfg.memory == "xl":
                state["prev_k"] = state["prev_v"] = None
            states.append(state)
        return states

    @torch.no_grad()
    def stream(self, idx, chunk=None, state=None):
        """Read idx (B, T) chunk by chunk (chunk tokens at a time; default one segment; it must
        divide the segment), keeping only the recurrent state: the same logits as forward().
        Any T works (a partial last segment too). Returns (logits (B, T, V), state)."""
        self._check_idx(idx)
        cfg = self.config
        B, T = idx.shape
        S = cfg.segment
        chunk = S if chunk is None else chunk
        check_int("chunk", chunk, minimum=1)
        if cfg.memory != "full" and S % chunk:
            raise ValueError(f"chunk {chunk} must divide the segment {S} (a chunk never "
                             f"straddles two segments); divisors: "
                             f"{[d for d in range(1, S + 1) if S % d == 0]}")
        if state is None:
            state = self.empty_state(B, capacity=T)
        logits = []
        for start in range(0, T, chunk):
            h = self.tok_emb(idx[:, start:start + chunk])  # (B, c, C)
            c = h.size(1)
            offset = state[0]["filled"]
            for block, layer_state in zip(self.blocks, state):
                h = block.step(h, layer_state, offset)
            for block, layer_state in zip(self.blocks, state):
                layer_state["filled"] = offset + c
                if cfg.memory != "full" and layer_state["filled"] == S:
                    block.attn.end_segment(layer_state)
                    layer_state["filled"] = 0
            logits.append(self.head(self.ln_f(h)))
        return torch.cat(logits, dim=1), state

    def gates(self):
        """sigmoid(beta) per layer and head (L, H): the share of the memory read (Infini)."""
        if not self.config.infini:
            raise ValueError(f"only Infini models (memory 'linear' or 'delta') have gates; this "
                             f"one is {self.config.memory!r}")
        return torch.stack([b.attn.gate().detach() for b in self.blocks])


def state_numel(state):
    """Numbers a stream() state holds: the Infini memory, the XL cache, and the filled part of
    the key/value buffers (the current segment's tokens; for `full`, every token read so far).
    The memory cost of reading on."""
    total = 0
    for layer in state:
        for key, value in layer.items():
            if isinstance(value, Memory):
                total += value.numel()
            elif key in ("k", "v", "phi_k"):
                total += value[:, :, :layer["filled"]].numel()
            elif isinstance(value, torch.Tensor):
                total += value.numel()
    return total


# ---------------------------------------------------------------- passkey across segments

FILLER_WORDS = ("the", "grass", "sky", "sun", "is", "green", "blue", "yellow", "here", "we",
                "go", "there", "and", "back", "again", "a", "cat", "sat", "on", "mat", "rain",
                "falls", "slowly", "today")
DIGIT_TOKENS = tuple("0123456789")
KEY_TOKEN, ASK_TOKEN = "key:", "ask:"
VOCAB = FILLER_WORDS + DIGIT_TOKENS + (KEY_TOKEN, ASK_TOKEN)
FILLERS = ("uniform", "zipf")
IGNORE = -100


def passkey_vocab_size():
    return len(VOCAB)


def digit_ids():
    """Token ids of the digits 0-9 (10,)."""
    return torch.tensor([VOCAB.index(d) for d in DIGIT_TOKENS])


def decode(ids):
    """Token ids -> text, for looking at a prompt."""
    return " ".join(VOCAB[check_int("token id", int(i), minimum=0, maximum=len(VOCAB) - 1)]
                    for i in ids)


@dataclass(frozen=True)
class SegmentPasskey:
    """A batch of passkey prompts read in segments of `segment` tokens.

    x (B, T) inputs, T = n_segments * segment: random filler, the needle `key: d1 .. dn` inside
    segment n_segments - 1 - gap at a random offset, and at the very end `ask: d1 .. d(n-1)`
    (the answer so far, teacher forcing). y (B, T): -100 except the n positions that must
    predict d1 .. dn. keys (B, n) digits; gaps (B,) segments between the needle's segment
    and the question's; needle_start (B,) token index of `key:`."""
    x: torch.Tensor
    y: torch.Tensor
    keys: torch.Tensor
    gaps: torch.Tensor
    needle_start: torch.Tensor
    segment: int

    @property
    def n_segments(self):
        return self.x.size(1) // self.segment

    def rows(self, index):
        """The prompts at `index` (a slice or index tensor) as a SegmentPasskey."""
        return SegmentPasskey(self.x[index], self.y[index], self.keys[index], self.gaps[index],
                              self.needle_start[index], self.segment)


def segment_passkey(batch, n_segments, segment, gap=None, n_digits=3, filler="uniform",
                    generator=None):
    """A SegmentPasskey batch. gap=None draws each prompt's gap uniformly in 0..n_segments-1;
    the needle's offset inside its segment is uniform over the places it fits (before the
    question when gap = 0). filler: "uniform" (every filler word equally likely, what the
    models train on) or "zipf" (word r with probability ~ 1/r: a filler the models never saw).
    Nothing but the needle carries the key, and nothing about its place is fixed."""
    check_int("batch", batch, minimum=1)
    check_int("n_segments", n_segments, minimum=1)
    check_int("n_digits", n_digits, minimum=1, maximum=10)
    check_int("segment", segment, minimum=2 * n_digits + 1)
    check_choice("filler", filler, FILLERS)
    T, S = n_segments * segment, segment
    if gap is None:
        gaps = torch.randint(0, n_segments, (batch,), generator=generator)
    else:
        gaps = torch.full((batch,), check_int("gap", gap, minimum=0, maximum=n_segments - 1))
    weights = torch.ones(len(FILLER_WORDS))
    if filler == "zipf":
        weights = 1.0 / torch.arange(1, len(FILLER_WORDS) + 1)
    x = torch.multinomial(weights, batch * T, replacement=True,
                          generator=generator).view(batch, T)  # (B, T) filler word ids
    digits = digit_ids()
    keys = torch.randint(0, 10, (batch, n_digits), generator=generator)  # (B, n)
    needle = n_digits + 1
    room = torch.where(gaps == 0, S - needle - n_digits, S - needle) + 1  # offsets that fit
    offset = (torch.rand(batch, generator=generator) * room).long()
    start = (n_segments - 1 - gaps) * S + offset  # (B,)
    rows = torch.arange(batch)
    x[rows, start] = VOCAB.index(KEY_TOKEN)
    for j in range(n_digits):
        x[rows, start + 1 + j] = digits[keys[:, j]]
    x[:, T - n_digits] = VOCAB.index(ASK_TOKEN)
    x[:, T - n_digits + 1:] = digits[keys[:, :-1]]
    y = torch.full_like(x, IGNORE)
    y[:, T - n_digits:] = digits[keys]
    return SegmentPasskey(x, y, keys, gaps, start, S)


@torch.no_grad()
def key_hits(model, batch):
    """(B,) bool: is every key digit the argmax over the ten digits, given the true digits before
    it? That is exactly when greedy decoding returns the whole key (the first wrong digit would
    be decoded from the same true prefix)."""
    model.eval()
    logits, _ = model(batch.x)  # (B, T, V)
    n = batch.keys.size(1)
    chosen = logits[:, -n:, digit_ids()].argmax(-1)  # (B, n)
    return (chosen == batch.keys).all(dim=1)


def passkey_accuracy(model, n_segments, gap, n=200, seed=1234, filler="uniform", n_digits=3,
                     batch_size=100):
    """Whole-key hits of `model` on n fresh prompts with the needle `gap` segments before the
    question: (hits, n, (low, high) Wilson 95% interval)."""
    check_int("n", n, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    prompts = segment_passkey(n, n_segments, model.config.segment, gap, n_digits, filler,
                              generator)
    hits = sum(int(key_hits(model, prompts.rows(slice(start, start + batch_size))).sum())
               for start in range(0, n, batch_size))
    return hits, n, wilson_interval(hits, n)


# ---------------------------------------------------------------- training (recipes)

PASSKEY_EVAL = {"n": 200, "seed": 1234}  # the fixed held-out prompts every checkpoint records


def accuracy_by_gap(model, n_segments, gaps=None, filler="uniform", n=PASSKEY_EVAL["n"],
                    seed=PASSKEY_EVAL["seed"], n_digits=3):
    """{gap: [hits, n]} for each gap (default every gap 0 .. n_segments - 1)."""
    gaps = range(n_segments) if gaps is None else gaps
    return {str(gap): list(passkey_accuracy(model, n_segments, gap, n, seed + gap, filler,
                                            n_digits)[:2]) for gap in gaps}


SEGMENT_COUNTS = (2, 4, 8, 12, 16, 24, 32)  # inputs of this many segments in by_segments


def by_segments(model, counts=SEGMENT_COUNTS, gap=1, filler="uniform",
                n=PASSKEY_EVAL["n"], seed=PASSKEY_EVAL["seed"], n_digits=3):
    """{segments: [hits, n]} with the needle always `gap` segments before the question and
    `segments` in the input: for Infini, the number of segments compressed into the memory
    grows while the needle's own distance stays the same."""
    return {str(count): list(passkey_accuracy(model, count, gap, n, seed + 100 * count, filler,
                                              n_digits)[:2]) for count in counts}


def curriculum_segments(step, steps, max_segments, curriculum):
    """The most segments a training prompt may have at `step`: 1 at the start, growing linearly
    to max_segments at curriculum * steps, then max_segments (curriculum 0: from the start)."""
    check_float("curriculum", curriculum, minimum=0.0, maximum=1.0)
    if curriculum == 0:
        return max_segments
    return 1 + int((max_segments - 1) * min(1.0, step / (curriculum * steps)))


def fit_recurrent(seed=0, memory="linear", steps=800, segment=16, max_segments=8, n_digits=3,
                  batch_size=32, lr=3e-3, curriculum=0.5, eval_every=200, **model):
    """Train a RecurrentTransformer on segment passkeys: each step draws 1 .. m segments, m
    growing from 1 to max_segments over the first curriculum * steps steps (a same-segment
    lookup is learnt first; where the needle is out of a model's reach the example only teaches
    it to guess), and a gap per prompt (loss on the key digits only). Records whole-key hits by
    gap at max_segments (uniform filler as in training), with the unseen zipf filler, and at
    twice the trained length; the gates sigmoid(beta) during training (Infini). Returns
    (model, metrics)."""
    from lcviz.train import train_loop  # the shared loop (imports nothing of this module)
    check_int("steps", steps, minimum=1)
    check_int("max_segments", max_segments, minimum=1)
    seed_everything(check_int("seed", seed, minimum=0))
    config = RecurrentConfig(vocab_size=passkey_vocab_size(), segment=segment, memory=memory,
                             **model)
    net = RecurrentTransformer(config)
    generator = torch.Generator().manual_seed(seed)

    def batch(step):
        most = curriculum_segments(step, steps, max_segments, curriculum)
        n_segments = int(torch.randint(1, most + 1, (1,), generator=generator))
        prompts = segment_passkey(batch_size, n_segments, segment, n_digits=n_digits,
                                  generator=generator)
        return prompts.x, prompts.y

    gate_history = []

    def evaluate():
        if config.infini:
            gate_history.append(net.gates().tolist())
        hits = accuracy_by_gap(net, max_segments, n=50, seed=99, n_digits=n_digits)
        return sum(h for h, _ in hits.values()) / sum(n for _, n in hits.values())

    start, cpu_start = time.perf_counter(), time.process_time()
    history = train_loop(net, batch, steps, lr=lr, warmup=30, evaluate=evaluate,
                         eval_every=eval_every)
    loop_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    longer = 2 * max_segments
    metrics = {
        "task": {"segment": segment, "max_segments": max_segments, "n_digits": n_digits,
                 "batch_size": batch_size, "curriculum": curriculum, "eval": PASSKEY_EVAL},
        "by_gap": accuracy_by_gap(net, max_segments, n_digits=n_digits),
        "zipf_by_gap": accuracy_by_gap(net, max_segments, filler="zipf", n_digits=n_digits),
        "longer_segments": longer,
        "longer_by_gap": accuracy_by_gap(net, longer, n_digits=n_digits, gaps=sorted(
            {g for g in (0, 1, 2, 4, 8, 12) if g < longer} | {longer - 1})),
        "by_segments": by_segments(net, SEGMENT_COUNTS, gap=1, n_digits=n_digits),
        "gates": net.gates().tolist() if config.infini else None,
        "gate_history": gate_history or None,
        "loop_seconds": round(loop_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "history": history}
    return net, metrics


# ---------------------------------------------------------------- checkpoints and benchmark

RECIPE_NAMES = {kind: f"recurrent-{kind}" for kind in MEMORY_KINDS}  # data/<name>.pt per kind


def load_model(name):
    """(RecurrentTransformer in eval mode, info dict) from data/<name>.pt, written by
    `python -m lcviz.train <name>`; a missing file raises FileNotFoundError naming it."""
    from lcviz.checkpoints import load_weights
    return load_weights(name, lambda saved: RecurrentTransformer(RecurrentConfig(**saved["config"])))


@torch.no_grad()
def token_times(model, length, block=512, seed=0):
    """Read `length` random tokens one at a time, as in generation, timing every token: for
    each block of `block` tokens the median per token of the wall time and of the CPU time
    (process time: what the token cost, even on a machine busy with other work), and the
    numbers the state holds after the block. Returns {"kind", "position": [tokens read before
    each block], "ms_per_token", "cpu_ms_per_token", "state_numel"}."""
    check_int("length", length, minimum=1)
    check_int("block", block, minimum=1, maximum=length)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    idx = torch.randint(0, model.config.vocab_size, (1, length), generator=generator)
    model.stream(idx[:, :min(block, 64)], chunk=1)  # warm-up
    state = model.empty_state(1, capacity=length)
    row = {"kind": model.config.memory, "position": [], "ms_per_token": [],
           "cpu_ms_per_token": [], "state_numel": []}
    for start in range(0, length, block):
        wall, cpu = [], []
        for t in range(start, min(start + block, length)):
            begin, begin_cpu = time.perf_counter(), time.process_time()
            model.stream(idx[:, t:t + 1], state=state)
            wall.append(time.perf_counter() - begin)
            cpu.append(time.process_time() - begin_cpu)
        row["position"].append(start)
        row["ms_per_token"].append(1e3 * sorted(wall)[len(wall) // 2])
        row["cpu_ms_per_token"].append(1e3 * sorted(cpu)[len(cpu) // 2])
        row["state_numel"].append(state_numel(state))
    return row


def benchmark(length=8192, block=512, n=400):
    """`python -m lcviz.bench recurrent`: the memory retrieval table (no training), whole-key
    passkey accuracy by gap of every shipped model on n fresh prompts per gap, and the time per
    token while reading `length` tokens one by one (flat for the segment models, growing for
    full attention's KV cache). Returns the results dict (saved as data/bench-recurrent.json)."""
    results = {"retrieval": {"d_k": 32, "rows": retrieval_table(d_k=32)}}
    passkey = {}
    config = None
    for kind, name in RECIPE_NAMES.items():
        try:
            model, info = load_model(name)
        except FileNotFoundError as missing:
            passkey[kind] = {"missing": str(missing)}
            continue
        config = model.config
        segments = info["metrics"]["task"]["max_segments"]
        passkey[kind] = {"recipe": name, "n_segments": segments,
                         "by_gap": accuracy_by_gap(model, segments, n=n, seed=4321)}
        print(f"{name}: {passkey[kind]['by_gap']}", flush=True)
    results["passkey"] = passkey
    config = config or RecurrentConfig(vocab_size=passkey_vocab_size())
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the process time is the token's own cost
    try:
        for kind in MEMORY_KINDS:
            seed_everything(0)
            model = RecurrentTransformer(RecurrentConfig(**{**config.to_dict(), "memory": kind}))
            row = token_times(model.eval(), length, block)
            for clock in ("ms_per_token", "cpu_ms_per_token"):
                row[f"{clock}_last_over_first"] = row[clock][-1] / row[clock][0]
            print(f"{kind}: {row['cpu_ms_per_token'][0]:.3f} -> {row['cpu_ms_per_token'][-1]:.3f} "
                  f"CPU ms per token, state {row['state_numel'][0]} -> {row['state_numel'][-1]}",
                  flush=True)
            rows.append(row)
    finally:
        torch.set_num_threads(threads)
    results["token_times"] = {"length": length, "block": block, "batch": 1, "threads": 1,
                              "rows": rows}
    return results
