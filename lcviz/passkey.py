"""Passkey retrieval: the prompt, its tokenizer, training batches, trained models and a scorer.

The passkey prompt is the one of Landmark Attention (Mohtashami & Jaggi 2023, "Random-Access
Infinite Context Length for Transformers", arXiv 2305.16300), which later long-context papers
(Position Interpolation, YaRN, LongLoRA, activation beacons) reuse:

    <instruction> <filler ...> <needle> <filler ...> <question> <key digits>

Text is tokenized by words with every digit its own token (lcviz.tokenize.WordTokenizer), so a
prompt of a few hundred tokens holds dozens of filler sentences and trains on a CPU. Lengths,
depths and distances below are all counted in these tokens.
"""

from dataclasses import dataclass

import torch

from lcviz import seed_everything
from lcviz.model import IGNORE_INDEX, ModelConfig, TinyTransformer
from lcviz.receptive import window_receptive_field
from lcviz.tokenize import WordTokenizer, split_words
from lcviz.train import train_loop
from lcviz.validate import check_float, check_int

INSTRUCTION = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
               "memorize them. I will quiz you about the important information there.")
FILLER = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
          "There and back again.")
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key? The pass key is"
DIGITS = "0123456789"


def passkey_tokenizer():
    """The fixed word vocabulary of the passkey task (every word above plus the ten digits)."""
    return WordTokenizer.from_texts([INSTRUCTION, *FILLER, NEEDLE.format(key=""), QUESTION],
                                    extra=DIGITS)


def needle_tokens(key):
    return split_words(NEEDLE.format(key=key))


INSTRUCTION_TOKENS = split_words(INSTRUCTION)
QUESTION_TOKENS = split_words(QUESTION)
FILLER_TOKENS = [split_words(sentence) for sentence in FILLER]


def min_passkey_length(n_digits=5):
    """Shortest prompt: instruction + needle + question, no filler."""
    return len(INSTRUCTION_TOKENS) + len(needle_tokens("0" * n_digits)) + len(QUESTION_TOKENS)


@dataclass(frozen=True)
class PasskeyPrompt:
    """One prompt. `tokens` ends with the question; the answer is `key`, one digit per token."""
    tokens: tuple       # the prompt's word tokens, len == length
    key: str            # the digits to retrieve, e.g. "40213"
    depth: float        # where the needle was asked to go: 0 = first, 1 = last in the filler
    needle_start: int   # token index of the needle's first word
    key_positions: tuple  # token indices of the key's digits, both mentions in the needle

    @property
    def length(self):
        return len(self.tokens)

    @property
    def distance(self):
        """Tokens from the first digit of the key's last mention to the last prompt token (the
        query). Each answer digit is copied from exactly this far back, so a model retrieves
        the key only if its receptive field spans `distance` (lcviz.passkey.recoverable)."""
        return self.length - 1 - self.key_positions[len(self.key)]

    @property
    def text(self):
        return " ".join(self.tokens)


def make_passkey(length, depth, key=None, n_digits=5, generator=None):
    """A passkey prompt of exactly `length` tokens with the needle at relative `depth` in [0, 1].

    The filler cycles through FILLER's sentences and is cut to fill `length` exactly; the needle
    goes at the sentence boundary nearest to `depth` of the filler. `key` (a digit string) is
    drawn from `generator` when not given.
    """
    check_int("n_digits", n_digits, minimum=1, maximum=20)
    shortest = min_passkey_length(n_digits)
    check_int("length", length, minimum=shortest)
    depth = check_float("depth", depth, minimum=0.0, maximum=1.0)
    if key is None:
        key = "".join(str(int(d)) for d in torch.randint(0, 10, (n_digits,), generator=generator))
    if not (isinstance(key, str) and key.isdigit() and len(key) == n_digits
            and key.isascii()):
        raise ValueError(f"key must be a string of {n_digits} digits, got {key!r}")
    n_filler = length - shortest
    filler, boundaries = [], [0]  # boundaries: token offsets where a sentence starts
    sentence = 0
    while len(filler) < n_filler:
        filler.extend(FILLER_TOKENS[sentence % len(FILLER_TOKENS)])
        boundaries.append(len(filler))
        sentence += 1
    filler = filler[:n_filler]
    boundaries = [b for b in boundaries if b < n_filler] + [n_filler]
    cut = min(boundaries, key=lambda b: (abs(b - depth * n_filler), b))
    needle = needle_tokens(key)
    tokens = (INSTRUCTION_TOKENS + filler[:cut] + needle + filler[cut:] + QUESTION_TOKENS)
    needle_start = len(INSTRUCTION_TOKENS) + cut
    key_positions = tuple(needle_start + i for i, t in enumerate(needle) if t.isdigit())
    return PasskeyPrompt(tuple(tokens), key, depth, needle_start, key_positions)


def encode_passkey(prompts, tokenizer):
    """Token ids of prompts followed by their keys, for teacher forcing.

    Returns x (B, T + n - 1) inputs and y (B, T + n - 1) targets, where n is the number of key
    digits: y is IGNORE_INDEX except at the n positions that predict a key digit, so the loss teaches
    retrieval only (the filler is trivially predictable and would swamp the signal).
    """
    lengths = {(p.length, len(p.key)) for p in prompts}
    if len(lengths) != 1:
        raise ValueError(f"prompts in one batch need one length and key size, got {sorted(lengths)}")
    rows = [tokenizer.encode(p.text + " " + " ".join(p.key)) for p in prompts]
    ids = torch.stack(rows)  # (B, T + n)
    x, y = ids[:, :-1], ids[:, 1:].clone()  # (B, T + n - 1) each
    n_digits = len(prompts[0].key)
    y[:, :-n_digits] = IGNORE_INDEX
    return x, y


def passkey_batch(batch_size, length, tokenizer, generator=None, n_digits=5, depth=None):
    """A training batch of prompts of `length` tokens at random depths (or a fixed `depth`).

    Random depths are uniform on [-0.05, 1.05] clipped to [0, 1] for half the batch: the extreme
    placements (needle first, or right before the question) are single sentence boundaries that
    a plain uniform draw almost never picks. The other half is drawn the same way from
    [0.75, 1.05]: with the needle close to the question, a model that copies "the digit after the
    latest copy of this digit" fails on keys with a repeated digit (e.g. 40345 -> 45345), the one
    error our first full-attention models kept making; these examples teach it away.
    """
    check_int("batch_size", batch_size, minimum=1)
    if depth is None:
        low = torch.tensor([-0.05, 0.75]).repeat_interleave(torch.tensor([batch_size - batch_size // 2,
                                                                          batch_size // 2]))
        depths = (low + torch.rand(batch_size, generator=generator) * (1.05 - low)).clamp(0, 1)
        depths = depths.tolist()
    else:
        depths = [depth] * batch_size
    prompts = [make_passkey(length, d, n_digits=n_digits, generator=generator) for d in depths]
    return encode_passkey(prompts, tokenizer)


@torch.no_grad()
def predict_keys(model, prompts, tokenizer, batch_size=64, **forward):
    """Greedy answers of `model` to equal-length prompts: a list of digit strings.

    Each key digit is decoded by argmax over the ten digit tokens only, so the answer is always
    n digits and the score measures retrieval, not formatting. `model(ids, **forward)` must
    return (logits (B, T, V), _), as TinyTransformer does, and be causal.

    An exact shortcut (speculative decoding with the true key as the draft): one pass over prompt
    + key gives the model's choice after every true prefix. Where every choice is right, that is
    the greedy answer; a prompt first wrong at digit i keeps its first i + 1 choices and is decoded
    on from there. tests/test_passkey.py checks the answers against plain greedy decoding.
    """
    digit_ids = torch.tensor([tokenizer.encode(d)[0] for d in DIGITS])  # (10,)
    answers = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids = torch.stack([tokenizer.encode(p.text) for p in chunk])  # (B, T)
        key = torch.tensor([[DIGITS.index(d) for d in p.key] for p in chunk])  # (B, n)
        n = key.size(1)
        logits, _ = model(torch.cat([ids, digit_ids[key[:, :-1]]], dim=1), **forward)  # (B, T + n - 1, V)
        chosen = logits[:, -n:, digit_ids].argmax(-1)  # (B, n) the choice after each true prefix
        wrong = chosen != key
        first_wrong = torch.where(wrong.any(1), wrong.int().argmax(1), n)  # (B,), n = all right
        digits = chosen.clone()  # right up to and including each prompt's first wrong digit
        for i in range(n - 1):
            rows = (first_wrong == i).nonzero()[:, 0]
            if len(rows):
                prefix = torch.cat([ids[rows], digit_ids[chosen[rows, :i + 1]]], dim=1)
                digits[rows, i + 1:] = greedy_digits(model, prefix, n - i - 1, digit_ids, **forward)
        answers += ["".join(DIGITS[d] for d in row) for row in digits.tolist()]
    return answers


def greedy_digits(model, ids, n, digit_ids, **forward):
    """n digits decoded one by one after ids (B, T), each the argmax over digit_ids (10,):
    (B, n) indices into DIGITS."""
    digits = []
    for _ in range(n):
        logits, _ = model(ids, **forward)  # (B, T, V)
        best = logits[:, -1, digit_ids].argmax(-1)  # (B,)
        digits.append(best)
        ids = torch.cat([ids, digit_ids[best][:, None]], dim=1)
    return torch.stack(digits, 1)


def score_keys(predicted, expected):
    """{"key": whole-key exact-match rate, "digit": per-digit accuracy} over paired lists."""
    if len(predicted) != len(expected) or not expected:
        raise ValueError(f"need equally many predicted and expected keys (at least one), got "
                         f"{len(predicted)} and {len(expected)}")
    whole = sum(p == e for p, e in zip(predicted, expected)) / len(expected)
    pairs = [(a, b) for p, e in zip(predicted, expected) for a, b in zip(p.ljust(len(e)), e)]
    return {"key": whole, "digit": sum(a == b for a, b in pairs) / len(pairs)}


def heldout_prompts(n, length, seed, depths=None, n_digits=5):
    """A fixed, seeded set of n prompts (depths uniform in [0, 1] unless given, cycled)."""
    check_int("n", n, minimum=1)
    generator = torch.Generator().manual_seed(seed)
    if depths is None:
        depths = torch.rand(n, generator=generator).tolist()
    return [make_passkey(length, depths[i % len(depths)], n_digits=n_digits, generator=generator)
            for i in range(n)]


def needle_grid(lengths, depths, per_cell, seed=0, n_digits=5):
    """The needle-in-a-haystack grid: {(length, depth): [per_cell seeded prompts]}."""
    return {(length, depth): heldout_prompts(per_cell, length, seed + 1000 * i + j, [depth],
                                             n_digits)
            for i, length in enumerate(lengths) for j, depth in enumerate(depths)}


def accuracy_by_distance(prompts, predicted, bucket):
    """{bucket start: (whole-key accuracy, count)} over key distances cut into buckets."""
    check_int("bucket", bucket, minimum=1)
    groups = {}
    for prompt, answer in zip(prompts, predicted):
        start = prompt.distance // bucket * bucket
        groups.setdefault(start, []).append(answer == prompt.key)
    return {start: (sum(hits) / len(hits), len(hits)) for start, hits in sorted(groups.items())}


def recoverable(distance, window, layers):
    """Can a key `distance` tokens back reach the query through `layers` causal windows of
    `window`? Only if distance < layers (window - 1) + 1, the exact receptive field (notebook 03).
    A window of None (full attention) reaches everything."""
    check_int("distance", distance, minimum=0)
    check_int("layers", layers, minimum=1)
    if window is None:
        return True
    return distance < window_receptive_field(window, layers)


# ---------------------------------------------------------------- trained models (recipes)

PASSKEY_LENGTH = 128  # prompt tokens, in training and in the recorded evaluation
PASSKEY_EVAL = {"n": 400, "seed": 1234}  # the fixed held-out set every checkpoint records


def train_passkey(config, steps, seed=0, batch_size=32, lr=3e-3, lengths=(PASSKEY_LENGTH,) * 2,
                  evaluate=None, eval_every=50):
    """Train on passkey prompts at random needle depths, with the loss on the key digits only
    (the filler is predictable and would drown the signal). Each step draws one prompt length
    from lengths = (shortest, longest). evaluate(model) -> float, if given, is recorded every
    eval_every steps. Returns (model, history)."""
    seed_everything(seed)
    tokenizer = passkey_tokenizer()
    model = TinyTransformer(config)
    generator = torch.Generator().manual_seed(seed)
    shortest, longest = lengths

    def batch(step):
        length = int(torch.randint(shortest, longest + 1, (1,), generator=generator))
        return passkey_batch(batch_size, length, tokenizer, generator)
    history = train_loop(model, batch, steps, lr=lr, warmup=30, eval_every=eval_every,
                         evaluate=None if evaluate is None else lambda: evaluate(model))
    return model, history


def passkey_metrics(model, length=PASSKEY_LENGTH, bucket=8, **forward):
    """Whole-key and digit accuracy on the fixed held-out set, overall, by depth fifth and by
    key distance (buckets of `bucket` tokens: {start: [accuracy, count]}). `forward` goes to
    every model call (e.g. ratio= for a beacon model)."""
    tokenizer = passkey_tokenizer()
    prompts = heldout_prompts(PASSKEY_EVAL["n"], length, PASSKEY_EVAL["seed"])
    predicted = predict_keys(model, prompts, tokenizer, **forward)
    by_depth = {}
    for prompt, answer in zip(prompts, predicted):
        by_depth.setdefault(min(int(prompt.depth * 5), 4), []).append(answer == prompt.key)
    return {**score_keys(predicted, [p.key for p in prompts]),
            "eval": {**PASSKEY_EVAL, "length": length},
            "key_by_depth_fifth": [sum(v) / len(v) for _, v in sorted(by_depth.items())],
            "key_by_distance": {str(start): list(cell) for start, cell in
                                accuracy_by_distance(prompts, predicted, bucket).items()}}


def fit_passkey(seed=0, window=None, n_layer=2, steps=1300):
    """Recipes passkey-*: a RoPE TinyTransformer (width 128, 8 heads) with an optional window."""
    config = ModelConfig(vocab_size=passkey_tokenizer().vocab_size,
                         block_size=PASSKEY_LENGTH + 8, n_layer=n_layer, n_head=8, n_embd=128,
                         pos="rope", window=window)
    model, history = train_passkey(config, steps, seed)
    return model, {**passkey_metrics(model), "history": history}
