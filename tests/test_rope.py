"""RoPE and its scalings, each against its paper's / HF's formula written out here independently."""

import math

import pytest
import torch

import lcviz
from lcviz import rope
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.rope import ROPE_TYPES, apply_rope, rope_frequencies, rope_scores

D, BASE = 16, 10000.0


def default(d=D, base=BASE):
    return [base ** (-2 * i / d) for i in range(d // 2)]


def close(got, want):
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-6, atol=1e-9)


def test_rope_preserves_norms_and_depends_only_on_relative_position():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, D, generator=generator)
    inv_freq, _ = rope_frequencies("default", D)
    rotated = apply_rope(x, torch.arange(50), inv_freq)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    q, k = torch.randn(D, generator=generator), torch.randn(D, generator=generator)

    def score(m, n):
        qm = apply_rope(q.view(1, 1, 1, D), torch.tensor([m]), inv_freq)
        kn = apply_rope(k.view(1, 1, 1, D), torch.tensor([n]), inv_freq)
        return (qm * kn).sum().item()

    for m, n in ((5, 2), (40, 37), (103, 100)):  # all distance 3
        assert score(m, n) == pytest.approx(score(3, 0), abs=1e-4)
    assert rope_scores(q, k, [3], inv_freq).item() == pytest.approx(score(3, 0) / 4, abs=1e-5)


def test_position_interpolation_at_s_times_m_equals_the_original_at_m():
    x = torch.randn(1, 1, 10, D)
    s = 4.0
    original = apply_rope(x, torch.arange(10), rope_frequencies("default", D)[0])
    stretched = apply_rope(x, torch.arange(10) * s, rope_frequencies("linear", D, factor=s)[0])
    torch.testing.assert_close(stretched, original, atol=1e-5, rtol=0)


def test_default_linear_and_ntk_formulas():
    close(rope_frequencies("default", D)[0], default())
    close(rope_frequencies("linear", D, factor=3.0)[0], [f / 3 for f in default()])
    ntk_base = BASE * 8.0 ** (D / (D - 2))  # bloc97's NTK-aware scaled base
    close(rope_frequencies("ntk", D, factor=8.0)[0], default(base=ntk_base))
    assert rope_frequencies("ntk", D, factor=8.0)[0][0] == 1.0  # the fastest pair is unchanged


def test_dynamic_equals_default_up_to_the_original_length_then_rescales():
    params = {"factor": 2.0, "original_max_position_embeddings": 64}
    for seq_len in (1, 32, 64):
        close(rope_frequencies("dynamic", D, seq_len=seq_len, **params)[0], default())
    seq_len = 256
    base = BASE * (2.0 * seq_len / 64 - 1.0) ** (D / (D - 2))  # HF _compute_dynamic_ntk_parameters
    close(rope_frequencies("dynamic", D, seq_len=seq_len, **params)[0], default(base=base))


def test_yarn_formula():
    s, original, beta_fast, beta_slow = 4.0, 64, 32.0, 1.0
    inv_freq, factor = rope_frequencies("yarn", D, factor=s, original_max_position_embeddings=original)
    assert factor == pytest.approx(0.1 * math.log(4.0) + 1.0)
    # Peng et al. 2023, sec. 3.2: the pair d turns original / wavelength_d times; pairs turning more
    # than beta_fast times are kept, fewer than beta_slow interpolated, a linear ramp between.
    def dim_for(rotations):
        return D * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(BASE))
    low, high = max(math.floor(dim_for(beta_fast)), 0), min(math.ceil(dim_for(beta_slow)), D - 1)
    want = []
    for i, f in enumerate(default()):
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)
        want.append(f / s * ramp + f * (1 - ramp))
    close(inv_freq, want)
    assert inv_freq[0] == default()[0] and inv_freq[-1] == pytest.approx(default()[-1] / s)


def test_llama3_formula():
    s, original, low, high = 8.0, 64, 1.0, 4.0
    inv_freq, factor = rope_frequencies("llama3", D, factor=s, original_max_position_embeddings=original,
                                        low_freq_factor=low, high_freq_factor=high)
    assert factor == 1.0
    want = []
    for f in default():  # HF _compute_llama3_parameters, branch by branch
        wavelength = 2 * math.pi / f
        if wavelength < original / high:
            want.append(f)
        elif wavelength > original / low:
            want.append(f / s)
        else:
            smooth = (original / wavelength - low) / (high - low)
            want.append((1 - smooth) * f / s + smooth * f)
    close(inv_freq, want)


@pytest.mark.parametrize("call, words", [
    (lambda: rope_frequencies("linear", D, factor=0.0), "factor must be > 0.0, got 0.0"),
    (lambda: rope_frequencies("linear", D, factor=-2), "factor must be > 0.0, got -2"),
    (lambda: rope_frequencies("xpos", D), "rope_type must be one of"),
    (lambda: rope_frequencies("default", 15), "head_dim must be even for RoPE pairs, got 15"),
    (lambda: rope_frequencies("linear", D), r"rope_type 'linear' needs \['factor'\]"),
    (lambda: rope_frequencies("yarn", D, factor=2.0), "needs \\['original_max_position_embeddings'\\]"),
    (lambda: rope_frequencies("default", D, factor=2.0), "takes no parameters; got unknown"),
    (lambda: rope_frequencies("llama3", D, factor=2.0, original_max_position_embeddings=64,
                              low_freq_factor=4.0, high_freq_factor=1.0), "must be > low_freq_factor"),
])
def test_bad_parameters_raise_clear_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.parametrize("rope_type, params", [
    ("default", {}), ("linear", {"factor": 2.0}), ("ntk", {"factor": 2.0}),
    ("dynamic", {"factor": 2.0, "original_max_position_embeddings": 16}),
    ("yarn", {"factor": 2.0, "original_max_position_embeddings": 16}),
    ("llama3", {"factor": 2.0, "original_max_position_embeddings": 16}),
])
def test_every_method_runs_inside_the_model_and_keeps_it_causal(rope_type, params):
    assert rope_type in ROPE_TYPES
    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16,
                                        pos="rope"))
    scaled = model.with_config(rope_type=rope_type, rope_params=params)
    idx = torch.randint(0, 20, (1, 40))  # beyond the training length: RoPE has no table
    changed = idx.clone()
    changed[0, 30:] = 0
    torch.testing.assert_close(scaled(idx)[0][:, :30], scaled(changed)[0][:, :30])


def test_score_function_is_the_rope_dot_product():
    """a(s) = Re sum h_j e^{i s theta_j} equals q_s . k_0 for h_j built from the pairs of q and k."""
    D = 16
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    inv_freq = rope.default_frequencies(D, 10000.0)
    distances = torch.arange(0, 300)
    want = (rope.rope_scores(q.float(), k.float(), distances, inv_freq.float()) * math.sqrt(D)).double()
    # rotate_half pairs (j, j + D/2): q_j as the complex number q[j] + i q[j + D/2]
    qc, kc = torch.complex(q[:D // 2], q[D // 2:]), torch.complex(k[:D // 2], k[D // 2:])
    h = qc * kc.conj()  # a(s) = Re sum (q_j e^{i s theta}) conj(k_j)
    torch.testing.assert_close(rope.score_function(h, distances, inv_freq), want, atol=1e-3, rtol=1e-4)


def test_fit_matches_its_points_and_theorem_2_1_bounds_the_interpolation_error():
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(40, generator=generator, dtype=torch.float64) * 512
    targets = torch.rand(40, generator=generator, dtype=torch.float64) * 2 - 1
    theta = rope.default_frequencies(128, 10000.0)
    h = rope.fit_score_function(points, targets, theta)  # more unknowns than points: exact fit
    torch.testing.assert_close(rope.score_function(h, points, theta), targets, atol=1e-6, rtol=0)
    grid = torch.arange(0, 513, dtype=torch.float64)
    a = rope.score_function(h, grid, theta)
    gap = (rope.score_function(h, grid[:-1] + 0.5, theta) - (a[:-1] + a[1:]) / 2).abs().max()
    bound = rope.interpolation_bound(h)
    assert bound == pytest.approx(128 * h.abs().max().item() / (32 * math.log(10000.0)))
    assert 0 < gap <= bound
    # the extrapolation bound really bounds |a(s)| wherever it is evaluated
    far = torch.arange(512, 4096, dtype=torch.float64)
    assert (rope.score_function(h, far, theta).abs()
            <= rope.extrapolation_bound(h, far, theta) + 1e-9).all()


def test_loss_by_position_and_rope_scaling_switch_a_model_between_methods():
    from lcviz.rope import loss_by_position, rope_scaling

    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, pos="rope"))
    ids = torch.randint(0, 98, (500,))
    losses = loss_by_position(model, ids, 32, batch_size=4, batches=2)
    assert losses.shape == (32,) and (losses > 0).all()
    for kind in ("default", "linear", "ntk", "dynamic", "yarn", "llama3"):
        scaled = model.with_config(block_size=64, **rope_scaling(kind, 4.0, original=16))
        assert scaled.config.rope_type == kind
        assert torch.isfinite(loss_by_position(scaled, ids, 64, batch_size=2, batches=1)).all()



@pytest.mark.slow
@pytest.mark.parametrize("name", ["passkey-full-linear-ft", "passkey-full-yarn-ft"])
def test_passkey_finetunes_reproduce_their_recorded_accuracy(name):
    """The recorded 2x-length cell, re-measured on the same held-out prompts (one prompt of
    slack for a near-tie argmax under another CPU's rounding)."""
    from lcviz.checkpoints import load_checkpoint
    from lcviz.passkey import CONTENT_EVAL_SEED, key_hits, passkey_tokenizer, random_passkeys
    model, info = load_checkpoint(name)
    metrics = info["metrics"]
    length = 2 * metrics["original_length"]
    cell = metrics["key_by_length"][str(length)]
    prompts = random_passkeys(cell["n"], length,
                              torch.Generator().manual_seed(CONTENT_EVAL_SEED + length))
    assert abs(sum(key_hits(model, prompts, passkey_tokenizer())) - cell["k"]) <= 1
