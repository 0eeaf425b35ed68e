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
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lcviz.validate import check_choice, check_window

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

ATTENTION_METHODS = ("dense SDPA", "lcviz sliding window", "lcviz tiled", "flex (compiled)")

# Runs in a fresh child process per (method, T), so each peak is its own: the kernel's VmHWM
# (peak resident memory) is reset just before the forward pass and read just after.
_ATTENTION_CHILD = """
import json, sys, time
import torch, torch.nn.functional as F
from lcviz.attention import sliding_window_attention, tiled_attention
from lcviz.masks import sliding_window_mask
method, T, w, B, H, D, repeats = sys.argv[1], *map(int, sys.argv[2:8])
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
compile_seconds = None
if method == "dense SDPA":
    mask = sliding_window_mask(T, w)
    run = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
elif method == "lcviz sliding window":
    run = lambda: sliding_window_attention(q, k, v, w)
elif method == "lcviz tiled":
    run = lambda: tiled_attention(q, k, v, block_size=w, window=w)
else:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    block_mask = create_block_mask(lambda b, h, i, j: (j <= i) & (i - j < w), None, None, T, T,
                                   device="cpu")
    compiled = torch.compile(flex_attention)
    start = time.perf_counter()
    compiled(q, k, v, block_mask=block_mask)
    compile_seconds = time.perf_counter() - start
    run = lambda: compiled(q, k, v, block_mask=block_mask)
def status(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) / 1024
with torch.no_grad():
    baseline = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    peak = status("VmHWM:") - baseline
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "first_seconds": first,
                  "peak_mb": peak, "compile_seconds": compile_seconds}))
"""


def measure_attention(method, length, window=256, batch=1, heads=4, head_dim=64, repeats=3):
    """Forward time (median of `repeats`, after one untimed run) and peak memory above the
    inputs (MB) of one attention method, measured in a fresh Python process."""
    check_choice("method", method, ATTENTION_METHODS)
    check_window(window, length)
    args = [method, length, window, batch, heads, head_dim, repeats]
    result = subprocess.run([sys.executable, "-c", _ATTENTION_CHILD, *map(str, args)],
                            capture_output=True, text=True, timeout=900)
    if result.returncode:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


@benchmark("attention", "dense SDPA vs lcviz sliding-window / tiled vs compiled FlexAttention")
def attention_benchmark(args):
    lengths = args.lengths or [512, 1024, 2048, 4096, 8192, 16384]
    rows = []
    for length in lengths:
        for method in ATTENTION_METHODS:
            row = {"method": method, "length": length, **measure_attention(method, length)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"window": 256, "batch": 1, "heads": 4, "head_dim": 64, "dtype": "float32",
            "memory": "peak RSS above the inputs (VmHWM reset via /proc/self/clear_refs), "
                      "one fresh process per row", "rows": rows}


# ---------------------------------------------------------------- app rerun times

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"
# page -> (URL parameters the page opens with, [(slider, value), ...] moves to distinct views)
APP_SCENARIOS = {
    "masks": ({"pattern": "sliding window", "length": 4096, "window": 256},
              [("window", w) for w in (64, 128, 192, 320, 384, 448, 512, 576)]),
    "receptive": ({"pattern": "sliding window", "length": 4096, "window": 128, "layers": 4},
                  [("layers", n) for n in (2, 3, 5, 6, 7, 8, 9, 10)]),
    "memory": ({"length": 4096, "window": 256},
               [("window", w) for w in (64, 128, 192, 320, 384, 448, 512, 576)]),
    "transformer": ({"layer": 0, "head": 0},
                    [("head", 1), ("head", 2), ("head", 3), ("layer", 1), ("head", 0),
                     ("head", 1), ("head", 2)]),
    "rope": ({"method": "yarn", "factor": 4.0, "original": 4096},
             [("factor", f) for f in (2.0, 3.0, 5.0, 6.0, 8.0, 12.0, 16.0, 32.0)]),
    "passkey": ({"model": "passkey-full", "length": 128, "depth": 50, "seed": 0},
                [("depth", d) for d in (0, 10, 20, 30, 60, 70, 80, 90)]),
    "beacons": ({"length": 256, "chunk": 16, "ratio": 4},
                [("chunk", c) for c in (8, 32, 64, 128)] + [("ratio", r) for r in (1, 2, 8, 16)]),
}


def app_rerun_seconds(page, params, moves):
    """Seconds of each rerun of `page` after each slider move, with cold caches (every move is a
    view not seen before). AppTest runs the script headless: its time plus AppTest's overhead,
    without the browser's drawing."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.query_params.update({"page": page, **{k: str(v) for k, v in params.items()}})
    at.run()
    times = []
    for slider, value in moves:
        at.slider(key=slider).set_value(value)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(f"page {page} raised {at.exception[0].value}")
    return times


@benchmark("app", "median Streamlit rerun after a slider change, per page (length 4096; passkey 128)")
def app_benchmark(args):
    pages = {}
    for page, (params, moves) in APP_SCENARIOS.items():
        times = app_rerun_seconds(page, params, moves)
        pages[page] = {"params": params, "moves": moves, "median_seconds": statistics.median(times),
                       "max_seconds": max(times), "reruns": len(times)}
        print(f"{page:12s} median {pages[page]['median_seconds'] * 1e3:6.0f} ms", flush=True)
    return {"target_seconds": 0.3, "pages": pages}


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmark names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths (attention)")
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
