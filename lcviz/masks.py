"""Boolean attention masks, shape (T, T): entry [i, j] is True when query i may attend to key j.

Window semantics used everywhere in lcviz: a causal window of `w` lets a query see itself and
the `w - 1` tokens before it, so row i is True on columns max(0, i - w + 1) .. i.

Every pattern here is causal (no query sees a later key), because the course's models are
decoders; `global_local_mask(..., causal=False)` shows Longformer's encoder form beside it.

For sliders (the app, the notebooks' widgets) there is one entry point:

    build_mask("dilated", length=64, window=8, dilation=2)   # any name in MASK_PATTERNS
    attended_pairs(mask), sparsity(mask)                     # pairs kept, and kept / T**2

MASK_PATTERNS maps each name to its builder and the integer parameters it takes, with a
sensible default and the smallest allowed value of each.
"""

import torch

from lcviz.attention import in_causal_window
from lcviz.validate import check_choice, check_int, check_window


def _positions(length):
    """Query positions (T, 1) and key positions (1, T) in the narrowest integer type that holds
    every difference i - j: the (T, T) arithmetic of a 4,096-token mask then moves a quarter of
    the bytes of int64 (~35 ms instead of ~165 ms on one core)."""
    dtype = torch.int16 if length < 2 ** 15 else torch.int32 if length < 2 ** 31 else torch.int64
    i = torch.arange(length, dtype=dtype)[:, None]  # (T, 1) query positions
    j = torch.arange(length, dtype=dtype)[None, :]  # (1, T) key positions
    return i, j


def _toeplitz(length, allowed):
    """The (T, T) mask of a rule that depends only on the gap i - j (a Toeplitz matrix): the rule
    is evaluated once per gap -(T-1)..T-1 and every row is a shifted view of that one vector,
    copied once (~3 ms for T = 4,096, where the (T, T) arithmetic takes ~50 ms)."""
    gap = torch.arange(length - 1, -length, -1, dtype=torch.int32)  # gap[m] = T - 1 - m
    row = allowed(gap)  # (2T - 1,) bool
    # view[r, j] = row[r + j] = allowed(T - 1 - r - j); flipping the rows (r = T - 1 - i) gives
    # allowed(i - j)
    return row.as_strided((length, length), (1, 1)).flip(0)  # (T, T)


def causal_mask(length):
    """Lower-triangular mask: query i sees keys 0..i (Vaswani et al. 2017, decoder)."""
    check_int("length", length, minimum=1)
    return torch.ones(length, length, dtype=torch.bool).tril()  # (T, T)


def sliding_window_mask(length, window):
    """Causal band of width `window`: query i sees keys i-window+1 .. i (Longformer local attention)."""
    check_window(window, length)
    return _toeplitz(length, lambda gap: in_causal_window(gap, 0, window))  # (T, T)


def dilated_window_mask(length, window, dilation):
    """Dilated sliding window (Longformer, arXiv 2004.05150, sec. 3.1): query i sees the `window`
    keys i, i - d, i - 2d, ..., i - (window - 1)d that exist, for dilation d. d = 1 is the plain
    sliding window; the reach grows to (window - 1)d + 1 positions with the same cost."""
    check_int("length", length, minimum=1)
    check_int("window", window, minimum=1, maximum=length)
    check_int("dilation", dilation, minimum=1)
    return _toeplitz(length, lambda gap: (gap >= 0) & (gap % dilation == 0)
                     & (gap // dilation < window))  # gap: how far back key j is from query i


def strided_mask(length, stride):
    """Sparse Transformer "strided" pattern (Child et al. 2019, arXiv 1904.10509, fig. 3b): the
    union of its two heads, the last `stride` tokens (a window of stride) and every stride-th
    token before (i - j divisible by stride)."""
    check_int("length", length, minimum=1)
    check_int("stride", stride, minimum=1, maximum=length)
    return _toeplitz(length, lambda gap: (gap >= 0) & ((gap < stride) | (gap % stride == 0)))


def fixed_mask(length, stride, summary=1):
    """Sparse Transformer "fixed" pattern (Child et al. 2019, fig. 3c): the union of its two
    heads, every earlier token of the query's own block of `stride`, and the last `summary`
    tokens of every block (the "summary" columns that all later queries read)."""
    check_int("length", length, minimum=1)
    check_int("stride", stride, minimum=1, maximum=length)
    check_int("summary", summary, minimum=1, maximum=stride)
    i, j = _positions(length)
    same_block = (i // stride) == (j // stride)
    summary_column = (j % stride) >= stride - summary
    return (j <= i) & (same_block | summary_column)


def global_local_mask(length, window, global_tokens, causal=True):
    """Longformer sliding window + global attention (Beltagy et al. 2020, arXiv 2004.05150): the
    positions in `global_tokens` attend to all tokens and all tokens attend to them. With
    causal=True (a decoder) "all" means all earlier: a global query sees every key before it, and
    every later query sees a global key. causal=False is the encoder form of the paper."""
    check_window(window, length)
    global_tokens = _check_indices("global_tokens", global_tokens, length)
    i, j = _positions(length)
    is_global = torch.zeros(length, dtype=torch.bool)
    is_global[global_tokens] = True
    band = (i - j).abs() < window if not causal else (j <= i) & (i - j < window)
    mask = band | is_global[:, None] | is_global[None, :]  # (T, T)
    return mask & (j <= i) if causal else mask


def random_mask(length, window, n_random, seed=0):
    """BigBird-style random attention (Zaheer et al. 2020, arXiv 2007.14062), causal: a sliding
    window of `window` plus `n_random` keys drawn at random (seeded) from the earlier keys each
    query does not already see."""
    check_window(window, length)
    check_int("n_random", n_random, minimum=0, maximum=length)
    check_int("seed", seed, minimum=0)
    mask = sliding_window_mask(length, window)
    generator = torch.Generator().manual_seed(seed)
    for query in range(window, length):  # earlier queries already see all their keys
        candidates = torch.arange(query - window + 1)  # keys out of the window: 0 .. i - w
        pick = torch.randperm(len(candidates), generator=generator)[:n_random]
        mask[query, candidates[pick]] = True
    return mask


def block_local_mask(length, block, blocks_back=0):
    """Block-local attention (Image Transformer, Parmar et al. 2018, arXiv 1802.05751; the
    block-sparse layouts of Sparse Transformer): the sequence is cut into blocks of `block`; a
    query sees the earlier keys of its own block and of the `blocks_back` blocks before it."""
    check_int("length", length, minimum=1)
    check_int("block", block, minimum=1, maximum=length)
    check_int("blocks_back", blocks_back, minimum=0)
    i, j = _positions(length)
    return (j <= i) & ((i // block) - (j // block) <= blocks_back)


def _check_indices(name, indices, length):
    if isinstance(indices, int):
        indices = [indices]
    indices = [check_int(f"{name} entry", k, minimum=0) for k in indices]
    outside = [k for k in indices if k >= length]
    if outside:
        raise ValueError(f"{name} must be positions in 0..{length - 1}; got {outside}")
    return indices


def spaced_global_tokens(length, n_global):
    """`n_global` positions spread evenly: the middle of each of n_global equal segments. (In a
    decoder the first tokens would be useless as globals: token 0 sees only itself.)"""
    check_int("length", length, minimum=1)
    check_int("n_global", n_global, minimum=0, maximum=length)
    return sorted({(2 * k + 1) * length // (2 * n_global) for k in range(n_global)})


def spaced_global_local_mask(length, window, n_global):
    """global_local_mask with `n_global` evenly spaced global tokens (the slider form: a count)."""
    return global_local_mask(length, window, spaced_global_tokens(length, n_global))


# name -> (builder(length, **params), {param: (default, minimum)}); maxima depend on length.
MASK_PATTERNS = {
    "causal": (causal_mask, {}),
    "sliding window": (sliding_window_mask, {"window": (4, 1)}),
    "dilated window": (dilated_window_mask, {"window": (4, 1), "dilation": (2, 1)}),
    "strided": (strided_mask, {"stride": (4, 1)}),
    "fixed": (fixed_mask, {"stride": (4, 1), "summary": (1, 1)}),
    "global + local": (spaced_global_local_mask, {"window": (4, 1), "n_global": (1, 0)}),
    "random": (random_mask, {"window": (4, 1), "n_random": (2, 0), "seed": (0, 0)}),
    "block local": (block_local_mask, {"block": (4, 1), "blocks_back": (0, 0)}),
}


def build_mask(pattern, length, **params):
    """The (T, T) mask of MASK_PATTERNS[pattern] with the given integer parameters."""
    check_choice("pattern", pattern, tuple(MASK_PATTERNS))
    builder, spec = MASK_PATTERNS[pattern]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"pattern {pattern!r} takes {sorted(spec) or 'no parameters'}; "
                         f"got unknown {unknown}")
    values = {name: params.get(name, default) for name, (default, _) in spec.items()}
    return builder(length, **values)


def attended_pairs(mask):
    """How many (query, key) pairs a mask keeps: the work and memory of masked attention."""
    if not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.dim() == 2):
        raise ValueError(f"mask must be a 2-D bool tensor, got {type(mask).__name__}"
                         f"{tuple(getattr(mask, 'shape', ()))}")
    return int(mask.count_nonzero())


def sparsity(mask):
    """Fraction of the T x T score matrix a mask keeps (1.0 = dense, non-causal)."""
    return attended_pairs(mask) / mask.numel()


def sliding_window_pairs(length, window):
    """Closed form of attended_pairs(sliding_window_mask(length, window)): sum_i min(i + 1, w)."""
    check_window(window, length)
    return window * length - window * (window - 1) // 2
