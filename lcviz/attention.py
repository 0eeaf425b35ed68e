"""Attention written out by hand, so the course can hold it beside torch's fused kernel, and the
one causal-window rule every mask and blocked attention in lcviz uses.

All tensors are (B, H, T, D): batch, heads, time, head dimension.
"""

import math

import torch


def reference_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(D)) v with an optional bool mask (True = may attend).

    Vaswani et al. 2017, "Attention Is All You Need", eq. 1. Returns (output, weights):
    output (B, H, T, D) and the attention weights (B, H, T, S) that a heatmap draws.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, S), each row sums to 1
    return weights @ v, weights  # (B, H, T, D), (B, H, T, S)


def in_causal_window(query_pos, key_pos, window=None):
    """The one window rule of lcviz: query i may attend to key j when j <= i and i - j < window
    (itself and the window - 1 tokens before it, HF transformers' `sliding_window`). window None
    is plain causal attention. Works elementwise on ints or broadcasting tensors of positions."""
    causal = key_pos <= query_pos
    return causal if window is None else causal & (query_pos - key_pos < window)
