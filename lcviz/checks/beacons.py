"""Exercise checkers of topic 07 activation beacons (see lcviz.checks.core for how a check reports)."""

from lcviz import beacons
from lcviz.checks.core import compare_values, run_check


def check_beacon_mask(fn):
    """fn(n_tokens, chunk, ratio) -> bool (S, S) mask of the interleaved raw + beacon sequence
    (lcviz.beacons's rule: no token sees a raw token of an earlier chunk)."""
    cases = [{"n_tokens": n, "chunk": c, "ratio": r} for n, c, r in ((8, 4, 2), (10, 4, 4), (12, 3, 1))]
    return run_check("check_beacon_mask", fn, cases,
                     lambda n_tokens, chunk, ratio: beacons.beacon_mask(
                         beacons.beacon_layout(n_tokens, chunk, ratio)))


def check_kv_entries(fn):
    """fn(n_tokens, chunk, ratio) -> how many keys/values the last token attends to."""
    cases = [{"n_tokens": n, "chunk": c, "ratio": r}
             for n, c, r in ((128, 16, 2), (128, 16, 16), (130, 16, 4), (16, 16, 8), (17, 16, 8))]
    return run_check("check_kv_entries", fn, cases, beacons.kv_entries, compare=compare_values)


def check_window_field_at_budget(fn):
    """fn(n_tokens, chunk, ratio, layers) -> the receptive field (in tokens) of a sliding-window
    model with `layers` layers whose window equals the beacons' KV budget at the last token."""
    from lcviz.receptive import window_receptive_field

    cases = [{"n_tokens": n, "chunk": c, "ratio": r, "layers": L}
             for n, c, r, L in ((256, 16, 2, 2), (256, 16, 8, 2), (256, 16, 16, 4), (100, 10, 5, 1),
                                (16, 16, 4, 3))]
    return run_check("check_window_field_at_budget", fn, cases,
                     lambda n_tokens, chunk, ratio, layers: window_receptive_field(
                         beacons.kv_entries(n_tokens, chunk, ratio), layers),
                     compare=compare_values)
