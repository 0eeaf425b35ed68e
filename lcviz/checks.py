"""Exercise checkers: `check_<name>(your_function)` prints a pass or a precise, friendly diff.

An unattempted stub (it raises NotImplementedError) prints "not attempted yet" and does not stop
the notebook. Every checker runs the learner's function on a few cases, compares with the lcviz
reference and returns a CheckResult (status "pass", "fail" or "not attempted") for tests.
"""

from dataclasses import dataclass

import torch

from lcviz import attention, beacon, masks, receptive, rope, tasks
from lcviz.attention import reference_attention


@dataclass
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "not attempted"
    message: str

    @property
    def passed(self):
        return self.status == "pass"

    def _ipython_display_(self):
        pass  # the checker already printed its message; don't print it twice in a notebook


def describe(args):
    """Short text of a case's arguments: tensors by shape, others by value."""
    def one(value):
        if isinstance(value, torch.Tensor):
            return f"tensor{tuple(value.shape)}"
        return repr(value)
    return ", ".join(f"{k}={one(v)}" for k, v in args.items())


def compare_tensors(got, want, atol=1e-5):
    """None when got matches want (shape, and values within atol); else a sentence saying how."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if want.dtype == torch.bool:
        if got.dtype != torch.bool:
            return f"dtype {got.dtype}, expected torch.bool (True = may attend)"
        wrong = (got != want).nonzero()
        if len(wrong):
            i, j = wrong[0].tolist()
            return (f"{len(wrong)} entries differ; first at row {i}, column {j}: got "
                    f"{bool(got[i, j])}, expected {bool(want[i, j])}\n"
                    f"row {i} got      {bool_row(got[i])}\nrow {i} expected {bool_row(want[i])}")
        return None
    diff = (got.double() - want.double()).abs()
    if torch.isnan(got).any() or diff.max() > atol:
        worst = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if not torch.isnan(
            diff.max()) else tuple(int(i) for i in torch.nonzero(torch.isnan(got))[0])
        return (f"largest difference {diff.max().item():.3g} (allowed {atol:g}) at index {worst}:"
                f" got {got[worst].item():.6g}, expected {want[worst].item():.6g}")
    return None


def bool_row(row):
    return "".join("1" if v else "0" for v in row.tolist())


def compare_values(got, want):
    return None if got == want else f"got {got!r}, expected {want!r}"


def run_check(name, fn, cases, reference, compare=compare_tensors):
    """Call fn and reference on each case (a dict of arguments, passed in order); print a verdict."""
    for case in cases:
        try:
            got = fn(*case.values())
        except NotImplementedError:
            return report(name, "not attempted", f"{name}: not attempted yet - fill in the "
                          "function, run its cell, then run this check again.")
        except Exception as error:  # a learner's bug: show it as a diff, not a traceback
            return report(name, "fail", f"{name}: with {describe(case)} your function raised "
                          f"{type(error).__name__}: {error}")
        problem = compare(got, reference(*case.values()))
        if problem:
            return report(name, "fail", f"{name}: not yet. With {describe(case)}:\n{problem}")
    return report(name, "pass", f"{name}: pass ({len(cases)} cases match the reference)")


def report(name, status, message):
    print(("✅ " if status == "pass" else "❌ " if status == "fail" else "⏳ ") + message)
    return CheckResult(name, status, message)


# ---------------------------------------------------------------- 01 tiny transformer

def _qkv_cases():
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 1, 4, 8), (2, 3, 7, 16), (1, 2, 1, 4)]
    return [{name: torch.randn(*shape, generator=generator) for name in "qkv"} for shape in shapes]


def check_attention(fn):
    """fn(q, k, v) -> softmax(q k^T / sqrt(D)) v for (B, H, T, D) tensors, no mask."""
    return run_check("check_attention", fn, _qkv_cases(),
                     lambda q, k, v: reference_attention(q, k, v)[0])


def check_causal_attention(fn):
    """fn(q, k, v) -> causal attention: query t sees keys 0..t only."""
    def reference(q, k, v):
        return reference_attention(q, k, v, masks.causal_mask(q.size(-2)))[0]
    return run_check("check_causal_attention", fn, _qkv_cases(), reference)


def check_causal_mask(fn):
    """fn(length) -> bool (length, length) lower-triangular mask, True = may attend."""
    cases = [{"length": n} for n in (1, 2, 5, 8)]
    return run_check("check_causal_mask", fn, cases, masks.causal_mask)


# ---------------------------------------------------------------- 02 attention masks

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


# ---------------------------------------------------------------- 03 receptive fields

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


# ---------------------------------------------------------------- 04 memory and speed

def check_sliding_window_attention(fn):
    """fn(q, k, v, window) -> (B, H, T, D): causal sliding-window attention."""
    generator = torch.Generator().manual_seed(4)
    cases = [{"q": torch.randn(*shape, generator=generator),
              "k": torch.randn(*shape, generator=generator),
              "v": torch.randn(*shape, generator=generator), "window": w}
             for shape, w in (((1, 1, 6, 4), 3), ((2, 2, 11, 8), 4), ((1, 1, 5, 2), 1))]
    return run_check("check_sliding_window_attention", fn, cases,
                     lambda q, k, v, window: attention.sliding_window_attention(q, k, v, window))


def check_score_matrix_megabytes(fn):
    """fn(length, heads, batch, bytes_per_number) -> MB of a dense (B, H, T, T) score matrix."""
    cases = [{"length": n, "heads": h, "batch": b, "bytes_per_number": e}
             for n, h, b, e in ((1024, 1, 1, 4), (16384, 4, 1, 4), (4096, 32, 2, 2))]
    return run_check("check_score_matrix_megabytes", fn, cases, attention.score_matrix_megabytes,
                     compare=lambda got, want: None if abs(got - want) <= 1e-6 * want
                     else f"got {got!r} MB, expected {want!r} MB")


# ---------------------------------------------------------------- 05 RoPE scaling

def check_apply_rope(fn):
    """fn(x, positions, inv_freq) -> x (B, H, T, D) rotated by RoPE in the rotate_half layout:
    dimension i pairs with i + D/2 and turns by positions * inv_freq[i]."""
    generator = torch.Generator().manual_seed(5)
    cases = [{"x": torch.randn(*shape, generator=generator), "positions": positions,
              "inv_freq": rope.default_frequencies(shape[-1], 10000.0).float()}
             for shape, positions in (((1, 1, 3, 4), torch.arange(3)), ((2, 2, 5, 8), torch.arange(5)),
                                      ((1, 1, 4, 6), torch.tensor([0, 7, 100, 1000])))]
    return run_check("check_apply_rope", fn, cases,
                     lambda x, positions, inv_freq: rope.apply_rope(x, positions, inv_freq))


def check_ntk_base(fn):
    """fn(base, factor, head_dim) -> the NTK-aware base: base * factor ** (D / (D - 2))."""
    cases = [{"base": b, "factor": s, "head_dim": d}
             for b, s, d in ((10000.0, 2.0, 64), (10000.0, 8.0, 128), (500000.0, 4.0, 32))]
    return run_check("check_ntk_base", fn, cases,
                     lambda base, factor, head_dim: base * factor ** (head_dim / (head_dim - 2)),
                     compare=lambda got, want: None if abs(got - want) <= 1e-6 * want
                     else f"got {got!r}, expected {want!r}")


# ---------------------------------------------------------------- 06 passkey retrieval

def check_passkey_prompt(fn):
    """fn(length, depth, key) -> list of word tokens of the passkey prompt (lcviz.tasks format:
    exactly `length` tokens, needle at the sentence boundary nearest to depth of the filler)."""
    cases = [{"length": n, "depth": d, "key": k}
             for n, d, k in ((62, 0.5, "12345"), (100, 0.0, "90210"), (100, 1.0, "55555"),
                             (150, 0.4, "31415"))]
    return run_check("check_passkey_prompt", fn, cases,
                     lambda length, depth, key: list(tasks.make_passkey(length, depth, key).tokens),
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
    return run_check("check_recoverable", fn, cases, tasks.recoverable, compare=compare_values)



# ---------------------------------------------------------------- 07 activation beacons

def check_beacon_mask(fn):
    """fn(n_tokens, chunk, ratio) -> bool (S, S) mask of the interleaved raw + beacon sequence
    (lcviz.beacon's rule: no token sees a raw token of an earlier chunk)."""
    cases = [{"n_tokens": n, "chunk": c, "ratio": r} for n, c, r in ((8, 4, 2), (10, 4, 4), (12, 3, 1))]
    return run_check("check_beacon_mask", fn, cases,
                     lambda n_tokens, chunk, ratio: beacon.beacon_mask(
                         beacon.beacon_layout(n_tokens, chunk, ratio)))


def check_kv_entries(fn):
    """fn(n_tokens, chunk, ratio) -> how many keys/values the last token attends to."""
    cases = [{"n_tokens": n, "chunk": c, "ratio": r}
             for n, c, r in ((128, 16, 2), (128, 16, 16), (130, 16, 4), (16, 16, 8), (17, 16, 8))]
    return run_check("check_kv_entries", fn, cases, beacon.kv_entries, compare=compare_values)
