"""Exercise checkers of topic 02 attention masks (see lcviz.checks.core for how a check reports)."""

from lcviz import masks
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
