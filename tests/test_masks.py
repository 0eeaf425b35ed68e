import pytest
import torch

from lcviz import masks
from lcviz.masks import MASK_PATTERNS, attended_pairs, build_mask, sliding_window_pairs


def brute(length, allowed):
    """The reference: a (T, T) mask from a per-pair rule, written with plain loops."""
    return torch.tensor([[allowed(i, j) for j in range(length)] for i in range(length)])


def test_textbook_example_window_3_length_6():
    rows = ["".join(str(int(x)) for x in row) for row in masks.sliding_window_mask(6, 3).tolist()]
    assert rows == ["100000", "110000", "111000", "011100", "001110", "000111"]


@pytest.mark.parametrize("length", [1, 5, 16, 33])
def test_every_pattern_against_a_brute_force_rule(length):
    w, d, s = min(4, length), 2, min(3, length)
    cases = {
        masks.causal_mask(length): lambda i, j: j <= i,
        masks.sliding_window_mask(length, w): lambda i, j: 0 <= i - j < w,
        masks.dilated_window_mask(length, w, d): lambda i, j: any(i - n * d == j for n in range(w)),
        masks.strided_mask(length, s): lambda i, j: j <= i and (i - j < s or (i - j) % s == 0),
        masks.fixed_mask(length, s, 1): lambda i, j: j <= i and (i // s == j // s or j % s == s - 1),
        masks.global_local_mask(length, w, [0]): lambda i, j: j <= i and (i - j < w or j == 0),
        masks.block_local_mask(length, s, 1): lambda i, j: j <= i and i // s - j // s <= 1,
    }
    for got, rule in cases.items():
        assert torch.equal(got, brute(length, rule))


def test_global_tokens_see_and_are_seen_by_all():
    encoder = masks.global_local_mask(10, 2, [3], causal=False)
    assert encoder[3].all() and encoder[:, 3].all()
    decoder = masks.global_local_mask(10, 2, [3])
    assert decoder[3, :4].all() and decoder[3:, 3].all() and not decoder[3, 4:].any()


def test_spaced_global_tokens():
    assert masks.spaced_global_tokens(64, 2) == [16, 48]
    assert masks.spaced_global_tokens(10, 0) == []
    mask = build_mask("global + local", 64, window=3, n_global=2)
    assert torch.equal(mask, masks.global_local_mask(64, 3, [16, 48]))


def test_random_mask_is_seeded_causal_and_adds_n_random_keys():
    a, b = masks.random_mask(32, 4, 3, seed=7), masks.random_mask(32, 4, 3, seed=7)
    assert torch.equal(a, b) and not torch.equal(a, masks.random_mask(32, 4, 3, seed=8))
    assert not a.triu(1).any()
    window = masks.sliding_window_mask(32, 4)
    assert (a & ~window).sum(-1)[7:].eq(3).all()  # 3 extra keys once 3 are out of the window
    assert (a | window).equal(a)


@pytest.mark.parametrize("pattern", list(MASK_PATTERNS))
def test_dispatcher_defaults_are_causal_with_a_true_diagonal(pattern):
    mask = build_mask(pattern, 24)
    assert mask.shape == (24, 24) and mask.dtype == torch.bool
    assert not mask.triu(1).any() and mask.diagonal().all()


@pytest.mark.parametrize("length, window", [(1, 1), (6, 3), (100, 7), (50, 50)])
def test_closed_form_pair_counts(length, window):
    assert attended_pairs(masks.sliding_window_mask(length, window)) == \
        sliding_window_pairs(length, window)
    assert attended_pairs(masks.causal_mask(length)) == length * (length + 1) // 2
    assert masks.sparsity(masks.causal_mask(length)) == pytest.approx((length + 1) / (2 * length))


@pytest.mark.parametrize("call, words", [
    (lambda: masks.sliding_window_mask(8, 0), "window must be >= 1, got 0"),
    (lambda: masks.sliding_window_mask(8, -2), "window must be >= 1, got -2"),
    (lambda: masks.sliding_window_mask(8, 2.5), "window must be an integer, got 2.5"),
    (lambda: masks.sliding_window_mask(8, 9), "window must be <= 8, got 9"),
    (lambda: masks.strided_mask(8, 0), "stride must be >= 1, got 0"),
    (lambda: masks.dilated_window_mask(8, 2, 0), "dilation must be >= 1, got 0"),
    (lambda: masks.global_local_mask(8, 2, [1, 8]), r"global_tokens must be positions in 0..7; got \[8\]"),
    (lambda: masks.causal_mask(0), "length must be >= 1, got 0"),
    (lambda: build_mask("diagonal", 8), "pattern must be one of"),
    (lambda: build_mask("causal", 8, window=3), r"takes no parameters; got unknown \['window'\]"),
    (lambda: attended_pairs(torch.ones(3, 3)), "mask must be a 2-D bool tensor"),
])
def test_bad_arguments_raise_clear_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_global_local_pairs_and_two_hop_mask_checkers():
    from lcviz import checks, receptive

    exact = lambda n, w, g: attended_pairs(masks.global_local_mask(n, w, g))
    assert checks.check_global_local_pairs(exact).passed

    def no_overlap(n, w, g):  # adds every global row and column, counting global-global twice
        return sliding_window_pairs(n, w) + sum(
            k + 1 - min(k + 1, w) + n - k - min(n - k, w) for k in g)

    result = checks.check_global_local_pairs(no_overlap)
    assert result.status == "fail" and "got 172, expected 171" in result.message

    assert checks.check_two_hop_mask(lambda n, budget: masks.fixed_mask(n, round(n ** 0.5))).passed
    assert checks.check_two_hop_mask(lambda n, budget: masks.strided_mask(n, round(n ** 0.5))).passed
    dense = checks.check_two_hop_mask(lambda n, budget: masks.causal_mask(n))
    assert "keeps 2080 pairs, over the budget of 768" in dense.message
    window = checks.check_two_hop_mask(lambda n, budget: masks.sliding_window_mask(n, 8))
    assert "does not reach input" in window.message
    future = checks.check_two_hop_mask(lambda n, budget: masks.fixed_mask(n, 8).T.contiguous())
    assert "not causal" in future.message
    # the fixed pattern the checker accepts really reaches everything: brute-force search
    assert receptive.reachable_by_search(masks.fixed_mask(64, 8), 63, 2) == set(range(64))


def test_random_mask_by_hand_equals_the_library():
    length, window, n_random, seed = 20, 4, 2, 3
    mask = masks.sliding_window_mask(length, window)
    generator = torch.Generator().manual_seed(seed)
    for query in range(window, length):
        pick = torch.randperm(query - window + 1, generator=generator)[:n_random]
        mask[query, pick] = True
    assert torch.equal(mask, masks.random_mask(length, window, n_random, seed=seed))
