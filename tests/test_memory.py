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
