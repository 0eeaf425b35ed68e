"""Exercise checkers of topic 04 memory and speed (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import memory
from lcviz.checks.core import compare_values, run_check


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


def _merge_cases():
    generator = torch.Generator().manual_seed(5)
    def tile(n_keys, shift=0.0, masked=False):  # 2 queries: scores (2, S), values (2, S, 3)
        scores = torch.randn(2, n_keys, generator=generator) + shift
        if masked:
            scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool), float("-inf"))
        return memory.softmax_state(scores, torch.randn(2, n_keys, 3, generator=generator))
    return [{"first": tile(4), "second": tile(3, shift=4.0)},  # the second tile has the larger max
            {"first": tile(5, shift=3.0), "second": tile(2)},
            {"first": tile(3), "second": tile(4, masked=True)},  # a tile wholly masked out
            {"first": tile(2, masked=True), "second": tile(2, masked=True)}]  # no key at all


def _compare_states(got, want):
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        return f"expected a tuple (m, l, acc), got {type(got).__name__}"
    for name, g, w in zip(("m", "l", "acc"), got, want):
        if not isinstance(g, torch.Tensor) or g.shape != w.shape:
            return f"{name}: expected a tensor of shape {tuple(w.shape)}, got {g!r}"
        if not torch.allclose(g, w, atol=1e-5, rtol=1e-5):
            return f"{name}: got\n{g}\nexpected\n{w}"
    return None


def check_merge_softmax(fn):
    """fn(first, second) -> (m, l, acc): the online-softmax state of two disjoint key tiles
    merged, each state (m, l, acc) as made by lcviz.memory.softmax_state; acc / l is then the
    softmax-weighted mean of the values over both tiles."""
    return run_check("check_merge_softmax", fn, _merge_cases(), memory.merge_softmax_states,
                     compare=_compare_states)


def check_max_context(fn):
    """fn(megabytes, layers, kv_heads, head_dim) -> the longest context (tokens) whose fp16
    KV cache fits in `megabytes` (MB = 2**20 bytes)."""
    cases = [{"megabytes": mb, "layers": n, "kv_heads": h, "head_dim": d}
             for mb, n, h, d in ((16 * 1024, 32, 8, 128), (16 * 1024, 32, 32, 128),
                                 (1000, 2, 4, 16), (66 * 1024, 80, 8, 128))]
    return run_check("check_max_context", fn, cases, memory.max_context_tokens,
                     compare=compare_values)
