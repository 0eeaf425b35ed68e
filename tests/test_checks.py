import math
import re

import torch

from lcviz import checks
from lcviz.attention import reference_attention
from lcviz.masks import causal_mask


def stub(*args, **kwargs):
    raise NotImplementedError


def by_hand(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1) @ v


def test_unattempted_stub_is_reported_not_raised(capsys):
    result = checks.check_attention(stub)
    assert result.status == "not attempted" and "not attempted yet" in capsys.readouterr().out


def test_check_attention_passes_reference_and_fails_typical_mistakes(capsys):
    assert checks.check_attention(lambda q, k, v: reference_attention(q, k, v)[0]).passed
    assert checks.check_attention(by_hand).passed
    no_scale = lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v
    wrong_axis = lambda q, k, v: torch.softmax(
        q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -2) @ v
    for wrong in (no_scale, wrong_axis):
        result = checks.check_attention(wrong)
        assert result.status == "fail" and "largest difference" in result.message
    crashing = lambda q, k, v: q @ k
    assert "raised RuntimeError" in checks.check_attention(crashing).message


def test_check_causal_attention():
    assert checks.check_causal_attention(
        lambda q, k, v: by_hand(q, k, v, causal_mask(q.size(-2)))).passed
    assert not checks.check_causal_attention(by_hand).passed  # forgot the mask
    anti = lambda q, k, v: by_hand(q, k, v, causal_mask(q.size(-2)).T)
    assert not checks.check_causal_attention(anti).passed


def test_check_causal_mask_shows_the_differing_row():
    assert checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril()).passed
    strict = checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1))
    assert strict.status == "fail" and "row 0 expected 1" in strict.message
    upper = checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).triu())
    assert not upper.passed
    floats = checks.check_causal_mask(lambda n: torch.ones(n, n).tril())
    assert "expected torch.bool" in floats.message


def test_check_apply_rope_passes_rotate_half_and_fails_interleaved_pairs():
    from lcviz.rope import apply_rope

    assert checks.check_apply_rope(apply_rope).passed

    def interleaved(x, positions, inv_freq):  # the paper's adjacent pairs (2i, 2i+1)
        angle = positions.float()[:, None] * inv_freq  # (T, D/2)
        cos, sin = angle.cos(), angle.sin()
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)

    def wrong_sign(x, positions, inv_freq):  # rotates the other way
        return apply_rope(x, -positions, inv_freq)

    for wrong in (interleaved, wrong_sign):
        result = checks.check_apply_rope(wrong)
        assert result.status == "fail" and "largest difference" in result.message


def test_check_ntk_base():
    assert checks.check_ntk_base(lambda b, s, d: b * s ** (d / (d - 2))).passed
    assert not checks.check_ntk_base(lambda b, s, d: b * s).passed  # forgot the exponent
    assert not checks.check_ntk_base(lambda b, s, d: b * s ** ((d - 2) / d)).passed


def test_check_passkey_prompt_shows_the_first_wrong_token():
    from lcviz.passkey import make_passkey

    assert checks.check_passkey_prompt(lambda n, d, k: list(make_passkey(n, d, k).tokens)).passed
    shifted = checks.check_passkey_prompt(lambda n, d, k: list(make_passkey(n, 1 - d, k).tokens))
    assert shifted.status == "fail" and "token" in shifted.message
    short = checks.check_passkey_prompt(lambda n, d, k: list(make_passkey(n, d, k).tokens)[:-1])
    assert "tokens, expected" in short.message


def test_check_recoverable_fails_the_w_times_l_off_by_one():
    from lcviz.passkey import recoverable

    assert checks.check_recoverable(recoverable).passed
    naive = lambda d, w, n: w is None or d < w * n
    assert not checks.check_recoverable(naive).passed


def test_beacon_checkers_catch_a_mask_that_leaks_raw_tokens_and_an_off_by_one_budget():
    from lcviz.beacons import beacon_layout, beacon_mask, kv_entries
    from lcviz.masks import causal_mask

    assert checks.check_beacon_mask(lambda n, c, r: beacon_mask(beacon_layout(n, c, r))).passed
    leaky = lambda n, c, r: causal_mask(beacon_layout(n, c, r).length)
    assert checks.check_beacon_mask(leaky).status == "fail"
    full_coverage = lambda n, c, r: beacon_mask(beacon_layout(n, c, r, coverage="full"))
    assert checks.check_beacon_mask(full_coverage).status == "fail"  # not the stepwise rule
    assert checks.check_kv_entries(kv_entries).passed
    naive = lambda n, c, r: n // c * (c // r) + n % c
    assert not checks.check_kv_entries(naive).passed
    from lcviz.receptive import window_receptive_field
    field = lambda n, c, r, layers: window_receptive_field(kv_entries(n, c, r), layers)
    assert checks.check_window_field_at_budget(field).passed
    w_times_l = lambda n, c, r, layers: kv_entries(n, c, r) * layers  # one too many per layer
    assert checks.check_window_field_at_budget(w_times_l).status == "fail"


def test_topic_02_to_04_checkers_pass_the_reference_and_fail_typical_mistakes():
    from lcviz import masks, memory, receptive

    def w_times_l(window, layers):  # the w·L shortcut: one too many per layer
        return window * layers

    def dense_window(q, k, v, window):  # forgot that the query sees itself: window + 1 keys
        return by_hand(q, k, v, masks.sliding_window_mask(q.size(-2), min(window + 1, q.size(-2))))

    cases = {
        checks.check_sliding_window_mask: (
            masks.sliding_window_mask,
            lambda n, w: masks.sliding_window_mask(n, min(w + 1, n))),  # w keys back + itself
        checks.check_dilated_window_mask: (
            masks.dilated_window_mask, lambda n, w, d: masks.sliding_window_mask(n, w)),
        checks.check_sliding_window_pairs: (masks.sliding_window_pairs, lambda n, w: n * w),
        checks.check_receptive_field: (receptive.window_receptive_field, w_times_l),
        checks.check_reachability: (
            lambda mask, layers: receptive.reachability(mask, layers)[-1],
            lambda mask, layers: receptive.reachability(mask, 1)[-1]),  # one hop only
        checks.check_sliding_window_attention: (memory.sliding_window_attention, dense_window),
        checks.check_score_matrix_megabytes: (
            memory.score_matrix_megabytes, lambda n, h, b, e: b * h * n * n * e / 1e6),  # MB ≠ MiB
    }
    for checker, (right, wrong) in cases.items():
        assert checker(right).passed, checker.__name__
        result = checker(wrong)
        assert result.status == "fail" and "First failing case" in result.message, checker.__name__


def test_every_checker_of_the_course_is_tested():
    from pathlib import Path

    from lcviz.lazy import public_functions
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    checkers = [n for n in public_functions(Path(checks.__file__).parent) if n.startswith("check_")]
    assert len(checkers) >= 16
    assert [n for n in checkers if not re.search(rf"\b{n}\b", tests)] == []
