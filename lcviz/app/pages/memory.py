"""Memory and speed page: length (a power of two) and window -> analytic sizes, the measured
benchmark from data/ with the chosen length marked, and a live measurement at small sizes."""

import time

import streamlit as st
import torch
import torch.nn.functional as F

from lcviz import masks, memory, plots
from lcviz.app import state
from lcviz.checkpoints import load_results

LENGTHS = [2**p for p in range(9, 18)]  # 512 .. 131072: only powers of two are offered
LIVE_MAX_LENGTH = 4096  # dense attention beyond this is too slow / large to run live in class
HEADS, HEAD_DIM = 4, 64  # the shape of `python -m lcviz.bench attention`


@st.cache_resource(max_entries=128, show_spinner=False)
def benchmark_figure(length, window):
    return plots.attention_benchmark_plotly(load_results("attention"), length=length,
                                            window=window)


def live_times(length, window, repeats=3):
    """Median forward seconds of dense masked SDPA and lcviz sliding window, in this process."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, length, HEAD_DIM, generator=generator) for _ in range(3))
    mask = masks.sliding_window_mask(length, window)
    runs = {"dense SDPA": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            "lcviz sliding window": lambda: memory.sliding_window_attention(q, k, v, window)}
    times = {}
    with torch.no_grad():
        for name, run in runs.items():
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            times[name] = sorted(samples)[repeats // 2]
    return times


def render():
    length_column, window_column, button_column = st.columns([2, 2, 1])
    with length_column:
        length = state.option_slider("length T (a power of two)", "length", LENGTHS, 4096,
                                     format_func=lambda t: f"{t:,}")
    with window_column:
        window = state.int_slider("window w", "window", 1, 4096, 256)
    if window > length:
        st.error(f"window w = {window} is larger than the length T = {length}: move the "
                 f"window to at most {length}.")
        return
    dense_mb = memory.score_matrix_megabytes(length, HEADS)
    window_mb = masks.sliding_window_pairs(length, window) * HEADS * 4 / 2**20
    kv_gb = memory.kv_cache_megabytes(length, layers=32, heads=32, head_dim=128) / 1024
    counts = st.columns(3)
    counts[0].metric("dense scores", f"{dense_mb:,.0f} MB")
    counts[1].metric("scores a window keeps", f"{window_mb:,.1f} MB")
    counts[2].metric("KV cache of a 7B model", f"{kv_gb:,.1f} GB")
    st.caption(f"Scores of {HEADS} heads in fp32: the window keeps {dense_mb / window_mb:,.0f}× "
               f"less than dense attention at T = {length:,}. KV cache: 32 layers, 32 heads of "
               "128, fp16.")
    with button_column:
        if length <= LIVE_MAX_LENGTH and st.button("Measure live at this T and w"):
            times = live_times(length, window)
            for name, seconds in times.items():
                st.write(f"{name}: {seconds * 1e3:.1f} ms")
            st.write(f"speed-up {times['dense SDPA'] / times['lcviz sliding window']:.1f}x")
    if length > LIVE_MAX_LENGTH:
        st.warning(f"Live measurement runs up to T = {LIVE_MAX_LENGTH:,}: dense attention at "
                   f"T = {length:,} needs {dense_mb / 1024:,.1f} GB of scores. The plot shows "
                   "the measured benchmark instead.")
    state.plot(benchmark_figure(length, window), key="benchmark")
    st.caption("Measured by `python -m lcviz.bench attention` (w = 256, B = 1, H = 4, "
               "D = 64, fp32, 2 CPU cores; each point a fresh process). The grey lines are "
               "the size of the score matrix alone, for the window above.")
