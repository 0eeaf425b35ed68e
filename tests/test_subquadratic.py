"""Sub-quadratic attention: every fast form equals its slow reference, recurrent forms equal
parallel ones, nothing sees the future, recurrent states do not grow, bad inputs are named."""

import math

import pytest
import torch

from lcviz import subquadratic as sq
from lcviz.attention import reference_attention


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def qkv(B=2, H=3, T=24, D=8, M=None, seed=0, dtype=torch.float64):
    return (rand(B, H, T, D, seed=seed, dtype=dtype), rand(B, H, T, D, seed=seed + 1, dtype=dtype),
            rand(B, H, T, M or D, seed=seed + 2, dtype=dtype))


def softmax_attention(q, k, v, causal=True):
    T = q.shape[2]
    mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
    return reference_attention(q, k, v, mask)[0]


# ---------------------------------------------------------------- hierarchical attention

@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T,b", [(24, 4), (24, 3), (32, 8), (30, 5), (16, 2), (12, 6)])
def test_hierarchical_equals_dense_block_mean_keys(causal, T, b):
    q, k, v = qkv(T=T, M=5)
    got = sq.hierarchical_attention(q, k, v, b, causal)
    want = sq.block_mean_key_attention(q, k, v, b, causal)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_block_mean_key_construction_by_hand():
    """The dense reference itself, against a loop over queries that writes the key matrix out."""
    q, k, v = qkv(B=1, H=1, T=12, D=4)
    b = 3
    means = k[0, 0].reshape(4, 3, 4).mean(1)  # (4, D)
    rows = []
    for i in range(12):
        keys = torch.stack([k[0, 0, j] if i // b - j // b in (0, 1) else means[j // b]
                            for j in range(i + 1)])  # causal: keys 0..i
        w = torch.softmax(keys @ q[0, 0, i] / 2.0, dim=0)
        rows.append(w @ v[0, 0, :i + 1])
    torch.testing.assert_close(sq.block_mean_key_attention(q, k, v, b)[0, 0], torch.stack(rows))


@pytest.mark.parametrize("causal", [True, False])
def test_hierarchical_is_exact_at_the_ends(causal):
    """b = 1: every block mean is the key itself. b = T: everything is near."""
    q, k, v = qkv(T=16)
    exact = softmax_attention(q, k, v, causal)
    for b in (1, 16):
        torch.testing.assert_close(sq.hierarchical_attention(q, k, v, b, causal), exact)
    assert sq.hierarchical_error_curve(q, k, v, [1, 8, 16], causal)[1] < 1e-12


def test_hierarchical_approximates_in_between():
    q, k, v = qkv(T=32)
    errors = sq.hierarchical_error_curve(q, k, v, [2, 4, 8])
    assert all(0.01 < e < 1.5 for e in errors.values()), errors


def test_hierarchical_outputs_are_convex_combinations():
    """Constant values come back unchanged only if every far entry is counted b times in the
    normaliser (a normaliser without the block size would scale them)."""
    q, k, _ = qkv(T=32, D=4)
    ones = torch.ones(2, 3, 32, 4, dtype=torch.float64)
    for causal in (True, False):
        torch.testing.assert_close(sq.hierarchical_attention(q, k, ones, 4, causal), ones)


def test_hierarchical_is_causal():
    q, k, v = qkv(T=32)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, :, 20:], k2[:, :, 20:], v2[:, :, 20:] = 5.0, -3.0, 7.0  # change the future
    a = sq.hierarchical_attention(q, k, v, 4)
    b = sq.hierarchical_attention(q2, k2, v2, 4)
    torch.testing.assert_close(a[:, :, :20], b[:, :, :20])
    assert not torch.allclose(a[:, :, 20:], b[:, :, 20:])


def test_hierarchical_float32_large_scores_stay_finite():
    q, k, v = qkv(T=64, dtype=torch.float32)
    y = sq.hierarchical_attention(30 * q, 30 * k, v, 8)
    assert torch.isfinite(y).all()


def test_hierarchical_cost_counts():
    assert sq.hierarchical_scores(1024, 32, causal=False) == 1024 * (96 + 32)
    assert sq.hierarchical_scores(1024, 32, causal=True) == 1024 * (64 + 32)
    assert sq.best_block(1024, causal=False) == 16  # 3b + T/b smallest near sqrt(T/3) = 18.5
    assert sq.best_block(4096, causal=True) == 32  # 2b + T/b: sqrt(2048) = 45 -> 32 (64 ties worse)
    assert sq.hierarchical_scores(4096, 32) < 4096 ** 2 / 10


def test_block_must_divide_length():
    q, k, v = qkv(T=24)
    with pytest.raises(ValueError, match=r"block must divide the length 24; got block=5"):
        sq.hierarchical_attention(q, k, v, 5)
    with pytest.raises(ValueError, match="block must be >= 1"):
        sq.hierarchical_attention(q, k, v, 0)
    with pytest.raises(ValueError, match="block must be <= 24"):
        sq.block_mean_key_attention(q, k, v, 48)
    with pytest.raises(ValueError, match="4-D"):
        sq.hierarchical_attention(q[0], k[0], v[0], 4)


def test_model_qkv_reproduces_the_layer():
    """q, k, v pulled out of a TinyTransformer give its attention output."""
    from lcviz.model import ModelConfig, TinyTransformer
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig(n_embd=32, n_head=4, block_size=16)).eval()
    idx = torch.randint(0, 98, (2, 16))
    q, k, v = sq.model_qkv(model, idx, 1)
    assert q.shape == (2, 4, 16, 8)
    with torch.no_grad():
        x = model.embed(idx)
        x, _ = model.blocks[0](x, model.default_mask(16), torch.arange(16))
        want, _ = model.blocks[1].attn(model.blocks[1].ln1(x), model.default_mask(16),
                                       torch.arange(16))
        got = softmax_attention(q, k, v).transpose(1, 2).reshape(2, 16, 32)
        torch.testing.assert_close(model.blocks[1].attn.proj(got), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="layer must be <= 1"):
        sq.model_qkv(model, idx, 2)


# ---------------------------------------------------------------- linear attention

def test_elu_feature_map_is_positive():
    x = torch.linspace(-20, 5, 101, dtype=torch.float64)
    phi = sq.elu_feature_map(x)
    assert (phi > 0).all()
    torch.testing.assert_close(phi[x >= 0], x[x >= 0] + 1)


def test_linear_quadratic_by_hand():
    q, k, v = qkv(B=1, H=1, T=6, D=3, M=2)
    fq, fk = sq.elu_feature_map(q[0, 0]), sq.elu_feature_map(k[0, 0])
    rows = []
    for i in range(6):
        w = torch.stack([fq[i] @ fk[j] for j in range(i + 1)])
        rows.append((w[:, None] * v[0, 0, :i + 1]).sum(0) / (w.sum() + 1e-6))
    torch.testing.assert_close(sq.linear_attention_quadratic(q, k, v)[0, 0], torch.stack(rows))


@pytest.mark.parametrize("M", [8, 5])
def test_linear_attention_forms_agree(M):
    q, k, v = qkv(T=40, D=8, M=M, dtype=torch.float32)
    quadratic = sq.linear_attention_quadratic(q, k, v)
    torch.testing.assert_close(sq.linear_attention_cumsum(q, k, v), quadratic, atol=1e-5, rtol=0)
    recurrent, _ = sq.linear_attention_recurrent(q, k, v)
    torch.testing.assert_close(recurrent, quadratic, atol=1e-5, rtol=0)
    for chunk in (1, 7, 16, 40, 64):
        torch.testing.assert_close(sq.linear_attention_chunked(q, k, v, chunk), quadratic,
                                   atol=1e-5, rtol=0)


def test_linear_recurrent_streams_in_pieces():
    q, k, v = qkv(T=30)
    whole, state = sq.linear_attention_recurrent(q, k, v)
    first, mid = sq.linear_attention_recurrent(q[:, :, :11], k[:, :, :11], v[:, :, :11])
    second, end = sq.linear_attention_recurrent(q[:, :, 11:], k[:, :, 11:], v[:, :, 11:], state=mid)
    torch.testing.assert_close(torch.cat([first, second], dim=2), whole)
    torch.testing.assert_close(end.s, state.s)


def test_linear_state_is_constant_in_length():
    sizes = set()
    for T in (4, 64, 257):
        q, k, v = qkv(B=1, H=2, T=T, D=6, M=5, dtype=torch.float32)
        _, state = sq.linear_attention_recurrent(q, k, v)
        sizes.add((tuple(state.s.shape), tuple(state.z.shape), state.numel()))
    assert sizes == {((1, 2, 6, 5), (1, 2, 6), sq.linear_state_numbers(2, 6, 5))}
    assert sq.kv_cache_numbers(257, 2, 6) > sq.kv_cache_numbers(64, 2, 6)


@pytest.mark.parametrize("fn", [sq.linear_attention_quadratic, sq.linear_attention_cumsum,
                                lambda q, k, v: sq.linear_attention_recurrent(q, k, v)[0],
                                lambda q, k, v: sq.linear_attention_chunked(q, k, v, 8)])
def test_linear_attention_is_causal(fn):
    q, k, v = qkv(T=24)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    k2[:, :, 15:], v2[:, :, 15:] = 4.0, -9.0
    a, b = fn(q, k, v), fn(q2, k2, v2)
    torch.testing.assert_close(a[:, :, :15], b[:, :, :15])
    assert not torch.allclose(a[:, :, 15:], b[:, :, 15:])


def test_linear_bad_inputs():
    q, k, v = qkv(T=8)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        sq.linear_attention_chunked(q, k, v, 0)
    with pytest.raises(ValueError, match="same last dimension"):
        sq.linear_attention_quadratic(q, k[..., :4], v)
    with pytest.raises(ValueError, match="key_dim must be >= 1"):
        sq.LinearState.empty(1, 1, 0, 4)
    with pytest.raises(ValueError, match="state.s has shape"):
        sq.linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0],
                                 sq.LinearState.empty(2, 3, 8, 3))


# ---------------------------------------------------------------- selective SSM (Mamba)

def scan_inputs(b=2, L=12, d=6, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, L, d, generator=g, dtype=torch.float64)
    delta = torch.nn.functional.softplus(torch.randn(b, L, d, generator=g, dtype=torch.float64))
    A = -torch.rand(d, n, generator=g, dtype=torch.float64) * 3 - 0.1
    B, C = (torch.randn(b, L, n, generator=g, dtype=torch.float64) for _ in range(2))
    D = torch.randn(d, generator=g, dtype=torch.float64)
    return u, delta, A, B, C, D


def test_selective_scan_by_hand():
    """One channel, one state, three steps written out."""
    u, delta, A, B, C, D = scan_inputs(b=1, L=3, d=1, n=1)
    x, want = 0.0, []
    for t in range(3):
        x = math.exp(delta[0, t, 0] * A[0, 0]) * x + delta[0, t, 0] * B[0, t, 0] * u[0, t, 0]
        want.append(C[0, t, 0] * x + D[0] * u[0, t, 0])
    y, _ = sq.selective_scan(u, delta, A, B, C, D)
    torch.testing.assert_close(y[0, :, 0], torch.stack(want))


def test_selective_scan_sequential_equals_parallel():
    args = scan_inputs(L=20, d=5, n=3)
    y, state = sq.selective_scan(*args)
    torch.testing.assert_close(sq.selective_scan_parallel(*args), y, atol=1e-10, rtol=0)
    assert state.shape == (2, 5, 3)


def test_selective_scan_is_input_dependent_and_causal():
    u, delta, A, B, C, D = scan_inputs(L=16)
    delta2, B2 = delta.clone(), B.clone()
    delta2[:, 10:] = 5.0
    B2[:, 10:] = 0.0
    a, _ = sq.selective_scan(u, delta, A, B, C, D)
    b, _ = sq.selective_scan(u, delta2, A, B2, C, D)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_mamba_layer_recurrent_equals_parallel_and_state_is_fixed():
    torch.manual_seed(0)
    layer = sq.MambaLayer(16, d_state=4, expand=2, d_conv=4).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    y = layer(x)
    torch.testing.assert_close(layer(x, scan=sq.selective_scan_parallel), y)
    state = tuple(s.double() for s in layer.empty_state(2))
    outs = []
    for t in range(9):
        out, state = layer.step(x[:, t], state)
        outs.append(out)
        assert tuple(s.shape for s in state) == ((2, 32, 3), (2, 32, 4))
    torch.testing.assert_close(torch.stack(outs, dim=1), y)
    assert layer.state_numbers() == sum(s[0].numel() for s in state) == 32 * 4 + 32 * 3


def test_mamba_init_follows_the_reference():
    layer = sq.MambaLayer(32, d_state=8)
    dt = torch.nn.functional.softplus(layer.dt_proj.bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6
    torch.testing.assert_close(-torch.exp(layer.A_log[0]), -torch.arange(1.0, 9.0))
    assert layer.dt_rank == 2 and layer.d_inner == 64
    model = sq.RecallModel(sq.RecallConfig(mixer="mamba", width=32, state=8))
    dt = torch.nn.functional.softplus(model.mixers[0].dt_proj.bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6  # the model's generic init left it alone


def test_mamba_bad_inputs():
    with pytest.raises(ValueError, match="d_state must be >= 1, got 0"):
        sq.MambaLayer(16, d_state=0)
    u, delta, A, B, C, D = scan_inputs()
    with pytest.raises(ValueError, match="A must be"):
        sq.selective_scan(u, delta, A[:, :0], B[..., :0], C[..., :0], D)
    with pytest.raises(ValueError, match="B must be"):
        sq.selective_scan(u, delta, A, B[..., :2], C, D)
    with pytest.raises(ValueError, match="state must be >= 1, got 0"):
        sq.RecallConfig(mixer="linear", state=0)


# ---------------------------------------------------------------- retention

@pytest.mark.parametrize("gamma", [0.9, 0.5, 1.0])
def test_retention_forms_agree(gamma):
    q, k, v = qkv(T=26, M=5, dtype=torch.float32)
    parallel = sq.retention_parallel(q, k, v, gamma)
    torch.testing.assert_close(sq.retention_recurrent(q, k, v, gamma), parallel, atol=1e-4,
                               rtol=1e-5)
    for chunk in (1, 4, 7, 26):
        torch.testing.assert_close(sq.retention_chunkwise(q, k, v, gamma, chunk), parallel,
                                   atol=1e-4, rtol=1e-5)


def test_decay_mask_has_no_nan_when_long():
    d = sq.decay_mask(2000, 0.5)
    assert torch.isfinite(d).all() and d[0, 1] == 0 and d[5, 3] == 0.25
    with pytest.raises(ValueError, match="gamma must be <= 1.0"):
        sq.decay_mask(4, 1.5)


# ---------------------------------------------------------------- associative recall

def test_mqar_layout():
    x, y = sq.mqar_batch(50, 64, 8, 128, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (50, 64)
    for row_x, row_y in zip(x, y):
        keys, values = row_x[0:16:2], row_x[1:16:2]
        assert ((keys >= 1) & (keys < 64)).all() and ((values >= 64) & (values < 128)).all()
        assert len(set(keys.tolist())) == 8 and len(set(values.tolist())) == 8
        asked = (row_y != -100).nonzero().flatten()
        assert len(asked) == 8 and (asked >= 16).all() and ((asked - 16) % 2 == 0).all()
        lookup = dict(zip(keys.tolist(), values.tolist()))
        assert sorted(row_x[asked].tolist()) == sorted(keys.tolist())  # each key asked once
        assert all(lookup[int(row_x[i])] == int(row_y[i]) for i in asked)
        rest = torch.ones(64, dtype=torch.bool)
        rest[:16], rest[asked] = False, False
        assert (row_x[rest] == 0).all()


def test_mqar_gaps_follow_the_power():
    _, y_close = sq.mqar_batch(400, 64, 2, 32, torch.Generator().manual_seed(0), power_a=0.01)
    _, y_flat = sq.mqar_batch(400, 64, 2, 32, torch.Generator().manual_seed(0), power_a=1.0)
    mean_pos = [float((y != -100).nonzero()[:, 1].float().mean()) for y in (y_close, y_flat)]
    assert mean_pos[0] < mean_pos[1] - 5


def test_mqar_bad_inputs():
    with pytest.raises(ValueError, match="needs length >= 4 \\* pairs = 80"):
        sq.mqar_batch(2, 64, 20, 128)
    with pytest.raises(ValueError, match="raise vocab_size"):
        sq.mqar_batch(2, 64, 8, 16)
    with pytest.raises(ValueError, match="mixer must be one of"):
        sq.RecallConfig(mixer="rnn")


@pytest.mark.parametrize("mixer", ["attention", "linear", "mamba"])
def test_recall_models_are_causal(mixer):
    torch.manual_seed(0)
    model = sq.RecallModel(sq.RecallConfig(mixer=mixer, width=16, state=4, length=32)).eval()
    x, _ = sq.mqar_batch(2, 32, 4, 128, torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[:, 20:] = 7
    with torch.no_grad():
        a, b = model(x)[0], model(x2)[0]
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


def test_state_sizes_compared_honestly():
    linear = sq.RecallConfig(mixer="linear", state=16)
    mamba = sq.RecallConfig(mixer="mamba", state=16)
    attention = sq.RecallConfig(mixer="attention")
    assert sq.state_numbers(mamba) == 2 * (64 * 16 + 64 * 3)
    assert sq.state_numbers(linear) == sq.state_numbers(mamba) + 2 * 16  # + the normaliser z
    assert sq.state_numbers(attention) == 2 * (2 * 64 * 64 + 64 * 3)
    assert sq.state_numbers(attention, length=128) - sq.state_numbers(attention) == 2 * 2 * 64 * 64
    # the Mamba state in the model is what the formula counts
    model = sq.RecallModel(mamba)
    assert sum(m.state_numbers() for m in model.mixers) == sq.state_numbers(mamba)


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    config = sq.RecallConfig(mixer="attention", width=32, length=16, vocab_size=16)
    _, record = sq.train_recall(config, pairs=2, lr=3e-3, steps=40, batch=32, eval_every=40)
    assert record["loss"][-1] < record["loss"][0] - 0.5
    assert sq.plateaued([1.0] * 10) and not sq.plateaued([2.0] * 5 + [1.0] * 5)


# ---------------------------------------------------------------- capacity of a fixed state

def test_best_state_is_exact_up_to_key_dim_pairs():
    for d in (1, 3, 8):
        assert sq.best_state_residual(d, d) < 1e-10
        assert sq.best_state_residual(d, d + 1) > 0.05
    assert [sq.first_failing_pairs(d) for d in (1, 2, 4, 16)] == [2, 3, 5, 17]


def test_outer_product_recall_degrades_with_pairs():
    few = sq.outer_product_recall(16, 4, trials=100)
    many = sq.outer_product_recall(16, 128, trials=100)
    assert few > 0.95 and many < 0.5
    assert sq.outer_product_recall(16, 16, feature="elu", trials=100) < sq.outer_product_recall(
        16, 16, trials=100)  # positive features interfere more
    with pytest.raises(ValueError, match="feature must be one of"):
        sq.outer_product_recall(4, 4, feature="relu")


# ---------------------------------------------------------------- checkers

def test_check_linear_recurrent():
    from lcviz.checks import check_linear_recurrent

    def loop(q, k, v):
        phi_q, phi_k = sq.elu_feature_map(q), sq.elu_feature_map(k)
        B, H, T, D = q.shape
        S = torch.zeros(B, H, D, v.shape[-1], dtype=q.dtype)
        z = torch.zeros(B, H, D, dtype=q.dtype)
        out = []
        for t in range(T):
            S = S + phi_k[:, :, t, :, None] * v[:, :, t, None, :]
            z = z + phi_k[:, :, t]
            num = torch.einsum("bhd,bhdm->bhm", phi_q[:, :, t], S)
            out.append(num / ((phi_q[:, :, t] * z).sum(-1, keepdim=True) + 1e-6))
        return torch.stack(out, dim=2)

    def no_normaliser(q, k, v):
        phi_q, phi_k = sq.elu_feature_map(q), sq.elu_feature_map(k)
        S = torch.cumsum(phi_k[..., :, None] * v[..., None, :], dim=2)
        return torch.einsum("bhtd,bhtdm->bhtm", phi_q, S)

    def stub(q, k, v):
        raise NotImplementedError

    assert check_linear_recurrent(loop).status == "pass"
    assert check_linear_recurrent(sq.linear_attention_cumsum).status == "pass"
    result = check_linear_recurrent(no_normaliser)
    assert result.status == "fail" and "0 of 4 cases pass" in result.message
    assert check_linear_recurrent(stub).status == "not attempted"


def test_check_failing_pairs():
    from lcviz.checks import check_failing_pairs
    assert check_failing_pairs(lambda key_dim: key_dim + 1).status == "pass"
    result = check_failing_pairs(lambda key_dim: key_dim)  # off by one: d pairs still fit
    assert result.status == "fail" and "key_dim=4" in result.message


def test_check_best_block():
    import math

    from lcviz.checks import check_best_block

    def by_hand(length):
        divisors = [b for b in range(1, length + 1) if length % b == 0]
        return min(divisors, key=lambda b: (2 * b + length // b, b))

    assert check_best_block(by_hand).status == "pass"
    result = check_best_block(lambda length: max(1, round(math.sqrt(length / 2))))  # not a divisor
    assert result.status == "fail" and "cases pass" in result.message


def test_recall_sweep_steps_per_mixer_are_validated():
    with pytest.raises(ValueError, match="no budget for mixer 'mamba'"):
        sq.recall_sweep(models=(("mamba", 4),), steps={"attention": 10})
    with pytest.raises(ValueError, match="steps\\['linear'\\]"):
        sq.recall_sweep(models=(("linear", 4),), steps={"linear": 0})
    assert set(sq.RECALL_STEPS) == {mixer for mixer, _ in sq.RECALL_MODELS}


def test_a_run_that_never_left_chance_has_not_converged():
    flat = [4.16] * 20  # stopped improving at the loss of guessing among 64 values
    assert not sq.run_converged({"check_accuracy": 0.03, "loss": flat}, 128)
    assert sq.run_converged({"check_accuracy": 0.4, "loss": flat}, 128)
    assert sq.run_converged({"check_accuracy": 0.995, "loss": [4.0, 3.0]}, 128)
    assert not sq.run_converged({"check_accuracy": 0.6, "loss": [4.0 - 0.1 * i for i in range(20)]}, 128)


# ---------------------------------------------------------------- training details

def test_optimizer_groups_spare_the_state_space_parameters():
    """Weight decay on linear and embedding matrices only: never on A_log, D, the Delta bias,
    biases, norms or convolutions (the reference Mamba marks A_log and D no-weight-decay)."""
    model = sq.RecallModel(sq.RecallConfig(mixer="mamba", width=16, state=4))
    decay, rest = sq.optimizer_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    layer = model.mixers[0]
    for p in (layer.A_log, layer.D, layer.dt_proj.bias, layer.conv.weight, model.norms[0].weight):
        assert id(p) not in decayed
    for p in (layer.in_proj.weight, layer.x_proj.weight, layer.dt_proj.weight, model.tok_emb.weight,
              model.head.weight):
        assert id(p) in decayed
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="weight_decay"):
        sq.optimizer_groups(model, -1.0)


def test_cosine_scale():
    assert sq.cosine_scale(0, 100, 10) == pytest.approx(0.1)
    assert sq.cosine_scale(9, 100, 10) == pytest.approx(1.0)
    assert sq.cosine_scale(10, 100, 10) == pytest.approx(1.0)
    assert sq.cosine_scale(55, 100, 10) == pytest.approx(0.5)
    assert sq.cosine_scale(99, 100, 10) < 0.01


def test_training_stops_at_its_cpu_budget():
    config = sq.RecallConfig(mixer="attention", width=16, length=16, vocab_size=16)
    _, record = sq.train_recall(config, lr=3e-3, pairs=2, steps=10_000, batch=8, eval_every=10_000,
                                max_cpu_seconds=0.3)
    assert 0 < record["steps_run"] < 10_000 and record["max_cpu_seconds"] == 0.3
    assert record["cpu_seconds"] < 5
    with pytest.raises(ValueError, match="max_cpu_seconds"):
        sq.train_recall(config, lr=3e-3, steps=1, max_cpu_seconds=0)


def test_recall_sweep_batches_are_validated():
    with pytest.raises(ValueError, match="batch names no budget for mixer 'linear'"):
        sq.recall_sweep(models=(("linear", 4),), steps=10, batch={"attention": 8})
    assert set(sq.RECALL_BATCH) == {mixer for mixer, _ in sq.RECALL_MODELS}


# ---------------------------------------------------------------- forward at every length

def test_forward_lengths_reach_8192_and_failures_are_recorded():
    assert 8192 in sq.FORWARD_LENGTHS
    row = sq.measure_forward("softmax, SDPA kernel", 64, timeout=0.01)  # cannot even start
    assert row == {"error": "no result within 0.01 s"}
    with pytest.raises(ValueError, match="method"):
        sq.measure_forward("softmax, sparse", 64)


# ---------------------------------------------------------------- passkey at growing distance

def test_passkey_config_fits_the_prompt():
    from lcviz.passkey import passkey_tokenizer

    config = sq.passkey_config("linear", state=4, length=80)
    assert config.vocab_size == passkey_tokenizer().vocab_size
    assert config.length == 80 + sq.PASSKEY_DIGITS - 1 and config.state == 4
    with pytest.raises(ValueError, match="length"):
        sq.passkey_config("linear", length=20)


def test_passkey_training_lowers_the_loss_and_respects_its_budget():
    config = sq.passkey_config("attention", length=70, width=32)
    model, record = sq.train_passkey_mixer(config, 3e-3, steps=30, batch=8)
    assert record["steps_run"] == 30 and record["loss"][-1] < record["loss"][0] - 1.0
    _, short = sq.train_passkey_mixer(config, 3e-3, steps=10_000, batch=8, max_cpu_seconds=0.5)
    assert 0 < short["steps_run"] < 10_000
    logits, _ = model(torch.zeros(2, config.length, dtype=torch.long))
    assert logits.shape == (2, config.length, config.vocab_size)
    with pytest.raises(ValueError, match="batch"):
        sq.train_passkey_mixer(config, 3e-3, steps=1, batch=0)


class _Zeros(torch.nn.Module):
    """A 'model' that always predicts the digit 0: it answers every key 00000."""

    def __init__(self, config):
        super().__init__()
        from lcviz.passkey import passkey_tokenizer

        self.config, self.tokenizer = config, passkey_tokenizer()

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, self.tokenizer.vocab_size)
        logits[..., self.tokenizer.encode("0")[0]] = 1.0
        return logits, None


def test_passkey_by_distance_scores_held_out_bands():
    config = sq.passkey_config("attention", length=96)
    bands = ((19, 29), (42, 53))
    # a scorer that always answers 0: right only for the key 00000
    cells = sq.passkey_by_distance(_Zeros(config), bands=bands, n=12)
    assert list(cells) == ["19-29", "42-53"]
    assert all(c["n"] == 12 and c["k"] == 0 and c["high"] < 0.3 for c in cells.values())
    # the same prompts every time (a fixed held-out seed), different from another seed
    from lcviz.passkey import CONTENT_EVAL_SEED, band_passkeys

    g = torch.Generator().manual_seed(CONTENT_EVAL_SEED)
    assert band_passkeys(3, 96, 19, 29, g)[0].key == band_passkeys(
        3, 96, 19, 29, torch.Generator().manual_seed(CONTENT_EVAL_SEED))[0].key
    with pytest.raises(ValueError, match="no key distance in the band"):
        sq.passkey_by_distance(_Zeros(config), bands=((200, 300),), n=2)


def test_passkey_by_distance_counts_right_answers():
    """A model that answers every key right scores n of n in every band."""
    from lcviz.passkey import passkey_tokenizer

    tok = passkey_tokenizer()
    digits = [tok.encode(d)[0] for d in "0123456789"]

    class Copier(torch.nn.Module):  # predicts, after the question, the needle's digits in order
        config = sq.passkey_config("attention", length=96)

        def forward(self, idx, targets=None):
            logits = torch.zeros(*idx.shape, tok.vocab_size)
            T = self.config.length - (sq.PASSKEY_DIGITS - 1)  # prompt length
            for row in range(idx.shape[0]):
                ids = idx[row].tolist()
                first = next(i for i, t in enumerate(ids) if t in digits)
                for j in range(sq.PASSKEY_DIGITS):
                    if T - 1 + j < len(ids):
                        logits[row, T - 1 + j, ids[first + j]] = 1.0
            return logits, None

    cells = sq.passkey_by_distance(Copier(), bands=((19, 29), (30, 41)), n=10)
    assert all(c["k"] == 10 and c["rate"] == 1.0 for c in cells.values())


def test_passkey_curve_records_every_run():
    record = sq.passkey_curve("linear", state=4, lrs=(3e-3, 1e-2), steps=3, n=4, batch=4, check_n=2,
                              length=64, width=16, bands=((19, 20), (21, 21)))
    assert [r["lr"] for r in record["runs"]] == [3e-3, 1e-2]
    assert record["best_lr"] in (3e-3, 1e-2) and record["state_numbers"] == sq.state_numbers(
        sq.passkey_config("linear", state=4, length=64, width=16))
    assert all(cell["n"] == 4 for cell in record["bands"].values())
    with pytest.raises(ValueError, match="no budget for mixer 'mamba'"):
        sq.passkey_sweep(models=(("mamba", 4),), steps={"linear": 3})


def test_benchmark_parts_are_validated():
    with pytest.raises(ValueError, match="part"):
        sq.benchmark(parts=("forward", "speed"))


# ---------------------------------------------------------------- figures

def _fake_results():
    cell = {"k": 8, "n": 10, "rate": 0.8, "low": 0.49, "high": 0.94}
    point = {"pairs": 2, "correct": 9, "n": 10, "accuracy": 0.9, "low": 0.6, "high": 0.98}
    model = {"mixer": "linear", "state": 4, "state_numbers": 900, "converged": False,
             "points": [point, {**point, "pairs": 4}], "bands": {"19-29": cell, "30-41": cell}}
    forward = {"rows": [{"method": "softmax, SDPA kernel", "length": 1024, "seconds": 0.1,
                         "peak_mb": 3.0},
                        {"method": "softmax, SDPA kernel", "length": 8192, "error": "out of memory"}]}
    return {"forward": forward, "recall": {"models": [model]}, "passkey": {"models": [model]}}


def test_benchmark_figures_one_per_part():
    from lcviz.plots.subquadratic import benchmark_figures, passkey_distance_figure

    figures = benchmark_figures(_fake_results())
    assert set(figures) == {"forward", "recall", "passkey"}
    fig = passkey_distance_figure(_fake_results()["passkey"]["models"])
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [24.0, 35.5] and list(line.get_ydata()) == [0.8, 0.8]
