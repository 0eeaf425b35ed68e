"""The training loop, and the command that turns a recipe (lcviz/recipes.py) into a checkpoint.

    python -m lcviz.train --list          # the recipes
    python -m lcviz.train charlm          # train one, write data/charlm.pt and data/charlm.json
    python -m lcviz.train all             # rebuild every checkpoint (`make checkpoints`)

The loop knows nothing of any task (minGPT's trainer): a batch function gives the model's
arguments for each step and the model returns (output, loss).
"""

import argparse
import importlib
import math
import time

import torch

from lcviz.checkpoints import DATA_DIR, save_checkpoint
from lcviz.validate import check_float, check_int


def learning_rate(step, steps, lr, warmup):
    """Linear warm-up for `warmup` steps, then cosine decay to lr / 10."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop(model, batches, steps, lr=3e-3, warmup=20, weight_decay=0.01, grad_clip=1.0,
               evaluate=None, eval_every=50):
    """AdamW on model's loss. batches(step) -> the model's arguments, e.g. (x, y), with
    model(*arguments) -> (output, loss); evaluate() -> float, called every eval_every steps.

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
        _, loss = model(*batches(step))
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


def recipe_function(recipe, role="fit"):
    """The function a recipe names ("module:function") for `role`: "fit" trains, "load" reads
    its checkpoint back."""
    module, function = getattr(recipe, role).split(":")
    return getattr(importlib.import_module(module), function)


def run_recipe(name, seed=0, data_dir=DATA_DIR):
    """Train recipe `name`, record its wall time, save the checkpoint; returns the metrics."""
    from lcviz.recipes import RECIPES  # here, not at the top: a notebook that only calls
    # train_loop must not depend on (and go stale with) the table of every recipe
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    start = time.perf_counter()
    model, metrics = recipe_function(RECIPES[name])(seed=seed, **RECIPES[name].settings)
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
    from lcviz.recipes import RECIPES
    if args.list or not args.recipes:
        for name, recipe in RECIPES.items():
            print(f"{name:24s} [{recipe.topic}] {recipe.description}")
        return 0
    names = list(RECIPES) if args.recipes == ["all"] else args.recipes
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {sorted(RECIPES)} or 'all'")
    for name in names:
        metrics = run_recipe(name, args.seed)
        shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        print(f"{name}: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
