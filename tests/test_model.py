import pytest
import torch
import torch.nn.functional as F

import lcviz
from lcviz.attention import reference_attention
from lcviz.masks import causal_mask, sliding_window_mask
from lcviz.model import ATTENTION_IMPLS, POSITIONS, ModelConfig, TinyTransformer


def small_model(**overrides):
    lcviz.seed_everything(0)
    config = {"vocab_size": 20, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16}
    return TinyTransformer(ModelConfig(**{**config, **overrides}))


@pytest.mark.parametrize("shape", [(1, 1, 1, 4), (2, 3, 7, 8), (1, 4, 33, 16)])
def test_reference_attention_equals_sdpa(shape):
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(*shape, generator=generator) for _ in range(3))
    mask = causal_mask(shape[2])
    out, weights = reference_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(shape[:3]))
    assert (weights[..., ~mask] == 0).all()


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("window", [None, 3])
def test_shapes_and_attention_impls_agree(pos, window):
    idx = torch.randint(0, 20, (3, 11))
    outs = []
    for impl in ATTENTION_IMPLS:
        model = small_model(pos=pos, window=window, attn_impl=impl)
        logits, loss = model(idx, idx)
        assert logits.shape == (3, 11, 20) and loss.shape == ()
        outs.append(logits)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("window", [None, 4])
def test_causality_future_tokens_never_change_the_past(pos, window):
    model = small_model(pos=pos, window=window)
    idx = torch.randint(0, 20, (2, 12))
    changed = idx.clone()
    t = 6
    changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 20
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], atol=0, rtol=0)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_window_hides_tokens_beyond_its_reach():
    # One layer with window 3: output t depends on inputs t-2..t only.
    model = small_model(n_layer=1, window=3, pos="none")
    idx = torch.randint(0, 20, (1, 10))
    changed = idx.clone()
    changed[0, 2] = (changed[0, 2] + 1) % 20
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[0, 5:], b[0, 5:])  # position 2 is out of reach from t >= 5
    assert not torch.allclose(a[0, 2:5], b[0, 2:5])


def test_attention_maps_follow_the_mask():
    model = small_model(window=3)
    maps = model.attention_maps(torch.randint(0, 20, (1, 9)))
    allowed = sliding_window_mask(9, 3)
    assert len(maps) == 2 and maps[0].shape == (1, 2, 9, 9)
    for weights in maps:
        assert (weights[..., ~allowed] == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 9))


def test_custom_mask_and_positions_are_used():
    model = small_model(pos="learned")
    idx = torch.randint(0, 20, (1, 5))
    a, _ = model(idx, positions=torch.tensor([0, 2, 4, 6, 8]))
    b, _ = model(idx)
    assert not torch.allclose(a, b)
    diag = torch.eye(5, dtype=torch.bool)
    maps = model.attention_maps(idx, attn_mask=diag)
    assert torch.equal(maps[0][0, 0], torch.eye(5))


def test_same_seed_same_weights_and_different_seed_differs():
    a, b = small_model(), small_model()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    lcviz.seed_everything(1)
    c = TinyTransformer(a.config)
    assert not torch.equal(a.tok_emb.weight, c.tok_emb.weight)


def test_generate_is_reproducible_and_greedy_is_deterministic():
    model = small_model()
    start = torch.zeros(1, 1, dtype=torch.long)
    g1 = model.generate(start, 8, generator=torch.Generator().manual_seed(3))
    g2 = model.generate(start, 8, generator=torch.Generator().manual_seed(3))
    assert g1.shape == (1, 9) and torch.equal(g1, g2)
    assert torch.equal(model.generate(start, 5, temperature=0), model.generate(start, 5, temperature=0))


@pytest.mark.parametrize("overrides, words", [
    ({"n_embd": 30, "n_head": 4}, "n_head (4) must divide n_embd (30)"),
    ({"n_layer": 0}, "n_layer must be >= 1, got 0"),
    ({"n_embd": -8}, "n_embd must be >= 1, got -8"),
    ({"vocab_size": 0}, "vocab_size must be >= 1"),
    ({"block_size": 2.5}, "block_size must be an integer"),
    ({"pos": "alibi"}, "pos must be one of"),
    ({"attn_impl": "flash"}, "attn_impl must be one of"),
    ({"window": 0}, "window must be >= 1, got 0"),
    ({"dropout": 1.5}, "dropout must be <= 0.99"),
    ({"pos": "rope", "n_embd": 12, "n_head": 4}, "even head_dim"),
])
def test_bad_config_raises_clear_error(overrides, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        small_model(**overrides)


def test_learned_positions_refuse_lengths_beyond_the_table():
    model = small_model(block_size=8)
    with pytest.raises(ValueError, match="learned positions cover 0..7"):
        model(torch.zeros(1, 9, dtype=torch.long))
