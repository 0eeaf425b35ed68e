import json

import pytest
import torch

import lcviz
from lcviz.checkpoints import load_checkpoint, save_checkpoint
from lcviz.corpus import random_windows, train_val_split
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.recipes import RECIPES
from lcviz.tokenize import WordTokenizer
from lcviz.train import learning_rate, main, recipe_function, train_loop


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
    for name, recipe in RECIPES.items():
        model, info = recipe_function(recipe, "load")(name)
        assert info["recipe"] == name and info["metrics"]["train_seconds"] > 0
        assert not model.training and sum(p.numel() for p in model.parameters()) > 0


def test_every_recipe_names_a_fit_function_of_its_own_topic():
    from lcviz.course import BY_SLUG
    for name, recipe in RECIPES.items():
        assert recipe.topic in BY_SLUG, name
        assert recipe.fit.startswith(f"lcviz.{recipe.topic}:"), name
        assert callable(recipe_function(recipe)) and callable(recipe_function(recipe, "load"))


def test_the_loop_passes_every_batch_argument_to_the_model():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, y, extra):
            seen.append(extra)
            return None, (self.w * x).sum()
    train_loop(Probe(), lambda step: (torch.ones(2), None, step * 10), steps=3, warmup=0)
    assert seen == [0, 10, 20]
