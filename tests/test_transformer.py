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
