"""Memory and speed: sliding-window attention in O(T w) memory, tiled attention with an online
softmax, the sizes that grow with the context, and the benchmark that measures them against dense
SDPA and compiled FlexAttention (`python -m lcviz.bench attention`).

All tensors are (B, H, T, D): batch, heads, time, head dimension.
"""

import json
import math
import subprocess
import sys

import torch

from lcviz.attention import in_causal_window
from lcviz.validate import check_choice, check_float, check_int, check_window


def _check_qkv(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D) of one shape; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")


def sliding_window_attention(q, k, v, window):
    """Causal sliding-window attention that never builds a T x T matrix: memory O(T w).

    Same numbers as reference_attention with masks.sliding_window_mask(T, window) (Longformer,
    Beltagy et al. 2020, arXiv 2004.05150). Queries go in blocks of `window`: the block of
    queries s .. s + w - 1 can only see keys s - w + 1 .. s + w - 1, so it scores w queries
    against at most 2w - 1 keys. Over T / w blocks that is about 2 T w scores instead of T^2,
    and only one block's (w, 2w) scores exist at a time. q, k, v (B, H, T, D) -> (B, H, T, D).
    """
    _check_qkv(q, k, v)
    T, D = q.shape[-2:]
    w = check_window(window, T)
    out = torch.empty_like(q)  # (B, H, T, D)
    for start in range(0, T, w):
        end = min(start + w, T)
        first_key = max(0, start - w + 1)
        query_pos = torch.arange(start, end)[:, None]  # (w, 1)
        key_pos = torch.arange(first_key, end)[None, :]  # (1, <= 2w - 1)
        allowed = in_causal_window(query_pos, key_pos, w)  # (w, S)
        scores = q[:, :, start:end] @ k[:, :, first_key:end].transpose(-1, -2)  # (B, H, w, S)
        scores = (scores / math.sqrt(D)).masked_fill_(~allowed, float("-inf"))
        out[:, :, start:end] = torch.softmax(scores, dim=-1) @ v[:, :, first_key:end]
    return out  # (B, H, T, D)


def tiled_attention(q, k, v, block_size=64, window=None):
    """Causal (optionally sliding-window) attention, tile by tile, with an online softmax.

    The FlashAttention idea (Dao et al. 2022, arXiv 2205.14135; online softmax of Milakov &
    Gimelshein 2018, arXiv 1805.02867) in readable torch: for each tile of queries, visit the
    key tiles it can see one at a time, keeping per query a running max m, a running sum
    l = sum exp(score - m) and a running weighted sum of values, rescaled whenever m grows.
    Tiles wholly in the future (or wholly out of the window) are skipped. Only one
    (block_size, block_size) tile of scores exists at a time, never T x T, and the result equals
    softmax attention up to float rounding. q, k, v (B, H, T, D) -> (B, H, T, D).
    """
    _check_qkv(q, k, v)
    B, H, T, D = q.shape
    bs = check_int("block_size", block_size, minimum=1)
    reach = T if window is None else check_window(window, T)
    out = torch.empty_like(q)
    for q_start in range(0, T, bs):
        q_end = min(q_start + bs, T)
        query_pos = torch.arange(q_start, q_end)[:, None]  # (Q, 1)
        running_max = q.new_full((B, H, q_end - q_start, 1), float("-inf"))  # m
        running_sum = q.new_zeros((B, H, q_end - q_start, 1))  # l
        acc = q.new_zeros((B, H, q_end - q_start, D))  # sum exp(score - m) v
        first_tile = max(0, q_start - reach + 1) // bs * bs  # earliest tile any query sees
        for k_start in range(first_tile, q_end, bs):
            k_end = min(k_start + bs, T)
            key_pos = torch.arange(k_start, k_end)[None, :]  # (1, S)
            allowed = in_causal_window(query_pos, key_pos, reach)  # (Q, S)
            scores = q[:, :, q_start:q_end] @ k[:, :, k_start:k_end].transpose(-1, -2)
            scores = (scores / math.sqrt(D)).masked_fill_(~allowed, float("-inf"))  # (B, H, Q, S)
            new_max = torch.maximum(running_max, scores.amax(-1, keepdim=True))
            safe_max = new_max.masked_fill(new_max == float("-inf"), 0.0)  # rows with no key yet
            p = torch.exp(scores - safe_max)  # (B, H, Q, S)
            rescale = torch.exp(running_max - safe_max)  # (B, H, Q, 1) shrink the old sums
            running_sum = running_sum * rescale + p.sum(-1, keepdim=True)
            acc = acc * rescale + p @ v[:, :, k_start:k_end]
            running_max = new_max
        out[:, :, q_start:q_end] = acc / running_sum
    return out  # (B, H, T, D)


def score_matrix_megabytes(length, heads, batch=1, bytes_per_number=4):
    """Size of a dense (B, H, T, T) attention score matrix in MB (2**20 bytes): O(T^2)."""
    for name, value in (("length", length), ("heads", heads), ("batch", batch),
                        ("bytes_per_number", bytes_per_number)):
        check_int(name, value, minimum=1)
    return batch * heads * length * length * bytes_per_number / 2**20


def kv_cache_megabytes(length, layers, heads, head_dim, batch=1, bytes_per_number=2, kv_heads=None):
    """Size of a decoder's KV cache in MB: a key and a value vector per token, KV head and layer,
    2 B L H_kv T D numbers: O(T). Defaults to 2-byte (bf16/fp16) numbers, as served models use.

    `heads` is the number of query heads; `kv_heads` (default: heads, multi-head attention) the
    number of key/value heads. Grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245)
    lets heads // kv_heads query heads share one key/value head, which divides the cache by that
    ratio: Mistral-7B and Llama-3-8B have 32 query heads and 8 KV heads."""
    for name, value in (("length", length), ("layers", layers), ("heads", heads),
                        ("head_dim", head_dim), ("batch", batch),
                        ("bytes_per_number", bytes_per_number)):
        check_int(name, value, minimum=1)
    kv_heads = heads if kv_heads is None else check_int("kv_heads", kv_heads, minimum=1,
                                                        maximum=heads)
    if heads % kv_heads:
        raise ValueError(f"kv_heads must divide heads ({heads}); got {kv_heads}")
    return 2 * batch * layers * kv_heads * length * head_dim * bytes_per_number / 2**20


def max_context_tokens(megabytes, layers, kv_heads, head_dim, batch=1, bytes_per_number=2):
    """The longest context whose KV cache (kv_cache_megabytes) fits in `megabytes`: the largest
    T with 2 B L H_kv T D bytes_per_number <= megabytes * 2**20."""
    check_float("megabytes", megabytes, greater_than=0)
    for name, value in (("layers", layers), ("kv_heads", kv_heads), ("head_dim", head_dim),
                        ("batch", batch), ("bytes_per_number", bytes_per_number)):
        check_int(name, value, minimum=1)
    per_token = 2 * batch * layers * kv_heads * head_dim * bytes_per_number  # bytes
    return int(megabytes * 2**20 // per_token)


def softmax_state(scores, values):
    """The online-softmax state of one tile of keys: (m, l, acc) with m the row maximum of
    `scores`, l = sum exp(scores - m) and acc = exp(scores - m) @ values. scores (..., S),
    values (..., S, D) -> m (..., 1), l (..., 1), acc (..., D). A row with no allowed key
    (all -inf) has m = -inf, l = 0, acc = 0. softmax(scores) @ values == acc / l."""
    if scores.shape[-1] != values.shape[-2]:
        raise ValueError(f"scores (..., S) and values (..., S, D) need the same S; got "
                         f"{tuple(scores.shape)} and {tuple(values.shape)}")
    m = scores.amax(-1, keepdim=True)  # (..., 1)
    p = torch.exp(scores - m.masked_fill(m == float("-inf"), 0.0))  # (..., S), 0 where -inf
    return m, p.sum(-1, keepdim=True), (p[..., None, :] @ values)[..., 0, :]


def merge_softmax_states(first, second):
    """Combine the online-softmax states (m, l, acc) of two disjoint tiles of keys into the state
    of their union (Milakov & Gimelshein 2018, arXiv 1805.02867; FlashAttention-2's split-K and
    ring attention merge partial results this way). Each side is rescaled to the new maximum
    m = max(m1, m2): l = l1 e^(m1 - m) + l2 e^(m2 - m), and acc likewise."""
    (m1, l1, acc1), (m2, l2, acc2) = first, second
    m = torch.maximum(m1, m2)  # (..., 1)
    safe = m.masked_fill(m == float("-inf"), 0.0)  # both tiles empty: keep zeros, not NaN
    scale1, scale2 = torch.exp(m1 - safe), torch.exp(m2 - safe)  # (..., 1) each
    return m, l1 * scale1 + l2 * scale2, acc1 * scale1 + acc2 * scale2


# ---------------------------------------------------------------- the benchmark

ATTENTION_METHODS = ("dense SDPA", "lcviz sliding window", "lcviz tiled", "flex (compiled)")
# What the dense baseline's peak is made of (not in the benchmark table, measured the same way):
# the same SDPA call given the window as a float additive mask (0 / -inf) instead of a bool mask,
# and the bool-mask call forced onto PyTorch's unfused "math" kernel.
DENSE_VARIANTS = ("dense SDPA, float mask", "dense SDPA, math kernel")

# The end of a child-process script that measures `run()` (defined above it, with `repeats` and a
# dict `extra` of more fields): peak resident memory above the baseline (VmHWM, reset through
# /proc/self/clear_refs just before the first run) and the median time of `repeats` more runs
# (repeats = 0: the first run's time), printed as one JSON line. lcviz.subquadratic measures its forward passes with it too.
PEAK_AND_TIME_CHILD = """
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
print(json.dumps({"seconds": sorted(times)[len(times) // 2] if times else first,
                  "first_seconds": first,
                  "peak_mb": peak, **extra}))
"""

# Runs in a fresh child process per (method, T), so each peak is its own: the kernel's VmHWM
# (peak resident memory) is reset just before the forward pass and read just after.
_ATTENTION_CHILD = """
import json, sys, time
import torch, torch.nn.functional as F
from lcviz.attention import in_causal_window
from lcviz.memory import sliding_window_attention, tiled_attention
from lcviz.masks import sliding_window_mask
method, T, w, B, H, D, repeats = sys.argv[1], *map(int, sys.argv[2:8])
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
compile_seconds = None
if method == "dense SDPA":
    mask = sliding_window_mask(T, w)
    run = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
elif method == "dense SDPA, float mask":
    mask = torch.zeros(T, T).masked_fill_(~sliding_window_mask(T, w), float("-inf"))
    run = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
elif method == "dense SDPA, math kernel":
    from torch.nn.attention import SDPBackend, sdpa_kernel
    mask = sliding_window_mask(T, w)
    def run():
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
elif method == "lcviz sliding window":
    run = lambda: sliding_window_attention(q, k, v, w)
elif method == "lcviz tiled":
    run = lambda: tiled_attention(q, k, v, block_size=w, window=w)
else:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    block_mask = create_block_mask(lambda b, h, i, j: in_causal_window(i, j, w), None, None, T, T,
                                   device="cpu")
    compiled = torch.compile(flex_attention)
    start = time.perf_counter()
    compiled(q, k, v, block_mask=block_mask)
    compile_seconds = time.perf_counter() - start
    run = lambda: compiled(q, k, v, block_mask=block_mask)
extra = {"compile_seconds": compile_seconds}
""" + PEAK_AND_TIME_CHILD


def run_child(script, args, timeout=900):
    """Run a measuring script (one that ends in PEAK_AND_TIME_CHILD) in a fresh Python process
    with command-line `args`: its JSON line as a dict, or {"error": the last line of its error
    output, or that no result came within `timeout` s}."""
    try:
        done = subprocess.run([sys.executable, "-c", script, *map(str, args)], check=False,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_attention(method, length, window=256, batch=1, heads=4, head_dim=64, repeats=3):
    """Forward time (median of `repeats`, after one untimed run) and peak memory above the
    inputs (MB) of one attention method (ATTENTION_METHODS or DENSE_VARIANTS), measured in a
    fresh Python process."""
    check_choice("method", method, ATTENTION_METHODS + DENSE_VARIANTS)
    check_window(window, length)
    return run_child(_ATTENTION_CHILD, [method, length, window, batch, heads, head_dim, repeats])


def benchmark(lengths=None):
    """Every method at every length (default 512 .. 16384), w = 256, B = 1, H = 4, D = 64, fp32."""
    lengths = lengths or [512, 1024, 2048, 4096, 8192, 16384]
    rows = []
    for length in lengths:
        for method in ATTENTION_METHODS:
            row = {"method": method, "length": length, **measure_attention(method, length)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"window": 256, "batch": 1, "heads": 4, "head_dim": 64, "dtype": "float32",
            "memory": "peak RSS above the inputs (VmHWM reset via /proc/self/clear_refs), "
                      "one fresh process per row", "rows": rows}
