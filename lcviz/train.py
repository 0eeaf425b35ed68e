"""Training loop, recipes and checkpoints.

    python -m lcviz.train --list          # the recipes
    python -m lcviz.train charlm          # train one, write data/charlm.pt and data/charlm.json
    python -m lcviz.train all             # rebuild every checkpoint (`make checkpoints`)

A recipe is a function seed -> (model, metrics) registered with @recipe; every checkpoint in
data/ is reproducible by one command and a seed.
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

from lcviz import seed_everything
from lcviz.beacon import BeaconTransformer
from lcviz.corpus import random_windows, stdlib_text, train_val_split
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.rope import ROPE_PARAMS
from lcviz.tasks import (accuracy_by_distance, heldout_prompts, passkey_batch, passkey_tokenizer,
                         predict_keys, score_keys)
from lcviz.tokenize import CharTokenizer
from lcviz.validate import check_float, check_int

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
RECIPES = {}


def recipe(name, description):
    """Register fn(seed) -> (model, metrics) as a recipe named `name`."""
    def register(fn):
        fn.description = description
        RECIPES[name] = fn
        return fn
    return register


def learning_rate(step, steps, lr, warmup):
    """Linear warm-up for `warmup` steps, then cosine decay to lr / 10."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop(model, batches, steps, lr=3e-3, warmup=20, weight_decay=0.01, grad_clip=1.0,
               evaluate=None, eval_every=50):
    """AdamW on model's loss. batches(step) -> (x, y); evaluate() -> float, called every eval_every.

    Returns a history dict: step, loss (train, every step), eval_step, eval (every eval_every).
    """
    check_int("steps", steps, minimum=1)
    check_float("lr", lr, greater_than=0.0)
    check_int("warmup", warmup, minimum=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = {"step": [], "loss": [], "eval_step": [], "eval": []}
    for step in range(steps):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup)
        x, y = batches(step)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        if evaluate is not None and (step % eval_every == 0 or step == steps - 1):
            model.eval()
            history["eval_step"].append(step)
            history["eval"].append(float(evaluate()))
    model.eval()
    return history


@torch.no_grad()
def mean_loss(model, ids, block_size, batch_size=32, batches=4, seed=1234):
    """Average next-token loss of `model` on fixed random windows of `ids` (a held-out split)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    losses = [model(*random_windows(ids, block_size, batch_size, generator))[1].item()
              for _ in range(batches)]
    return sum(losses) / len(losses)


def char_lm_data(n_chars=400_000):
    """Char ids of the stdlib corpus, split into (train, val)."""
    return train_val_split(CharTokenizer().encode(stdlib_text(n_chars)))


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


# ---------------------------------------------------------------- recipes: 01 tiny transformer

@recipe("charlm", "char-level TinyTransformer (2 layers, width 128) on Python stdlib sources")
def charlm(seed=0):
    seed_everything(seed)
    model = TinyTransformer(ModelConfig(block_size=128, n_layer=2, n_head=4, n_embd=128))
    model, history, val_loss = train_char_lm(model, steps=1000, seed=seed, eval_every=100)
    return model, {"val_loss": val_loss, "history": history}


# ---------------------------------------------------------------- recipes: 05 RoPE scaling

ROPE_SHORT = 64  # the training length L of notebook 05's experiment
ROPE_LONG = 4 * ROPE_SHORT  # evaluated at 2L and 4L; fine-tuned at 4L
ROPE_FINETUNE_STEPS = 150  # "within 1000 steps" in the PI paper; a tiny model needs fewer


def rope_scaling(rope_type, factor, original=ROPE_SHORT):
    """The config changes that switch a RoPE model trained at `original` to a scaling method:
    whichever of factor / original_max_position_embeddings lcviz.rope.ROPE_PARAMS says it takes."""
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


@recipe("rope-charlm", f"char-level TinyTransformer with RoPE, trained at length {ROPE_SHORT}")
def rope_charlm(seed=0):
    seed_everything(seed)
    config = ModelConfig(block_size=ROPE_SHORT, n_layer=2, n_head=4, n_embd=128, pos="rope")
    model, history, val_loss = train_char_lm(TinyTransformer(config), steps=700, seed=seed,
                                             eval_every=100)
    return model, {"val_loss": val_loss, "history": history}


def rope_finetune(rope_type):
    """fn(seed): rope-charlm switched to `rope_type` at factor 4, fine-tuned at length 4L."""
    def finetune(seed=0):
        base, _ = load_checkpoint("rope-charlm")
        model = base.with_config(block_size=ROPE_LONG,
                                 **rope_scaling(rope_type, ROPE_LONG / ROPE_SHORT))
        model, history, val_loss = train_char_lm(model, ROPE_FINETUNE_STEPS, seed=seed,
                                                 batch_size=16, lr=1e-3, warmup=10, eval_every=50)
        return model, {"val_loss": val_loss, "history": history}
    return finetune


recipe("rope-charlm-linear-ft", f"rope-charlm, position interpolation x4, fine-tuned "
       f"{ROPE_FINETUNE_STEPS} steps at length {ROPE_LONG}")(rope_finetune("linear"))
recipe("rope-charlm-yarn-ft", f"rope-charlm, YaRN x4, fine-tuned {ROPE_FINETUNE_STEPS} steps "
       f"at length {ROPE_LONG}")(rope_finetune("yarn"))


# ---------------------------------------------------------------- recipes: 06 passkey retrieval

PASSKEY_LENGTH = 128  # prompt tokens, in training and in the recorded evaluation
PASSKEY_EVAL = {"n": 400, "seed": 1234}  # the fixed held-out set every checkpoint records


def train_passkey(config, steps, seed=0, batch_size=32, lr=3e-3, lengths=(PASSKEY_LENGTH,) * 2,
                  evaluate=None, eval_every=50):
    """Train on passkey prompts at random needle depths, with the loss on the key digits only
    (the filler is predictable and would drown the signal). Each step draws one prompt length
    from lengths = (shortest, longest); the recipes use one fixed length. evaluate(model) ->
    float, if given, is recorded every eval_every steps. Returns (model, history)."""
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


def passkey_metrics(model, length=PASSKEY_LENGTH, bucket=8):
    """Whole-key and digit accuracy on the fixed held-out set, overall, by depth fifth and by
    key distance (buckets of `bucket` tokens: {start: [accuracy, count]})."""
    tokenizer = passkey_tokenizer()
    prompts = heldout_prompts(PASSKEY_EVAL["n"], length, PASSKEY_EVAL["seed"])
    predicted = predict_keys(model, prompts, tokenizer)
    by_depth = {}
    for prompt, answer in zip(prompts, predicted):
        by_depth.setdefault(min(int(prompt.depth * 5), 4), []).append(answer == prompt.key)
    return {**score_keys(predicted, [p.key for p in prompts]),
            "eval": {**PASSKEY_EVAL, "length": length},
            "key_by_depth_fifth": [sum(v) / len(v) for _, v in sorted(by_depth.items())],
            "key_by_distance": {str(start): list(cell) for start, cell in
                                accuracy_by_distance(prompts, predicted, bucket).items()}}


def passkey_recipe(window, n_layer, steps):
    """fn(seed) -> (model, metrics) for a RoPE TinyTransformer with an optional window."""
    def train(seed=0):
        config = ModelConfig(vocab_size=passkey_tokenizer().vocab_size,
                             block_size=PASSKEY_LENGTH + 8, n_layer=n_layer, n_head=8, n_embd=128,
                             pos="rope", window=window)
        model, history = train_passkey(config, steps, seed)
        return model, {**passkey_metrics(model), "history": history}
    return train


PASSKEY_MODELS = {  # recipe name -> (window or None for full attention, layers, steps)
    "passkey-full": (None, 2, 1300),
    "passkey-w32-l2": (32, 2, 1200), "passkey-w32-l4": (32, 4, 600),
    "passkey-w64-l2": (64, 2, 1200), "passkey-w64-l4": (64, 4, 600),
}
for name, (window, layers, steps) in PASSKEY_MODELS.items():
    attention_kind = "full causal attention" if window is None else f"sliding window {window}"
    recipe(name, f"passkey retrieval, {layers} layers, {attention_kind}, RoPE, word tokens")(
        passkey_recipe(window, layers, steps))


# ---------------------------------------------------------------- recipes: 07 activation beacons

BEACON_CHUNK = 16  # raw tokens per chunk
BEACON_RATIOS = (2, 4, 8, 16)  # condensing ratios drawn per training step (the paper: 2 .. 128)


def beacon_recipe(base, steps, lr=2e-3, batch_size=32):
    """fn(seed) -> (model, metrics): like the paper, which adds beacons to a trained LLM
    (Llama-2), start from a passkey model that already retrieves, plus a new beacon embedding;
    train on the same 128-token prompts with a ratio drawn per step, then score every ratio."""
    def train(seed=0):
        seed_everything(seed)
        tokenizer = passkey_tokenizer()
        trained, _ = load_checkpoint(base)
        config = ModelConfig(**{**trained.config.to_dict(), "window": None})  # the beacon mask rules
        model = BeaconTransformer(config, BEACON_CHUNK)
        model.model.load_state_dict(trained.state_dict())
        generator = torch.Generator().manual_seed(seed)

        def batch(step):
            model.ratio = BEACON_RATIOS[int(torch.randint(len(BEACON_RATIOS), (1,),
                                                          generator=generator))]
            return passkey_batch(batch_size, PASSKEY_LENGTH, tokenizer, generator)
        history = train_loop(model, batch, steps, lr=lr, warmup=30)
        by_ratio = {}
        for ratio in BEACON_RATIOS:
            model.ratio = ratio
            by_ratio[str(ratio)] = passkey_metrics(model)
        model.ratio = BEACON_RATIOS[0]
        return model, {"base": base, "key_by_ratio": {r: m["key"] for r, m in by_ratio.items()},
                       "by_ratio": by_ratio, "history": history}
    return train


BEACON_MODELS = {  # recipe name -> (base passkey recipe, steps): the same CPU time for both
    "beacon-passkey": ("passkey-w32-l4", 400),
    "beacon-passkey-l2": ("passkey-full", 800),
}
for name, (base, steps) in BEACON_MODELS.items():
    recipe(name, f"activation beacons added to {base} ({PASSKEY_MODELS[base][1]} layers), chunks "
           f"of {BEACON_CHUNK}, a random ratio in {BEACON_RATIOS} per step, {steps} steps")(
        beacon_recipe(base, steps))


# ---------------------------------------------------------------- checkpoints and CLI

def checkpoint_paths(name, data_dir=DATA_DIR):
    return Path(data_dir) / f"{name}.pt", Path(data_dir) / f"{name}.json"


def save_checkpoint(name, model, metrics, data_dir=DATA_DIR):
    """Write data/<name>.pt (config + weights) and data/<name>.json (config + metrics)."""
    weights_path, info_path = checkpoint_paths(name, data_dir)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    beacon = model.settings() if isinstance(model, BeaconTransformer) else None
    info = {"recipe": name, "config": model.config.to_dict(), "beacon": beacon, "metrics": metrics,
            "rebuild": f"python -m lcviz.train {name}", "torch": torch.__version__.split("+")[0]}
    torch.save({"config": model.config.to_dict(), "beacon": beacon,
                "state_dict": model.state_dict()}, weights_path)
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return weights_path


def load_checkpoint(name, data_dir=DATA_DIR):
    """(model in eval mode, info dict) for data/<name>.pt; a missing file names its command."""
    weights_path, info_path = checkpoint_paths(name, data_dir)
    if not weights_path.exists():
        known = ", ".join(sorted(RECIPES))
        raise FileNotFoundError(f"{weights_path} is missing: rebuild it with "
                                f"`python -m lcviz.train {name}` (recipes: {known})")
    saved = torch.load(weights_path, map_location="cpu", weights_only=True)
    config = ModelConfig(**saved["config"])
    beacon = saved.get("beacon")
    model = TinyTransformer(config) if beacon is None else BeaconTransformer(config, **beacon)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return model, info


def run_recipe(name, seed=0, data_dir=DATA_DIR):
    """Train recipe `name`, record its wall time, save the checkpoint; returns the metrics."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    start = time.perf_counter()
    model, metrics = RECIPES[name](seed=seed)
    metrics = {**metrics, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1),
               "threads": torch.get_num_threads()}
    save_checkpoint(name, model, metrics, data_dir)
    return metrics


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", help="recipe names, or 'all'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    if args.list or not args.recipes:
        for name, fn in sorted(RECIPES.items()):
            print(f"{name:24s} {fn.description}")
        return 0
    # "all" in registration order: a base model trains before its fine-tunes
    names = list(RECIPES) if args.recipes == ["all"] else args.recipes
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {sorted(RECIPES)} or 'all'")
    for name in names:
        metrics = run_recipe(name, args.seed)
        shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        print(f"{name}: {shown} -> {checkpoint_paths(name)[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
