"""Exercise checkers of topic 01 tiny transformer (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import masks
from lcviz.attention import reference_attention
from lcviz.checks.core import run_check


def _qkv_cases():
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 1, 4, 8), (2, 3, 7, 16), (1, 2, 1, 4)]
    return [{name: torch.randn(*shape, generator=generator) for name in "qkv"} for shape in shapes]


def check_attention(fn):
    """fn(q, k, v) -> softmax(q k^T / sqrt(D)) v for (B, H, T, D) tensors, no mask."""
    return run_check("check_attention", fn, _qkv_cases(),
                     lambda q, k, v: reference_attention(q, k, v)[0])


def check_causal_attention(fn):
    """fn(q, k, v) -> causal attention: query t sees keys 0..t only."""
    def reference(q, k, v):
        return reference_attention(q, k, v, masks.causal_mask(q.size(-2)))[0]
    return run_check("check_causal_attention", fn, _qkv_cases(), reference)


def check_causal_mask(fn):
    """fn(length) -> bool (length, length) lower-triangular mask, True = may attend."""
    cases = [{"length": n} for n in (5, 1, 2, 8)]
    return run_check("check_causal_mask", fn, cases, masks.causal_mask)
