import pytest
import torch

from lcviz.passkey import (
    DIGITS,
    FILLER,
    IGNORE_INDEX,
    INSTRUCTION_TOKENS,
    QUESTION_TOKENS,
    accuracy_by_distance,
    encode_passkey,
    make_passkey,
    min_passkey_length,
    needle_grid,
    passkey_batch,
    passkey_tokenizer,
    predict_keys,
    recoverable,
    score_keys,
)


def test_prompt_follows_the_landmark_attention_format():
    prompt = make_passkey(200, 0.5, key="12345")
    text = prompt.text
    assert prompt.length == 200
    assert text.startswith("There is an important info hidden inside a lot of irrelevant text .")
    assert text.endswith("What is the pass key ? The pass key is")
    assert "The pass key is 1 2 3 4 5 . Remember it . 1 2 3 4 5 is the pass key ." in text
    assert "The grass is green . The sky is blue . The sun is yellow . Here we go ." in text
    assert [prompt.tokens[i] for i in prompt.key_positions] == list("1234512345")
    assert len(FILLER) == 5


@pytest.mark.parametrize("length", [62, 63, 100, 257])
@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 1.0])
def test_exact_length_and_depth_placement(length, depth):
    prompt = make_passkey(length, depth, key="00000")
    assert prompt.length == length
    n_filler = length - min_passkey_length()
    offset = prompt.needle_start - len(INSTRUCTION_TOKENS)  # tokens of filler before the needle
    assert 0 <= offset <= n_filler
    assert abs(offset - depth * n_filler) <= 5  # nearest sentence boundary (sentences <= 5 tokens)
    if depth == 0.0:
        assert offset == 0
    if depth == 1.0:
        assert offset == n_filler and prompt.distance == len(QUESTION_TOKENS) + len(["is", "the", "pass", "key", "."]) + 4


def test_deeper_needles_are_closer_to_the_question():
    distances = [make_passkey(300, d, key="11111").distance for d in (0.0, 0.3, 0.6, 1.0)]
    assert distances == sorted(distances, reverse=True)


def test_keys_are_seeded_and_validated():
    a = make_passkey(80, 0.5, generator=torch.Generator().manual_seed(3))
    b = make_passkey(80, 0.5, generator=torch.Generator().manual_seed(3))
    assert a == b and a.key.isdigit() and len(a.key) == 5
    with pytest.raises(ValueError, match="length must be >= 62, got 61"):
        make_passkey(61, 0.5)
    with pytest.raises(ValueError, match="depth must be <= 1.0, got 1.5"):
        make_passkey(100, 1.5)
    with pytest.raises(ValueError, match="key must be a string of 5 digits, got '12a45'"):
        make_passkey(100, 0.5, key="12a45")


def test_tokenizer_round_trip_and_digits_are_tokens():
    tokenizer = passkey_tokenizer()
    prompt = make_passkey(150, 0.4, key="90210")
    ids = tokenizer.encode(prompt.text)
    assert len(ids) == prompt.length
    assert tokenizer.decode(ids).replace(" ", "") == prompt.text.replace(" ", "")
    assert all(len(tokenizer.encode(d)) == 1 for d in DIGITS)


def test_batches_put_loss_only_on_the_key_digits():
    tokenizer = passkey_tokenizer()
    x, y = passkey_batch(4, 90, tokenizer, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 94)
    assert (y[:, :-5] == IGNORE_INDEX).all() and (y[:, -5:] != IGNORE_INDEX).all()
    assert torch.equal(x[:, -4:], y[:, -5:-1])  # teacher forcing: input is the previous digit
    with pytest.raises(ValueError, match="one length"):
        encode_passkey([make_passkey(80, 0.1), make_passkey(81, 0.1)], tokenizer)


class Oracle(torch.nn.Module):
    """Reads the key off the needle: from the prompt's last token on, all its logit mass on the
    next digit of the first mention; at the digit places in `mistakes` it says the next digit up."""

    def __init__(self, tokenizer, prompt_length, mistakes=()):
        super().__init__()
        self.prompt_length, self.mistakes = prompt_length, set(mistakes)
        self.digit_ids = [int(tokenizer.encode(d)[0]) for d in DIGITS]
        self.vocab_size = tokenizer.vocab_size

    def forward(self, ids):
        B, T = ids.shape
        logits = torch.zeros(B, T, self.vocab_size)
        for b in range(B):
            key = [t for t in ids[b, :self.prompt_length].tolist() if t in self.digit_ids]
            for place in range(min(T - self.prompt_length + 1, 5)):
                digit = self.digit_ids.index(key[place]) + (place in self.mistakes)
                logits[b, self.prompt_length - 1 + place, self.digit_ids[digit % 10]] = 1.0
        return logits, None


def test_predict_and_score():
    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(1)
    prompts = [make_passkey(70, 0.5, generator=generator) for _ in range(3)]
    predicted = predict_keys(Oracle(tokenizer, 70), prompts, tokenizer, batch_size=2)
    assert predicted == [p.key for p in prompts]
    assert score_keys(predicted, [p.key for p in prompts]) == {"key": 1.0, "digit": 1.0}
    assert score_keys(["12345", "00000"], ["12345", "00001"]) == {"key": 0.5, "digit": 0.9}
    with pytest.raises(ValueError, match="equally many"):
        score_keys(["1"], [])


@pytest.mark.parametrize("mistakes", [(), (0,), (2,), (4,), (1, 3)])
def test_predict_keys_shortcut_equals_plain_greedy_decoding(mistakes):
    from lcviz.model import ModelConfig, TinyTransformer
    from lcviz.passkey import greedy_digits

    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(2)
    prompts = [make_passkey(70, 0.5, generator=generator) for _ in range(6)]
    ids = torch.stack([tokenizer.encode(p.text) for p in prompts])  # (6, 70)
    digit_ids = torch.tensor([tokenizer.encode(d)[0] for d in DIGITS])
    torch.manual_seed(len(mistakes))
    random_model = TinyTransformer(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1,
                                               n_embd=16, n_head=2, pos="rope")).eval()
    for model in (Oracle(tokenizer, 70, mistakes), random_model):
        plain = ["".join(DIGITS[d] for d in row)
                 for row in greedy_digits(model, ids, 5, digit_ids).tolist()]
        assert predict_keys(model, prompts, tokenizer, batch_size=4) == plain
    wrong = [sum(a != b for a, b in zip(answer, p.key)) for answer, p in
             zip(predict_keys(Oracle(tokenizer, 70, mistakes), prompts, tokenizer), prompts)]
    assert wrong == [len(mistakes)] * len(prompts)


def test_recoverable_is_the_exact_receptive_field():
    from lcviz.receptive import window_receptive_field
    for window, layers in ((16, 2), (32, 4), (1, 3)):
        field = window_receptive_field(window, layers)
        assert recoverable(field - 1, window, layers) and not recoverable(field, window, layers)
    assert recoverable(10_000, None, 1)


def test_grid_and_buckets():
    grid = needle_grid([70, 90], [0.0, 1.0], per_cell=3)
    assert sorted(grid) == [(70, 0.0), (70, 1.0), (90, 0.0), (90, 1.0)]
    assert all(len(v) == 3 and all(p.length == k[0] for p in v) for k, v in grid.items())
    prompts = grid[(90, 0.0)] + grid[(90, 1.0)]
    answers = [p.key for p in prompts[:3]] + ["00000"] * 3
    buckets = accuracy_by_distance(prompts, answers, bucket=8)
    assert sum(n for _, n in buckets.values()) == 6
    assert buckets[min(buckets)][0] < 1.0 and buckets[max(buckets)][0] == 1.0


@pytest.mark.slow
def test_passkey_checkpoints_reproduce_their_recorded_accuracy():
    """The recorded metrics were measured on the fixed held-out set; re-measure on it (one
    prompt of slack: a near-tie argmax may flip under another CPU's float rounding)."""
    from lcviz.checkpoints import load_checkpoint
    from lcviz.passkey import PASSKEY_EVAL, passkey_metrics
    from lcviz.recipes import RECIPES

    one_prompt = 1 / PASSKEY_EVAL["n"] + 1e-9
    for name in [n for n, r in RECIPES.items() if r.topic == "passkey"]:
        model, info = load_checkpoint(name)
        recorded, measured = info["metrics"], passkey_metrics(model)
        assert measured["key"] == pytest.approx(recorded["key"], abs=one_prompt), name
        assert measured["digit"] == pytest.approx(recorded["digit"], abs=one_prompt), name
