"""TinyTransformer: a decoder-only transformer written out by hand, in the style of nanoGPT.

Radford et al. 2019 (GPT-2) layout with pre-LayerNorm blocks (Xiong et al. 2020, arXiv
2002.04745). The attention mask and the positional encoding are pluggable, because the course
swaps them: full causal or sliding-window masks (lcviz.masks), and no / learned / sinusoidal /
rotary positions (lcviz.rope). Shapes: B batch, T time, C width, H heads, D = C // H.
"""

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lcviz import rope
from lcviz.attention import reference_attention
from lcviz.masks import causal_mask, sliding_window_mask
from lcviz.validate import check_choice, check_float, check_int

IGNORE_INDEX = -100  # target id that cross_entropy skips: positions without a loss (prompt tokens)
POSITIONS = ("none", "learned", "sinusoidal", "rope")
ATTENTION_IMPLS = ("reference", "sdpa")


@dataclass
class ModelConfig:
    vocab_size: int = 98        # lcviz.tokenize.CharTokenizer's fixed printable-ASCII vocabulary
    block_size: int = 128       # training length; the table size of learned positions
    n_layer: int = 2            # transformer blocks
    n_head: int = 4             # attention heads per block; must divide n_embd
    n_embd: int = 64            # width C of the residual stream
    mlp_ratio: int = 4          # MLP hidden width = mlp_ratio * n_embd
    dropout: float = 0.0        # off by default: tiny models on tiny data rarely need it
    pos: str = "learned"        # "none" | "learned" | "sinusoidal" | "rope"
    window: int | None = None   # causal sliding window w (query sees itself + w-1 before); None = full
    attn_impl: str = "sdpa"     # "reference" (explicit softmax math) | "sdpa" (torch's kernel)
    rope_type: str = "default"  # lcviz.rope.rope_frequencies method, used when pos == "rope"
    rope_base: float = 10000.0  # RoPE base theta (Su et al. 2021)
    rope_params: dict = field(default_factory=dict)  # scaling keys, e.g. {"factor": 2.0}

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, minimum=1)
        check_int("block_size", self.block_size, minimum=1)
        check_int("n_layer", self.n_layer, minimum=1)
        check_int("n_head", self.n_head, minimum=1)
        check_int("n_embd", self.n_embd, minimum=1)
        check_int("mlp_ratio", self.mlp_ratio, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=0.99)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head ({self.n_head}) must divide n_embd ({self.n_embd}); "
                             f"try n_head in {[h for h in range(1, 9) if self.n_embd % h == 0]}")
        check_choice("pos", self.pos, POSITIONS)
        check_choice("attn_impl", self.attn_impl, ATTENTION_IMPLS)
        if self.window is not None:
            check_int("window", self.window, minimum=1)
        if self.pos == "rope":
            if self.head_dim % 2:
                raise ValueError(f"pos='rope' needs an even head_dim (n_embd // n_head), "
                                 f"got {self.head_dim}")
            rope.rope_frequencies(self.rope_type, self.head_dim, self.rope_base,
                                  seq_len=self.block_size, **self.rope_params)  # validates

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def to_dict(self):
        return asdict(self)


def sinusoidal_positions(positions, width):
    """Fixed sin/cos table of Vaswani et al. 2017, sec. 3.5: (T,) positions -> (T, width)."""
    check_int("width", width, minimum=2)
    half = width // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half) / half)  # (width/2,)
    angle = positions.float()[:, None] * freq[None, :]  # (T, width/2)
    table = torch.zeros(positions.numel(), width)
    table[:, 0:2 * half:2] = torch.sin(angle)
    table[:, 1:2 * half:2] = torch.cos(angle)
    return table  # (T, width)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x, mask, positions, keep_weights=False):
        """x (B, T, C); mask bool (T, T) or (B, 1, T, T); positions (T,) absolute token positions.
        Returns (y (B, T, C), attention weights (B, H, T, T) or None)."""
        y, weights, _ = self.forward_with_kv(x, mask, positions, keep_weights)
        return y, weights

    def forward_with_kv(self, x, mask, positions, keep_weights=False, past=None):
        """forward with a KV cache: past is None or the keys and values (k, v), each
        (B, H, P, D) with RoPE applied, of P earlier entries, and mask is then (T, P + T).
        Returns (y, weights, the (k, v) of these T tokens) for the caller to cache."""
        B, T, C = x.shape
        H, D = self.config.n_head, self.config.head_dim
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        if self.config.pos == "rope":
            q, k = rope.apply_rope_to_qk(q, k, positions, self.config)
        new_kv = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, P+T, D)
        weights = None
        if keep_weights or self.config.attn_impl == "reference":
            y, weights = reference_attention(q, k, v, mask)  # (B, H, T, D), (B, H, T, T)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        y = F.dropout(self.proj(y), self.dropout, self.training)
        return y, weights, new_kv


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.n_embd, config.mlp_ratio * config.n_embd)
        self.down = nn.Linear(config.mlp_ratio * config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return F.dropout(self.down(F.gelu(self.up(x))), self.dropout, self.training)


class Block(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x)) (GPT-2; the 2017 paper was post-LN)."""

    def __init__(self, config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, mask, positions, keep_weights=False):
        x, weights, _ = self.forward_with_kv(x, mask, positions, keep_weights)
        return x, weights

    def forward_with_kv(self, x, mask, positions, keep_weights=False, past=None):
        """forward with a KV cache (see CausalSelfAttention): -> (x, weights, (k, v))."""
        a, weights, new_kv = self.attn.forward_with_kv(self.ln1(x), mask, positions, keep_weights,
                                                       past)
        x = x + a  # (B, T, C)
        x = x + self.mlp(self.ln2(x))  # (B, T, C)
        return x, weights, new_kv


class TinyTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd) if config.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying (Press & Wolf 2017)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def with_config(self, **changes):
        """A copy with the same weights and some config fields changed (e.g. a RoPE scaling:
        with_config(rope_type="linear", rope_params={"factor": 4.0})), in eval mode."""
        clone = TinyTransformer(ModelConfig(**{**self.config.to_dict(), **changes}))
        clone.load_state_dict(self.state_dict())
        return clone.eval()

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def default_mask(self, length):
        """The config's mask: full causal, or a causal sliding window of config.window."""
        if self.config.window is None or self.config.window >= length:
            return causal_mask(length)
        return sliding_window_mask(length, self.config.window)  # (T, T)

    def embed(self, idx, positions=None):
        """Token (+ absolute position) embeddings: idx (B, T) -> x (B, T, C)."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        T = idx.size(1)
        positions = self._positions(T, positions)
        x = self.tok_emb(idx)  # (B, T, C)
        if self.config.pos == "learned":
            if int(positions.max()) >= self.config.block_size:
                raise ValueError(f"learned positions cover 0..{self.config.block_size - 1}; got "
                                 f"position {int(positions.max())}: use pos='rope' or a shorter input")
            x = x + self.pos_emb(positions)  # (T, C) broadcast over B
        elif self.config.pos == "sinusoidal":
            x = x + sinusoidal_positions(positions, self.config.n_embd).to(x.dtype)
        return x

    def run_blocks(self, x, attn_mask=None, positions=None, keep_weights=False):
        """Blocks + final LayerNorm + head: x (B, T, C) -> logits (B, T, V), per-layer weights."""
        T = x.size(1)
        positions = self._positions(T, positions)
        mask = self.default_mask(T) if attn_mask is None else attn_mask
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, mask, positions, keep_weights)
            all_weights.append(weights)
        return self.head(self.ln_f(x)), all_weights  # (B, T, V), L x (B, H, T, T)

    def forward(self, idx, targets=None, attn_mask=None, positions=None):
        """idx (B, T) -> (logits (B, T, V), loss or None). targets IGNORE_INDEX are ignored in the loss.

        attn_mask: optional bool (T, T) (True = may attend) replacing the config's mask.
        positions: optional (T,) absolute positions (default 0..T-1), e.g. after compression.
        """
        x = self.embed(idx, positions)
        logits, _ = self.run_blocks(x, attn_mask, positions)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx, attn_mask=None, positions=None):
        """Attention weights of every layer for a visualisation: list of L tensors (B, H, T, T)."""
        x = self.embed(idx, positions)
        _, weights = self.run_blocks(x, attn_mask, positions, keep_weights=True)
        return weights

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, generator=None):
        """Sample max_new_tokens after idx (B, T); temperature 0 means greedy (argmax)."""
        check_int("max_new_tokens", max_new_tokens, minimum=0)
        check_float("temperature", temperature, minimum=0.0)
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size:] if self.config.pos == "learned" else idx
            logits, _ = self(context)
            logits = logits[:, -1, :]  # (B, V) the next-token scores
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
        return idx

    def _positions(self, length, positions):
        if positions is None:
            return torch.arange(length)
        if positions.shape != (length,):
            raise ValueError(f"positions must have shape ({length},), got {tuple(positions.shape)}")
        return positions
