"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer", arXiv 2104.09864).

Each pair of dimensions of q and k is rotated by an angle position * inv_freq[i]; the dot product
q_m . k_n then depends only on m - n. lcviz pairs dimension i with i + D/2 (the "rotate_half"
layout of GPT-NeoX and HF Llama) rather than the paper's adjacent pairs (2i, 2i+1).
"""

import torch

from lcviz.validate import check_choice, check_float, check_int

ROPE_TYPES = ("default",)


def rope_frequencies(rope_type, head_dim, base=10000.0, seq_len=None, **params):
    """(inv_freq (D/2,), attention_factor) for a RoPE method; "default" is base^(-2i/D)."""
    check_choice("rope_type", rope_type, ROPE_TYPES)
    check_int("head_dim", head_dim, minimum=2)
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE pairs, got {head_dim}")
    check_float("base", base, greater_than=1.0)
    if params:
        raise ValueError(f"rope_type {rope_type!r} takes no parameters, got {sorted(params)}")
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    return inv_freq.float(), 1.0


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, positions, inv_freq, attention_factor=1.0):
    """Rotate x (B, H, T, D) by position * inv_freq; positions (T,), inv_freq (D/2,)."""
    angle = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, D/2)
    angle = torch.cat([angle, angle], dim=-1)  # (T, D): pair i and i + D/2 share an angle
    cos, sin = angle.cos() * attention_factor, angle.sin() * attention_factor
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def apply_rope_to_qk(q, k, positions, config):
    """Rotate q and k (B, H, T, D) with the frequencies that `config` (a ModelConfig) asks for."""
    seq_len = int(positions.max()) + 1
    inv_freq, factor = rope_frequencies(config.rope_type, config.head_dim, config.rope_base,
                                        seq_len=seq_len, **config.rope_params)
    return apply_rope(q, positions, inv_freq, factor), apply_rope(k, positions, inv_freq, factor)
