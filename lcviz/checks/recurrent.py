"""Exercise checkers of topic 11 recurrent memory across segments (see lcviz.checks.core for how
a check reports)."""

import torch

from lcviz import recurrent
from lcviz.checks.core import compare_tensors, compare_values, run_check


def _delta_cases():
    """(M, z, phi_k, v): an empty memory first, then memories that already hold a segment."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for B, H, d_k, d_v, S, filled in ((1, 1, 3, 2, 2, True), (1, 1, 4, 3, 3, False),
                                      (2, 2, 4, 4, 5, True), (1, 3, 8, 6, 1, True)):
        memory = recurrent.empty_memory(B, H, d_k, d_v)
        if filled:
            memory = recurrent.memory_update(
                memory, recurrent.sigma(torch.randn(B, H, 4, d_k, generator=generator)),
                torch.randn(B, H, 4, d_v, generator=generator), "linear")
        cases.append({"M": memory.M, "z": memory.z,
                      "phi_k": recurrent.sigma(torch.randn(B, H, S, d_k, generator=generator)),
                      "v": torch.randn(B, H, S, d_v, generator=generator)})
    return cases


def _compare_memory(got, want):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (M_new, z_new), got {type(got).__name__}"
    for name, g, w in (("M_new", got[0], want[0]), ("z_new", got[1], want[1])):
        problem = compare_tensors(g, w, atol=1e-4)
        if problem:
            return f"{name}: {problem}"
    return None


def check_delta_update(fn):
    """fn(M, z, phi_k, v) -> (M_new, z_new), Infini-attention's delta rule (eq. 5) for one
    segment: M (B, H, d_k, d_v), z (B, H, d_k), phi_k = sigma(K) (B, H, S, d_k), v (B, H, S,
    d_v). Write only what the memory does not already return for each key (its normalised read
    phi_k M / (phi_k z + eps), eps = lcviz.recurrent.EPS); z grows by the keys' sum."""
    def reference(M, z, phi_k, v):
        new = recurrent.memory_update(recurrent.Memory(M, z), phi_k, v, "delta")
        return new.M, new.z
    return run_check("check_delta_update", fn, _delta_cases(), reference,
                     compare=_compare_memory)


CAPACITY_TRIALS = 200  # random memories averaged when the checker measures your n



def _compare_capacity(got, want):
    """got: the learner's n; want: {"d_k", "error", "n"}. Measure the error at got."""
    if isinstance(got, bool) or not isinstance(got, int) or got < 1:
        return f"expected a whole number of pairs >= 1, got {got!r}"
    measured = recurrent.retrieval_error(got, want["d_k"], "linear", "random",
                                         trials=CAPACITY_TRIALS)
    if abs(measured - want["error"]) > 0.1 * want["error"]:
        return (f"with n = {got} pairs the measured error is {measured:.3f}, not within 10% of "
                f"{want['error']} (the memory reaches it near n = {want['n']})")
    return None


def check_capacity(fn):
    """fn(d_k, error) -> n: how many (key, value) pairs with random unit keys can a linear
    d_k x d_k memory take (read through M, lcviz.recurrent.retrieval_error) before its mean
    relative read error reaches `error`? The checker writes your n pairs and measures."""
    cases = [{"d_k": d, "error": e} for d, e in ((64, 0.5), (32, 1.0), (128, 0.25), (16, 2.0))]
    return run_check("check_capacity", fn, cases,
                     lambda d_k, error: {"d_k": d_k, "error": error,
                                         "n": recurrent.capacity_pairs(d_k, error)},
                     compare=_compare_capacity)


def check_xl_reach(fn):
    """fn(n_layer, segment, offset) -> how many tokens back the farthest key that can influence
    a Transformer-XL token at `offset` in its segment lies (when the input is long enough)."""
    cases = [{"n_layer": n, "segment": s, "offset": o}
             for n, s, o in ((1, 4, 0), (2, 4, 3), (3, 8, 5), (4, 16, 0), (6, 32, 31))]
    return run_check("check_xl_reach", fn, cases, recurrent.xl_reach_distance,
                     compare=compare_values)
