"""Exercise checkers of topic 08 streaming and KV-cache eviction (see lcviz.checks.core for how a
check reports)."""

import functools

import torch

from lcviz import streaming
from lcviz.checks.core import compare_tensors, compare_values, run_check


def _rerotate_cases():
    g = torch.Generator().manual_seed(0)
    inv_freq = 1.0 / 10000 ** (torch.arange(0, 4, 2, dtype=torch.float64) / 4)  # (2,)
    wide = 1.0 / 10000 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16)  # (8,)
    cases = []
    for k_shape, old, new, freq in [
        ((1, 1, 5, 4), [0, 1, 6, 7, 8], [0, 1, 2, 3, 4], inv_freq),  # 2 sinks + 3 recent
        ((1, 1, 3, 4), [4, 5, 6], [4, 5, 6], inv_freq),  # nothing moves
        ((1, 1, 3, 4), [0, 1, 2], [3, 4, 5], inv_freq),  # moving right works too
        ((2, 3, 6, 16), [0, 1, 2, 3, 997, 998], [0, 1, 2, 3, 4, 5], wide),  # far positions
    ]:
        old, new = torch.tensor(old), torch.tensor(new)
        raw = torch.randn(*k_shape, generator=g, dtype=torch.float64)
        rotated = streaming.rotate(raw, old, freq)  # keys as a post-RoPE cache holds them
        cases.append({"k_rotated": rotated, "old_positions": old, "new_positions": new,
                      "inv_freq": freq})
    return cases


def check_rerotate(fn):
    """Exercise: fn(k_rotated (..., N, D), old_positions (N,), new_positions (N,), inv_freq (D/2,))
    -> the keys as if RoPE had rotated them at new_positions (fp64, within 1e-6)."""
    return run_check("rerotate", fn, _rerotate_cases(), streaming.rerotate,
                     lambda got, want: compare_tensors(got, want, atol=1e-6))


def check_strided_windows(fn):
    """Exercise: fn(n_tokens, window, stride) -> [(begin, end, first_new)]: inputs ids[begin:end]
    score targets first_new..end; every target 1..n_tokens-1 scored exactly once, each window
    full length when the text allows, the newest targets only."""
    cases = [{"n_tokens": n, "window": w, "stride": s} for n, w, s in
             [(20, 8, 8), (20, 8, 4), (11, 8, 1), (37, 16, 16), (5, 8, 2), (64, 16, 5)]]
    return run_check("strided_windows", fn, cases, streaming.strided_windows,
                     lambda got, want: compare_values([tuple(w) for w in got] if isinstance(
                         got, (list, tuple)) else got, want))


NEEDLE_SETUP = {"model": "rope-charlm", "stream_tokens": 256, "needle": 100, "budget": 32,
                "offset": 2000}
NEEDLE_POLICIES = ("window", "sink", "h2o", "tova", "snapkv")


def needle_policy(name, budget=NEEDLE_SETUP["budget"]):
    """The policy of the needle exercise called `name` (sink: 4 + 28; SnapKV: window 8)."""
    settings = {"sink": {"n_sink": 4}, "snapkv": {"window": 8}}.get(name, {})
    return streaming.Policy(name, budget, **settings)


@functools.cache
def needle_kept(name):
    """Measured truth of the needle exercise: after reading the stream of NEEDLE_SETUP under
    policy `name`, can the last token's query still see the needle's position in any layer and
    head? (SnapKV compresses once, at the end of the stream.)"""
    from lcviz.checkpoints import load_checkpoint
    model, _ = load_checkpoint(NEEDLE_SETUP["model"])
    ids = streaming.held_out_stream(NEEDLE_SETUP["stream_tokens"], NEEDLE_SETUP["offset"])
    result = streaming.stream(model, ids, needle_policy(name), record=True,
                              prompt_length=len(ids) - 1)
    return bool((result.kept[-1] == NEEDLE_SETUP["needle"]).any())


def check_needle_prediction(fn):
    """Exercise: fn(policy name) -> True if you predict that the last token of the stream in
    NEEDLE_SETUP can still see the token at position `needle` under that policy (budget 32),
    False if it was evicted. Each policy is one case; the truth is measured with
    lcviz.streaming.stream."""
    cases = [{"policy": name} for name in NEEDLE_POLICIES]  # truth measured only once asked

    def compare(got, want):
        if not isinstance(got, bool):
            return f"expected True or False, got {got!r}"
        return None if got == want else (f"predicted {'kept' if got else 'evicted'}, measured "
                                         f"{'kept' if want else 'evicted'}")
    return run_check("needle_prediction", fn, cases, needle_kept, compare)
