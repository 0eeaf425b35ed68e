"""Memory and speed page: length and window -> analytic sizes, the measured benchmark from data/
and a live measurement at small sizes."""

import time

import streamlit as st
import torch
import torch.nn.functional as F

from lcviz import masks, memory, plots
from lcviz.app import state
from lcviz.checkpoints import load_results

LENGTHS = [2**p for p in range(9, 18)]  # 512 .. 131072
LIVE_MAX_LENGTH = 4096  # dense attention beyond this is too slow / large to run live in class
HEADS, HEAD_DIM = 4, 64  # the shape of `python -m lcviz.bench attention`


@st.cache_data(show_spinner=False)
def benchmark_png():
    return state.png(plots.attention_benchmark(load_results("attention")))


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
    left, right = st.columns([1, 2])
    with left:
        length = state.int_slider("length T (power of two: 2^k)", "length", 512, LENGTHS[-1], 4096,
                                  step=512)
        window = state.int_slider("window w", "window", 1, 4096, 256)
    if window > length:
        left.error(f"window w = {window} is larger than the length T = {length}: move the "
                   f"window to at most {length}.")
        return
    dense_mb = memory.score_matrix_megabytes(length, HEADS)
    window_mb = masks.sliding_window_pairs(length, window) * HEADS * 4 / 2**20
    kv_gb = memory.kv_cache_megabytes(length, layers=32, heads=32, head_dim=128) / 1024
    with left:
        st.metric(f"dense scores, {HEADS} heads fp32", f"{dense_mb:,.0f} MB")
        st.metric("scores a window keeps", f"{window_mb:,.1f} MB",
                  delta=f"{dense_mb / window_mb:,.0f}x less", delta_color="off")
        st.metric("KV cache of a 7B model (fp16)", f"{kv_gb:,.1f} GB")
        if length <= LIVE_MAX_LENGTH:
            if st.button("Measure live at this T and w"):
                times = live_times(length, window)
                for name, seconds in times.items():
                    st.write(f"{name}: {seconds * 1e3:.1f} ms")
                st.write(f"speed-up {times['dense SDPA'] / times['lcviz sliding window']:.1f}x")
        else:
            st.warning(f"Live measurement runs up to T = {LIVE_MAX_LENGTH}: dense attention at "
                       f"T = {length} needs {dense_mb / 1024:,.1f} GB of scores. The plot shows "
                       "the measured benchmark instead.")
    with right:
        st.image(benchmark_png())
        st.caption("Measured by `python -m lcviz.bench attention` (w = 256, B = 1, H = 4, "
                   "D = 64, fp32, 2 CPU cores; each point a fresh process).")
