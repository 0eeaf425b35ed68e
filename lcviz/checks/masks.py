"""Exercise checkers of topic 02 attention masks (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import masks, receptive
from lcviz.checks.core import compare_values, run_check


def check_sliding_window_mask(fn):
    """fn(length, window) -> bool (T, T): query i sees itself and the window-1 tokens before."""
    cases = [{"length": n, "window": w} for n, w in ((1, 1), (6, 3), (8, 1), (9, 4), (5, 5))]
    return run_check("check_sliding_window_mask", fn, cases, masks.sliding_window_mask)


def check_dilated_window_mask(fn):
    """fn(length, window, dilation) -> bool (T, T): query i sees i, i-d, ..., i-(window-1)d."""
    cases = [{"length": n, "window": w, "dilation": d}
             for n, w, d in ((6, 3, 1), (10, 3, 2), (12, 4, 3), (7, 2, 7))]
    return run_check("check_dilated_window_mask", fn, cases, masks.dilated_window_mask)


def check_sliding_window_pairs(fn):
    """fn(length, window) -> int: how many (query, key) pairs a causal window of w keeps."""
    cases = [{"length": n, "window": w} for n, w in ((6, 3), (1, 1), (100, 7), (50, 50), (9, 2))]
    return run_check("check_sliding_window_pairs", fn, cases, masks.sliding_window_pairs,
                     compare=compare_values)


def check_global_local_pairs(fn):
    """fn(length, window, global_tokens) -> int: the pairs a causal global + local mask keeps
    (lcviz.masks.global_local_mask), counted without building the mask."""
    cases = [{"length": n, "window": w, "global_tokens": g}
             for n, w, g in ((32, 4, [8, 24]), (16, 3, [0]), (20, 5, [2, 3, 15]), (10, 10, [5]),
                             (50, 1, [0, 49]), (12, 2, []))]
    return run_check("check_global_local_pairs", fn, cases,
                     lambda length, window, global_tokens: masks.attended_pairs(
                         masks.global_local_mask(length, window, global_tokens)),
                     compare=compare_values)


def _two_hop_problem(got, case):
    """None when `got` is a causal bool mask within the pair budget through which, after two
    layers, every output reaches every earlier input; else what is wrong."""
    length, budget = case["length"], case["budget"]
    want = (length, length)
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool or tuple(got.shape) != want:
        return (f"expected a bool tensor of shape {want}, got {type(got).__name__} "
                f"{tuple(getattr(got, 'shape', ()))} {getattr(got, 'dtype', '')}")
    future = (got & ~masks.causal_mask(length)).nonzero()
    if len(future):
        i, j = future[0].tolist()
        return f"not causal: query {i} sees the later key {j} ({len(future)} such pairs)"
    pairs = masks.attended_pairs(got)
    if pairs > budget:
        return f"keeps {pairs} pairs, over the budget of {budget}"
    missing = (masks.causal_mask(length) & ~receptive.reachability(got, 2)[-1]).nonzero()
    if len(missing):
        t, j = missing[-1].tolist()
        return (f"{pairs} pairs (budget {budget}), but after 2 layers output {t} does not reach "
                f"input {j} ({len(missing)} (output, input) pairs unreachable)")
    return None


def check_two_hop_mask(fn):
    """fn(length, budget) -> a causal bool (T, T) mask keeping at most `budget` pairs in which,
    after two layers, every position reaches every earlier one (dense causal does it with
    T(T+1)/2 pairs; the budget here is 1.5 T sqrt(T))."""
    cases = [{"length": n, "budget": int(1.5 * n ** 1.5)} for n in (64, 100, 256)]
    return run_check("check_two_hop_mask", fn, cases,
                     lambda length, budget: {"length": length, "budget": budget},
                     compare=_two_hop_problem)
