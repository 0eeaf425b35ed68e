"""The tiny transformer's language-model task: characters of Python source (the standard
library's own files), trained and measured as a next-character model. lcviz.model holds the
model itself, lcviz.train the loop; this module holds what is specific to the char model."""

import math

import torch

from lcviz import seed_everything
from lcviz.corpus import random_windows, stdlib_text, train_val_split
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.tokenize import CharTokenizer
from lcviz.train import train_loop
from lcviz.validate import check_float, check_int


def char_lm_data(n_chars=400_000):
    """Char ids of the stdlib corpus, split into (train, val)."""
    return train_val_split(CharTokenizer().encode(stdlib_text(n_chars)))


@torch.no_grad()
def mean_loss(model, ids, block_size, batch_size=32, batches=4, seed=1234):
    """Average next-token loss of `model` on fixed random windows of `ids` (a held-out split)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    losses = [model(*random_windows(ids, block_size, batch_size, generator))[1].item()
              for _ in range(batches)]
    return sum(losses) / len(losses)


def train_char_lm(model, steps, seed=0, batch_size=32, lr=3e-3, eval_every=50, warmup=20):
    """Train `model` (fresh or loaded) on the stdlib corpus at its config.block_size;
    returns (model, history, val_loss)."""
    seed_everything(seed)
    train_ids, val_ids = char_lm_data()
    block_size = model.config.block_size
    generator = torch.Generator().manual_seed(seed)
    history = train_loop(
        model, lambda step: random_windows(train_ids, block_size, batch_size, generator),
        steps, lr=lr, warmup=warmup, evaluate=lambda: mean_loss(model, val_ids, block_size),
        eval_every=eval_every)
    return model, history, history["eval"][-1]


def fit_char_lm(seed=0, model=None, steps=1000, eval_every=100):
    """Recipe: a fresh TinyTransformer(ModelConfig(**model)) trained as a char model."""
    seed_everything(seed)
    net = TinyTransformer(ModelConfig(**model))
    net, history, val_loss = train_char_lm(net, steps=steps, seed=seed, eval_every=eval_every)
    return net, {"val_loss": val_loss, "history": history}


def initial_loss_estimate(vocab_size, gap, repeat_rate):
    """Expected next-token loss of a model that scores the current token `gap` nats above every
    other token (all others equal) when the next token repeats the current one with probability
    `repeat_rate`: ln(V - 1 + e^gap) - repeat_rate * gap. With gap = 0 it is ln V, the uniform
    guess. A freshly initialised model with tied input/output embeddings (Press & Wolf 2017,
    arXiv 1608.05859) has gap > 0: its head scores each token by the dot product of the final
    hidden state, still mostly the current token's own embedding, with that token's embedding."""
    check_int("vocab_size", vocab_size, minimum=2)
    check_float("gap", gap)
    check_float("repeat_rate", repeat_rate, minimum=0.0, maximum=1.0)
    return math.log(vocab_size - 1 + math.exp(gap)) - repeat_rate * gap


def tied_logit_gap(logits, idx):
    """Mean over positions of (logit of the current token) - (mean logit of the other tokens):
    logits (B, T, V), idx (B, T) -> float. The `gap` of initial_loss_estimate, measured."""
    if logits.dim() != 3 or idx.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, T, V) and idx (B, T); got {tuple(logits.shape)} "
                         f"and {tuple(idx.shape)}")
    own = logits.gather(-1, idx[..., None])[..., 0]  # (B, T)
    others = (logits.sum(-1) - own) / (logits.size(-1) - 1)  # (B, T)
    return (own - others).mean().item()
