"""Passkey retrieval: the prompt, its tokenizer, training batches, trained models and a scorer.

The passkey prompt is the one of Landmark Attention (Mohtashami & Jaggi 2023, "Random-Access
Infinite Context Length for Transformers", arXiv 2305.16300), which later long-context papers
(Position Interpolation, YaRN, LongLoRA, activation beacons) reuse:

    <instruction> <filler ...> <needle> <filler ...> <question> <key digits>

Text is tokenized by words with every digit its own token (lcviz.tokenize.WordTokenizer), so a
prompt of a few hundred tokens holds dozens of filler sentences and trains on a CPU. Lengths,
depths and distances below are all counted in these tokens.

make_passkey builds Landmark Attention's own layout (a fixed cycle of filler sentences).
passkey_at / random_passkeys draw the filler at random and place the needle at an exact key
distance, so the only way to answer is to find the key by its content; fit_passkey_content
trains on them (section "random filler" below says where they depart from the paper).
"""

import time
from dataclasses import dataclass

import torch

from lcviz import seed_everything
from lcviz.checkpoints import load_checkpoint
from lcviz.model import IGNORE_INDEX, ModelConfig, TinyTransformer
from lcviz.receptive import window_receptive_field
from lcviz.rope import rope_scaling
from lcviz.stats import wilson_interval
from lcviz.tokenize import WordTokenizer, split_words
from lcviz.train import train_loop
from lcviz.validate import check_choice, check_float, check_int

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


# ---------------------------------------------------------------- random filler: retrieval by content
#
# make_passkey above builds Landmark Attention's layout: the same five sentences in a fixed cycle
# and the needle at the sentence boundary nearest a depth. A tiny model trained on one length of
# that layout learns where the key sits, not how to find it. The prompts below keep the format
# and the words but leave nothing to count on. Where they differ from Landmark Attention:
# - every filler sentence is drawn at random (uniformly from FILLER, independently);
# - the filler before the needle is the tail of such a random stream (the prompt's first filler
#   sentence is usually cut, at a phase set by the draws), the filler after it the head of
#   another stream, cut wherever the question starts; a prompt has exactly `length` tokens;
# - the needle's place is given as `after`, the filler tokens between needle and question, so a
#   key's distance to the query is exact: min_key_distance() + after;
# - training draws one prompt length per batch over a range and a needle place per prompt.
# "cycle" filler (Landmark's cycle from a random sentence, on both sides of the needle) is a
# filler order random-filler training never sees as a whole: a held-out setting.

FILLER_KINDS = ("random", "cycle")


def filler_tokens(n, kind="random", generator=None, tail=False):
    """n filler tokens: sentences drawn at random ("random") or FILLER's cycle from a random
    sentence ("cycle"). tail=False keeps the head of the stream (whole first sentence, the last
    one cut), tail=True its tail (first sentence cut, whole last one)."""
    check_int("n", n, minimum=0)
    check_choice("kind", kind, FILLER_KINDS)
    start = 0 if kind == "random" else int(torch.randint(len(FILLER_TOKENS), (1,),
                                                         generator=generator))
    tokens, i = [], 0
    while len(tokens) < n:
        if kind == "random":
            sentence = int(torch.randint(len(FILLER_TOKENS), (1,), generator=generator))
        else:
            sentence = (start + i) % len(FILLER_TOKENS)
        tokens.extend(FILLER_TOKENS[sentence])
        i += 1
    return tokens[len(tokens) - n:] if tail else tokens[:n]


def min_key_distance(n_digits=5):
    """The key's distance when the needle sits right before the question (19 for 5 digits):
    the rest of the key's second mention, the needle's last words, the question."""
    check_int("n_digits", n_digits, minimum=1, maximum=20)
    needle = needle_tokens("0" * n_digits)
    second = [i for i, t in enumerate(needle) if t.isdigit()][n_digits]
    return len(needle) - second + len(QUESTION_TOKENS) - 1


def max_key_distance(length, n_digits=5):
    """The key's distance with the needle first in the filler."""
    check_int("length", length, minimum=min_passkey_length(n_digits))
    return min_key_distance(n_digits) + length - min_passkey_length(n_digits)


def passkey_at(length, after, key=None, n_digits=5, generator=None, filler="random"):
    """A prompt of exactly `length` tokens with `after` filler tokens between the needle and the
    question, so its key lies min_key_distance(n_digits) + after tokens before the query.
    Filler and key (when not given) are drawn from `generator`."""
    check_int("n_digits", n_digits, minimum=1, maximum=20)
    shortest = min_passkey_length(n_digits)
    check_int("length", length, minimum=shortest)
    n_filler = length - shortest
    check_int("after", after, minimum=0, maximum=n_filler)
    if key is None:
        key = "".join(str(int(d)) for d in torch.randint(0, 10, (n_digits,), generator=generator))
    if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) == n_digits):
        raise ValueError(f"key must be a string of {n_digits} digits, got {key!r}")
    before = n_filler - after
    needle = needle_tokens(key)
    tokens = (INSTRUCTION_TOKENS + filler_tokens(before, filler, generator, tail=True) + needle
              + filler_tokens(after, filler, generator) + QUESTION_TOKENS)
    needle_start = len(INSTRUCTION_TOKENS) + before
    key_positions = tuple(needle_start + i for i, t in enumerate(needle) if t.isdigit())
    depth = before / n_filler if n_filler else 1.0
    return PasskeyPrompt(tuple(tokens), key, depth, needle_start, key_positions)


def random_passkeys(n, length, generator=None, max_distance=None, n_digits=5, filler="random"):
    """n prompts of `length`, the needle's place uniform over the filler (or over the places
    whose key distance is at most max_distance)."""
    check_int("n", n, minimum=1)
    n_filler = length - min_passkey_length(n_digits)
    top = n_filler
    if max_distance is not None:
        check_int("max_distance", max_distance, minimum=min_key_distance(n_digits))
        top = min(n_filler, max_distance - min_key_distance(n_digits))
    afters = torch.randint(0, top + 1, (n,), generator=generator).tolist()
    return [passkey_at(length, a, n_digits=n_digits, generator=generator, filler=filler)
            for a in afters]


def band_passkeys(n, length, low, high, generator=None, n_digits=5, filler="random"):
    """n prompts of `length` with key distances uniform on [low, high] clipped to what `length`
    allows; [] when no distance in the band fits."""
    check_int("n", n, minimum=1)
    check_int("low", low, minimum=0)
    check_int("high", high, minimum=low)
    low = max(low, min_key_distance(n_digits))
    high = min(high, max_key_distance(length, n_digits))
    if low > high:
        return []
    shift = min_key_distance(n_digits)
    distances = torch.randint(low, high + 1, (n,), generator=generator).tolist()
    return [passkey_at(length, d - shift, n_digits=n_digits, generator=generator, filler=filler)
            for d in distances]


def filler_targets(prompts, tokenizer):
    """Next-token targets (B, T + n - 1), aligned with encode_passkey's x, for every predictable
    token of the prompt (instruction, filler, needle words, the key's second mention); IGNORE_INDEX
    at the key's first mention (random digits) and at the answer (encode_passkey's targets)."""
    encode_passkey(prompts, tokenizer)  # validates: one length and key size
    ids = torch.stack([tokenizer.encode(p.text + " " + " ".join(p.key)) for p in prompts])
    lm = ids[:, 1:].clone()  # (B, T + n - 1)
    n_digits = len(prompts[0].key)
    lm[:, -n_digits:] = IGNORE_INDEX
    for row, prompt in enumerate(prompts):
        lm[row, torch.tensor(prompt.key_positions[:n_digits]) - 1] = IGNORE_INDEX
    return lm


class RetrievalLoss(torch.nn.Module):
    """model plus the training loss: cross-entropy on the key digits + filler_weight times the
    next-token loss on the rest of the prompt. The second term (a plain language-model loss)
    is what makes random-filler retrieval train fast: predicting the needle's second mention of
    the key is a short copy that builds the induction heads the answer reuses further away
    (Olsson et al. 2022, "In-context Learning and Induction Heads", arXiv 2209.11895)."""

    def __init__(self, model, filler_weight=1.0):
        super().__init__()
        self.model = model
        self.filler_weight = check_float("filler_weight", filler_weight, minimum=0.0)

    def forward(self, x, y, y_filler=None):
        logits, loss = self.model(x, y)  # (B, T, V), loss on the key digits
        if y_filler is not None and self.filler_weight > 0:
            filler_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), y_filler.reshape(-1),
                ignore_index=IGNORE_INDEX)
            loss = loss + self.filler_weight * filler_loss
        return logits, loss


def content_batch(batch_size, length, tokenizer, generator=None, max_distance=None,
                  with_filler=True, n_digits=5):
    """(x, y, y_filler) for RetrievalLoss: random-filler prompts of `length`, needle places
    uniform (up to max_distance)."""
    prompts = random_passkeys(batch_size, length, generator, max_distance, n_digits)
    x, y = encode_passkey(prompts, tokenizer)
    return (x, y, filler_targets(prompts, tokenizer)) if with_filler else (x, y)


CONTENT_EVAL_SEED = 20250  # held-out prompts: a seed no training run draws from


def rate_cell(hits):
    """{"k", "n", "rate", "low", "high"}: a whole-key accuracy with its Wilson 95% interval."""
    low, high = wilson_interval(sum(hits), len(hits))
    return {"k": sum(hits), "n": len(hits), "rate": sum(hits) / len(hits), "low": low,
            "high": high}


def key_hits(model, prompts, tokenizer, **forward):
    answers = predict_keys(model, prompts, tokenizer, **forward)
    return [a == p.key for a, p in zip(answers, prompts)]


def full_attention_metrics(model, lengths, n=200, trained=(64, 256), seed=CONTENT_EVAL_SEED):
    """Held-out whole-key accuracy of a full-attention model on random-filler prompts: per
    length (n each, needle places uniform), per depth decile (pooled over the lengths inside
    `trained`), and per length on Landmark's cycled filler (n // 2 each)."""
    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(seed)
    by_length, cycled, deciles = {}, {}, {i: [] for i in range(10)}
    for length in lengths:
        prompts = random_passkeys(n, length, generator)
        hits = key_hits(model, prompts, tokenizer)
        by_length[str(length)] = rate_cell(hits)
        if trained[0] <= length <= trained[1]:
            for prompt, hit in zip(prompts, hits):
                deciles[min(int(prompt.depth * 10), 9)].append(hit)
        cyc = random_passkeys(max(1, n // 2), length, generator, filler="cycle")
        cycled[str(length)] = rate_cell(key_hits(model, cyc, tokenizer))
    return {"seed": seed, "key_by_length": by_length, "key_by_length_cycled_filler": cycled,
            "key_by_depth_decile": {str(i): rate_cell(h) for i, h in deciles.items() if h}}


def window_metrics(model, train_length, n=200, seed=CONTENT_EVAL_SEED, multiples=(1, 2, 4)):
    """Held-out whole-key accuracy of a sliding-window model at 1x, 2x, 4x `train_length`, by
    band of key distance d (inside one window: d <= w - 1; relayed: w <= d < field; beyond the
    exact field L(w - 1) + 1: d >= field), and at d = field - 1, field, field + 1."""
    window, layers = model.config.window, model.config.n_layer
    field = window_receptive_field(window, layers)
    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(seed)
    bands = {"inside": (0, window - 1), "relayed": (window, field - 1),
             "beyond": (field, 10 ** 9)}
    out = {"seed": seed, "window": window, "layers": layers, "field": field,
           "train_length": train_length, "bands": {}, "boundary": {}}
    for mult in multiples:
        length = mult * train_length
        cells = {}
        for band, (low, high) in bands.items():
            prompts = band_passkeys(n, length, low, high, generator)
            cells[band] = rate_cell(key_hits(model, prompts, tokenizer)) if prompts else None
        out["bands"][str(length)] = cells
        edge = {}
        for d in (field - 1, field, field + 1):
            prompts = band_passkeys(n, length, d, d, generator)
            edge[str(d)] = rate_cell(key_hits(model, prompts, tokenizer)) if prompts else None
        out["boundary"][str(length)] = edge
    return out


def deepen(model, base):
    """Start `model` from a shallower trained `base` of the same width: base's blocks become
    the first ones, the extra blocks start as the identity (zero output projections)."""
    state = model.state_dict()
    state.update({k: v.clone() for k, v in base.state_dict().items()})
    model.load_state_dict(state)
    for block in model.blocks[base.config.n_layer:]:
        for layer in (block.attn.proj, block.mlp.down):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return model


def fit_passkey_content(seed=0, window=None, n_layer=2, n_embd=64, n_head=4, steps=800,
                        lengths=(64, 256), ramp=0.5, filler_weight=1.0, max_distance=None,
                        base=None, lr=3e-3, batch_size=32, eval_n=200):
    """Recipes for retrieval by content: a RoPE TinyTransformer (optionally windowed, optionally
    started from the checkpoint `base`) trained on random-filler prompts with RetrievalLoss.
    Each step draws a length in [lengths[0], top], where top grows linearly from lengths[0] to
    lengths[1] over the first `ramp` of the steps (a length curriculum; ramp=0: no ramp)."""
    seed_everything(seed)
    tokenizer = passkey_tokenizer()
    shortest, longest = lengths
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=longest + 8, n_layer=n_layer,
                         n_head=n_head, n_embd=n_embd, pos="rope", window=window)
    model = TinyTransformer(config)
    if base is not None:
        trained, _ = load_checkpoint(base)
        if trained.config.n_layer == n_layer:
            model.load_state_dict(trained.state_dict())
        else:
            deepen(model, trained)
    generator = torch.Generator().manual_seed(seed)

    def batch(step):
        top = longest if ramp <= 0 else int(shortest + min(1.0, step / (ramp * steps))
                                            * (longest - shortest))
        length = int(torch.randint(shortest, top + 1, (1,), generator=generator))
        return content_batch(batch_size, length, tokenizer, generator, max_distance,
                             with_filler=filler_weight > 0)
    start, start_cpu = time.perf_counter(), time.process_time()
    history = train_loop(RetrievalLoss(model, filler_weight), batch, steps, lr=lr, warmup=30)
    history["loop_seconds"] = round(time.perf_counter() - start, 1)
    history["loop_cpu_seconds"] = round(time.process_time() - start_cpu, 1)
    if window is None:
        metrics = full_attention_metrics(model, (64, 96, 128, 160, 192, 224, 256, 320, 384),
                                         n=eval_n, trained=lengths)
    else:
        metrics = window_metrics(model, longest, n=eval_n)
    return model, {**metrics, "history": history}


def fit_rope_finetune_content(seed=0, rope_type="linear", factor=4, steps=300, lr=1e-3,
                              batch_size=16, eval_n=100):
    """Recipes passkey-full-*-ft (notebook 05): the content-trained passkey-full (prompts of
    64-256 tokens) switched to `rope_type` at `factor`, fine-tuned on random-filler prompts of
    256..factor*256 tokens — the PI paper's passkey experiment (Chen et al. 2023, arXiv 2306.15595, section 3.3:
    after a short fine-tune, retrieval works up to the new length). Records whole-key hits at
    1x, 2x and factor x the original length on held-out prompts."""
    check_int("factor", factor, minimum=2)
    seed_everything(seed)
    base, info = load_checkpoint("passkey-full")
    original = max(info["metrics"]["settings"]["lengths"])
    longest = factor * original
    model = base.with_config(block_size=longest + 8,
                             **rope_scaling(rope_type, float(factor), original)).train()
    tokenizer = passkey_tokenizer()
    generator = torch.Generator().manual_seed(seed)

    def batch(step):
        length = int(torch.randint(original, longest + 1, (1,), generator=generator))
        return content_batch(batch_size, length, tokenizer, generator)
    history = train_loop(RetrievalLoss(model), batch, steps, lr=lr, warmup=10)
    model.eval()
    by_length = {}
    for length in (original, 2 * original, longest):
        prompts = random_passkeys(eval_n, length, torch.Generator().manual_seed(
            CONTENT_EVAL_SEED + length))
        by_length[str(length)] = rate_cell(key_hits(model, prompts, tokenizer))
    return model, {"key_by_length": by_length, "original_length": original, "factor": factor,
                   "history": history}
