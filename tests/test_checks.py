import math

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
    no_scale = lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v  # noqa: E731
    wrong_axis = lambda q, k, v: torch.softmax(  # noqa: E731
        q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -2) @ v
    for wrong in (no_scale, wrong_axis):
        result = checks.check_attention(wrong)
        assert result.status == "fail" and "largest difference" in result.message
    crashing = lambda q, k, v: q @ k  # noqa: E731  (forgot the transpose)
    assert "raised RuntimeError" in checks.check_attention(crashing).message


def test_check_causal_attention():
    assert checks.check_causal_attention(
        lambda q, k, v: by_hand(q, k, v, causal_mask(q.size(-2)))).passed
    assert not checks.check_causal_attention(by_hand).passed  # forgot the mask
    anti = lambda q, k, v: by_hand(q, k, v, causal_mask(q.size(-2)).T)  # noqa: E731
    assert not checks.check_causal_attention(anti).passed


def test_check_causal_mask_shows_the_differing_row():
    assert checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril()).passed
    strict = checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1))
    assert strict.status == "fail" and "row 0 expected 1" in strict.message
    upper = checks.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).triu())
    assert not upper.passed
    floats = checks.check_causal_mask(lambda n: torch.ones(n, n).tril())
    assert "expected torch.bool" in floats.message
