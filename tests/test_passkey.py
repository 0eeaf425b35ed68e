import pytest
import torch

from lcviz.model import ModelConfig, TinyTransformer
from lcviz.passkey import (
    DIGITS,
    FILLER,
    FILLER_TOKENS,
    IGNORE_INDEX,
    INSTRUCTION_TOKENS,
    QUESTION_TOKENS,
    RetrievalLoss,
    accuracy_by_distance,
    band_passkeys,
    content_batch,
    deepen,
    encode_passkey,
    filler_targets,
    make_passkey,
    max_key_distance,
    min_key_distance,
    min_passkey_length,
    needle_grid,
    needle_tokens,
    passkey_at,
    passkey_batch,
    passkey_tokenizer,
    predict_keys,
    random_passkeys,
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
    """Each checkpoint's recorded accuracy, re-measured on the same held-out prompts (one prompt
    of slack: a near-tie argmax may flip under another CPU's float rounding). Content models are
    re-measured on their first recorded cells (the prompts are drawn in order, so the first
    length's prompts do not depend on the rest)."""

    from lcviz.checkpoints import load_checkpoint
    from lcviz.passkey import PASSKEY_EVAL, full_attention_metrics, passkey_metrics, window_metrics
    from lcviz.recipes import RECIPES
    for name in [n for n in RECIPES if RECIPES[n].topic == "passkey"]:
        model, info = load_checkpoint(name)
        recorded = info["metrics"]
        if name.startswith("passkey-layout"):
            measured, slack = passkey_metrics(model), 1 / PASSKEY_EVAL["n"] + 1e-9
            pairs = [(measured[s], recorded[s]) for s in ("key", "digit")]
        elif model.config.window is None:
            first = next(iter(recorded["key_by_length"]))
            cell = recorded["key_by_length"][first]
            measured = full_attention_metrics(model, (int(first),), n=cell["n"])
            pairs, slack = [(measured["key_by_length"][first]["k"], cell["k"])], 1
        else:
            length = str(recorded["train_length"])
            cells = recorded["bands"][length]
            n = next(c["n"] for c in cells.values() if c)
            measured = window_metrics(model, recorded["train_length"], n=n, multiples=(1,))
            pairs = [(measured["bands"][length][band]["k"], cell["k"])
                     for band, cell in cells.items() if cell]
            slack = 1
        for got, want in pairs:
            assert got == pytest.approx(want, abs=slack), name


# ---------------------------------------------------------------- random-filler prompts
def test_exact_length_and_distance():
    generator = torch.Generator().manual_seed(0)
    for length in (62, 63, 100, 257):
        for after in sorted({0, min(1, length - 62), (length - 62) // 2, length - 62}):
            prompt = passkey_at(length, after, generator=generator)
            assert prompt.length == length
            assert prompt.distance == min_key_distance() + after
            assert [prompt.tokens[i] for i in prompt.key_positions] == list(prompt.key) * 2
    assert min_key_distance() == 19
    assert max_key_distance(100) == 19 + 100 - min_passkey_length()


def test_filler_is_random_and_not_a_fixed_layout():
    generator = torch.Generator().manual_seed(1)
    prompts = [passkey_at(150, 40, key="12345", generator=generator) for _ in range(20)]
    assert len({p.tokens for p in prompts}) == 20  # same key and place, different filler
    # the token right after the instruction is not always a sentence start (random phase)
    first = {p.tokens[len(prompts[0].tokens) - 150 + 30] for p in prompts}
    assert len(first) > 2
    words = {w for s in FILLER_TOKENS for w in s}
    for p in prompts:
        filler = p.tokens[30:p.needle_start]
        assert set(filler) <= words


def test_cycled_filler_follows_landmark_order():
    generator = torch.Generator().manual_seed(2)
    prompt = passkey_at(200, 60, generator=generator, filler="cycle")
    end = prompt.needle_start + len(needle_tokens(prompt.key))
    after = prompt.tokens[end:end + 60]
    sentences = [" ".join(s) for s in FILLER_TOKENS]
    text = " ".join(after)
    starts = [i for i, s in enumerate(sentences) if text.startswith(s)]
    assert len(starts) == 1
    expected = " ".join(sentences[(starts[0] + i) % 5] for i in range(20))
    assert expected.startswith(text)


def test_bands_and_max_distance():
    generator = torch.Generator().manual_seed(3)
    prompts = band_passkeys(50, 128, 30, 40, generator)
    assert all(30 <= p.distance <= 40 for p in prompts) and len(prompts) == 50
    assert band_passkeys(5, 80, 70, 90, generator) == []  # 80 tokens reach at most distance 37
    assert all(p.distance <= 50 for p in random_passkeys(40, 200, generator, max_distance=50))
    with pytest.raises(ValueError, match="max_distance"):
        random_passkeys(4, 100, generator, max_distance=3)
    with pytest.raises(ValueError, match="after"):
        passkey_at(80, 19, generator=generator)
    with pytest.raises(ValueError, match="kind"):
        passkey_at(80, 3, generator=generator, filler="shuffled")


def test_filler_targets_skip_random_digits_and_answer():
    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(4)
    prompts = random_passkeys(3, 90, generator)
    x, y, y_filler = content_batch(3, 90, tokenizer, torch.Generator().manual_seed(4))
    assert torch.equal(filler_targets(prompts, tokenizer), y_filler)
    n = 5
    assert (y[:, -n:] != IGNORE_INDEX).all() and (y[:, :-n] == IGNORE_INDEX).all()
    assert (y_filler[:, -n:] == IGNORE_INDEX).all()
    for row, p in enumerate(prompts):
        first, second = p.key_positions[:n], p.key_positions[n:]
        assert (y_filler[row, torch.tensor(first) - 1] == IGNORE_INDEX).all()
        assert (y_filler[row, torch.tensor(second) - 1] == x[row, torch.tensor(second)]).all()
        assert (y_filler[row] != IGNORE_INDEX).sum() == x.size(1) - 2 * n


def test_retrieval_loss_adds_the_weighted_filler_term():
    tokenizer = passkey_tokenizer()
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=16,
                                        n_head=2, pos="rope"))
    x, y, y_filler = content_batch(2, 70, tokenizer, torch.Generator().manual_seed(5))
    key_only = RetrievalLoss(model, 0.0)(x, y, y_filler)[1]
    both = RetrievalLoss(model, 0.5)(x, y, y_filler)[1]
    logits, _ = model(x)
    filler = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                               y_filler.reshape(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(both, key_only + 0.5 * filler)


def test_deepen_starts_as_the_shallow_model():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=53, n_layer=2, n_embd=16, n_head=2, pos="rope")
    base = TinyTransformer(config).eval()
    deep = deepen(TinyTransformer(ModelConfig(**{**config.to_dict(), "n_layer": 4})), base).eval()
    ids = torch.randint(0, 53, (2, 30))
    assert torch.allclose(base(ids)[0], deep(ids)[0], atol=1e-5)
