"""Exercise checkers of topic 05 RoPE scaling (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import rope
from lcviz.checks.core import run_check


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
                     rope.ntk_base,
                     compare=lambda got, want: None if abs(got - want) <= 1e-6 * want
                     else f"got {got!r}, expected {want!r}")
