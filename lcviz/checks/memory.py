"""Exercise checkers of topic 04 memory and speed (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import memory
from lcviz.checks.core import run_check


def check_sliding_window_attention(fn):
    """fn(q, k, v, window) -> (B, H, T, D): causal sliding-window attention."""
    generator = torch.Generator().manual_seed(4)
    cases = [{"q": torch.randn(*shape, generator=generator),
              "k": torch.randn(*shape, generator=generator),
              "v": torch.randn(*shape, generator=generator), "window": w}
             for shape, w in (((1, 1, 6, 4), 3), ((2, 2, 11, 8), 4), ((1, 1, 5, 2), 1))]
    return run_check("check_sliding_window_attention", fn, cases,
                     lambda q, k, v, window: memory.sliding_window_attention(q, k, v, window))


def check_score_matrix_megabytes(fn):
    """fn(length, heads, batch, bytes_per_number) -> MB of a dense (B, H, T, T) score matrix."""
    cases = [{"length": n, "heads": h, "batch": b, "bytes_per_number": e}
             for n, h, b, e in ((1024, 1, 1, 4), (16384, 4, 1, 4), (4096, 32, 2, 2))]
    return run_check("check_score_matrix_megabytes", fn, cases, memory.score_matrix_megabytes,
                     compare=lambda got, want: None if abs(got - want) <= 1e-6 * want
                     else f"got {got!r} MB, expected {want!r} MB")
