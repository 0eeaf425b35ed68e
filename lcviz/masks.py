"""Boolean attention masks, shape (T, T): entry [i, j] is True when query i may attend to key j.

Window semantics used everywhere in lcviz: a causal window of `w` lets a query see itself and
the `w - 1` tokens before it, so row i is True on columns max(0, i - w + 1) .. i.
"""

import torch

from lcviz.validate import check_int, check_window


def causal_mask(length):
    """Lower-triangular mask: query i sees keys 0..i (Vaswani et al. 2017, decoder)."""
    check_int("length", length, minimum=1)
    return torch.ones(length, length, dtype=torch.bool).tril()  # (T, T)


def sliding_window_mask(length, window):
    """Causal band of width `window`: query i sees keys i-window+1 .. i (Longformer local attention)."""
    check_window(window, length)
    i = torch.arange(length)[:, None]  # (T, 1) query positions
    j = torch.arange(length)[None, :]  # (1, T) key positions
    return (j <= i) & (i - j < window)  # (T, T)
