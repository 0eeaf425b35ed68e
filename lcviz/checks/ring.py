"""Exercise checkers of topic 09 ring attention (see lcviz.checks.core for how a check reports)."""

import torch

from lcviz import ring
from lcviz.checks.core import run_check


def _close(got, want, atol=1e-5):
    """None when got equals want: same shape, the same infinities, finite values within atol."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if torch.isnan(got).any():
        where = tuple(int(i) for i in torch.nonzero(torch.isnan(got))[0])
        return f"nan at index {where} (expected {want[where].item():.6g}): an overflow or 0/0?"
    same_inf = torch.isinf(want) & (got == want)
    diff = torch.where(same_inf, 0.0, (got.double() - want.double()).abs())
    if diff.max() > atol:
        worst = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
        return (f"largest difference {diff.max().item():.3g} (allowed {atol:g}) at index {worst}:"
                f" got {got[worst].item():.6g}, expected {want[worst].item():.6g}")
    return None


def _compare_merge(got, want):
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return f"expected a tuple (out, lse), got {type(got).__name__}"
    for name, g, w in zip(("out", "lse"), got, want):
        problem = _close(g, w)
        if problem:
            return f"{name}: {problem}"
    return None


def _merge_cases():
    g = torch.Generator().manual_seed(9)

    def block(rows, keys, scale=1.0):  # (out, lse) of 1 batch, 1 head, `rows` queries
        q = torch.randn(1, 1, rows, 4, generator=g) * scale
        k, v = torch.randn(1, 1, keys, 4, generator=g), torch.randn(1, 1, keys, 4, generator=g)
        return ring.block_attention(q, k, v)

    out, lse = block(3, 5)
    second_out, second_lse = block(3, 2)
    big_out, big_lse = block(3, 4, scale=60.0)  # scores in the hundreds: e^score overflows
    other_out, other_lse = block(3, 6, scale=60.0)
    nothing = (torch.zeros(1, 1, 3, 4), torch.full((1, 1, 3), float("-inf")))
    half = (torch.zeros(1, 1, 3, 4), torch.tensor([[[0.3, float("-inf"), 1.0]]]))
    return [{"out": out, "lse": lse, "block_out": second_out, "block_lse": second_lse},
            {"out": big_out, "lse": big_lse, "block_out": other_out, "block_lse": other_lse},
            {"out": nothing[0], "lse": nothing[1], "block_out": out, "block_lse": lse},
            {"out": out, "lse": lse, "block_out": half[0], "block_lse": half[1]},
            {"out": nothing[0], "lse": nothing[1], "block_out": nothing[0],
             "block_lse": nothing[1]}]


def check_ring_merge(fn):
    """fn(out, lse, block_out, block_lse) -> (out, lse): fold one block's attention output
    (B, H, n, D) and log-sum-exp (B, H, n) into the running ones, as lcviz.ring.merge does.
    Cases include scores in the hundreds (e^lse overflows fp32), rows that have seen no key yet
    (lse = -inf, out = 0) and a merge of two such rows."""
    return run_check("check_ring_merge", fn, _merge_cases(), ring.merge, compare=_compare_merge)


def _compare_table(got, want):
    try:
        got = torch.as_tensor(got, dtype=torch.long)
    except (TypeError, ValueError, RuntimeError) as error:
        return f"could not read your answer as a table of integers: {error}"
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)} (rank x step)"
    wrong = (got != want).nonzero()
    if len(wrong):
        r, s = wrong[0].tolist()
        return (f"{len(wrong)} of {want.numel()} entries differ; first: rank {r}, step {s}: got "
                f"{int(got[r, s])}, expected {int(want[r, s])}")
    return None


def check_zigzag_work(fn):
    """fn(length, world) -> (W, W) table (tensor or nested list): the query-key pairs rank r
    computes at step s with causal attention and the zigzag layout, for lengths divisible by
    2 * world. Compared with lcviz.ring.pairs_per_step."""
    cases = [{"length": t, "world": w} for t, w in ((64, 4), (4096, 8), (48, 3), (16, 1), (2, 1))]
    return run_check("check_zigzag_work", fn, cases,
                     lambda length, world: ring.pairs_per_step(length, world, "zigzag"),
                     compare=_compare_table)


def _striped_reference(n_queries, n_keys, rank, source, world):
    q_pos = torch.arange(n_queries) * world + rank
    k_pos = torch.arange(n_keys) * world + source
    return k_pos[None, :] <= q_pos[:, None]


def _compare_mask(got, want):
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
        return "expected a bool tensor (True = may attend)"
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    wrong = (got != want).nonzero()
    if len(wrong):
        a, b = wrong[0].tolist()
        return (f"{len(wrong)} entries differ; first: local query {a}, local key {b}: got "
                f"{bool(got[a, b])}, expected {bool(want[a, b])}")
    return None


def check_striped_mask(fn):
    """fn(n_queries, n_keys, rank, source, world) -> (n_queries, n_keys) bool: the causal mask
    between rank `rank`'s striped queries (local index a is token rank + a * world) and the keys
    of rank `source` (local index b is token source + b * world), from local indices only."""
    cases = [{"n_queries": nq, "n_keys": nk, "rank": r, "source": s, "world": w}
             for nq, nk, r, s, w in ((4, 4, 1, 3, 4), (4, 4, 3, 1, 4), (5, 5, 2, 2, 4),
                                     (3, 2, 2, 0, 3), (2, 3, 0, 2, 3), (6, 6, 0, 0, 1))]
    return run_check("check_striped_mask", fn, cases, _striped_reference, compare=_compare_mask)
