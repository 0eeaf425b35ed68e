"""Sub-quadratic attention and what it forgets.

Three ways around the T x T score matrix, each written out by hand and checked against a dense
construction that computes the same numbers the slow way:

- Hierarchical attention, two levels: exact scores to nearby blocks, one coarse entry per far block
  (H-Transformer-1D, Zhu & Soricut 2021, arXiv 2107.11906; the fine-near / coarse-far spans of
  BP-Transformer, Ye et al. 2019, arXiv 1911.04070). Cost O(T (3b + T/b)) scores.
- Linear attention with the feature map elu(x) + 1 (Katharopoulos et al. 2020, "Transformers are
  RNNs", arXiv 2006.16236): a masked quadratic form, a cumulative-sum form, a chunked form and a
  recurrent form with a D x M state per head that does not grow with the length.
- A selective state-space layer (Mamba, Gu & Dao 2023, arXiv 2312.00752): input-dependent step
  Delta, B and C, zero-order-hold decay, a sequential scan and a d_inner x d_state state per layer.
- Retention (RetNet, Sun et al. 2023, arXiv 2307.08621): parallel = recurrent = chunkwise.

The price of a fixed-size state is recall: the multi-query associative recall task (MQAR, Arora
et al. 2023, "Zoology", arXiv 2312.04927) asks for values of keys seen earlier, and a state of S
numbers can hold only so many pairs. `benchmark()` measures costs, recall at equal state sizes and
passkey retrieval (lcviz.passkey) by key distance, and returns the results that
`python -m lcviz.bench subquadratic` saves to data/bench-subquadratic.json (figures:
data/bench-subquadratic-<part>.png).

Shapes: B batch, H heads, T time, D key/query dimension, M value dimension, N blocks.
"""

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lcviz.memory import PEAK_AND_TIME_CHILD, run_child
from lcviz.stats import wilson_interval
from lcviz.validate import check_choice, check_float, check_int

# ---------------------------------------------------------------- input checks


def _check_4d(**tensors):
    """q, k, v as (B, H, T, D) tensors of one batch, head and time size."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (B, H, T, D); got {shapes.get(name)}")
    first = next(iter(tensors.values()))
    for name, t in tensors.items():
        if t.shape[:3] != first.shape[:3]:
            raise ValueError(f"q, k, v must share (B, H, T); got {shapes}")
    if "q" in tensors and "k" in tensors and tensors["q"].shape[-1] != tensors["k"].shape[-1]:
        raise ValueError(f"q and k must have the same last dimension D; got {shapes}")
    if first.shape[2] < 1:
        raise ValueError(f"the time dimension T must be >= 1; got {shapes}")


def check_block(block, length):
    """A block size must be >= 1 and divide the length: the two levels tile the sequence."""
    check_int("length", length, minimum=1)
    check_int("block", block, minimum=1, maximum=length)
    if length % block:
        divisors = [b for b in range(1, length + 1) if length % b == 0]
        shown = divisors if len(divisors) <= 12 else divisors[:6] + ["..."] + divisors[-3:]
        raise ValueError(f"block must divide the length {length}; got block={block}. "
                         f"Allowed: {', '.join(map(str, shown))} (or pad the sequence)")
    return block


# ---------------------------------------------------------------- 1. hierarchical attention


def block_index(length, block):
    """(T,) the block of every position: 0 .. T/b - 1."""
    check_block(block, length)
    return torch.arange(length) // block


def near_mask(length, block, causal=True):
    """bool (T, T): True where key j sits in a *near* block of query i, scored exactly.

    Causal: j's block is i's block or the one before it (and j <= i). Non-causal: j's block is at
    most one block away. Everything else is *far* and is scored against its block's mean key.
    """
    blocks = block_index(length, block)
    gap = blocks[:, None] - blocks[None, :]  # (T, T) query block minus key block
    if causal:
        return (gap >= 0) & (gap <= 1) & torch.ones(length, length, dtype=torch.bool).tril()
    return gap.abs() <= 1


def block_mean_keys(k, block):
    """(B, H, T, D) keys -> (B, H, T/b, D): the mean key of every block."""
    _check_4d(k=k)
    B, H, T, D = k.shape
    check_block(block, T)
    return k.reshape(B, H, T // block, block, D).mean(dim=3)  # (B, H, N, D)


def block_mean_key_attention(q, k, v, block, causal=True):
    """The dense reference: softmax attention over a T x T score matrix in which a query scores a
    far key j with the mean key of j's block, and a near key exactly.

    A far block then contributes b equal scores q.m_B, i.e. b e^{q.m_B} to the denominator and
    e^{q.m_B} (sum of its values) to the numerator: exactly what `hierarchical_attention`
    computes with one entry per block. O(T^2) memory; for checking only. Scores are scaled by
    1/sqrt(D) as in softmax attention. Returns (B, H, T, M).
    """
    _check_4d(q=q, k=k, v=v)
    T, D = q.shape[2], q.shape[3]
    check_block(block, T)
    far_keys = block_mean_keys(k, block).repeat_interleave(block, dim=2)  # (B, H, T, D)
    exact = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T)
    coarse = q @ far_keys.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T) q_i . mean key of j's block
    scores = torch.where(near_mask(T, block, causal), exact, coarse)  # (B, H, T, T)
    if causal:
        allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (B, H, T, M)


def hierarchical_attention(q, k, v, block, causal=True):
    """Two-level hierarchical attention in O(T (3b + T/b)) scores, never a T x T matrix.

    For a query in block i: exact scores to the tokens of the near blocks (causal: i-1 and the
    masked block i; non-causal: i-1, i, i+1) and one coarse entry per far block B, with key
    m_B = mean of B's keys, value V_B = sum of B's values, counted |B| = b times in the
    normaliser:
        y = (sum_near e^{s_j} v_j + sum_far e^{q.m_B} V_B) / (sum_near e^{s_j} + sum_far b e^{q.m_B})
    with one max subtracted from both parts. This is one level of H-Transformer-1D (arXiv
    2107.11906, which averages Q and K and sums V when coarsening); recursing on the far part
    gives its multi-level O(T) scheme. Equal to `block_mean_key_attention`. Returns (B, H, T, M).
    """
    _check_4d(q=q, k=k, v=v)
    B, H, T, D = q.shape
    M = v.shape[-1]
    check_block(block, T)
    N, b = T // block, block
    scale = 1 / math.sqrt(D)
    qb = q.reshape(B, H, N, b, D)  # (B, H, N, b, D)
    kb = k.reshape(B, H, N, b, D)
    vb = v.reshape(B, H, N, b, M)

    def shifted(x, by):  # block i gets block i - by (zeros where that block does not exist)
        out = torch.zeros_like(x)
        if by > 0:
            out[:, :, by:] = x[:, :, :-by]
        else:
            out[:, :, :by] = x[:, :, -by:]
        return out

    shifts = (1, 0) if causal else (1, 0, -1)  # near blocks: i-1, i (, i+1)
    k_near = torch.cat([shifted(kb, s) if s else kb for s in shifts], dim=3)  # (B, H, N, nb, D)
    v_near = torch.cat([shifted(vb, s) if s else vb for s in shifts], dim=3)  # (B, H, N, nb, M)
    s_near = qb @ k_near.transpose(-2, -1) * scale  # (B, H, N, b, nb) nb = 2b or 3b
    blocks = torch.arange(N, device=q.device)
    row = torch.arange(b, device=q.device)
    ok = []
    for s in shifts:  # which near entries exist (block in range) and are allowed (causal)
        exists = ((blocks - s >= 0) & (blocks - s < N))[:, None, None].expand(N, b, b)  # (N, b, b)
        if causal and s == 0:
            exists = exists & (row[None, :, None] >= row[None, None, :])
        ok.append(exists)
    ok = torch.cat(ok, dim=2)  # (N, b, nb)
    s_near = s_near.masked_fill(~ok, float("-inf"))

    m = kb.mean(dim=3)  # (B, H, N, D) coarse keys: block means
    v_sum = vb.sum(dim=3)  # (B, H, N, M) coarse values: block sums
    s_far = qb @ m[:, :, None].transpose(-2, -1) * scale  # (B, H, N, b, N)
    gap = blocks[:, None] - blocks[None, :]  # (N, N) query block - key block
    far = (gap >= 2) if causal else (gap.abs() >= 2)  # (N, N)
    s_far = s_far.masked_fill(~far[:, None, :], float("-inf"))

    top = torch.maximum(s_near.amax(dim=-1), s_far.amax(dim=-1))[..., None]  # (B, H, N, b, 1)
    p_near = torch.exp(s_near - top)  # (B, H, N, b, nb)
    p_far = torch.exp(s_far - top)  # (B, H, N, b, N)
    num = p_near @ v_near + p_far @ v_sum[:, :, None]  # (B, H, N, b, M)
    den = p_near.sum(-1, keepdim=True) + b * p_far.sum(-1, keepdim=True)  # (B, H, N, b, 1)
    return (num / den).reshape(B, H, T, M)


def hierarchical_scores(length, block, causal=True):
    """How many query-key scores `hierarchical_attention` computes: T (k b + T/b), k = 2 causal,
    3 non-causal (masked entries included, as a kernel computes them). Dense attention: T^2."""
    check_block(block, length)
    return length * ((2 if causal else 3) * block + length // block)


def best_block(length, causal=True):
    """The divisor b of `length` with the fewest scores T (k b + T/b); near sqrt(T / k)."""
    check_int("length", length, minimum=1)
    divisors = [b for b in range(1, length + 1) if length % b == 0]
    return min(divisors, key=lambda b: hierarchical_scores(length, b, causal))


def relative_error(approx, exact):
    """||approx - exact|| / ||exact|| (Frobenius), a number."""
    if approx.shape != exact.shape:
        raise ValueError(f"approx and exact must have one shape; got {tuple(approx.shape)} and "
                         f"{tuple(exact.shape)}")
    return float((approx - exact).norm() / exact.norm().clamp_min(1e-30))


def hierarchical_error_curve(q, k, v, blocks, causal=True):
    """Relative error of hierarchical attention against exact softmax attention, per block size.

    b = 1 is exact (every block mean is its own key) and so is b >= T/2 causal (every block is
    near); the error lives in between, where the cost is lowest. Returns {block: error}.
    """
    _check_4d(q=q, k=k, v=v)
    T, D = q.shape[2], q.shape[3]
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    exact = torch.softmax(scores, dim=-1) @ v
    return {b: relative_error(hierarchical_attention(q, k, v, b, causal), exact) for b in blocks}


def model_qkv(model, idx, layer):
    """The queries, keys and values (each (B, H, T, D)) that layer `layer` of a TinyTransformer
    computes on token ids idx (B, T), positions 0..T-1, with RoPE applied if the model uses it."""
    from lcviz import rope

    check_int("layer", layer, minimum=0, maximum=model.config.n_layer - 1)
    B, T = idx.shape
    positions = torch.arange(T)
    mask = model.default_mask(T)
    with torch.no_grad():
        x = model.embed(idx, positions)
        for block in model.blocks[:layer]:
            x, _ = block(x, mask, positions)
        block = model.blocks[layer]
        C, H = model.config.n_embd, model.config.n_head
        q, k, v = block.attn.qkv(block.ln1(x)).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if model.config.pos == "rope":
            q, k = rope.apply_rope_to_qk(q, k, positions, model.config)
    return q, k, v


# ---------------------------------------------------------------- 2. linear attention


def elu_feature_map(x):
    """phi(x) = elu(x) + 1 > 0 (Katharopoulos et al. 2020, eq. 7)."""
    return F.elu(x) + 1


def linear_attention_quadratic(q, k, v, eps=1e-6):
    """Causal linear attention, masked quadratic form: A = phi(Q) phi(K)^T, lower triangle,
    rows normalised: y_i = sum_{j<=i} A_ij v_j / (sum_{j<=i} A_ij + eps). No 1/sqrt(D).
    O(T^2) like softmax attention; the similarity is just not exponentiated."""
    _check_4d(q=q, k=k, v=v)
    check_float("eps", eps, minimum=0.0)
    T = q.shape[2]
    a = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (B, H, T, T), all > 0
    a = a * torch.ones(T, T, dtype=a.dtype, device=a.device).tril()  # causal
    return (a @ v) / (a.sum(-1, keepdim=True) + eps)  # (B, H, T, M)


def linear_attention_cumsum(q, k, v, eps=1e-6):
    """Causal linear attention, cumulative-sum form: S_i = sum_{j<=i} phi(k_j) v_j^T (D x M),
    z_i = sum_{j<=i} phi(k_j), y_i = phi(q_i) S_i / (phi(q_i) . z_i + eps). Holds every S_i at
    once: O(T D M) memory, which is why the recurrent and chunked forms exist."""
    _check_4d(q=q, k=k, v=v)
    check_float("eps", eps, minimum=0.0)
    fq, fk = elu_feature_map(q), elu_feature_map(k)  # (B, H, T, D)
    s = torch.cumsum(fk[..., :, None] * v[..., None, :], dim=2)  # (B, H, T, D, M)
    z = torch.cumsum(fk, dim=2)  # (B, H, T, D)
    num = torch.einsum("bhtd,bhtdm->bhtm", fq, s)  # (B, H, T, M)
    den = (fq * z).sum(-1, keepdim=True)  # (B, H, T, 1)
    return num / (den + eps)


@dataclass
class LinearState:
    """The whole memory of causal linear attention after some tokens: s = sum phi(k) v^T
    (B, H, D, M) and z = sum phi(k) (B, H, D). Its size does not depend on how many tokens."""
    s: torch.Tensor
    z: torch.Tensor

    @staticmethod
    def empty(batch, heads, key_dim, value_dim, dtype=torch.float32):
        check_int("batch", batch, minimum=1)
        check_int("heads", heads, minimum=1)
        check_int("key_dim", key_dim, minimum=1)
        check_int("value_dim", value_dim, minimum=1)
        return LinearState(torch.zeros(batch, heads, key_dim, value_dim, dtype=dtype),
                           torch.zeros(batch, heads, key_dim, dtype=dtype))

    def numel(self):
        return self.s.numel() + self.z.numel()


def linear_attention_step(q, k, v, state, eps=1e-6):
    """One token of recurrent linear attention: q, k (B, H, D), v (B, H, M) ->
    (y (B, H, M), new state). S <- S + phi(k) v^T, z <- z + phi(k), y = phi(q) S / (phi(q).z + eps)."""
    if q.dim() != 3 or k.shape != q.shape or v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"q, k must be (B, H, D) and v (B, H, M); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if state.s.shape != (*q.shape, v.shape[-1]):
        raise ValueError(f"state.s has shape {tuple(state.s.shape)}; expected "
                         f"{(*q.shape, v.shape[-1])} for these q, v")
    fq, fk = elu_feature_map(q), elu_feature_map(k)  # (B, H, D)
    s = state.s + fk[..., :, None] * v[..., None, :]  # (B, H, D, M)
    z = state.z + fk  # (B, H, D)
    y = torch.einsum("bhd,bhdm->bhm", fq, s) / ((fq * z).sum(-1, keepdim=True) + eps)  # (B, H, M)
    return y, LinearState(s, z)


def linear_attention_recurrent(q, k, v, eps=1e-6, state=None):
    """Causal linear attention as an RNN: a loop over time carrying a D x M state per head.
    Returns (y (B, H, T, M), final state); pass `state` to continue a stream."""
    _check_4d(q=q, k=k, v=v)
    B, H, _, D = q.shape
    if state is None:
        state = LinearState.empty(B, H, D, v.shape[-1], dtype=q.dtype)
    ys = []
    for q_t, k_t, v_t in zip(q.unbind(2), k.unbind(2), v.unbind(2)):
        y, state = linear_attention_step(q_t, k_t, v_t, state, eps)
        ys.append(y)
    return torch.stack(ys, dim=2), state  # (B, H, T, M)


def linear_attention_chunked(q, k, v, chunk=64, eps=1e-6):
    """Causal linear attention chunk by chunk: the masked quadratic form inside a chunk of C
    tokens plus the running D x M state of all earlier chunks. O(T C + D M) memory, matrix
    products throughout: the form fast kernels use. `chunk` need not divide T."""
    _check_4d(q=q, k=k, v=v)
    check_int("chunk", chunk, minimum=1)
    B, H, T, D = q.shape
    M = v.shape[-1]
    fq, fk = elu_feature_map(q), elu_feature_map(k)  # (B, H, T, D)
    s = q.new_zeros(B, H, D, M)
    z = q.new_zeros(B, H, D)
    out = []
    for start in range(0, T, chunk):
        cq, ck, cv = fq[:, :, start:start + chunk], fk[:, :, start:start + chunk], v[:, :, start:start + chunk]
        c = cq.shape[2]
        a = (cq @ ck.transpose(-2, -1)) * torch.ones(c, c, dtype=q.dtype).tril()  # (B, H, c, c)
        num = a @ cv + cq @ s  # (B, H, c, M)
        den = a.sum(-1) + (cq * z[:, :, None]).sum(-1)  # (B, H, c)
        out.append(num / (den[..., None] + eps))
        s = s + ck.transpose(-2, -1) @ cv  # (B, H, D, M)
        z = z + ck.sum(dim=2)
    return torch.cat(out, dim=2)


def linear_state_numbers(heads, key_dim, value_dim):
    """Numbers in the recurrent state of one linear-attention layer: H (D M + D)."""
    check_int("heads", heads, minimum=1)
    check_int("key_dim", key_dim, minimum=1)
    check_int("value_dim", value_dim, minimum=1)
    return heads * (key_dim * value_dim + key_dim)


def kv_cache_numbers(length, heads, head_dim):
    """Numbers in one softmax-attention layer's KV cache after `length` tokens: 2 T H D."""
    check_int("length", length, minimum=0)
    check_int("heads", heads, minimum=1)
    check_int("head_dim", head_dim, minimum=1)
    return 2 * length * heads * head_dim


# ---------------------------------------------------------------- 2b. what a fixed state can hold


def best_state_residual(key_dim, pairs, value_dim=None, seed=0):
    """Store `pairs` key-value pairs in a key_dim x value_dim linear memory as well as possible:
    random keys K (pairs x key_dim), random values V, the least-squares state S = argmin
    ||K S - V||, read back with the same keys. Returns ||K S - V|| / ||V||: zero while the keys
    are linearly independent (pairs <= key_dim), positive once they cannot be. value_dim
    defaults to `pairs` (values in general position)."""
    check_int("key_dim", key_dim, minimum=1)
    check_int("pairs", pairs, minimum=1)
    value_dim = pairs if value_dim is None else check_int("value_dim", value_dim, minimum=1)
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(pairs, key_dim, generator=g, dtype=torch.float64)
    values = torch.randn(pairs, value_dim, generator=g, dtype=torch.float64)
    state = torch.linalg.lstsq(keys, values, driver="gelsd").solution  # (key_dim, value_dim)
    return float((keys @ state - values).norm() / values.norm())


def first_failing_pairs(key_dim, tol=1e-8, seed=0):
    """The fewest pairs that a key_dim-dimensional linear memory cannot store exactly, found by
    measuring `best_state_residual` at 1, 2, 3, ... pairs."""
    check_int("key_dim", key_dim, minimum=1)
    for pairs in range(1, 4 * key_dim + 2):
        if best_state_residual(key_dim, pairs, seed=seed) > tol:
            return pairs
    raise RuntimeError(f"no failure up to {4 * key_dim + 1} pairs")  # unreachable: rank <= key_dim


def outer_product_recall(key_dim, pairs, value_dim=64, trials=200, seed=0, feature=None):
    """Fraction of pairs recalled by the plain linear-attention memory S = sum_j phi(k_j) v_j^T
    with random keys: read y_i = phi(k_i) S, count it right when v_i is the stored value closest
    to y_i (largest dot product). feature: None (phi = identity) or "elu" (phi = elu + 1)."""
    check_int("key_dim", key_dim, minimum=1)
    check_int("pairs", pairs, minimum=1)
    check_int("value_dim", value_dim, minimum=1)
    check_int("trials", trials, minimum=1)
    check_choice("feature", feature, (None, "elu"))
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(trials, pairs, key_dim, generator=g)
    if feature == "elu":
        keys = elu_feature_map(keys)
    values = torch.randn(trials, pairs, value_dim, generator=g)
    state = keys.transpose(1, 2) @ values  # (trials, key_dim, value_dim): the whole memory
    read = keys @ state  # (trials, pairs, value_dim)
    best = (read @ values.transpose(1, 2)).argmax(-1)  # (trials, pairs) closest stored value
    return float((best == torch.arange(pairs)).float().mean())


# ---------------------------------------------------------------- 3. selective state space (Mamba)


def _check_scan(u, delta, A, B, C, D):
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, L, d_inner); got {tuple(u.shape)}")
    b, L, d = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}; got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != d or A.shape[1] < 1:
        raise ValueError(f"A must be (d_inner={d}, d_state >= 1); got {tuple(A.shape)}")
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (b, L, n):
            raise ValueError(f"{name} must be (batch, L, d_state) = {(b, L, n)}; got {tuple(t.shape)}")
    if D.shape != (d,):
        raise ValueError(f"D must be (d_inner,) = ({d},); got {tuple(D.shape)}")


def selective_scan(u, delta, A, B, C, D, state=None):
    """The selective scan of Mamba, written as the loop it is (arXiv 2312.00752, Algorithm 2):

        x_t = exp(Delta_t A) * x_{t-1} + Delta_t B_t u_t      (zero-order-hold decay; Euler input)
        y_t = C_t . x_t + D u_t

    u, delta (batch, L, d_inner); A (d_inner, d_state), negative; B, C (batch, L, d_state);
    D (d_inner,). The state x is (batch, d_inner, d_state) whatever L is. Returns (y (batch, L,
    d_inner), final state). As in the reference implementations, B uses Delta B (not the exact
    ZOH (Delta A)^-1 (exp(Delta A) - I) Delta B).
    """
    _check_scan(u, delta, A, B, C, D)
    b, _, d = u.shape
    decay = torch.exp(delta[..., None] * A)  # (b, L, d, n)
    drive = delta[..., None] * B[:, :, None, :] * u[..., None]  # (b, L, d, n)
    x = u.new_zeros(b, d, A.shape[1]) if state is None else state
    ys = []
    # unbind once: indexing [:, t] inside the loop would make backward build L full-size grads
    for decay_t, drive_t, c_t in zip(decay.unbind(1), drive.unbind(1), C.unbind(1)):
        x = decay_t * x + drive_t  # (b, d, n)
        ys.append((x * c_t[:, None, :]).sum(-1))  # (b, d) = C_t . x_t
    return torch.stack(ys, dim=1) + u * D, x  # (b, L, d)


def selective_scan_parallel(u, delta, A, B, C, D):
    """The same numbers as `selective_scan` without a loop: the L x L kernel
    y_t = sum_{s<=t} C_t . (exp(A (c_t - c_s)) * Delta_s B_s u_s) + D u_t, c = cumsum(Delta).
    O(L^2 d n) memory: a check, not a method. The exponent is masked *before* exp (for s > t it
    would be positive and overflow)."""
    _check_scan(u, delta, A, B, C, D)
    L = u.shape[1]
    c = torch.cumsum(delta, dim=1)  # (b, L, d)
    gap = c[:, :, None, :] - c[:, None, :, :]  # (b, L_t, L_s, d)
    causal = torch.ones(L, L, dtype=torch.bool, device=u.device).tril()[None, :, :, None, None]
    exponent = gap[..., None] * A  # (b, L, L, d, n)
    exponent = exponent.masked_fill(~causal, float("-inf"))
    kernel = torch.exp(exponent)  # (b, L, L, d, n)
    drive = delta[..., None] * B[:, :, None, :] * u[..., None]  # (b, L_s, d, n)
    x = (kernel * drive[:, None]).sum(dim=2)  # (b, L_t, d, n): every state at once
    return (x * C[:, :, None, :]).sum(-1) + u * D  # (b, L, d)


def selective_scan_chunked(u, delta, A, B, C, D, chunk=16):
    """The same numbers as `selective_scan`, `chunk` steps at a time: inside a chunk the L x L
    kernel of `selective_scan_parallel` (with decays measured from the chunk start, all <= 1),
    across chunks the (batch, d_inner, d_state) state. Fewer, larger tensor operations than the
    loop, so training on a CPU is faster. `chunk` need not divide L. Returns (y, final state)."""
    _check_scan(u, delta, A, B, C, D)
    check_int("chunk", chunk, minimum=1)
    b, L, d = u.shape
    x = u.new_zeros(b, d, A.shape[1])
    ys = []
    for start in range(0, L, chunk):
        cu, cd = u[:, start:start + chunk], delta[:, start:start + chunk]
        cB, cC = B[:, start:start + chunk], C[:, start:start + chunk]
        c = cu.shape[1]
        log_decay = torch.cumsum(cd, dim=1)[..., None] * A  # (b, c, d, n) <= 0, from chunk start
        gap = log_decay[:, :, None] - log_decay[:, None, :]  # (b, c_t, c_s, d, n)
        causal = torch.ones(c, c, dtype=torch.bool, device=u.device).tril()[None, :, :, None, None]
        kernel = torch.exp(gap.masked_fill(~causal, float("-inf")))  # (b, c, c, d, n)
        drive = cd[..., None] * cB[:, :, None, :] * cu[..., None]  # (b, c, d, n)
        states = (kernel * drive[:, None]).sum(dim=2) + torch.exp(log_decay) * x[:, None]
        ys.append((states * cC[:, :, None, :]).sum(-1))  # (b, c, d)
        x = states[:, -1]  # (b, d, n)
    return torch.cat(ys, dim=1) + u * D, x


def inverse_softplus(y):
    """x with softplus(x) = y (y > 0): y + log(-expm1(-y))."""
    return y + torch.log(-torch.expm1(-y))


class MambaLayer(nn.Module):
    """A minimal Mamba mixer (arXiv 2312.00752, Fig. 3): in-projection to x and gate z, a short
    causal depthwise convolution, SiLU, the selective SSM with input-dependent Delta, B, C, the
    gate SiLU(z), out-projection. Defaults of the reference code: d_state 16, expand 2, d_conv 4,
    dt_rank ceil(d_model/16), A = -(1..d_state), Delta's bias so softplus(bias) is log-uniform in
    [1e-3, 0.1]. The recurrent state per sequence: d_inner x d_state (SSM) + d_inner x
    (d_conv - 1) (convolution). Initialise the rest of a model *before* this layer's
    `reset_parameters`, or a generic init overwrites the Delta bias."""

    def __init__(self, d_model, d_state=16, expand=2, d_conv=4, dt_rank=None):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("d_state", d_state, minimum=1)
        check_int("expand", expand, minimum=1)
        check_int("d_conv", d_conv, minimum=1)
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else check_int("dt_rank", dt_rank,
                                                                                   minimum=1)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                              padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self, dt_min=1e-3, dt_max=0.1):
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(inverse_softplus(dt))
            self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32))
                             .repeat(self.d_inner, 1))
            self.D.fill_(1.0)

    def state_numbers(self):
        """Numbers carried from one token to the next, per sequence."""
        return self.d_inner * self.d_state + self.d_inner * (self.d_conv - 1)

    def _ssm_inputs(self, x):  # x (b, L, d_inner) after conv + SiLU
        dbc = self.x_proj(x)  # (b, L, dt_rank + 2n)
        dt, B, C = dbc.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # (b, L, d_inner), > 0, input-dependent
        return delta, -torch.exp(self.A_log), B, C

    def forward(self, hidden, scan=None):
        """hidden (b, L, d_model) -> (b, L, d_model). scan: selective_scan (default) or
        selective_scan_parallel (same numbers)."""
        L = hidden.shape[1]
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # 2 x (b, L, d_inner)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :L].transpose(1, 2))  # causal conv
        delta, A, B, C = self._ssm_inputs(x)
        if scan is None or scan is selective_scan:
            y, _ = selective_scan(x, delta, A, B, C, self.D)
        else:
            y = scan(x, delta, A, B, C, self.D)
        return self.out_proj(y * F.silu(z))

    def empty_state(self, batch):
        """(conv window (b, d_inner, d_conv - 1), ssm state (b, d_inner, d_state)), zeros."""
        check_int("batch", batch, minimum=1)
        return (torch.zeros(batch, self.d_inner, self.d_conv - 1),
                torch.zeros(batch, self.d_inner, self.d_state))

    def step(self, hidden, state):
        """One token: hidden (b, d_model), state from `empty_state` -> (out (b, d_model), state)."""
        conv_state, ssm_state = state
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (b, d_inner)
        window = torch.cat([conv_state, x[..., None]], dim=-1)  # (b, d_inner, d_conv)
        x = F.silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)  # (b, d_inner)
        delta, A, B, C = self._ssm_inputs(x[:, None])
        y, ssm_state = selective_scan(x[:, None], delta, A, B, C, self.D, state=ssm_state)
        out = self.out_proj(y[:, 0] * F.silu(z))
        return out, (window[..., 1:], ssm_state)


# ---------------------------------------------------------------- 4. retention (RetNet)


def decay_mask(length, gamma):
    """D (T, T): gamma^(n-m) for n >= m, else 0; masked before the power (gamma^(n-m) with
    n < m overflows and inf * 0 = NaN)."""
    check_int("length", length, minimum=1)
    check_float("gamma", gamma, greater_than=0.0, maximum=1.0)
    n = torch.arange(length)
    gap = (n[:, None] - n[None, :]).double()  # (T, T)
    return torch.where(gap >= 0, gamma ** gap.clamp(min=0), torch.zeros((), dtype=torch.float64))


def retention_parallel(q, k, v, gamma):
    """(Q K^T * D) V with D_nm = gamma^(n-m), n >= m (RetNet, arXiv 2307.08621, eq. 5; without
    xPos and the group norm). q, k (B, H, T, D), v (B, H, T, M)."""
    _check_4d(q=q, k=k, v=v)
    d = decay_mask(q.shape[2], gamma).to(q.dtype)
    return ((q @ k.transpose(-2, -1)) * d) @ v


def retention_recurrent(q, k, v, gamma):
    """S_n = gamma S_{n-1} + k_n^T v_n, o_n = q_n S_n: a D x M state per head."""
    _check_4d(q=q, k=k, v=v)
    check_float("gamma", gamma, greater_than=0.0, maximum=1.0)
    B, H, T, D = q.shape
    s = q.new_zeros(B, H, D, v.shape[-1])
    out = []
    for t in range(T):
        s = gamma * s + k[:, :, t, :, None] * v[:, :, t, None, :]  # (B, H, D, M)
        out.append(torch.einsum("bhd,bhdm->bhm", q[:, :, t], s))
    return torch.stack(out, dim=2)


def retention_chunkwise(q, k, v, gamma, chunk):
    """Inside a chunk the parallel form; across chunks R_i = K_i^T (V_i * gamma^(C-1-j)) +
    gamma^C R_{i-1}, read as (Q R_{i-1}) * gamma^(j+1). `chunk` need not divide T."""
    _check_4d(q=q, k=k, v=v)
    check_float("gamma", gamma, greater_than=0.0, maximum=1.0)
    check_int("chunk", chunk, minimum=1)
    B, H, T, D = q.shape
    r = q.new_zeros(B, H, D, v.shape[-1])
    out = []
    for start in range(0, T, chunk):
        cq, ck, cv = q[:, :, start:start + chunk], k[:, :, start:start + chunk], v[:, :, start:start + chunk]
        c = cq.shape[2]
        j = torch.arange(c, dtype=q.dtype)
        inner = ((cq @ ck.transpose(-2, -1)) * decay_mask(c, gamma).to(q.dtype)) @ cv
        cross = (cq @ r) * (gamma ** (j + 1))[:, None]  # (B, H, c, M)
        out.append(inner + cross)
        r = ck.transpose(-2, -1) @ (cv * (gamma ** (c - 1 - j))[:, None]) + gamma ** c * r
    return torch.cat(out, dim=2)


# ---------------------------------------------------------------- 5. associative recall (MQAR)


def mqar_batch(batch, length, pairs, vocab_size, generator=None, power_a=0.01):
    """Multi-query associative recall (Zoology, arXiv 2312.04927, its generator's layout):
    `pairs` key-value pairs first (keys from [1, V/2), values from [V/2, V), distinct within an
    example), then every key asked once at an even offset of the rest, in random order, with gaps
    drawn from p(g) ~ g^(a-1) (a = 0.01: mostly close; a = 1: uniform); filler token 0.
    Returns (x, y), both (batch, length): y is the value right after a query key, -100 elsewhere.
    """
    check_int("batch", batch, minimum=1)
    check_int("length", length, minimum=4)
    check_int("pairs", pairs, minimum=1)
    check_int("vocab_size", vocab_size, minimum=4)
    check_float("power_a", power_a, greater_than=0.0, maximum=1.0)
    if 4 * pairs > length:
        raise ValueError(f"pairs={pairs} needs length >= 4 * pairs = {4 * pairs} (context and "
                         f"queries); got length={length}")
    n_keys = vocab_size // 2 - 1
    if pairs > n_keys or pairs > vocab_size - vocab_size // 2:
        raise ValueError(f"pairs={pairs} needs {pairs} distinct keys and values; vocab_size="
                         f"{vocab_size} has {n_keys} keys: raise vocab_size to >= {2 * pairs + 2}")
    g = generator
    keys = torch.rand(batch, n_keys, generator=g).argsort(dim=1)[:, :pairs] + 1  # (batch, N)
    values = (torch.rand(batch, vocab_size - vocab_size // 2, generator=g).argsort(dim=1)[:, :pairs]
              + vocab_size // 2)  # (batch, N)
    context = 2 * pairs
    space = (length - context) // 2
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    gaps = torch.multinomial(p.expand(batch, space), pairs, replacement=False, generator=g)
    x = torch.zeros(batch, length, dtype=torch.long)
    y = torch.full((batch, length), -100, dtype=torch.long)
    x[:, 0:context:2], x[:, 1:context:2] = keys, values
    where = context + 2 * gaps  # (batch, N) query positions
    x.scatter_(1, where, keys)
    y.scatter_(1, where, values)  # the answer is the next token after the query key
    return x, y


@dataclass
class RecallConfig:
    mixer: str = "attention"    # "attention" (softmax, 1 head) | "linear" (elu+1) | "mamba"
    vocab_size: int = 128       # keys 1..63, values 64..127, filler 0
    length: int = 64            # tokens per example
    width: int = 64             # d_model of the residual stream
    n_layer: int = 2            # mixer layers (no MLP, as in Zoology's Figure 2)
    state: int = 16             # linear: feature dim of q, k; mamba: d_state; unused by attention
    d_conv: int = 4             # kernel of the short causal convolution every mixer starts with

    def __post_init__(self):
        check_choice("mixer", self.mixer, ("attention", "linear", "mamba"))
        check_int("vocab_size", self.vocab_size, minimum=4)
        check_int("length", self.length, minimum=4)
        check_int("width", self.width, minimum=1)
        check_int("n_layer", self.n_layer, minimum=1)
        check_int("state", self.state, minimum=1)
        check_int("d_conv", self.d_conv, minimum=1)

    def to_dict(self):
        return asdict(self)


def state_numbers(config, length=None):
    """Numbers a model carries from token to token, per sequence, all layers: the KV cache for
    attention (grows with `length`, default config.length); the fixed recurrent state otherwise."""
    L, C = config.n_layer, config.width
    conv = C * (config.d_conv - 1)  # every mixer's convolution window
    if config.mixer == "attention":
        return L * (kv_cache_numbers(config.length if length is None else length, 1, C) + conv)
    if config.mixer == "linear":
        return L * (linear_state_numbers(1, config.state, C) + conv)
    return L * (C * config.state + conv)  # mamba, expand 1: d_inner = width


class ShortConv(nn.Module):
    """Causal depthwise convolution over time (kernel d_conv): what lets a recurrent layer bind a
    key to the value right after it (the short convolution of H3, Based and Mamba)."""

    def __init__(self, width, d_conv):
        super().__init__()
        self.conv = nn.Conv1d(width, width, d_conv, groups=width, padding=d_conv - 1)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.conv(x.transpose(1, 2))[..., :x.shape[1]].transpose(1, 2)


class SoftmaxMixer(nn.Module):
    """Short convolution, then causal softmax attention with one head of dimension width.
    Setting `block` reads the same weights with two-level hierarchical attention instead
    (hierarchical_attention, block size `block`; None = exact attention)."""

    def __init__(self, config):
        super().__init__()
        self.conv = ShortConv(config.width, config.d_conv)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.block = None

    def forward(self, x):  # (B, T, C)
        q, k, v = (t[:, None] for t in self.qkv(self.conv(x)).chunk(3, dim=-1))  # (B, 1, T, C)
        if self.block is not None:
            return self.proj(hierarchical_attention(q, k, v, self.block)[:, 0])
        return self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, 0])


class LinearMixer(nn.Module):
    """Short convolution, then causal linear attention with elu+1 features of dimension
    config.state (the state is state x width per layer)."""

    def __init__(self, config):
        super().__init__()
        self.conv = ShortConv(config.width, config.d_conv)
        self.qk = nn.Linear(config.width, 2 * config.state)
        self.v = nn.Linear(config.width, config.width)
        self.proj = nn.Linear(config.width, config.width)

    def forward(self, x):
        u = self.conv(x)  # (B, T, C)
        q, k = (t[:, None] for t in self.qk(u).chunk(2, dim=-1))  # (B, 1, T, n)
        return self.proj(linear_attention_quadratic(q, k, self.v(u)[:, None])[:, 0])


class RecallModel(nn.Module):
    """Two mixer layers, no MLP, as in Zoology's Figure 2: x + mixer(LayerNorm(x)). Every mixer
    reads its input through the same kind of short causal convolution (kernel d_conv), which is
    how it binds a key to the value right after it, and no mixer gets position embeddings: they
    differ only in how they look back. (Zoology's attention baseline uses learned positions
    instead of the convolution.)"""

    def __init__(self, config):
        super().__init__()
        self.config = config
        C = config.width
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

        def make():
            if config.mixer == "attention":
                return SoftmaxMixer(config)
            if config.mixer == "linear":
                return LinearMixer(config)
            return MambaLayer(C, d_state=config.state, expand=1, d_conv=config.d_conv)
        self.mixers = nn.ModuleList(make() for _ in range(config.n_layer))  # own inits kept

    def forward(self, idx, targets=None):
        """idx (B, T) -> (logits (B, T, V), loss over targets != -100 or None)."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        x = self.tok_emb(idx)  # (B, T, C)
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        logits = self.head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=-100)
        return logits, loss


TRAIN_PAIRS = tuple(range(1, 17))  # every training example draws its number of pairs from these


def mqar_mixture(batch, length, pairs_choices, vocab_size, generator=None, power_a=0.01):
    """An MQAR batch whose examples draw their number of pairs uniformly from `pairs_choices`
    (so a model sees few and many pairs, and every batch carries many answers).
    Returns (x, y) as mqar_batch does."""
    check_int("batch", batch, minimum=1)
    choices = [check_int("pairs", n, minimum=1) for n in pairs_choices]
    if not choices:
        raise ValueError("pairs_choices must name at least one number of pairs")
    drawn = torch.randint(0, len(choices), (batch,), generator=generator)
    xs, ys = [], []
    for index, pairs in enumerate(choices):
        count = int((drawn == index).sum())
        if count:
            x, y = mqar_batch(count, length, pairs, vocab_size, generator, power_a)
            xs.append(x)
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def recall_accuracy(model, pairs, n_examples=200, seed=1234, power_a=0.01):
    """(correct, total) over every query of `n_examples` fresh examples with `pairs` pairs each
    (an int), or drawn from a tuple of choices (argmax at the query position)."""
    check_int("n_examples", n_examples, minimum=1)
    g = torch.Generator().manual_seed(seed)
    model.eval()
    correct = total = 0
    for start in range(0, n_examples, 100):
        size = min(100, n_examples - start)
        if isinstance(pairs, int):
            x, y = mqar_batch(size, model.config.length, pairs, model.config.vocab_size, g, power_a)
        else:
            x, y = mqar_mixture(size, model.config.length, pairs, model.config.vocab_size, g,
                                power_a)
        logits, _ = model(x)
        asked = y != -100
        correct += int((logits.argmax(-1)[asked] == y[asked]).sum())
        total += int(asked.sum())
    return correct, total


def optimizer_groups(model, weight_decay):
    """AdamW parameter groups: weight decay on the matrices of linear and embedding layers only;
    none on biases, norms and convolutions, nor on a Mamba layer's A_log, D and Delta bias (the
    reference implementation marks A_log and D `_no_weight_decay`: decaying A_log and the Delta
    bias towards 0 pulls every channel towards one time scale, A = -1 and Delta = softplus(0))."""
    check_float("weight_decay", weight_decay, minimum=0.0)
    matrices = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    decay = [p for p in model.parameters() if id(p) in matrices]
    rest = [p for p in model.parameters() if id(p) not in matrices]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def cosine_scale(step, steps, warmup):
    """Learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to 0 at
    `steps`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_recall(config, lr, pairs=TRAIN_PAIRS, steps=600, batch=64, seed=0, eval_every=100,
                 stop_at=0.99, max_cpu_seconds=None):
    """Train a RecallModel on fresh MQAR batches (pairs: an int, or choices drawn per example),
    AdamW (weight decay on matrices only, see optimizer_groups) with warm-up then cosine decay,
    and stop early once a check on 100 fresh examples reaches `stop_at`, or once the run has used
    `max_cpu_seconds` of CPU time (None: no limit). Returns (model, record: losses every 10
    steps, checks, wall and CPU seconds)."""
    check_float("lr", lr, greater_than=0.0)
    check_int("steps", steps, minimum=1)
    if max_cpu_seconds is not None:
        check_float("max_cpu_seconds", max_cpu_seconds, greater_than=0.0)
    pairs = check_int("pairs", pairs, minimum=1) if isinstance(pairs, int) else tuple(pairs)
    torch.manual_seed(seed)
    model = RecallModel(config)
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.1), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    warmup = max(1, steps // 20)
    losses, checks = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        if max_cpu_seconds is not None and time.process_time() - cpu_start > max_cpu_seconds:
            break
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_scale(step, steps, warmup)
        if isinstance(pairs, int):
            x, y = mqar_batch(batch, config.length, pairs, config.vocab_size, g)
        else:
            x, y = mqar_mixture(batch, config.length, pairs, config.vocab_size, g)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % eval_every == 0 or step == steps - 1:
            correct, total = recall_accuracy(model, pairs, n_examples=100, seed=999)
            checks.append({"step": step + 1, "accuracy": round(correct / total, 4)})
            if correct / total >= stop_at:
                break
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    return model, {"lr": lr, "steps": steps, "steps_run": len(losses), "seconds": round(seconds, 1),
                   "cpu_seconds": round(cpu_seconds, 1), "max_cpu_seconds": max_cpu_seconds,
                   "batch": batch, "loss": [round(v, 4) for v in losses[::10]], "checks": checks}


def plateaued(losses, window=5, tolerance=0.05):
    """True when the mean of the last `window` logged losses is within `tolerance` (relative) of
    the `window` before it: training had stopped improving when its budget ran out."""
    if len(losses) < 2 * window:
        return False
    last = sum(losses[-window:]) / window
    before = sum(losses[-2 * window:-window]) / window
    return before - last <= tolerance * before


def run_converged(record, vocab_size):
    """Did a recall training run finish its learning: reached 99% on the check, or stopped
    improving (`plateaued`) at a check accuracy above 5x chance (chance = 1 / the number of
    values, vocab_size / 2)? A run whose loss never left the level of guessing among the values
    has plateaued too, but it has not learned anything: its accuracy says nothing about what its
    state can hold."""
    check_int("vocab_size", vocab_size, minimum=4)
    if record["check_accuracy"] >= 0.99:
        return True
    return plateaued(record["loss"]) and record["check_accuracy"] > 5 / (vocab_size // 2)


def recall_curve(mixer, state, lrs=(3e-3, 1e-2), steps=600, eval_pairs=(2, 4, 8, 16),
                 train_pairs=TRAIN_PAIRS, n_examples=500, seed=0, batch=64, max_cpu_seconds=None,
                 **config):
    """Train one model on examples with 1..16 pairs at each learning rate in turn (stopping once
    one reaches 99% on the check), keep the best on a held-out check (Zoology reports the best
    learning rate too), and measure it at each number of pairs in `eval_pairs`: on `n_examples`
    examples of the training generator, and of uniform query gaps (a setting never trained on).
    Returns the model's record with one point per number of pairs (accuracy, n, Wilson 95%)."""
    config = RecallConfig(mixer=mixer, state=state, **config)
    runs, best, best_model = [], None, None
    for lr in lrs:
        model, record = train_recall(config, lr, pairs=train_pairs, steps=steps, seed=seed,
                                     batch=batch, max_cpu_seconds=max_cpu_seconds)
        check = recall_accuracy(model, train_pairs, n_examples=200, seed=4321)
        record["check_accuracy"] = round(check[0] / check[1], 4)
        record["converged"] = run_converged(record, config.vocab_size)
        runs.append(record)
        if best is None or record["check_accuracy"] > best["check_accuracy"]:
            best, best_model = record, model
        if record["check_accuracy"] >= 0.99:
            break
    points = []
    for pairs in eval_pairs:
        correct, total = recall_accuracy(best_model, pairs, n_examples, seed=2024 + pairs)
        shifted = recall_accuracy(best_model, pairs, n_examples, seed=3024 + pairs, power_a=1.0)
        low, high = wilson_interval(correct, total)
        points.append({"pairs": pairs, "correct": correct, "n": total,
                       "accuracy": correct / total, "low": low, "high": high,
                       "uniform_gaps": {"correct": shifted[0], "n": shifted[1]}})
    return {"mixer": mixer, "state": state, "config": config.to_dict(),
            "state_numbers": state_numbers(config), "train_pairs": list(train_pairs),
            "best_lr": best["lr"], "converged": best["converged"], "runs": runs,
            "points": points, "cpu_seconds": round(sum(r["cpu_seconds"] for r in runs), 1)}


# ---------------------------------------------------------------- 6. measured costs (benchmark)

FORWARD_METHODS = ("softmax, explicit T x T", "softmax, SDPA kernel", "hierarchical, b = best",
                   "linear, cumulative sum", "linear, chunked (C = 64)")

# One fresh process per (method, T): its peak resident memory (VmHWM, reset just before the
# forward pass via /proc/self/clear_refs) above what the inputs already held.
_FORWARD_CHILD = """
import json, math, sys, time
import torch, torch.nn.functional as F
from lcviz import subquadratic as sq
torch.set_num_threads(1)
method, T, B, H, D, repeats = sys.argv[1], *map(int, sys.argv[2:7])
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
causal = torch.ones(T, T, dtype=torch.bool).tril() if method.startswith("softmax, explicit") else None
runs = {
    "softmax, explicit T x T": lambda: torch.softmax(
        (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~causal, float("-inf")), -1) @ v,
    "softmax, SDPA kernel": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "hierarchical, b = best": lambda: sq.hierarchical_attention(q, k, v, sq.best_block(T)),
    "linear, cumulative sum": lambda: sq.linear_attention_cumsum(q, k, v),
    "linear, chunked (C = 64)": lambda: sq.linear_attention_chunked(q, k, v, 64),
}
run = runs[method]
extra = {}
""" + PEAK_AND_TIME_CHILD


def measure_forward(method, length, batch=1, heads=4, head_dim=64, repeats=3, timeout=900):
    """Forward time (median of `repeats` after one untimed run) and peak memory above the inputs
    (MB) of one method at one length, in a fresh Python process with one thread."""
    check_choice("method", method, FORWARD_METHODS)
    check_int("length", length, minimum=1)
    return run_child(_FORWARD_CHILD, [method, length, batch, heads, head_dim, repeats], timeout)


FORWARD_LENGTHS = (1024, 2048, 4096, 8192)


def forward_costs(lengths=FORWARD_LENGTHS, heads=4, head_dim=64, timeout=900):
    """Measured forward time and peak memory of every method in FORWARD_METHODS against the
    length (B = 1), with the scores each computes. Every method runs at every length; one that
    cannot (out of memory, no result within `timeout` s) gets a row with the measured "error"
    instead of a time."""
    rows = []
    for length in lengths:
        for method in FORWARD_METHODS:
            row = {"method": method, "length": length,
                   **measure_forward(method, length, 1, heads, head_dim, timeout=timeout)}
            if method.startswith("hierarchical"):
                row["block"] = best_block(length)
                row["scores"] = hierarchical_scores(length, row["block"])
            rows.append(row)
    return {"heads": heads, "head_dim": head_dim, "batch": 1, "dtype": "float32", "threads": 1,
            "memory": "peak RSS above the inputs, one fresh process per row", "rows": rows}


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def decode_costs(length=16384, window=256, heads=4, head_dim=64, mamba_width=128, mamba_state=16,
                 positions=(256, 1024, 4096, 16384)):
    """Per-token decode time, median over `window` consecutive tokens, at the start and at the end
    of a `length`-token stream:

    - linear attention, recurrent step (H heads, D x D state each), run over every token;
    - a Mamba layer's step (d_model `mamba_width`, d_state `mamba_state`), run over every token;
    - softmax attention with a KV cache (H heads, head_dim D), measured at `positions`: the cache
      is filled to that many entries and `window` tokens are decoded on top of it.

    Returns per-form times (seconds per token) and state sizes (numbers)."""
    check_int("length", length, minimum=2 * window)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    result = {"length": length, "window": window, "heads": heads, "head_dim": head_dim}

    with torch.no_grad():
        state = LinearState.empty(1, heads, head_dim, head_dim)
        qkv = torch.randn(length, 3, 1, heads, head_dim, generator=g)
        times = []
        for t in range(length):
            start = time.perf_counter()
            _, state = linear_attention_step(qkv[t, 0], qkv[t, 1], qkv[t, 2], state)
            times.append(time.perf_counter() - start)
        result["linear"] = {"first": _median(times[:window]), "last": _median(times[-window:]),
                            "state_numbers": state.numel(), "tokens": length}

        torch.manual_seed(0)
        layer = MambaLayer(mamba_width, d_state=mamba_state).eval()
        mstate = layer.empty_state(1)
        xs = torch.randn(length, 1, mamba_width, generator=g)
        times = []
        for t in range(length):
            start = time.perf_counter()
            _, mstate = layer.step(xs[t], mstate)
            times.append(time.perf_counter() - start)
        result["mamba"] = {"first": _median(times[:window]), "last": _median(times[-window:]),
                           "state_numbers": layer.state_numbers(), "tokens": length,
                           "d_model": mamba_width, "d_state": mamba_state}

        cache_rows = []
        for position in positions:
            keys = torch.randn(1, heads, position + window, head_dim, generator=g)
            values = torch.randn(1, heads, position + window, head_dim, generator=g)
            times = []
            for t in range(position, position + window):
                q = torch.randn(1, heads, 1, head_dim, generator=g)
                start = time.perf_counter()
                scores = q @ keys[:, :, :t + 1].transpose(-2, -1) / math.sqrt(head_dim)
                torch.softmax(scores, dim=-1) @ values[:, :, :t + 1]
                times.append(time.perf_counter() - start)
            cache_rows.append({"position": position, "seconds": _median(times),
                               "cache_numbers": kv_cache_numbers(position, heads, head_dim)})
        result["kv_cache"] = cache_rows
    for form in ("linear", "mamba"):
        result[form]["last_over_first"] = result[form]["last"] / result[form]["first"]
    result["kv_cache_last_over_first"] = cache_rows[-1]["seconds"] / cache_rows[0]["seconds"]
    return result


# ---------------------------------------------------------------- 7. recall at equal state (benchmark)

RECALL_PAIRS = (2, 4, 8, 16)
# (mixer, state): attention's KV cache grows with the length; the others hold state x width
RECALL_MODELS = (("attention", 16), ("linear", 4), ("linear", 16), ("mamba", 4), ("mamba", 16))
RECALL_LRS = (3e-3, 1e-2)  # tried in this order; the next only if the last did not reach 99%
# training steps per learning rate and batch size: each run fits a minute of one CPU core (a
# Mamba step, with its sequential scan, costs several attention steps: it gets half the batch)
RECALL_STEPS = {"attention": 600, "linear": 600, "mamba": 350}
RECALL_BATCH = {"attention": 64, "linear": 64, "mamba": 32}
RECALL_CPU_SECONDS = 60.0  # a run stops here even if it has steps left (recorded: steps_run)


def _recall_job(job):
    torch.set_num_threads(1)
    mixer, state, lrs, steps, batch, max_cpu_seconds = job
    return recall_curve(mixer, state, lrs=lrs, steps=steps, batch=batch,
                        max_cpu_seconds=max_cpu_seconds)


def recall_sweep(models=RECALL_MODELS, lrs=RECALL_LRS, steps=RECALL_STEPS, batch=RECALL_BATCH,
                 max_cpu_seconds=RECALL_CPU_SECONDS, workers=1):
    """One recall curve per (mixer, state) (see recall_curve), `workers` at a time in separate
    processes with one thread each. `steps`, `batch`: per learning rate, one number or a dict
    {mixer: number} (a Mamba step costs several times an attention step on a CPU); every run
    also stops after `max_cpu_seconds` of CPU time. Returns the list of model records."""
    check_int("workers", workers, minimum=1)
    if not isinstance(steps, dict):
        steps = {mixer: steps for mixer, _ in models}
    if not isinstance(batch, dict):
        batch = {mixer: batch for mixer, _ in models}
    for name, table in (("steps", steps), ("batch", batch)):
        for mixer, _ in models:
            if mixer not in table:
                raise ValueError(f"{name} names no budget for mixer {mixer!r}; got {table}")
            check_int(f"{name}[{mixer!r}]", table[mixer], minimum=1)
    jobs = [(mixer, state, tuple(lrs), steps[mixer], batch[mixer], max_cpu_seconds)
            for mixer, state in models]
    if workers == 1:
        return [_recall_job(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_recall_job, jobs))

# ---------------------------------------------------------------- 8. passkey at growing distance (benchmark)

PASSKEY_MODELS = (("attention", 16), ("linear", 16), ("mamba", 16))
PASSKEY_PROMPT = 96  # prompt tokens: instruction, random filler, needle, question
PASSKEY_BANDS = ((19, 29), (30, 41), (42, 53))  # key distances (tokens) a 96-token prompt allows
PASSKEY_STEPS = {"attention": 600, "linear": 600, "mamba": 210}  # each also stops at a CPU minute
PASSKEY_DIGITS = 5


def passkey_config(mixer, state=16, length=PASSKEY_PROMPT, **config):
    """A RecallConfig for passkey prompts (lcviz.passkey): its word vocabulary, `length` prompt
    tokens plus the 4 teacher-forced key digits, otherwise the MQAR models' layout."""
    from lcviz.passkey import min_passkey_length, passkey_tokenizer

    check_int("length", length, minimum=min_passkey_length(PASSKEY_DIGITS))
    return RecallConfig(mixer=mixer, state=state, vocab_size=passkey_tokenizer().vocab_size,
                        length=length + PASSKEY_DIGITS - 1, **config)


def train_passkey_mixer(config, lr, steps, batch=32, seed=0, filler_weight=1.0,
                        max_cpu_seconds=60.0):
    """Train a RecallModel (config from passkey_config) on random-filler passkey prompts of one
    length, needle places uniform (lcviz.passkey.content_batch), with RetrievalLoss: the key
    digits plus `filler_weight` times a next-token loss on the rest of the prompt. AdamW
    (optimizer_groups), warm-up then cosine decay; stops early once the run has used
    `max_cpu_seconds` of CPU time. Returns (model, record)."""
    from lcviz.passkey import RetrievalLoss, content_batch, passkey_tokenizer

    check_float("lr", lr, greater_than=0.0)
    check_int("steps", steps, minimum=1)
    check_int("batch", batch, minimum=1)
    check_float("max_cpu_seconds", max_cpu_seconds, greater_than=0.0)
    tokenizer = passkey_tokenizer()
    prompt_length = config.length - (PASSKEY_DIGITS - 1)
    torch.manual_seed(seed)
    model = RecallModel(config)
    loss_of = RetrievalLoss(model, filler_weight)
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.1), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    warmup = max(1, steps // 20)
    losses = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        if time.process_time() - cpu_start > max_cpu_seconds:
            break
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_scale(step, steps, warmup)
        _, loss = loss_of(*content_batch(batch, prompt_length, tokenizer, g))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return model, {"lr": lr, "steps": steps, "steps_run": len(losses), "batch": batch,
                   "seconds": round(time.perf_counter() - start, 1),
                   "cpu_seconds": round(time.process_time() - cpu_start, 1),
                   "max_cpu_seconds": max_cpu_seconds,
                   "loss": [round(v, 4) for v in losses[::10]]}


def passkey_by_distance(model, bands=PASSKEY_BANDS, n=200, seed=None):
    """Whole-key accuracy of `model` (greedy, lcviz.passkey.key_hits) on held-out random-filler
    prompts of its length, n per band (low, high) of key distance, drawn from seed
    lcviz.passkey.CONTENT_EVAL_SEED (no training run draws from it) unless `seed` is given.
    Returns {"low-high": rate cell {"k", "n", "rate", "low", "high"}}."""
    from lcviz.passkey import (
        CONTENT_EVAL_SEED,
        band_passkeys,
        key_hits,
        passkey_tokenizer,
        rate_cell,
    )

    check_int("n", n, minimum=1)
    prompt_length = model.config.length - (PASSKEY_DIGITS - 1)
    generator = torch.Generator().manual_seed(CONTENT_EVAL_SEED if seed is None else seed)
    tokenizer = passkey_tokenizer()
    cells = {}
    for low, high in bands:
        prompts = band_passkeys(n, prompt_length, low, high, generator)
        if not prompts:
            raise ValueError(f"no key distance in the band ({low}, {high}) fits a prompt of "
                             f"{prompt_length} tokens")
        cells[f"{low}-{high}"] = rate_cell(key_hits(model, prompts, tokenizer))
    return cells


def passkey_curve(mixer, state=16, lrs=(3e-3,), steps=600, n=200, seed=0, batch=32,
                  max_cpu_seconds=60.0, bands=PASSKEY_BANDS, check_n=50, **config):
    """Train one passkey model per learning rate in `lrs` (each at most `max_cpu_seconds` of
    CPU), keep the best on `check_n` prompts per band of a check seed, and measure it per band of key
    distance on n held-out prompts each (Wilson 95%). Returns the model's record."""
    config = passkey_config(mixer, state, **config)
    runs, best, best_model = [], None, None
    for lr in lrs:
        model, record = train_passkey_mixer(config, lr, steps, batch=batch, seed=seed,
                                            max_cpu_seconds=max_cpu_seconds)
        check = passkey_by_distance(model, bands, n=check_n, seed=777)
        record["check_accuracy"] = round(sum(c["k"] for c in check.values())
                                         / sum(c["n"] for c in check.values()), 4)
        runs.append(record)
        if best is None or record["check_accuracy"] > best["check_accuracy"]:
            best, best_model = record, model
    return {"mixer": mixer, "state": state, "config": config.to_dict(),
            "state_numbers": state_numbers(config), "best_lr": best["lr"], "runs": runs,
            "bands": passkey_by_distance(best_model, bands, n=n),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in runs), 1)}


def passkey_sweep(models=PASSKEY_MODELS, lrs=(3e-3,), steps=PASSKEY_STEPS, n=200):
    """One passkey_curve per (mixer, state), one after another with one thread."""
    torch.set_num_threads(1)
    for mixer, _ in models:
        if mixer not in steps:
            raise ValueError(f"steps names no budget for mixer {mixer!r}; got {steps}")
    return [passkey_curve(mixer, state, lrs=lrs, steps=steps[mixer], n=n)
            for mixer, state in models]


BENCH_PARTS = ("forward", "decode", "recall", "passkey")


def benchmark(parts=BENCH_PARTS, workers=1, plot=True, **options):
    """Measured costs and recall of the sub-quadratic forms (python -m lcviz.bench subquadratic):
    forward time and peak memory against the length, per-token decode time at the start and end
    of a long stream, MQAR accuracy against the number of pairs at equal state sizes, and
    passkey accuracy against the key's distance. options: forward=..., decode=..., recall=...,
    passkey=... keyword dicts for each part. plot=True also writes one figure per part,
    data/bench-subquadratic-<part>.png (lcviz.plots.subquadratic.benchmark_figures)."""
    for part in parts:
        check_choice("part", part, BENCH_PARTS)
    results = {}
    if "forward" in parts:
        results["forward"] = forward_costs(**options.get("forward", {}))
    if "decode" in parts:
        results["decode"] = decode_costs(**options.get("decode", {}))
    if "recall" in parts:
        start = time.perf_counter()
        recall_options = options.get("recall", {})
        models = recall_sweep(workers=workers, **recall_options)
        results["recall"] = {
            "models": models, "wall_seconds": round(time.perf_counter() - start),
            "steps": recall_options.get("steps", RECALL_STEPS),
            "batch": recall_options.get("batch", RECALL_BATCH),
            "max_cpu_seconds": recall_options.get("max_cpu_seconds", RECALL_CPU_SECONDS),
            "note": "one model per (mixer, state), trained on 1..16 pairs per example; accuracy "
                    "over every query of 500 held-out examples per number of pairs (n = 500 x "
                    "pairs), Wilson 95% interval; the best of the learning rates tried"}
    if "passkey" in parts:
        start = time.perf_counter()
        passkey_options = options.get("passkey", {})
        models = passkey_sweep(**passkey_options)
        results["passkey"] = {
            "models": models, "wall_seconds": round(time.perf_counter() - start),
            "prompt_length": PASSKEY_PROMPT, "steps": passkey_options.get("steps", PASSKEY_STEPS),
            "note": "one model per mixer, trained on random-filler passkey prompts of one length "
                    "(needle places uniform); whole-key accuracy on held-out prompts (seed "
                    "lcviz.passkey.CONTENT_EVAL_SEED) per band of key distance, n per band, "
                    "Wilson 95% interval"}
    if plot:
        from lcviz.checkpoints import DATA_DIR
        from lcviz.plots.subquadratic import benchmark_figures

        for part, fig in benchmark_figures(results).items():
            fig.savefig(DATA_DIR / f"bench-subquadratic-{part}.png", dpi=90)
    return results
