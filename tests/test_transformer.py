"""Topic 01: the char model's data, training and recorded checkpoint."""

import pytest
import torch

import lcviz
from lcviz.checkpoints import load_checkpoint
from lcviz.corpus import random_windows, stdlib_text
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.tokenize import CharTokenizer
from lcviz.train import train_loop
from lcviz.transformer import char_lm_data, mean_loss


def test_corpus_is_real_python_source():
    text = stdlib_text(20_000)
    assert len(text) == 20_000 and "def " in text and "import" in text


def test_char_tokenizer_round_trip_and_fixed_vocab():
    tok = CharTokenizer()
    text = "def f(x):\n\treturn x ** 2  # ok"
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 98
    assert tok.decode(tok.encode("é")) == "\N{REPLACEMENT CHARACTER}"


def test_a_few_training_steps_lower_the_loss():
    lcviz.seed_everything(0)
    ids = CharTokenizer().encode(stdlib_text(50_000))
    model = TinyTransformer(ModelConfig(block_size=32, n_layer=1, n_head=2, n_embd=32))
    generator = torch.Generator().manual_seed(0)
    history = train_loop(model, lambda s: random_windows(ids, 32, 16, generator), steps=40,
                         lr=3e-3, warmup=5)
    first, last = sum(history["loss"][:5]) / 5, sum(history["loss"][-5:]) / 5
    assert last < first - 0.5, (first, last)


@pytest.mark.slow
def test_charlm_checkpoint_reproduces_its_recorded_loss():
    model, info = load_checkpoint("charlm")
    _, val_ids = char_lm_data()
    assert mean_loss(model, val_ids, model.config.block_size) == pytest.approx(
        info["metrics"]["val_loss"], abs=1e-4)


def test_initial_loss_estimate_is_the_uniform_guess_without_a_gap_and_tracks_a_tied_model():
    import math

    from lcviz.transformer import initial_loss_estimate, tied_logit_gap

    assert initial_loss_estimate(98, 0.0, 0.4) == pytest.approx(math.log(98))
    assert initial_loss_estimate(98, 1.0, 0.5) < math.log(98) < initial_loss_estimate(98, 1.0, 0.0)
    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(block_size=64, n_layer=2, n_head=4, n_embd=64))
    _, val_ids = char_lm_data()
    x, y = random_windows(val_ids, 64, 32, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, loss = model(x, y)
    gap = tied_logit_gap(logits, x)
    assert 0.2 < gap < 1.5  # tied embeddings favour the current token
    estimate = initial_loss_estimate(98, gap, (x == y).double().mean().item())
    assert abs(loss.item() - estimate) < 0.05 and loss.item() < math.log(98) - 0.05
    with pytest.raises(ValueError, match="repeat_rate must be <= 1.0"):
        initial_loss_estimate(98, 0.5, 1.5)


def test_initial_loss_and_gqa_checkers_pass_the_reference_and_fail_typical_mistakes():
    import math

    import torch.nn.functional as F

    from lcviz import checks

    right = lambda v, a, r: math.log(v - 1 + math.exp(a)) - r * a
    assert checks.check_initial_loss(right).passed
    for wrong in (lambda v, a, r: math.log(v) - r * a,  # the normaliser does not grow
                  lambda v, a, r: math.log(v + math.exp(a)) - r * a):  # counts the token twice
        result = checks.check_initial_loss(wrong)
        assert result.status == "fail" and "vocab_size=98, gap=0.55" in result.message

    def gqa(q, k, v, spread=torch.repeat_interleave):
        group = q.size(1) // k.size(1)
        return F.scaled_dot_product_attention(q, spread(k, group, 1), spread(v, group, 1),
                                              is_causal=True)

    assert checks.check_grouped_query_attention(gqa).passed
    round_robin = lambda q, k, v: gqa(q, k, v, lambda t, g, dim: t.repeat(1, g, 1, 1))
    result = checks.check_grouped_query_attention(round_robin)  # head h -> kv head h % G
    assert result.status == "fail" and "2 of 4 cases pass" in result.message
    not_causal = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert not checks.check_grouped_query_attention(not_causal).passed
