"""Exercise checkers of topic 06 passkey retrieval (see lcviz.checks.core for how a check reports)."""

from lcviz import passkey
from lcviz.checks.core import compare_values, run_check


def check_passkey_prompt(fn):
    """fn(length, depth, key) -> list of word tokens of the passkey prompt (lcviz.passkey format:
    exactly `length` tokens, needle at the sentence boundary nearest to depth of the filler)."""
    cases = [{"length": n, "depth": d, "key": k}
             for n, d, k in ((62, 0.5, "12345"), (100, 0.0, "90210"), (100, 1.0, "55555"),
                             (150, 0.4, "31415"))]
    return run_check("check_passkey_prompt", fn, cases,
                     lambda length, depth, key: list(passkey.make_passkey(length, depth, key).tokens),
                     compare=compare_token_lists)


def compare_token_lists(got, want):
    got = list(got) if isinstance(got, (list, tuple)) else got
    if not isinstance(got, list):
        return f"expected a list of tokens, got {type(got).__name__}"
    if len(got) != len(want):
        return f"{len(got)} tokens, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return (f"token {i} is {a!r}, expected {b!r}\n got      ...{' '.join(got[max(0, i - 6):i + 6])}"
                    f"\n expected ...{' '.join(want[max(0, i - 6):i + 6])}")
    return None


def check_recoverable(fn):
    """fn(distance, window, layers) -> bool: can a key `distance` tokens back reach the query
    through `layers` causal windows of `window` (window None = full attention)?"""
    cases = [{"distance": d, "window": w, "layers": n}
             for d, w, n in ((15, 16, 1), (16, 16, 1), (30, 16, 2), (31, 16, 2), (61, 16, 4),
                             (500, None, 2), (0, 1, 1), (1, 1, 8))]
    return run_check("check_recoverable", fn, cases, passkey.recoverable, compare=compare_values)
