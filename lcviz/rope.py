"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer", arXiv 2104.09864) and the ways
of stretching them past the training length.

Each pair of dimensions of q and k is rotated by an angle position * inv_freq[i]; the dot product
q_m . k_n then depends only on m - n. lcviz pairs dimension i with i + D/2 (the "rotate_half"
layout of GPT-NeoX and HF Llama) rather than the paper's adjacent pairs (2i, 2i+1): the same
rotation up to a fixed permutation of the dimensions (notebook 05 shows it).

One entry point, with the method names and keys of HF transformers' `rope_scaling`
(modeling_rope_utils.py), so a reader can hold the two side by side:

    inv_freq, attention_factor = rope_frequencies(rope_type, head_dim, base, seq_len, **params)

    "default"  base ** (-2i / D)
    "linear"   position interpolation, PI (Chen et al. 2023, arXiv 2306.15595): inv_freq / factor
    "ntk"      NTK-aware base change (bloc97, 2023): base * factor ** (D / (D - 2))
    "dynamic"  dynamic NTK (HF): the NTK base change sized to the current seq_len, default below
               original_max_position_embeddings
    "yarn"     YaRN (Peng et al. 2023, arXiv 2309.00071): interpolate low frequencies, keep high
               ones, ramp between (beta_fast, beta_slow); attention factor 0.1 ln(factor) + 1
    "llama3"   Llama 3.1 (Dubey et al. 2024, arXiv 2407.21783): like YaRN's ramp but by wavelength
               against original_max_position_embeddings / (low|high)_freq_factor

attention_factor multiplies cos and sin, hence both q and k, so logits are scaled by its square:
YaRN's "sqrt(1/t) = 0.1 ln(s) + 1" (eq. 22), as HF does it.
"""

import math

import torch

from lcviz import seed_everything
from lcviz.corpus import random_windows
from lcviz.validate import check_choice, check_float, check_int

# rope_type -> {parameter: default, or None when required}
ROPE_PARAMS = {
    "default": {},
    "linear": {"factor": None},
    "ntk": {"factor": None},
    "dynamic": {"factor": None, "original_max_position_embeddings": None},
    "yarn": {"factor": None, "original_max_position_embeddings": None, "beta_fast": 32.0,
             "beta_slow": 1.0},
    "llama3": {"factor": None, "original_max_position_embeddings": None, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0},
}
ROPE_TYPES = tuple(ROPE_PARAMS)


def default_frequencies(head_dim, base):
    """inv_freq[i] = base ** (-2i / D), i = 0 .. D/2 - 1 (float64 for exact formulas)."""
    return 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


def _check(rope_type, head_dim, base, params):
    check_choice("rope_type", rope_type, ROPE_TYPES)
    check_int("head_dim", head_dim, minimum=2)
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE pairs, got {head_dim}")
    check_float("base", base, greater_than=1.0)
    allowed = ROPE_PARAMS[rope_type]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"rope_type {rope_type!r} takes {sorted(allowed) or 'no parameters'}; "
                         f"got unknown {unknown}")
    missing = sorted(k for k, v in allowed.items() if v is None and k not in params)
    if missing:
        raise ValueError(f"rope_type {rope_type!r} needs {missing}")
    values = {**allowed, **params}
    if "factor" in values:
        check_float("factor", values["factor"], greater_than=0.0)
    if "original_max_position_embeddings" in values:
        check_int("original_max_position_embeddings", values["original_max_position_embeddings"],
                  minimum=1)
    for name in ("beta_fast", "beta_slow", "low_freq_factor", "high_freq_factor"):
        if name in values:
            check_float(name, values[name], greater_than=0.0)
    return values


def ntk_base(base, factor, head_dim):
    """NTK-aware base (bloc97 2023; YaRN paper eq. 16): base * factor ** (D / (D - 2)), which
    keeps the fastest pair's frequency and slows the slowest one by exactly `factor`."""
    return base * factor ** (head_dim / (head_dim - 2))


def rope_frequencies(rope_type, head_dim, base=10000.0, seq_len=None, **params):
    """(inv_freq (D/2,) float32, attention_factor) of a RoPE method; see the module docstring."""
    p = _check(rope_type, head_dim, base, params)
    inv_freq = default_frequencies(head_dim, base)  # (D/2,)
    factor = 1.0
    if rope_type == "linear":
        inv_freq = inv_freq / p["factor"]
    elif rope_type == "ntk":
        inv_freq = default_frequencies(head_dim, ntk_base(base, p["factor"], head_dim))
    elif rope_type == "dynamic":
        original = p["original_max_position_embeddings"]
        length = original if seq_len is None else max(check_int("seq_len", seq_len, minimum=1),
                                                       original)
        scale = p["factor"] * length / original - (p["factor"] - 1)  # 1 at the original length
        inv_freq = default_frequencies(head_dim, ntk_base(base, scale, head_dim))
    elif rope_type == "yarn":
        inv_freq, factor = _yarn(inv_freq, head_dim, base, p)
    elif rope_type == "llama3":
        inv_freq = _llama3(inv_freq, p)
    return inv_freq.float(), factor


def _yarn(inv_freq, head_dim, base, p):
    """YaRN "NTK-by-parts" (Peng et al. 2023, sec. 3.2-3.4): dimensions that turn more than
    beta_fast times over the original length keep their frequency, those turning fewer than
    beta_slow times are interpolated by `factor`, a linear ramp in between."""
    original, s = p["original_max_position_embeddings"], p["factor"]

    def dimension_for(rotations):  # the pair index d that turns `rotations` times in `original`
        return head_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(dimension_for(p["beta_fast"])), 0)
    high = min(math.ceil(dimension_for(p["beta_slow"])), head_dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp, as the reference code does
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    interpolated = inv_freq / s
    inv_freq = interpolated * ramp + inv_freq * (1 - ramp)  # ramp 0: keep, ramp 1: interpolate
    attention_factor = 0.1 * math.log(s) + 1.0 if s > 1 else 1.0
    return inv_freq, attention_factor


def _llama3(inv_freq, p):
    """Llama 3.1: wavelengths longer than original / low_freq_factor are divided by `factor`,
    shorter than original / high_freq_factor are kept, a smooth blend in between."""
    original, s = p["original_max_position_embeddings"], p["factor"]
    low, high = p["low_freq_factor"], p["high_freq_factor"]
    if not high > low:
        raise ValueError(f"high_freq_factor ({high}) must be > low_freq_factor ({low})")
    wavelength = 2 * math.pi / inv_freq
    smooth = ((original / wavelength - low) / (high - low)).clamp(0, 1)  # 0 long, 1 short waves
    return (1 - smooth) * inv_freq / s + smooth * inv_freq


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, positions, inv_freq, attention_factor=1.0):
    """Rotate x (B, H, T, D) by position * inv_freq; positions (T,), inv_freq (D/2,)."""
    angle = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, D/2)
    angle = torch.cat([angle, angle], dim=-1)  # (T, D): pair i and i + D/2 share an angle
    cos, sin = angle.cos() * attention_factor, angle.sin() * attention_factor
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def apply_rope_to_qk(q, k, positions, config):
    """Rotate q and k (B, H, T, D) with the frequencies that `config` (a ModelConfig) asks for;
    seq_len (for "dynamic") is the largest position + 1."""
    seq_len = int(positions.max()) + 1
    inv_freq, factor = rope_frequencies(config.rope_type, config.head_dim, config.rope_base,
                                        seq_len=seq_len, **config.rope_params)
    return apply_rope(q, positions, inv_freq, factor), apply_rope(k, positions, inv_freq, factor)


def rope_scores(q, k, distances, inv_freq, attention_factor=1.0):
    """Attention logit q_m . k_n / sqrt(D) as a function of relative distance m - n, for one
    query vector q (D,) and key vector k (D,) at each distance in `distances` (N,): (N,).
    The curve of the PI paper's Figure 2."""
    positions = torch.as_tensor(distances)
    rotated_q = apply_rope(q.expand(1, 1, len(positions), -1), positions, inv_freq,
                           attention_factor)  # (1, 1, N, D) q at position m = distance
    rotated_k = apply_rope(k.expand(1, 1, 1, -1), torch.zeros(1), inv_freq,
                           attention_factor)  # (1, 1, 1, D) k at position 0
    return (rotated_q * rotated_k).sum(-1)[0, 0] / math.sqrt(q.numel())


# ---------------------------------------------------------------- why extrapolation breaks (PI)

def score_basis(positions, inv_freq):
    """e^{i s theta_j} for each position s (N,) and frequency theta_j (D/2,): complex (N, D/2).
    An attention score is a(s) = Re sum_j h_j e^{i s theta_j} (PI paper, eq. 3)."""
    angle = torch.as_tensor(positions, dtype=torch.float64)[:, None] * inv_freq.double()
    return torch.polar(torch.ones_like(angle), angle)


def fit_score_function(positions, targets, inv_freq, rcond=1e-7):
    """Least-squares coefficients h (D/2,) complex so that a(s) matches targets at positions:
    the PI paper's Figure 2 fit of a RoPE score function to random points on [0, L].
    On [0, L] the lowest-frequency columns are nearly collinear; singular values below
    rcond * the largest are dropped (a fit with all of them reaches 1e9 beyond L, not ~1e4)."""
    basis = score_basis(positions, inv_freq)  # (N, D/2)
    design = torch.cat([basis.real, -basis.imag], dim=1)  # Re(h e) = h.real cos - h.imag sin
    targets = torch.as_tensor(targets, dtype=torch.float64)[:, None]  # (N, 1)
    solution = torch.linalg.lstsq(design, targets, rcond=rcond, driver="gelsd").solution[:, 0]
    half = len(inv_freq)
    return torch.complex(solution[:half], solution[half:])


def score_function(h, positions, inv_freq):
    """a(s) = Re sum_j h_j e^{i s theta_j} at each position s: (N,) float64. With a scaled
    inv_freq (any rope_type) it is the same query and key read by that method."""
    return (score_basis(positions, inv_freq) * h).real.sum(-1)


def interpolation_bound(h, base=10000.0, gap=1.0):
    """PI paper, Theorem 2.1: between grid points s1 < s2 = s1 + gap, a(s) differs from the
    straight line through a(s1), a(s2) by at most d max_j |h_j| (s - s1)(s2 - s) / (8 ln c);
    the worst case s = midpoint gives d max|h| gap^2 / (32 ln c)."""
    return 2 * len(h) * h.abs().max().item() * gap ** 2 / (32 * math.log(base))


def extrapolation_bound(h, positions, inv_freq):
    """The RoPE paper's bound (Su et al. 2021, sec. 3.4.3) that the PI paper sets against its own:
    |a(s)| <= 2 max_j |h_j| sum_k |A_k(s)|, A_k(s) = sum_{j<k} e^{i s theta_j}; (N,)."""
    partial_sums = score_basis(positions, inv_freq).cumsum(dim=-1)  # (N, D/2): A_1 .. A_{D/2}
    return 2 * h.abs().max().item() * partial_sums.abs().sum(-1)


# ---------------------------------------------------------------- the tiny-model experiment (05)

ROPE_SHORT = 64  # the training length L of notebook 05's experiment
ROPE_LONG = 4 * ROPE_SHORT  # evaluated at 2L and 4L; fine-tuned at 4L


def rope_scaling(rope_type, factor, original=ROPE_SHORT):
    """The config changes that switch a RoPE model trained at `original` to a scaling method:
    whichever of factor / original_max_position_embeddings ROPE_PARAMS says it takes."""
    given = {"factor": factor, "original_max_position_embeddings": original}
    return {"rope_type": rope_type,
            "rope_params": {k: v for k, v in given.items() if k in ROPE_PARAMS[rope_type]}}


@torch.no_grad()
def loss_by_position(model, ids, length, batch_size=16, batches=4, seed=1234):
    """Mean next-token loss at each position 0..length-1 over fixed random windows: (length,)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    total = torch.zeros(length)
    for _ in range(batches):
        x, y = random_windows(ids, length, batch_size, generator)  # (B, length) each
        logits, _ = model(x)
        total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), y,
                                                   reduction="none").mean(0)
    return total / batches


def fit_rope_char_lm(seed=0, steps=700):
    """Recipe rope-charlm: a RoPE char model trained at length ROPE_SHORT."""
    # imported here because lcviz.model imports this module for its RoPE
    from lcviz.model import ModelConfig, TinyTransformer
    from lcviz.transformer import train_char_lm
    seed_everything(seed)
    config = ModelConfig(block_size=ROPE_SHORT, n_layer=2, n_head=4, n_embd=128, pos="rope")
    model, history, val_loss = train_char_lm(TinyTransformer(config), steps=steps, seed=seed,
                                             eval_every=100)
    return model, {"val_loss": val_loss, "history": history}


def fit_rope_finetune(seed=0, rope_type="linear", steps=150):
    """Recipes rope-charlm-*-ft: rope-charlm switched to `rope_type` at factor 4, fine-tuned at
    length 4L ("within 1000 steps" in the PI paper; a tiny model needs fewer)."""
    from lcviz.checkpoints import load_checkpoint
    from lcviz.transformer import train_char_lm
    base, _ = load_checkpoint("rope-charlm")
    model = base.with_config(block_size=ROPE_LONG,
                             **rope_scaling(rope_type, ROPE_LONG / ROPE_SHORT))
    model, history, val_loss = train_char_lm(model, steps, seed=seed, batch_size=16, lr=1e-3,
                                             warmup=10, eval_every=50)
    return model, {"val_loss": val_loss, "history": history}
