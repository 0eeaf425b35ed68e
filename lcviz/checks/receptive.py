"""Exercise checkers of topic 03 receptive fields (see lcviz.checks.core for how a check reports)."""

from lcviz import masks, receptive
from lcviz.checks.core import compare_values, run_check


def check_receptive_field(fn):
    """fn(window, layers) -> int: inputs the last position of a long sequence reaches through
    `layers` causal sliding-window layers of `window`."""
    cases = [{"window": w, "layers": n} for w, n in ((3, 1), (3, 2), (128, 4), (1, 5), (8, 8))]
    return run_check("check_receptive_field", fn, cases, receptive.window_receptive_field,
                     compare=compare_values)


def check_reachability(fn):
    """fn(mask, layers) -> bool (T, T): True where input j reaches output t after `layers`
    layers (the last matrix of lcviz.receptive.reachability)."""
    cases = [{"mask": masks.sliding_window_mask(10, 3), "layers": 2},
             {"mask": masks.dilated_window_mask(12, 2, 3), "layers": 3},
             {"mask": masks.causal_mask(5), "layers": 1}]
    return run_check("check_reachability", fn, cases,
                     lambda mask, layers: receptive.reachability(mask, layers)[-1])


def _compare_offsets(got, want):
    try:
        got = sorted(int(o) for o in got)
    except (TypeError, ValueError):
        return f"expected a list of integer offsets, got {got!r}"
    if got == want:
        return None
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    return (f"got {len(got)} offsets, expected {len(want)}; cannot be reached: {extra[:8]}"
            f"{' ...' if len(extra) > 8 else ''}; missing: {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}")


def check_stacked_offsets(fn):
    """fn(layers) -> sorted offsets back from a query (far from the start) that reach it through
    dilated window layers [(window, dilation), ...], input side first."""
    cases = [{"layers": layers} for layers in ([(4, 1), (4, 4)], [(3, 1)], [(3, 2), (3, 2)],
                                               [(2, 1), (2, 2), (2, 4)], [(4, 3), (2, 1)],
                                               [(2, 5), (3, 1)])]
    return run_check("check_stacked_offsets", fn, cases, receptive.stacked_offsets,
                     compare=_compare_offsets)
