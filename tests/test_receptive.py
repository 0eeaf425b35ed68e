import pytest
import torch

import lcviz
from lcviz import masks
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.receptive import (
    effective_receptive_field,
    reachability,
    reachable_by_search,
    reachable_from,
    receptive_field_sizes,
    window_receptive_field,
)


@pytest.mark.parametrize("pattern, params", [
    ("sliding window", {"window": 3}), ("dilated window", {"window": 3, "dilation": 3}),
    ("strided", {"stride": 4}), ("global + local", {"window": 2, "n_global": 2}),
    ("random", {"window": 2, "n_random": 1}), ("block local", {"block": 5}),
])
@pytest.mark.parametrize("layers", [1, 2, 4])
def test_matrix_reachability_equals_breadth_first_search(pattern, params, layers):
    mask = masks.build_mask(pattern, 30, **params)
    reach = reachability(mask, layers)[-1]
    rows = reachable_from(mask, 29, layers)
    for query in (0, 7, 29):
        found = reachable_by_search(mask, query, layers)
        assert set(reach[query].nonzero().flatten().tolist()) == found
    assert torch.equal(rows[-1], reach[29])


@pytest.mark.parametrize("window, layers", [(1, 3), (3, 1), (3, 4), (8, 2), (128, 8)])
def test_window_field_is_layers_times_window_minus_one_plus_one(window, layers):
    length = max(40, layers * (window - 1) + 10)
    sizes = receptive_field_sizes(masks.sliding_window_mask(length, window), layers)
    expected = torch.tensor([window_receptive_field(window, layers, t) for t in range(length)])
    assert torch.equal(sizes[-1], expected)
    assert window_receptive_field(window, layers) == layers * (window - 1) + 1


def test_global_tokens_collapse_the_depth_needed():
    local = masks.sliding_window_mask(64, 4)
    with_global = masks.global_local_mask(64, 4, [0, 40])
    assert receptive_field_sizes(local, 2)[-1, -1] == 7
    assert receptive_field_sizes(with_global, 2)[-1, -1] == 41 + 7  # 0..40 via token 40
    assert receptive_field_sizes(masks.global_local_mask(64, 4, [0]), 2)[-1, -1] == 8  # useless


def test_effective_field_is_zero_outside_the_cone_and_positive_inside():
    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(vocab_size=20, block_size=32, n_layer=2, n_head=2,
                                        n_embd=16, window=4, pos="none"))
    idx = torch.randint(0, 20, (1, 32))
    grads = effective_receptive_field(model, idx, position=20)
    cone = reachable_from(masks.sliding_window_mask(32, 4), 20, 2)[-1]
    assert (grads[~cone] == 0).all() and (grads[cone] > 0).all()
    with pytest.raises(ValueError, match="position must be <= 30, got 31"):
        effective_receptive_field(model, idx, position=31)


def test_bad_arguments():
    with pytest.raises(ValueError, match="layers must be >= 1, got 0"):
        reachability(masks.causal_mask(4), 0)
    with pytest.raises(ValueError, match="square 2-D bool"):
        reachability(torch.ones(3, 4, dtype=torch.bool), 1)
    with pytest.raises(ValueError, match="query must be <= 3, got 4"):
        reachable_from(masks.causal_mask(4), 4, 1)


@pytest.mark.parametrize("layers", [[(4, 1), (4, 4)], [(3, 2), (2, 5)], [(2, 1), (2, 2), (2, 4)]])
def test_stacked_offsets_equal_the_reachability_of_per_layer_masks(layers):
    from lcviz.receptive import reachable_through, stacked_offsets

    T = 64
    layer_masks = [masks.dilated_window_mask(T, w, d) for w, d in layers]
    row = reachable_through(layer_masks, T - 1)
    assert sorted(T - 1 - int(j) for j in row.nonzero().flatten()) == stacked_offsets(layers)
    # one pattern for every layer: the same as matrix powers
    assert torch.equal(reachable_through([layer_masks[0]] * 3, T - 1),
                       reachable_from(layer_masks[0], T - 1, 3)[-1])


def test_stacked_offsets_checker_fails_the_contiguous_guess():
    from lcviz import checks
    from lcviz.receptive import stacked_offsets

    assert checks.check_stacked_offsets(stacked_offsets).passed
    contiguous = lambda layers: list(range(sum((w - 1) * d for w, d in layers) + 1))
    result = checks.check_stacked_offsets(contiguous)
    assert result.status == "fail" and "3 of 6 cases pass" in result.message
    assert checks.check_stacked_offsets(lambda layers: "0, 1").status == "fail"
