import json

import pytest
import torch

import lcviz
from lcviz.corpus import random_windows, stdlib_text, train_val_split
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.tokenize import CharTokenizer, WordTokenizer
from lcviz.train import RECIPES, learning_rate, load_checkpoint, main, save_checkpoint, train_loop


def test_corpus_is_real_python_source():
    text = stdlib_text(20_000)
    assert len(text) == 20_000 and "def " in text and "import" in text


def test_char_tokenizer_round_trip_and_fixed_vocab():
    tok = CharTokenizer()
    text = "def f(x):\n\treturn x ** 2  # ok"
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 98
    assert tok.decode(tok.encode("é")) == "\N{REPLACEMENT CHARACTER}"


def test_word_tokenizer_round_trip_digits_are_tokens():
    tok = WordTokenizer.from_texts(["The pass key is 12345. Remember it."], extra="0123456789")
    ids = tok.encode("The pass key is 90210.")
    assert len(ids) == 10
    assert tok.decode(ids) == "The pass key is 90210."
    with pytest.raises(ValueError, match="'banana' is not in"):
        tok.encode("banana")


def test_random_windows_are_shifted_by_one():
    ids = torch.arange(100)
    x, y = random_windows(ids, 10, 4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 10) and torch.equal(y, x + 1)
    train, val = train_val_split(ids, 0.1)
    assert len(train) == 90 and len(val) == 10


def test_a_few_training_steps_lower_the_loss():
    lcviz.seed_everything(0)
    ids = CharTokenizer().encode(stdlib_text(50_000))
    model = TinyTransformer(ModelConfig(block_size=32, n_layer=1, n_head=2, n_embd=32))
    generator = torch.Generator().manual_seed(0)
    history = train_loop(model, lambda s: random_windows(ids, 32, 16, generator), steps=40,
                         lr=3e-3, warmup=5)
    first, last = sum(history["loss"][:5]) / 5, sum(history["loss"][-5:]) / 5
    assert last < first - 0.5, (first, last)


def test_learning_rate_schedule_warms_up_then_decays():
    assert learning_rate(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert learning_rate(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert learning_rate(99, 100, 1.0, 10) == pytest.approx(0.1, abs=0.01)


def test_checkpoint_round_trip(tmp_path):
    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(n_layer=1, n_embd=16, n_head=2, window=4))
    save_checkpoint("tiny", model, {"val_loss": 1.5}, data_dir=tmp_path)
    loaded, info = load_checkpoint("tiny", data_dir=tmp_path)
    assert loaded.config == model.config and info["metrics"]["val_loss"] == 1.5
    idx = torch.randint(0, 98, (1, 10))
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0])
    assert json.loads((tmp_path / "tiny.json").read_text())["rebuild"] == "python -m lcviz.train tiny"


def test_missing_checkpoint_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lcviz.train charlm"):
        load_checkpoint("charlm", data_dir=tmp_path)


def test_cli_lists_recipes_and_rejects_unknown(capsys):
    assert main(["--list"]) == 0
    assert "charlm" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-recipe"])


def test_every_recipe_has_a_checkpoint_that_loads():
    for name in RECIPES:
        model, info = load_checkpoint(name)
        assert info["recipe"] == name and info["metrics"]["train_seconds"] > 0


def test_loss_by_position_and_rope_scaling_switch_a_model_between_methods():
    from lcviz.train import loss_by_position, rope_scaling

    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, pos="rope"))
    ids = torch.randint(0, 98, (500,))
    losses = loss_by_position(model, ids, 32, batch_size=4, batches=2)
    assert losses.shape == (32,) and (losses > 0).all()
    for kind in ("default", "linear", "ntk", "dynamic", "yarn", "llama3"):
        scaled = model.with_config(block_size=64, **rope_scaling(kind, 4.0, original=16))
        assert scaled.config.rope_type == kind
        assert torch.isfinite(loss_by_position(scaled, ids, 64, batch_size=2, batches=1)).all()


def test_passkey_checkpoints_reproduce_their_recorded_accuracy():
    """The recorded metrics were measured on the fixed held-out set; re-measure on it (one
    prompt of slack: a near-tie argmax may flip under another CPU's float rounding)."""
    from lcviz.train import PASSKEY_EVAL, PASSKEY_MODELS, passkey_metrics

    one_prompt = 1 / PASSKEY_EVAL["n"] + 1e-9
    for name in PASSKEY_MODELS:
        model, info = load_checkpoint(name)
        recorded, measured = info["metrics"], passkey_metrics(model)
        assert measured["key"] == pytest.approx(recorded["key"], abs=one_prompt), name
        assert measured["digit"] == pytest.approx(recorded["digit"], abs=one_prompt), name


def test_beacon_checkpoint_reproduces_its_recorded_accuracy_per_ratio():
    from lcviz.beacon import BeaconTransformer
    from lcviz.train import BEACON_MODELS, PASSKEY_EVAL, passkey_metrics

    for name in BEACON_MODELS:
        model, info = load_checkpoint(name)
        assert isinstance(model, BeaconTransformer) and info["beacon"] == {"chunk": model.chunk}
        for ratio in (2, 16):
            model.ratio = ratio
            recorded = info["metrics"]["by_ratio"][str(ratio)]
            measured = passkey_metrics(model)
            for score in ("key", "digit"):
                assert measured[score] == pytest.approx(recorded[score],
                                                        abs=1 / PASSKEY_EVAL["n"] + 1e-9), name
