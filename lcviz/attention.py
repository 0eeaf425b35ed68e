"""Attention written out by hand, so the course can hold it beside torch's fused kernel.

All tensors are (B, H, T, D): batch, heads, time, head dimension.
"""

import math

import torch
import torch.nn.functional as F

from lcviz.validate import check_int, check_window


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


def _check_qkv(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D) of one shape; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")


def sliding_window_attention(q, k, v, window):
    """Causal sliding-window attention that never builds a T x T matrix: memory O(T w).

    Same numbers as reference_attention with masks.sliding_window_mask(T, window) (Longformer,
    Beltagy et al. 2020, arXiv 2004.05150). Queries go in blocks of `window`: the block of
    queries s .. s + w - 1 can only see keys s - w + 1 .. s + w - 1, so it scores w queries
    against at most 2w - 1 keys. Over T / w blocks that is about 2 T w scores instead of T^2,
    and only one block's (w, 2w) scores exist at a time. q, k, v (B, H, T, D) -> (B, H, T, D).
    """
    _check_qkv(q, k, v)
    B, H, T, D = q.shape
    w = check_window(window, T)
    out = torch.empty_like(q)  # (B, H, T, D)
    for start in range(0, T, w):
        end = min(start + w, T)
        first_key = max(0, start - w + 1)
        query_pos = torch.arange(start, end)[:, None]  # (w, 1)
        key_pos = torch.arange(first_key, end)[None, :]  # (1, <= 2w - 1)
        allowed = (key_pos <= query_pos) & (query_pos - key_pos < w)  # (w, S) the window
        scores = q[:, :, start:end] @ k[:, :, first_key:end].transpose(-1, -2)  # (B, H, w, S)
        scores = (scores / math.sqrt(D)).masked_fill_(~allowed, float("-inf"))
        out[:, :, start:end] = torch.softmax(scores, dim=-1) @ v[:, :, first_key:end]
    return out  # (B, H, T, D)


def tiled_attention(q, k, v, block_size=64, window=None):
    """Causal (optionally sliding-window) attention, tile by tile, with an online softmax.

    The FlashAttention idea (Dao et al. 2022, arXiv 2205.14135; online softmax of Milakov &
    Gimelshein 2018, arXiv 1805.02867) in readable torch: for each tile of queries, visit the
    key tiles it can see one at a time, keeping per query a running max m, a running sum
    l = sum exp(score - m) and a running weighted sum of values, rescaled whenever m grows.
    Tiles wholly in the future (or wholly out of the window) are skipped. Only one
    (block_size, block_size) tile of scores exists at a time, never T x T, and the result equals
    softmax attention up to float rounding. q, k, v (B, H, T, D) -> (B, H, T, D).
    """
    _check_qkv(q, k, v)
    B, H, T, D = q.shape
    bs = check_int("block_size", block_size, minimum=1)
    reach = T if window is None else check_window(window, T)
    out = torch.empty_like(q)
    for q_start in range(0, T, bs):
        q_end = min(q_start + bs, T)
        query_pos = torch.arange(q_start, q_end)[:, None]  # (Q, 1)
        running_max = q.new_full((B, H, q_end - q_start, 1), float("-inf"))  # m
        running_sum = q.new_zeros((B, H, q_end - q_start, 1))  # l
        acc = q.new_zeros((B, H, q_end - q_start, D))  # sum exp(score - m) v
        first_tile = max(0, q_start - reach + 1) // bs * bs  # earliest tile any query sees
        for k_start in range(first_tile, q_end, bs):
            k_end = min(k_start + bs, T)
            key_pos = torch.arange(k_start, k_end)[None, :]  # (1, S)
            allowed = (key_pos <= query_pos) & (query_pos - key_pos < reach)  # (Q, S)
            scores = q[:, :, q_start:q_end] @ k[:, :, k_start:k_end].transpose(-1, -2)
            scores = (scores / math.sqrt(D)).masked_fill_(~allowed, float("-inf"))  # (B, H, Q, S)
            new_max = torch.maximum(running_max, scores.amax(-1, keepdim=True))
            safe_max = new_max.masked_fill(new_max == float("-inf"), 0.0)  # rows with no key yet
            p = torch.exp(scores - safe_max)  # (B, H, Q, S)
            rescale = torch.exp(running_max - safe_max)  # (B, H, Q, 1) shrink the old sums
            running_sum = running_sum * rescale + p.sum(-1, keepdim=True)
            acc = acc * rescale + p @ v[:, :, k_start:k_end]
            running_max = new_max
        out[:, :, q_start:q_end] = acc / running_sum
    return out  # (B, H, T, D)


def score_matrix_megabytes(length, heads, batch=1, bytes_per_number=4):
    """Size of a dense (B, H, T, T) attention score matrix in MB (2**20 bytes): O(T^2)."""
    for name, value in (("length", length), ("heads", heads), ("batch", batch),
                        ("bytes_per_number", bytes_per_number)):
        check_int(name, value, minimum=1)
    return batch * heads * length * length * bytes_per_number / 2**20


def kv_cache_megabytes(length, layers, heads, head_dim, batch=1, bytes_per_number=2):
    """Size of a decoder's KV cache in MB: a key and a value vector per token, head and layer,
    2 B L H T D numbers: O(T). Defaults to 2-byte (bf16/fp16) numbers, as served models use."""
    for name, value in (("length", length), ("layers", layers), ("heads", heads),
                        ("head_dim", head_dim), ("batch", batch),
                        ("bytes_per_number", bytes_per_number)):
        check_int(name, value, minimum=1)
    return 2 * batch * layers * heads * length * head_dim * bytes_per_number / 2**20
