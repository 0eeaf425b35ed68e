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
from lcviz.corpus import random_windows, stdlib_text, train_val_split
from lcviz.model import ModelConfig, TinyTransformer
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


def train_char_lm(config, steps, seed=0, batch_size=32, lr=3e-3, eval_every=50):
    """Train a TinyTransformer on the stdlib corpus; returns (model, history, val_loss)."""
    seed_everything(seed)
    train_ids, val_ids = char_lm_data()
    model = TinyTransformer(config)
    generator = torch.Generator().manual_seed(seed)
    history = train_loop(
        model, lambda step: random_windows(train_ids, config.block_size, batch_size, generator),
        steps, lr=lr, evaluate=lambda: mean_loss(model, val_ids, config.block_size),
        eval_every=eval_every)
    return model, history, history["eval"][-1]


# ---------------------------------------------------------------- recipes: 01 tiny transformer

@recipe("charlm", "char-level TinyTransformer (2 layers, width 128) on Python stdlib sources")
def charlm(seed=0):
    config = ModelConfig(block_size=128, n_layer=2, n_head=4, n_embd=128)
    model, history, val_loss = train_char_lm(config, steps=1000, seed=seed, eval_every=100)
    return model, {"val_loss": val_loss, "history": history}


# ---------------------------------------------------------------- recipes: 03 receptive fields


# ---------------------------------------------------------------- recipes: 05 RoPE scaling


# ---------------------------------------------------------------- recipes: 06 passkey retrieval


# ---------------------------------------------------------------- recipes: 07 activation beacons


# ---------------------------------------------------------------- checkpoints and CLI

def checkpoint_paths(name, data_dir=DATA_DIR):
    return Path(data_dir) / f"{name}.pt", Path(data_dir) / f"{name}.json"


def save_checkpoint(name, model, metrics, data_dir=DATA_DIR):
    """Write data/<name>.pt (config + weights) and data/<name>.json (config + metrics)."""
    weights_path, info_path = checkpoint_paths(name, data_dir)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    info = {"recipe": name, "config": model.config.to_dict(), "metrics": metrics,
            "rebuild": f"python -m lcviz.train {name}", "torch": torch.__version__.split("+")[0]}
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, weights_path)
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
    model = TinyTransformer(ModelConfig(**saved["config"]))
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
    names = sorted(RECIPES) if args.recipes == ["all"] else args.recipes
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
