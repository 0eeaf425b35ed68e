"""Recipes as data: every checkpoint in data/ is one entry here, rebuilt by
`python -m lcviz.train NAME`. An entry names its topic, the function that trains it
("module:function", called as fit(seed=..., **settings) -> (model, metrics)), its settings and
the function that loads the checkpoint back (load(name) -> (model, info)).
Registration order matters for `python -m lcviz.train all`: a base model trains before the
recipes that start from it."""

from dataclasses import dataclass, field

from lcviz.beacons import (
    BEACON_BUDGETS,
    BEACON_CHUNK,
    BEACON_LENGTHS,
    BEACON_RATIOS,
    BEACON_RUNS,
    EVAL_LENGTH,
)
from lcviz.receptive import window_receptive_field

# (window, layers, shortest, longest training length) of the sliding-window passkey models
PASSKEY_WINDOWS = ((16, 2, 64, 128), (16, 4, 64, 128), (32, 2, 64, 128), (32, 4, 64, 128),
                   (64, 2, 96, 256), (64, 4, 96, 256))


@dataclass(frozen=True)
class Recipe:
    topic: str        # the course slug the checkpoint belongs to
    fit: str          # "lcviz.module:function"
    description: str
    settings: dict = field(default_factory=dict)
    load: str = "lcviz.checkpoints:load_checkpoint"  # "module:function": name -> (model, info)


RECIPES = {
    # ---- 01 tiny transformer: 2 layers, width 128, 4 heads, 128 characters of context
    "charlm": Recipe("transformer", "lcviz.transformer:fit_char_lm",
                     "char-level TinyTransformer (2 layers, width 128) on Python stdlib sources",
                     {"model": {"block_size": 128, "n_layer": 2, "n_head": 4, "n_embd": 128},
                      "steps": 1000, "eval_every": 100}),
    # ---- 05 RoPE scaling: a RoPE char model trained at L = 64, then switched to 4L and fine-tuned
    "rope-charlm": Recipe("rope", "lcviz.rope:fit_rope_char_lm",
                          "char-level TinyTransformer with RoPE, trained at length 64",
                          {"steps": 700}),
    "rope-charlm-linear-ft": Recipe("rope", "lcviz.rope:fit_rope_finetune",
                                    "rope-charlm, position interpolation x4, fine-tuned 150 steps "
                                    "at length 256", {"rope_type": "linear", "steps": 150}),
    "rope-charlm-yarn-ft": Recipe("rope", "lcviz.rope:fit_rope_finetune",
                                  "rope-charlm, YaRN x4, fine-tuned 150 steps at length 256",
                                  {"rope_type": "yarn", "steps": 150}),
    # ---- 06 passkey retrieval by content: random filler, lengths drawn per batch, loss on the
    # key digits and on the filler's next words; windowed models start from passkey-full
    "passkey-full": Recipe("passkey", "lcviz.passkey:fit_passkey_content",
                           "passkey retrieval by content: 2 layers, full causal attention, width "
                           "64, random filler, lengths 64-256 ramped over the first half",
                           {"window": None, "n_layer": 2, "n_embd": 64, "n_head": 4, "steps": 800,
                            "lengths": (64, 256), "ramp": 0.5, "filler_weight": 1.0}),
    # ---- (05) passkey-full read at 4x with PI or YaRN, fine-tuned briefly
    **{f"passkey-full-{kind}-ft": Recipe(
        "passkey", "lcviz.passkey:fit_rope_finetune_content",
        f"passkey-full switched to {label} x4, fine-tuned 300 steps on random-filler prompts of "
        "256-1024 tokens", {"rope_type": kind, "factor": 4, "steps": 300})
       for kind, label in (("linear", "position interpolation"), ("yarn", "YaRN"))},
    **{f"passkey-w{w}-l{layers}": Recipe(
        "passkey", "lcviz.passkey:fit_passkey_content",
        f"passkey-full with a sliding window {w} ({layers} layers), fine-tuned 300 steps on "
        f"lengths {lo}-{hi} with keys inside the receptive field",
        {"window": w, "n_layer": layers, "steps": 300, "lengths": (lo, hi), "ramp": 0,
         "max_distance": window_receptive_field(w, layers) - 1, "base": "passkey-full", "lr": 2e-3, "eval_n": 100})
       for w, layers, lo, hi in PASSKEY_WINDOWS},
    # ---- 06 the layout shortcut: the fixed 128-token Landmark layout (filler cycled in one
    # order), which models learn instead of retrieving; kept to show it, and as the beacons' bases
    **{name: Recipe("passkey", "lcviz.passkey:fit_passkey",
                    f"fixed-layout passkey prompts (the shortcut), {layers} layers, "
                    f"{'full causal attention' if window is None else f'sliding window {window}'}",
                    {"window": window, "n_layer": layers, "steps": steps})
       for name, (window, layers, steps) in {
           "passkey-layout": (None, 2, 1300),
           "passkey-layout-w32-l2": (32, 2, 1200), "passkey-layout-w32-l4": (32, 4, 600),
           "passkey-layout-w64-l2": (64, 2, 1200), "passkey-layout-w64-l4": (64, 4, 600)}.items()},
    # ---- 07 activation beacons added to passkey-full (three runs), the paper's stepwise coverage
    # against full coverage, and the sliding-window models whose window equals the beacons' KV
    # budget at each ratio on EVAL_LENGTH-token prompts (the equal-budget comparison)
    **{f"beacons-run{run}": Recipe(
        "beacons", "lcviz.beacons:fit_beacons",
        f"activation beacons added to passkey-full, chunks of {BEACON_CHUNK}, a ratio in "
        f"{BEACON_RATIOS} and a length in {BEACON_LENGTHS} per step, 2500 steps (run {run})",
        {"run": run, "steps": 2500}) for run in BEACON_RUNS},
    # beacons-run0 trained 1000 steps, and one change each against that
    "beacons-1000-steps": Recipe(
        "beacons", "lcviz.beacons:fit_beacons", "beacons-run0 trained 1000 steps instead of 2500",
        {"steps": 1000}),
    "beacons-full-coverage": Recipe(
        "beacons", "lcviz.beacons:fit_beacons",
        "beacons-1000-steps with every beacon reading its whole chunk (not the paper's stepwise "
        "expansion)", {"coverage": "full", "steps": 1000}),
    "beacons-4-layers": Recipe(
        "beacons", "lcviz.beacons:fit_beacons",
        "beacons-1000-steps on passkey-full deepened to 4 layers (the 2 new blocks start as the "
        "identity)", {"n_layer": 4, "steps": 1000}),
    **{f"beacons-window-w{w}": Recipe(
        "passkey", "lcviz.passkey:fit_passkey_content",
        f"passkey-full with a sliding window {w} (2 layers; the beacons' KV budget at ratio {r} on "
        f"{EVAL_LENGTH}-token prompts), fine-tuned 300 steps on lengths {BEACON_LENGTHS[0]}-"
        f"{BEACON_LENGTHS[1]} with keys inside the receptive field",
        {"window": w, "n_layer": 2, "steps": 300, "lengths": BEACON_LENGTHS, "ramp": 0,
         "max_distance": window_receptive_field(w, 2) - 1, "base": "passkey-full", "lr": 2e-3,
         "eval_n": 100})
       for r, w in BEACON_BUDGETS.items()},
    # ---- 08 streaming: rope-charlm's recipe with a learnable sink token first in every window
    "sink-charlm": Recipe("streaming", "lcviz.streaming:fit_sink_char_lm",
                          "rope-charlm's recipe (RoPE, 2 layers, width 128, length 64, 700 steps) "
                          "with a learnable sink token first in every training window",
                          {"steps": 700}),
    # ---- 11 recurrent memory: segment passkey, segments of 16, 1-8 per prompt, 2 layers, width 64
    **{f"recurrent-{kind}": Recipe(
        "recurrent", "lcviz.recurrent:fit_recurrent",
        f"segment passkey (16-token segments, up to 8), 2 layers, width 64: {label}",
        {"memory": kind, "steps": 800}, load="lcviz.recurrent:load_model")
       for kind, label in (("local", "attention inside the segment only"),
                           ("xl", "Transformer-XL cache of the previous segment"),
                           ("linear", "Infini-attention, linear rule"),
                           ("delta", "Infini-attention, delta rule"),
                           ("full", "full causal attention"))},
    # ---- 12 the long-context benchmark: associative-recall models (4 layers, width 64, length
    # 128) trained on MQAR and variable-tracking chains, one per mixer, at equal training budget
    **{f"longcontext-{mixer}": Recipe(
        "longcontext", "lcviz.longcontext:fit_recall",
        f"associative recall (MQAR, 1-16 pairs) and variable tracking (0-2 hops), 4 layers, "
        f"width 64, length 128: {label}", {"mixer": mixer, "state": 16},
        load="lcviz.longcontext:load_recall")
       for mixer, label in (("attention", "softmax attention"),
                            ("linear", "linear attention, feature dim 16"),
                            ("mamba", "selective SSM, d_state 16"))},
}
