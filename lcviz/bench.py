"""Benchmarks: measured time and memory, never asserted in unit tests.

    python -m lcviz.bench --list        # the benchmarks
    python -m lcviz.bench attention     # one of them; results go to data/bench-<name>.json
    python -m lcviz.bench app --browser # the app in chromium (data/bench-app-browser.json)
    python -m lcviz.bench all           # every benchmark (`make bench`)

Each benchmark lives with its topic as a function benchmark(**options) -> results dict; this
table only names it, and lcviz.checkpoints saves the JSON in data/, so notebooks, the app and the
README read measured numbers instead of typed ones.
"""

import argparse
import importlib
import inspect

from lcviz.checkpoints import save_results

# name -> ("module:function", what it measures)
BENCHMARKS = {
    "attention": ("lcviz.memory:benchmark",
                  "dense SDPA vs lcviz sliding-window / tiled vs compiled FlexAttention"),
    "streaming": ("lcviz.streaming:benchmark",
                  ("loss, CPU ms per token and KV entries of every cache policy (dense, window, "
                   "re-computation, StreamingLLM, H2O, TOVA) at 1-16x the training length; "
                   "StreamingLLM against re-computation at budgets 64-1024")),
    "ring": ("lcviz.ring:benchmark",
             ("ring attention over W gloo processes at T = 16384: error vs SDPA, peak MB per "
              "rank, largest lengths against dense")),
    "subquadratic": ("lcviz.subquadratic:benchmark",
                     ("forward time / peak memory against length (to 8,192), per-token decode "
                      "time (recurrent forms against a KV cache), MQAR recall against pairs at "
                      "equal state sizes, passkey accuracy by key distance; figures "
                      "data/bench-subquadratic-<part>.png")),
    "recurrent": ("lcviz.recurrent:benchmark",
                  ("memory retrieval error against pairs / d_k, passkey by gap of the recurrent-* "
                   "models, time per token while reading 8192 tokens")),
    "beacons": ("lcviz.beacons:benchmark",
                ("passkey accuracy at equal KV entries: beacons per ratio against the trained "
                 "window, recent entries, H2O, TOVA, SnapKV and full attention, by key distance; "
                 "beyond the training length; by the key's offset in its chunk (--quick: n=10)")),
    "longcontext": ("lcviz.longcontext:benchmark",
                    ("every technique x task (needle grid, multi-key recall, variable tracking, "
                     "lost in the middle) with intervals, effective lengths, memory and time; one "
                     "layer and whole models at 50K-200K tokens (--quick: a few prompts per cell, "
                     "no document scale)")),
    "context": ("lcviz.context:benchmark",
                ("fact survival, stale-only rate, tokens and time per turn of each context policy "
                 "(seeded chats of 20-500 turns); strided document chunks")),
    "app": ("lcviz.app.bench:benchmark",
            "median Streamlit rerun after a slider change, per page (AppTest)"),
    "app-browser": ("lcviz.app.browser_bench:benchmark",
                    ("key press to new figure and settle after a held key, per page, in chromium "
                     "against `streamlit run` on 127.0.0.1 (also: `app --browser`)")),
}


def run(name, **options):
    """Run benchmark `name` and save its results; returns the JSON path."""
    target, _ = BENCHMARKS[name]
    module, function = target.split(":")
    fn = getattr(importlib.import_module(module), function)
    unknown = set(options) - set(inspect.signature(fn).parameters)
    if unknown:
        raise ValueError(f"benchmark {name!r} takes no option {sorted(unknown)}; its options: "
                         f"{sorted(inspect.signature(fn).parameters) or 'none'}")
    return save_results(name, fn(**options))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmark names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths (attention)")
    parser.add_argument("--quick", action="store_true",
                        help="a few prompts per cell (seconds), for benchmarks that offer it")
    parser.add_argument("--browser", action="store_true",
                        help="app: measure in chromium (app-browser) instead of AppTest")
    args = parser.parse_args(argv)
    if args.browser:
        args.names = ["app-browser" if n == "app" else n for n in args.names]
    if args.list or not args.names:
        for name, (_, description) in BENCHMARKS.items():
            print(f"{name:16s} {description}")
        return 0
    names = list(BENCHMARKS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)} or 'all'")
    for name in names:
        options = {"lengths": args.lengths} if name == "attention" and args.lengths else {}
        if args.quick:
            options["quick"] = True
        print(f"{name}: {run(name, **options)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
