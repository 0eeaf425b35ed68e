"""Exercise checkers of topic 10 sub-quadratic attention (see lcviz.checks.core for how a check
reports)."""

import torch

from lcviz import subquadratic
from lcviz.checks.core import compare_values, run_check


def _linear_cases():
    """(q, k, v) of a few shapes: a single token, D != M, several heads, a longer sequence."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 1, 5, 3, 3), (1, 1, 1, 4, 2), (2, 3, 7, 4, 6), (1, 2, 33, 8, 8)]
    return [{"q": torch.randn(B, H, T, D, generator=generator, dtype=torch.float64),
             "k": torch.randn(B, H, T, D, generator=generator, dtype=torch.float64),
             "v": torch.randn(B, H, T, M, generator=generator, dtype=torch.float64)}
            for B, H, T, D, M in shapes]


def check_linear_recurrent(fn):
    """fn(q, k, v) -> (B, H, T, M): causal linear attention (elu+1 features, eps 1e-6, no
    1/sqrt(D)) computed by a loop over time that carries only a D x M state S and a D vector z
    per head. Compared with the masked quadratic form."""
    return run_check("check_linear_recurrent", fn, _linear_cases(),
                     subquadratic.linear_attention_quadratic)


def check_failing_pairs(fn):
    """fn(key_dim) -> the fewest key-value pairs that a linear memory with key_dim-dimensional
    keys cannot store exactly. Compared with the number measured by least squares
    (lcviz.subquadratic.first_failing_pairs)."""
    cases = [{"key_dim": d} for d in (4, 1, 2, 8, 16, 32)]
    return run_check("check_failing_pairs", fn, cases, subquadratic.first_failing_pairs,
                     compare=compare_values)


def check_best_block(fn):
    """fn(length) -> the block size b (a divisor of length) for which causal two-level
    hierarchical attention computes the fewest scores, T (2b + T/b); the smaller b on a tie."""
    cases = [{"length": t} for t in (4096, 1024, 100, 12, 1, 7, 30000)]
    return run_check("check_best_block", fn, cases, subquadratic.best_block,
                     compare=compare_values)
