"""Receptive fields of stacked masked attention layers: which inputs can reach an output.

One attention layer with mask M moves information from key j to query i when M[i, j]. After L
layers, input j reaches output t when there is a path t = p_L -> p_{L-1} -> ... -> p_0 = j with
every step allowed by M or by the residual stream (which carries position p to itself): the
boolean matrix power (M | I)^L. Every mask in lcviz.masks has a True diagonal already.

    reachability(mask, layers)           # [(T, T)] bool, one matrix per layer 1..L
    receptive_field_sizes(mask, layers)  # (L, T) how many inputs each output sees, per layer
    reachable_from(mask, query, layers)  # (L, T) one output's row only: fast for T = 4096
    effective_receptive_field(model, idx, position)  # gradients: where influence really lands

For a causal window w the exact field of L layers is min(t + 1, L(w - 1) + 1) positions
(`window_receptive_field`): each layer reaches w - 1 tokens further back, and the query itself
is counted once, not L times. That "+1" is the off-by-one behind the often quoted "w * L".
"""

import torch

from lcviz.validate import check_int


def _one_hop(mask):
    """M | I as a validated (T, T) bool tensor: one layer's attention plus its residual path."""
    if not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.dim() == 2
            and mask.shape[0] == mask.shape[1]):
        raise ValueError(f"mask must be a square 2-D bool tensor (T, T), got "
                         f"{type(mask).__name__}{tuple(getattr(mask, 'shape', ()))}")
    return mask | torch.eye(mask.shape[0], dtype=torch.bool)


def bool_matmul(a, b):
    """Boolean matrix product: (a @ b)[i, j] = any_k a[i, k] and b[k, j]."""
    return (a.float() @ b.float()) > 0


def reachability(mask, layers):
    """[R_1, ..., R_L] with R_l = (M | I)^l (boolean): R_l[t, j] is True when input j reaches
    output t through l layers. Costs L products of (T, T) matrices: fine up to T ~ 1024."""
    hop = _one_hop(mask)
    check_int("layers", layers, minimum=1)
    reach = [hop]
    for _ in range(layers - 1):
        reach.append(bool_matmul(reach[-1], hop))  # (T, T) one more hop
    return reach


def receptive_field_sizes(mask, layers):
    """(L, T) long tensor: how many input positions reach each output position after l layers."""
    return torch.stack([r.sum(-1) for r in reachability(mask, layers)])


def reachable_from(mask, query, layers):
    """(L, T) bool: row `query` of (M | I)^1 .. (M | I)^L, by vector-matrix products only
    (O(L T^2)); the fast path for one output position at long lengths."""
    hop = _one_hop(mask)
    check_int("query", query, minimum=0, maximum=hop.shape[0] - 1)
    check_int("layers", layers, minimum=1)
    hop_float = hop.float()
    rows = [hop[query]]
    for _ in range(layers - 1):
        rows.append((rows[-1].float() @ hop_float) > 0)  # (T,) one more hop
    return torch.stack(rows)


def reachable_by_search(mask, query, layers):
    """The same set as reachable_from(mask, query, layers)[-1], by breadth-first search over the
    layer graph: the brute-force reference the matrix version is tested against."""
    hop = _one_hop(mask).tolist()
    frontier = {query}
    for _ in range(layers):
        frontier = {j for i in frontier for j, allowed in enumerate(hop[i]) if allowed}
    return frontier


def reachable_through(layer_masks, query):
    """(T,) bool: the inputs that reach output `query` through layers with different masks,
    layer_masks[0] first (the input side). Row `query` of (M_L | I) ... (M_1 | I)."""
    if not layer_masks:
        raise ValueError("layer_masks must hold at least one (T, T) mask")
    hops = [_one_hop(mask) for mask in layer_masks]
    if len({hop.shape for hop in hops}) > 1:
        raise ValueError(f"every mask must have one shape; got {[tuple(h.shape) for h in hops]}")
    check_int("query", query, minimum=0, maximum=hops[0].shape[0] - 1)
    row = hops[-1][query]  # (T,) the last layer's keys
    for hop in reversed(hops[:-1]):
        row = (row.float() @ hop.float()) > 0  # (T,) one layer further down
    return row


def stacked_offsets(layers):
    """Offsets back from a query (far from the sequence start) that reach it through dilated
    window layers given as [(window, dilation), ...]: the sums o_1 + ... + o_L with each
    o_l in {0, d_l, 2 d_l, ..., (w_l - 1) d_l}. Longformer (arXiv 2004.05150, sec. 3.1) gives
    different heads and layers different dilations; this is the set they reach together."""
    if not layers:
        raise ValueError("layers must hold at least one (window, dilation) pair")
    offsets = {0}
    for window, dilation in layers:
        check_int("window", window, minimum=1)
        check_int("dilation", dilation, minimum=1)
        offsets = {o + dilation * k for o in offsets for k in range(window)}
    return sorted(offsets)


def window_receptive_field(window, layers, position=None):
    """Exact field of L causal windows of w: L(w - 1) + 1 inputs (capped at position + 1)."""
    check_int("window", window, minimum=1)
    check_int("layers", layers, minimum=1)
    reach = layers * (window - 1) + 1
    if position is None:
        return reach
    check_int("position", position, minimum=0)
    return min(position + 1, reach)


def effective_receptive_field(model, idx, position, attn_mask=None):
    """|d loss_t / d x_j| for every input j: how much input embedding j moves the prediction at
    `position` (Luo et al. 2016, "Understanding the Effective Receptive Field", arXiv 1701.04128,
    carried over to attention). idx (1, T) token ids; returns (T,) gradient norms, 0 where j
    cannot reach `position` at all."""
    if idx.dim() != 2 or idx.size(0) != 1:
        raise ValueError(f"idx must be one sequence of shape (1, T), got {tuple(idx.shape)}")
    T = idx.size(1)
    check_int("position", position, minimum=0, maximum=T - 2)
    x = model.embed(idx).detach().requires_grad_(True)  # (1, T, C)
    logits, _ = model.run_blocks(x, attn_mask)  # (1, T, V)
    loss = torch.nn.functional.cross_entropy(logits[0, position], idx[0, position + 1])
    (grad,) = torch.autograd.grad(loss, x)  # (1, T, C)
    return grad[0].norm(dim=-1)  # (T,)
