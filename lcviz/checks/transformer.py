"""Exercise checkers of topic 01 tiny transformer (see lcviz.checks.core for how a check reports)."""

import torch
import torch.nn.functional as F

from lcviz import masks
from lcviz.attention import reference_attention
from lcviz.checks.core import run_check
from lcviz.transformer import initial_loss_estimate


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


def check_initial_loss(fn):
    """fn(vocab_size, gap, repeat_rate) -> the expected loss of a model that scores the current
    token `gap` nats above all others, when the next token repeats it with prob. repeat_rate."""
    cases = [{"vocab_size": v, "gap": a, "repeat_rate": r}
             for v, a, r in ((98, 0.55, 0.25), (98, 0.0, 0.3), (2, 1.0, 0.5), (1000, 3.0, 0.9),
                             (98, 2.0, 0.0))]
    return run_check("check_initial_loss", fn, cases, initial_loss_estimate,
                     compare=lambda got, want: None if isinstance(got, (int, float, torch.Tensor))
                     and abs(float(got) - want) <= 1e-6 else f"got {got!r}, expected {want:.6f}")


def _gqa_cases():
    generator = torch.Generator().manual_seed(1)
    shapes = [(1, 4, 5, 8, 2), (2, 6, 7, 4, 3), (1, 4, 6, 4, 1), (1, 3, 4, 2, 3)]  # B, H, T, D, G
    return [{"q": torch.randn(b, h, t, d, generator=generator),
             "k": torch.randn(b, g, t, d, generator=generator),
             "v": torch.randn(b, g, t, d, generator=generator)} for b, h, t, d, g in shapes]


def check_grouped_query_attention(fn):
    """fn(q, k, v) -> causal attention with q (B, H, T, D) and k, v (B, G, T, D): query heads
    h = 0 .. H-1 in G consecutive groups of H // G share one key/value head (GQA, arXiv
    2305.13245); checked against torch's scaled_dot_product_attention(enable_gqa=True)."""
    return run_check("check_grouped_query_attention", fn, _gqa_cases(),
                     lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                    enable_gqa=True))
