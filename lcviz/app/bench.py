"""The app's rerun time after a slider move, page by page (`python -m lcviz.bench app`)."""

import statistics
import time
from pathlib import Path

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"
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
        option_sliders = [s.key for s in at.select_slider]  # powers of two, divisors
        (at.select_slider if slider in option_sliders else at.slider)(key=slider).set_value(value)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(f"page {page} raised {at.exception[0].value}")
    return times


def benchmark():
    """Median Streamlit rerun after a slider change, per page (AppTest, no browser)."""
    pages = {}
    for page, (params, moves) in APP_SCENARIOS.items():
        times = app_rerun_seconds(page, params, moves)
        pages[page] = {"params": params, "moves": moves, "median_seconds": statistics.median(times),
                       "max_seconds": max(times), "reruns": len(times)}
        print(f"{page:12s} median {pages[page]['median_seconds'] * 1e3:6.0f} ms", flush=True)
    return {"target_seconds": 0.3, "pages": pages}
