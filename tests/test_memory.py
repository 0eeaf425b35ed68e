import pytest
import torch
import torch.nn.functional as F

from lcviz.attention import reference_attention
from lcviz.masks import causal_mask, sliding_window_mask
from lcviz.memory import measure_attention, sliding_window_attention, tiled_attention

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 8), (1, 2, 7, 3), (1, 2, 37, 8), (2, 1, 64, 64), (1, 1, 100, 1),
          (1, 2, 50, 16), (1, 1, 33, 33)]  # (B, H, T, window): T=1, T<w, T % w != 0, w=1, w=T


def qkv(B, H, T, D=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=generator) for _ in range(3)]


@pytest.mark.parametrize("B, H, T, window", SHAPES)
def test_sliding_window_equals_dense_masked_sdpa(B, H, T, window):
    window = min(window, T)
    q, k, v = qkv(B, H, T)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, window))
    torch.testing.assert_close(sliding_window_attention(q, k, v, window), dense, atol=1e-5, rtol=0)
    tiled = tiled_attention(q, k, v, block_size=5, window=window)
    torch.testing.assert_close(tiled, dense, atol=1e-5, rtol=0)


@pytest.mark.parametrize("T, block_size", [(1, 1), (9, 4), (64, 64), (65, 16), (30, 100)])
def test_tiled_causal_attention_equals_reference(T, block_size):
    q, k, v = qkv(2, 2, T, seed=T)
    expected, _ = reference_attention(q, k, v, causal_mask(T))
    torch.testing.assert_close(tiled_attention(q, k, v, block_size), expected, atol=1e-5, rtol=0)


def test_gradients_flow_and_match_dense():
    q, k, v = (t.requires_grad_() for t in qkv(1, 2, 21, seed=3))
    sliding_window_attention(q, k, v, 4).square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    dense, _ = reference_attention(q, k, v, sliding_window_mask(21, 4))
    dense.square().sum().backward()
    for got, t in zip(grads, (q, k, v)):
        torch.testing.assert_close(got, t.grad, atol=1e-5, rtol=0)


def test_bad_arguments():
    q, k, v = qkv(1, 1, 8)
    with pytest.raises(ValueError, match="window must be <= 8, got 9"):
        sliding_window_attention(q, k, v, 9)
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        tiled_attention(q, k, v, 4, window=0)
    with pytest.raises(ValueError, match="one shape"):
        sliding_window_attention(q, k[:, :, :4], v, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        measure_attention("flash", 64)


def test_benchmark_child_process_measures_time_and_memory():
    row = measure_attention("lcviz sliding window", 256, window=32, repeats=1)
    assert row["seconds"] > 0 and row["peak_mb"] >= 0 and row["compile_seconds"] is None


def test_kv_cache_with_grouped_query_attention():
    from lcviz.memory import kv_cache_megabytes, max_context_tokens

    mha = kv_cache_megabytes(131072, layers=32, heads=32, head_dim=128)
    gqa = kv_cache_megabytes(131072, layers=32, heads=32, head_dim=128, kv_heads=8)
    assert mha == 64 * 1024 and gqa == mha / 4  # Llama-2-7B vs Mistral-7B / Llama-3-8B, fp16
    assert max_context_tokens(gqa, layers=32, kv_heads=8, head_dim=128) == 131072
    assert max_context_tokens(gqa - 1e-3, layers=32, kv_heads=8, head_dim=128) == 131071
    with pytest.raises(ValueError, match="kv_heads must divide heads"):
        kv_cache_megabytes(16, 1, heads=6, head_dim=4, kv_heads=4)


@pytest.mark.parametrize("split", [1, 3, 7])
def test_merging_two_softmax_tiles_gives_the_softmax_of_both(split):
    from lcviz.memory import merge_softmax_states, softmax_state

    generator = torch.Generator().manual_seed(split)
    scores, values = torch.randn(3, 8, generator=generator) * 4, torch.randn(3, 8, 5, generator=generator)
    scores[0, :split] = float("-inf")  # a row whose first tile is wholly masked
    m, l, acc = merge_softmax_states(softmax_state(scores[:, :split], values[:, :split]),
                                     softmax_state(scores[:, split:], values[:, split:]))
    expected = (torch.softmax(scores, -1)[..., None] * values).sum(-2)  # (3, 5)
    torch.testing.assert_close(acc / l, expected)
    torch.testing.assert_close(m, scores.amax(-1, keepdim=True))
    empty = softmax_state(torch.full((2, 3), float("-inf")), torch.ones(2, 3, 4))
    merged = merge_softmax_states(empty, empty)
    assert merged[1].eq(0).all() and merged[2].eq(0).all() and not merged[2].isnan().any()


def test_merge_and_max_context_checkers_fail_typical_mistakes():
    from lcviz import checks
    from lcviz.memory import max_context_tokens, merge_softmax_states

    assert checks.check_merge_softmax(merge_softmax_states).passed
    no_rescale = lambda a, b: (torch.maximum(a[0], b[0]), a[1] + b[1], a[2] + b[2])
    result = checks.check_merge_softmax(no_rescale)
    assert result.status == "fail" and "First failing case" in result.message

    def nan_when_empty(a, b):  # exp(-inf - -inf) = nan when neither tile has a key
        m = torch.maximum(a[0], b[0])
        s1, s2 = torch.exp(a[0] - m), torch.exp(b[0] - m)
        return m, a[1] * s1 + b[1] * s2, a[2] * s1 + b[2] * s2

    assert "3 of 4 cases pass" in checks.check_merge_softmax(nan_when_empty).message
    assert checks.check_max_context(max_context_tokens).passed
    only_keys = lambda mb, n, h, d: int(mb * 2**20 // (n * h * d * 2))  # forgot the values
    assert "got 262144, expected 131072" in checks.check_max_context(only_keys).message


def test_dense_variants_are_measured_like_the_benchmark():
    row = measure_attention("dense SDPA, float mask", 256, window=32, repeats=1)
    assert row["seconds"] > 0 and row["peak_mb"] >= 0
