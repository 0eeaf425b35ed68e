"""Benchmarks: measured time and memory, never asserted in unit tests (design.md).

    python -m lcviz.bench --list        # the benchmarks
    python -m lcviz.bench attention     # one of them; results go to data/bench-<name>.json
    python -m lcviz.bench all           # every benchmark (`make bench`)

A benchmark is a function (args) -> results dict registered with @benchmark; its JSON lands in
data/ so notebooks, the app and the README read measured numbers instead of typed ones.
"""

import argparse
import json
import platform
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BENCHMARKS = {}


def benchmark(name, description):
    """Register fn(argparse.Namespace) -> results dict as the benchmark `name`."""
    def register(fn):
        fn.description = description
        BENCHMARKS[name] = fn
        return fn
    return register


def machine_info():
    """What the numbers were measured on."""
    return {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def results_path(name, data_dir=DATA_DIR):
    return Path(data_dir) / f"bench-{name}.json"


def save_results(name, results, data_dir=DATA_DIR):
    path = results_path(name, data_dir)
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **results},
                               indent=1) + "\n")
    return path


def load_results(name, data_dir=DATA_DIR):
    """The saved results of benchmark `name`; a missing file names the command that makes it."""
    path = results_path(name, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m lcviz.bench {name}`")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- 04 memory and speed


# ---------------------------------------------------------------- app rerun times


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmark names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name, fn in sorted(BENCHMARKS.items()):
            print(f"{name:16s} {fn.description}")
        return 0
    names = sorted(BENCHMARKS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)} or 'all'")
    for name in names:
        print(f"{name}: {save_results(name, BENCHMARKS[name](args))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
