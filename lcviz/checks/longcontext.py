"""Exercise checkers of topic 12, the long-context benchmark (see lcviz.checks.core)."""

from lcviz import longcontext
from lcviz.checks.core import compare_values, run_check


def _cells(rates):
    return {str(128 * 2 ** i): {"rate": r} for i, r in enumerate(rates)}


def check_effective_length(fn):
    """fn(by_length: {length: {"rate": r}}, threshold) -> RULER's effective context length: the
    largest tested length whose score is >= threshold with every shorter one passing; 0 when
    the shortest fails."""
    cases = [{"by_length": _cells(r), "threshold": t} for r, t in (
        ((1.0, 0.9, 0.5, 0.95), 0.85), ((0.8, 0.9, 0.9, 0.9), 0.85), ((1.0, 1.0, 1.0, 1.0), 0.85),
        ((0.85, 0.85, 0.2, 0.1), 0.85), ((0.7, 0.6, 0.5, 0.4), 0.5), ((0.9, 0.1, 0.9, 0.9), 0.5))]
    return run_check("check_effective_length", fn, cases, longcontext.effective_length,
                     compare=compare_values)


def check_string_match_all(fn):
    """fn(prediction: str, references: list of str) -> the fraction of references that appear
    in the prediction, ignoring case (RULER's string_match_all)."""
    cases = [{"prediction": p, "references": r} for p, r in (
        ("The values are 4021 and 77.", ["4021", "77", "9"]), ("none", ["a1", "b2"]),
        ("KEY-42 key-43", ["key-42", "Key-43"]), ("12345", ["12345"]), ("", ["x"]))]
    return run_check("check_string_match_all", fn, cases, longcontext.string_match_all,
                     compare=compare_values)
