"""Ring attention and striped attention: exact attention over a sequence split across processes.

Ring attention (Liu, Zaharia, Abbeel 2023, arXiv 2310.01889): each of W processes ("ranks") holds
a T/W block of queries, keys and values. The key/value blocks travel around a ring: at step s rank
r holds the block of rank (r - s) mod W, computes its queries against it while already sending
that block on to rank r + 1 and receiving the next one from rank r - 1, and merges the block's
output into its running output with a log-sum-exp update. After W steps every query has seen
every key, and no process ever held more than two key/value blocks or a T x T matrix.

With a causal mask, a contiguous split is unbalanced: rank 0's queries see only its own block,
the last rank's see everything. Striped attention (Brandon et al. 2023, arXiv 2311.09431) deals
token i to rank i mod W; the zigzag layout of ring-flash-attention (zhuzilin) gives rank r the
chunks r and 2W-1-r of 2W chunks. Both make every rank's work per step almost equal.
Masks always use global positions: a shard's tokens are not 0..n-1 of the sequence.

    python -m lcviz.ring --world 4 --length 16384 --heads 4 --dim 64 --causal --layout zigzag
    torchrun --standalone --nproc-per-node 4 -m lcviz.ring --length 16384 --causal --layout zigzag

The first form starts the processes itself (127.0.0.1, a free port); the second reads torchrun's
standard environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so the same code runs across
machines with `torchrun --nnodes N --rdzv-endpoint HOST:PORT ...`. The last printed line is one
JSON object: errors against dense attention, peak memory per rank, seconds.

All tensors are (B, H, n, D): batch, heads, tokens (of the shard), head dimension.
"""

import argparse
import datetime
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import types

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from lcviz.validate import check_choice, check_float, check_int

LAYOUTS = ("contiguous", "zigzag", "striped")
# torch's first backward with a given gradient imports this (and sympy): seconds, once per process
_FIRST_BACKWARD_IMPORTS = "torch.fx.experimental.symbolic_shapes"
MAX_SCORES = 2 ** 19  # score entries per tile (2 MB in fp32): bounds each rank's working memory


# ---------------------------------------------------------------- layouts

def _check_layout(length, world, layout):
    length = check_int("length", length, minimum=1)
    world = check_int("world", world, minimum=1)
    check_choice("layout", layout, LAYOUTS)
    if world > length:
        raise ValueError(f"world size {world} is larger than the length {length}: every rank needs "
                         f"at least one token; use a world size <= {length} or a longer sequence")
    return length, world


def shard_positions(length, world, rank, layout="contiguous"):
    """The global positions (ascending, LongTensor (n,)) of the tokens rank `rank` holds.

    contiguous: torch.tensor_split of 0..T-1 into W pieces (the first T mod W ranks get one more).
    zigzag: tensor_split into 2W chunks; rank r holds chunks r and 2W-1-r.
    striped: token i goes to rank i mod W.
    """
    length, world = _check_layout(length, world, layout)
    rank = check_int("rank", rank, minimum=0, maximum=world - 1)
    positions = torch.arange(length)
    if layout == "contiguous":
        return torch.tensor_split(positions, world)[rank]
    if layout == "striped":
        return positions[rank::world].contiguous()
    chunks = torch.tensor_split(positions, 2 * world)
    return torch.cat([chunks[rank], chunks[2 * world - 1 - rank]])


def all_positions(length, world, layout="contiguous"):
    """[shard_positions(length, world, r, layout) for every rank r]."""
    return [shard_positions(length, world, r, layout) for r in range(world)]


def shard(x, world, rank, layout="contiguous"):
    """Rank `rank`'s tokens of x (B, H, T, D) -> (B, H, n, D)."""
    return x[:, :, shard_positions(x.size(2), world, rank, layout)]


def unshard(shards, layout="contiguous"):
    """Put the per-rank shards [(B, H, n_r, D), ...] back in sequence order -> (B, H, T, D)."""
    world = len(shards)
    length = sum(s.size(2) for s in shards)
    positions = all_positions(length, world, layout)
    for r, (s, p) in enumerate(zip(shards, positions)):
        if s.size(2) != len(p):
            raise ValueError(f"shard {r} has {s.size(2)} tokens; the {layout} layout of {length} "
                             f"tokens over {world} ranks gives it {len(p)}")
    out = shards[0].new_empty(*shards[0].shape[:2], length, shards[0].size(3))
    for s, p in zip(shards, positions):
        out[:, :, p] = s
    return out


def ring_schedule(world):
    """(W, W) LongTensor: entry [r, s] is the rank whose key/value block rank r holds at step s,
    (r - s) mod W: blocks move one rank forward per step."""
    world = check_int("world", world, minimum=1)
    r = torch.arange(world)[:, None]
    s = torch.arange(world)[None, :]
    return (r - s) % world


def pairs_per_step(length, world, layout="contiguous", causal=True):
    """(W, W) LongTensor: entry [r, s] counts the (query, key) score entries rank r must compute at
    step s (the pairs its mask allows between its queries and the block it holds).

    For each query at position p the block of rank src contributes the number of its keys at
    positions <= p (a binary search), without building any mask."""
    length, world = _check_layout(length, world, layout)
    positions = all_positions(length, world, layout)
    schedule = ring_schedule(world)
    counts = torch.zeros(world, world, dtype=torch.long)
    for r in range(world):
        for s in range(world):
            keys = positions[int(schedule[r, s])]
            if causal:
                counts[r, s] = torch.searchsorted(keys, positions[r], right=True).sum()
            else:
                counts[r, s] = len(positions[r]) * len(keys)
    return counts


# ---------------------------------------------------------------- one block, and the merge

def _acc_dtype(dtype):
    return torch.promote_types(dtype, torch.float32)  # fp16/bf16 accumulate in fp32


def merge(out, lse, block_out, block_lse):
    """Fold one block's output into the running output, in the stable log-sum-exp form.

    out, block_out (B, H, n, D) are each normalized over their own keys; lse, block_lse (B, H, n)
    are log sum exp of their scores. The merged lse is log(e^lse + e^block_lse) (torch.logaddexp,
    which never forms e^lse), and each output is weighted by e^(its lse - new lse) <= 1, so nothing
    overflows. Same as ring-flash-attention's out - sigmoid(block_lse - lse) (out - block_out).
    Rows that have seen no key yet carry lse = -inf and out = 0.
    """
    new_lse = torch.logaddexp(lse, block_lse)  # (B, H, n)
    shift = torch.where(torch.isneginf(new_lse), 0.0, new_lse)  # rows with no key at all: 0 / 0
    out = (out * torch.exp(lse - shift)[..., None]
           + block_out * torch.exp(block_lse - shift)[..., None])  # (B, H, n, D)
    return out, new_lse


def naive_merge(out, lse, block_out, block_lse):
    """The merge written with e^lse directly: exact on paper, but e^lse overflows to inf in fp32
    once a score reaches about 88.7 (fp32's largest value is 3.4e38), and inf / inf = nan."""
    a, b = torch.exp(lse)[..., None], torch.exp(block_lse)[..., None]  # (B, H, n, 1)
    return (a * out + b * block_out) / (a + b), torch.log(a + b)[..., 0]


def _mask(q_pos, k_pos):
    """(nq, nk) bool, True where the query may see the key (key position <= query position)."""
    return k_pos[None, :] <= q_pos[:, None]


def _sees_any(q_pos, k_pos, causal):
    """Can any query of the block see any key of the other? (positions are ascending)"""
    return not causal or bool(k_pos[0] <= q_pos[-1])


def _check_block(q, k, v, q_pos, k_pos, causal):
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape or q.shape[:2] != k.shape[:2] \
            or q.size(3) != k.size(3):
        raise ValueError(f"q (B, H, nq, D), k and v (B, H, nk, D) must agree in B, H, D; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not causal:
        return None, None
    if q_pos is None and k_pos is None:
        if q.size(2) != k.size(2):
            raise ValueError("causal blocks of different lengths need q_pos and k_pos (the global "
                             f"positions of their tokens); got nq={q.size(2)}, nk={k.size(2)}")
        q_pos = k_pos = torch.arange(q.size(2))
    if q_pos is None or k_pos is None or len(q_pos) != q.size(2) or len(k_pos) != k.size(2):
        raise ValueError(f"q_pos and k_pos must give one position per token: {q.size(2)} and "
                         f"{k.size(2)}")
    return q_pos, k_pos


def _tiles(q, k, q_pos, k_pos, causal, max_scores):
    """(start, end, keys, mask or None, allowed pairs) for each tile of queries (at most
    `max_scores` score entries) that sees at least one key. With a causal mask only the first
    `keys` keys (positions ascending: those up to the tile's last query) can be visible, so only
    they are scored; a tile that sees all of them needs no mask."""
    rows = max(1, max_scores // max(1, q.size(0) * q.size(1) * k.size(2)))
    for start in range(0, q.size(2), rows):
        end = min(start + rows, q.size(2))
        if not causal:
            yield start, end, k.size(2), None, (end - start) * k.size(2)
            continue
        keys = int(torch.searchsorted(k_pos, q_pos[end - 1], right=True))
        mask = _mask(q_pos[start:end], k_pos[:keys])  # (t, keys)
        allowed = int(mask.sum())
        if allowed:
            yield start, end, keys, (None if allowed == mask.numel() else mask), allowed


def _tile_forward(q, kt, v, mask, scale):
    """softmax over one tile's scores: (out (B, H, t, D), lse (B, H, t)); rows that see no key
    get out 0 and lse -inf."""
    scores = (q @ kt) * scale  # (B, H, t, nk)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    row_max = scores.amax(-1, keepdim=True)  # (B, H, t, 1)
    row_max = torch.where(torch.isneginf(row_max), 0.0, row_max)
    p = torch.exp(scores - row_max)  # (B, H, t, nk)
    total = p.sum(-1, keepdim=True)
    return (p @ v) / torch.where(total > 0, total, 1.0), (row_max + torch.log(total))[..., 0]


def block_attention(q, k, v, q_pos=None, k_pos=None, causal=False, max_scores=MAX_SCORES):
    """Attention of a block of queries over one block of keys: (out, lse).

    q (B, H, nq, D), k and v (B, H, nk, D); q_pos (nq,) and k_pos (nk,) are global positions
    (needed when causal). out (B, H, nq, D) is normalized over this block's keys only and lse
    (B, H, nq) = log sum_j exp(score_j): the two numbers merge() needs. Queries go in tiles of at
    most `max_scores` score entries. Results are in fp32 (fp64 for fp64 input); a query that sees
    no key of this block gets out 0 and lse -inf.
    """
    q_pos, k_pos = _check_block(q, k, v, q_pos, k_pos, causal)
    B, H, nq, D = q.shape
    dtype = _acc_dtype(q.dtype)
    out = q.new_zeros(B, H, nq, D, dtype=dtype)
    lse = q.new_full((B, H, nq), float("-inf"), dtype=dtype)
    kt, vf = k.to(dtype).transpose(-1, -2), v.to(dtype)  # (B, H, D, nk), (B, H, nk, D)
    for start, end, keys, mask, _ in _tiles(q, k, q_pos, k_pos, causal, max_scores):
        out[:, :, start:end], lse[:, :, start:end] = _tile_forward(
            q[:, :, start:end].to(dtype), kt[..., :keys], vf[:, :, :keys], mask,
            1.0 / math.sqrt(D))
    return out, lse


def attend_into(out, lse, q, k, v, q_pos=None, k_pos=None, causal=False, max_scores=MAX_SCORES):
    """Fold the attention of q over one key/value block into the running (out, lse), in place,
    tile by tile: for each tile, block_attention's (out, lse) of those rows, then merge(). The
    same numbers as merge(out, lse, *block_attention(...)) without a block-sized temporary.
    Returns the number of (query, key) pairs the mask allowed (the work done)."""
    q_pos, k_pos = _check_block(q, k, v, q_pos, k_pos, causal)
    kt, vf = k.to(out.dtype).transpose(-1, -2), v.to(out.dtype)
    work = 0
    for start, end, keys, mask, allowed in _tiles(q, k, q_pos, k_pos, causal, max_scores):
        tile_out, tile_lse = _tile_forward(q[:, :, start:end].to(out.dtype), kt[..., :keys],
                                           vf[:, :, :keys], mask, 1.0 / math.sqrt(q.size(3)))
        out[:, :, start:end], lse[:, :, start:end] = merge(
            out[:, :, start:end], lse[:, :, start:end], tile_out, tile_lse)
        work += allowed
    return work


def backward_into(dq, dk, dv, dout, q, k, v, lse, delta, q_pos=None, k_pos=None, causal=False,
                  max_scores=MAX_SCORES):
    """Add one block's share of the gradients to dq (B, H, nq, D), dk and dv (B, H, nk, D), in
    place, given the FINAL lse (B, H, nq) and delta = rowsum(dout * out) (B, H, nq) of the whole
    sequence. With P = exp(S - lse) the block's true softmax weights: dV += P^T dO,
    dS = P (dO V^T - delta), dQ += dS K / sqrt(D), dK += dS^T Q / sqrt(D) (FlashAttention-2's
    backward, Dao 2023, arXiv 2307.08691)."""
    q_pos, k_pos = _check_block(q, k, v, q_pos, k_pos, causal)
    dtype = dq.dtype
    scale = 1.0 / math.sqrt(q.size(3))
    kt, vt = k.to(dtype).transpose(-1, -2), v.to(dtype).transpose(-1, -2)  # (B, H, D, nk)
    for start, end, keys, mask, _ in _tiles(q, k, q_pos, k_pos, causal, max_scores):
        qt = q[:, :, start:end].to(dtype)  # (B, H, t, D)
        dot = dout[:, :, start:end].to(dtype)  # (B, H, t, D)
        row_lse = lse[:, :, start:end, None]
        kt_, vt_ = kt[..., :keys], vt[..., :keys]  # (B, H, D, keys)
        p = torch.exp((qt @ kt_) * scale - torch.where(torch.isneginf(row_lse), 0.0, row_lse))
        if mask is not None:
            p.masked_fill_(~mask, 0.0)  # (B, H, t, keys) softmax weights
        dv[:, :, :keys] += p.transpose(-1, -2) @ dot
        ds = p * (dot @ vt_ - delta[:, :, start:end, None])  # (B, H, t, keys)
        dq[:, :, start:end] += (ds @ kt_.transpose(-1, -2)) * scale
        dk[:, :, :keys] += (ds.transpose(-1, -2) @ qt) * scale


def block_attention_backward(dout, q, k, v, lse, delta, q_pos=None, k_pos=None, causal=False,
                             max_scores=MAX_SCORES):
    """(dq, dk, dv) of one block's share of the attention: backward_into on zeros."""
    dtype = _acc_dtype(q.dtype)
    dq = q.new_zeros(q.shape, dtype=dtype)
    dk, dv = k.new_zeros(k.shape, dtype=dtype), v.new_zeros(v.shape, dtype=dtype)
    backward_into(dq, dk, dv, dout, q, k, v, lse, delta, q_pos, k_pos, causal, max_scores)
    return dq, dk, dv


# ---------------------------------------------------------------- the ring in one process

def _simulate_forward(q_shards, k_shards, v_shards, positions, causal):
    """Each rank's (out, lse), visiting the blocks in ring order, exactly as ring_attention does."""
    world = len(q_shards)
    outs, lses = [], []
    for r in range(world):
        B, H, n, D = q_shards[r].shape
        out = q_shards[r].new_zeros(B, H, n, D, dtype=_acc_dtype(q_shards[r].dtype))
        lse = q_shards[r].new_full((B, H, n), float("-inf"), dtype=out.dtype)
        for s in range(world):
            src = (r - s) % world  # the block rank r holds at step s
            if _sees_any(positions[r], positions[src], causal):
                attend_into(out, lse, q_shards[r], k_shards[src], v_shards[src], positions[r],
                            positions[src], causal)
        outs.append(out)
        lses.append(lse)
    return outs, lses


class _SimulatedRing(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, world, causal, layout):
        positions = all_positions(q.size(2), world, layout)
        qs, ks, vs = ([x[:, :, p].contiguous() for p in positions] for x in (q, k, v))
        outs, lses = _simulate_forward(qs, ks, vs, positions, causal)
        ctx.save_for_backward(q, k, v)
        ctx.state = (world, causal, layout, outs, lses)
        return unshard([o.to(q.dtype) for o in outs], layout)

    @staticmethod
    def backward(ctx, dout):
        q, k, v = ctx.saved_tensors
        world, causal, layout, outs, lses = ctx.state
        positions = all_positions(q.size(2), world, layout)
        qs, ks, vs, dos = ([x[:, :, p].contiguous() for p in positions] for x in (q, k, v, dout))
        dqs = [torch.zeros_like(o) for o in outs]
        deltas = [(d.to(o.dtype) * o).sum(-1) for d, o in zip(dos, outs)]  # rowsum(dO * O)
        dks, dvs = [None] * world, [None] * world  # the accumulators that travel with each block
        for s in range(world):
            for r in range(world):
                src = (r - s) % world
                if not _sees_any(positions[r], positions[src], causal):
                    continue
                dk, dv = (torch.zeros_like(x, dtype=outs[r].dtype) for x in (ks[src], vs[src]))
                backward_into(dqs[r], dk, dv, dos[r], qs[r], ks[src], vs[src], lses[r], deltas[r],
                              positions[r], positions[src], causal)
                dks[src] = dk if dks[src] is None else dk.add_(dks[src])
                dvs[src] = dv if dvs[src] is None else dv.add_(dvs[src])
        return (*(unshard([g.to(q.dtype) for g in grads], layout) for grads in (dqs, dks, dvs)),
                None, None, None)


def simulate_ring(q, k, v, world, causal=False, layout="contiguous"):
    """Ring attention for W ranks run in one process: split into shards by `layout`, rotate the
    key/value shards step by step, merge each block with merge(). q, k, v (B, H, T, D) ->
    (B, H, T, D), differentiable (the backward is the reverse ring, as in ring_attention). Does
    the same arithmetic in the same order as the distributed version."""
    _check_qkv(q, k, v)
    _check_layout(q.size(2), world, layout)
    return _SimulatedRing.apply(q, k, v, world, bool(causal), layout)


def _check_qkv(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D) of one shape; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")


# ---------------------------------------------------------------- the ring over processes

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class _Ring:
    """Point-to-point exchange with the neighbours: send to rank + 1, receive from rank - 1,
    with dist.batch_isend_irecv; every request is waited on (gloo returns one per operation), each
    with a timeout, and a timeout names the rank that did not answer."""

    def __init__(self, group, timeout):
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.timeout = None if timeout is None else datetime.timedelta(seconds=timeout)
        self.next = (self.rank + 1) % self.world
        self.prev = (self.rank - 1) % self.world

    def _global(self, rank):
        return rank if self.group is None else dist.get_global_rank(self.group, rank)

    def exchange(self, send, recv, what, step, tag=0):
        """Start sending the tensors `send` to rank + 1 and receiving `recv` from rank - 1."""
        ops = []
        for i, (out, into) in enumerate(zip(send, recv)):
            ops.append(dist.P2POp(dist.isend, out, self._global(self.next), self.group, tag + i))
            ops.append(dist.P2POp(dist.irecv, into, self._global(self.prev), self.group, tag + i))
        peers = [self.next, self.prev] * len(send)
        return list(zip(dist.batch_isend_irecv(ops), peers)), what, step

    def wait(self, handle):
        works, what, step = handle
        for work, peer in works:
            self._wait_one(work, peer, what, step)

    def _wait_one(self, work, peer, what, step):
        seconds = "the process group's timeout" if self.timeout is None else \
            f"{self.timeout.total_seconds():g} s"
        try:
            work.wait() if self.timeout is None else work.wait(self.timeout)
        except RuntimeError as error:
            text = str(error)
            if "imed out" in text or "imeout" in text:
                raise TimeoutError(f"rank {self.rank}: rank {peer} did not answer within {seconds} "
                                   f"({what}, step {step}); is rank {peer} running and calling "
                                   "ring_attention with the others?") from None
            raise ConnectionError(f"rank {self.rank}: lost rank {peer} ({what}, step {step}): "
                                   f"{text.splitlines()[-1] if text else 'no message'}") from None


def _agree(ring, q, k, v, causal, layout):
    """Every rank learns every rank's (B, H, n, D, dtype, causal, layout), passed around the ring
    point to point (so a silent rank is named), and all raise the same ValueError on a mismatch."""
    mine = torch.tensor([*q.shape, *k.shape, *v.shape, _DTYPES.index(q.dtype) if q.dtype in _DTYPES
                         else -1, int(causal), LAYOUTS.index(layout)], dtype=torch.long)
    table = [None] * ring.world
    table[ring.rank] = mine
    current = mine
    for step in range(ring.world - 1):
        incoming = torch.empty_like(mine)
        handle = ring.exchange([current], [incoming], "agreeing on shapes", step, tag=90)
        ring.wait(handle)
        table[(ring.rank - step - 1) % ring.world] = current = incoming
    names = ("B", "H", "n", "D")
    for r, row in enumerate(table):
        b, h, n, d = row[:4].tolist()
        if row[4:8].tolist() != [b, h, n, d] or row[8:12].tolist() != [b, h, n, d]:
            raise ValueError(f"rank {r} passed q, k, v of shapes {row[:4].tolist()}, "
                             f"{row[4:8].tolist()}, {row[8:12].tolist()}: they must be equal")
        for i in (0, 1, 3):
            if row[i] != table[0][i]:
                raise ValueError(f"ranks disagree on {names[i]}: rank 0 has {int(table[0][i])}, "
                                 f"rank {r} has {int(row[i])} (shapes {table[0][:4].tolist()} "
                                 f"and {row[:4].tolist()})")
        if row[12] != table[0][12]:
            raise ValueError(f"ranks disagree on the dtype: rank 0 has "
                             f"{_DTYPES[table[0][12]] if table[0][12] >= 0 else 'other'}, rank {r} "
                             f"has {_DTYPES[row[12]] if row[12] >= 0 else 'other'}")
        if row[13] != table[0][13] or row[14] != table[0][14]:
            raise ValueError(f"ranks disagree on causal/layout: rank 0 has causal="
                             f"{bool(table[0][13])}, layout={LAYOUTS[table[0][14]]}; rank {r} has "
                             f"causal={bool(row[13])}, layout={LAYOUTS[row[14]]}")
    sizes = [int(row[2]) for row in table]
    length = sum(sizes)
    if length < ring.world:
        raise ValueError(f"world size {ring.world} is larger than the length {length}: every rank "
                         "needs at least one token")
    positions = all_positions(length, ring.world, layout)
    expected = [len(p) for p in positions]
    if sizes != expected:
        raise ValueError(f"shard sizes {sizes} do not match the {layout} layout of {length} tokens "
                         f"over {ring.world} ranks, which gives {expected}; build shards with "
                         "lcviz.ring.shard")
    return positions


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, layout, group, timeout, stats):
        ring = _Ring(group, timeout)
        positions = _agree(ring, q, k, v, causal, layout)
        my_pos = positions[ring.rank]
        B, H, n, D = q.shape
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        dtype = _acc_dtype(q.dtype)
        out = q.new_zeros(B, H, n, D, dtype=dtype)  # (B, H, n, D) running output, fp32
        lse = q.new_full((B, H, n), float("-inf"), dtype=dtype)  # (B, H, n) running log-sum-exp
        block_k, block_v = k, v
        pairs = []
        for step in range(ring.world):
            src = (ring.rank - step) % ring.world  # the rank whose key/value block we hold
            if step + 1 < ring.world:  # start passing the block on before computing with it
                size = len(positions[(ring.rank - step - 1) % ring.world])
                next_k, next_v = k.new_empty(B, H, size, D), v.new_empty(B, H, size, D)
                handle = ring.exchange([block_k, block_v], [next_k, next_v], "k/v block", step)
            work = 0
            if _sees_any(my_pos, positions[src], causal):  # skip a block wholly in the future
                work = attend_into(out, lse, q, block_k, block_v, my_pos, positions[src], causal)
            pairs.append(work)
            if step + 1 < ring.world:
                ring.wait(handle)
                block_k, block_v = next_k, next_v
        del block_k, block_v
        if stats is not None:
            stats["pairs"] = pairs
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.state = (ring, positions, causal)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        ring, positions, causal = ctx.state
        my_pos = positions[ring.rank]
        B, H, _, D = q.shape
        dout = dout.contiguous()
        delta = (dout.to(out.dtype) * out).sum(-1)  # (B, H, n) rowsum(dO * O)
        dq = torch.zeros_like(out)  # (B, H, n, D)
        block_k, block_v = k, v
        grad_handle = in_dk = in_dv = None
        for step in range(ring.world):
            src = (ring.rank - step) % ring.world
            if step + 1 < ring.world:
                size = len(positions[(ring.rank - step - 1) % ring.world])
                next_k, next_v = k.new_empty(B, H, size, D), v.new_empty(B, H, size, D)
                handle = ring.exchange([block_k, block_v], [next_k, next_v], "k/v block "
                                       "(backward)", step)
            dk = dv = None
            if _sees_any(my_pos, positions[src], causal):
                dk, dv = (torch.zeros_like(x, dtype=out.dtype) for x in (block_k, block_v))
                backward_into(dq, dk, dv, dout, q, block_k, block_v, lse, delta, my_pos,
                              positions[src], causal)
            if grad_handle is not None:  # the dk/dv accumulators of this block, from rank - 1
                ring.wait(grad_handle)
                dk = in_dk if dk is None else dk.add_(in_dk)
                dv = in_dv if dv is None else dv.add_(in_dv)
            elif dk is None:
                dk, dv = torch.zeros_like(block_k, dtype=out.dtype), torch.zeros_like(
                    block_v, dtype=out.dtype)
            if ring.world == 1:  # nothing travels: the block and its gradients are our own
                return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), *[None] * 5
            # pass the accumulators on with the block; after the last step they reach their owner
            size = len(positions[(ring.rank - step - 1) % ring.world])
            in_dk, in_dv = out.new_empty(B, H, size, D), out.new_empty(B, H, size, D)
            grad_handle = ring.exchange([dk, dv], [in_dk, in_dv], "dk/dv accumulators", step,
                                        tag=2)
            if step + 1 < ring.world:
                ring.wait(handle)
                block_k, block_v = next_k, next_v
        ring.wait(grad_handle)
        return dq.to(q.dtype), in_dk.to(k.dtype), in_dv.to(v.dtype), None, None, None, None, None


def ring_attention(q, k, v, causal=False, layout="contiguous", group=None, timeout=None,
                   stats=None):
    """Exact attention of this rank's queries over the whole sequence, spread over a process group.

    Call it on every rank of `group` (default: the whole torch.distributed world) with that rank's
    shard: q, k, v (B, H, n_r, D) = shard(x, W, rank, layout). Returns this rank's output
    (B, H, n_r, D); differentiable (the backward sends the key/value blocks round the ring again,
    with their dk/dv accumulators travelling beside them). Ranks first exchange their shapes and
    raise the same ValueError on any mismatch; a neighbour that does not answer within `timeout`
    seconds (default: the process group's timeout) raises TimeoutError naming its rank. `stats`,
    a dict, receives "pairs": the score entries this rank computed at each step.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ring_attention needs torch.distributed initialised "
                           "(init_process_group); for one process use simulate_ring")
    check_choice("layout", layout, LAYOUTS)
    if timeout is not None:
        timeout = check_float("timeout", timeout, greater_than=0)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D (B, H, n, D); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    return _RingAttention.apply(q, k, v, bool(causal), layout, group, timeout, stats)


# ---------------------------------------------------------------- starting the processes

def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_group(backend="gloo", timeout=60.0):
    """init_process_group from torchrun's standard environment (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT); a group that does not form within `timeout` seconds is a TimeoutError."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if name not in os.environ]
    if missing:
        raise RuntimeError(f"environment variables {missing} are not set: start with torchrun, "
                           "or with `python -m lcviz.ring --world N`")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
    except Exception as error:  # noqa: BLE001 - any failure to form the group gets one message
        last = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise TimeoutError(f"rank {rank}: the group of {world} processes did not form at {where} "
                           f"within {timeout:g} s: {last}") from None
    return rank, world


def _child(rank, world, port, backend, timeout, threads, fn, args, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(threads)
    try:
        init_group(backend, timeout)
        value = fn(*args)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("error", rank, time.time(), type(error).__name__, str(error)))
        os._exit(1)  # pending gloo requests must not keep the process alive
    results.put(("ok", rank, time.time(), value))
    dist.destroy_process_group()


_ERRORS = {"ValueError": ValueError, "TimeoutError": TimeoutError,
           "ConnectionError": ConnectionError}


def launch(fn, world, *args, backend="gloo", timeout=60.0, threads=None):
    """Run fn(*args) on `world` new processes that form a torch.distributed group on 127.0.0.1
    (a free port); returns the list of their return values, by rank.

    Processes come from a fork server that has imported torch once, so a group starts in well
    under a second after the first. If any rank fails, the others are stopped and the error is
    raised here (TimeoutError, ValueError, ConnectionError or RuntimeError) with every failing
    rank's message, earliest first."""
    world = check_int("world", world, minimum=1)
    timeout = check_float("timeout", timeout, greater_than=0)
    threads = max(1, (os.cpu_count() or 1) // world) if threads is None else check_int(
        "threads", threads, minimum=1)
    multiprocessing.set_forkserver_preload(["lcviz.ring", _FIRST_BACKWARD_IMPORTS])
    results = mp.get_context("forkserver").SimpleQueue()
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")  # "Terminating process <pid>":
    level = spawn_log.level  # the error raised below says what happened, without pids
    spawn_log.setLevel(logging.ERROR)
    caller = sys.modules["__main__"]  # a notebook, a Streamlit page or pytest: the fork server
    sys.modules["__main__"] = types.ModuleType("__main__")  # must not re-run it (fn lives in a module)
    try:
        context = mp.start_processes(_child, nprocs=world, join=False, start_method="forkserver",
                                     args=(world, free_port(), backend, timeout, threads, fn, args,
                                           results))
    finally:
        sys.modules["__main__"] = caller
    messages = []
    try:
        while not context.join(timeout=0.05):
            while not results.empty():
                messages.append(results.get())
    except Exception as exit_error:  # noqa: BLE001 - a rank exited non-zero; the others are stopped
        crash = exit_error
    else:
        crash = None
    finally:
        spawn_log.setLevel(level)
    while not results.empty():
        messages.append(results.get())
    errors = sorted((m for m in messages if m[0] == "error"), key=lambda m: m[2])
    if errors:
        text = "; ".join(dict.fromkeys(m[4] for m in errors))  # each distinct message once
        raise _ERRORS.get(errors[0][3], RuntimeError)(text)
    if crash is not None or len(messages) != world:
        raise RuntimeError(f"a rank exited without a result: {crash}")
    return [m[3] for m in sorted(messages, key=lambda m: m[1])]


# ---------------------------------------------------------------- checks against dense attention

def dense_reference(q, k, v, causal=False):
    """torch's SDPA on the whole sequence: the dense attention the ring must equal."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))


def _gather_to_zero(tensor, sizes):
    """Rank 0 receives every rank's (B, H, n_r, X) tensor (a list by rank); others send theirs."""
    rank = dist.get_rank()
    if rank != 0:
        dist.send(tensor.contiguous(), 0)
        return None
    parts = [tensor]
    for r in range(1, len(sizes)):
        part = tensor.new_empty(*tensor.shape[:2], sizes[r], tensor.size(3))
        dist.recv(part, r)
        parts.append(part)
    return parts


def check_cases(cases, worlds=None, timeout=20.0):
    """Run on every rank of a group: for each ring size W in `worlds` (default: the whole group;
    smaller rings use the first W ranks as a subgroup) and each case (length, causal, layout,
    batch, heads, dim, dtype name, seed), the ring's output and gradients, compared on rank 0 with
    dense SDPA and with simulate_ring. Returns (on rank 0) a list of dicts with the largest
    absolute errors and the pairs each rank computed per step; other ranks return None."""
    rank, size = dist.get_rank(), dist.get_world_size()
    rows = []
    for world in [size] if worlds is None else worlds:
        group = None if world == size else dist.new_group(list(range(world)))  # every rank calls
        if rank >= world:
            continue
        for length, causal, layout, batch, heads, dim, dtype, seed in cases:
            if world > length:
                continue
            dtype = getattr(torch, dtype)
            g = torch.Generator().manual_seed(seed)
            q, k, v, dout = (torch.randn(batch, heads, length, dim, generator=g, dtype=dtype)
                             for _ in range(4))
            local = [shard(x, world, rank, layout).clone().requires_grad_() for x in (q, k, v)]
            stats = {}
            out = ring_attention(*local, causal=causal, layout=layout, group=group,
                                 timeout=timeout, stats=stats)
            out.backward(shard(dout, world, rank, layout))
            packed = torch.cat([out.detach(), *(x.grad for x in local)], dim=-1)  # (B, H, n, 4D)
            parts = _gather_to_zero(packed, [len(p) for p in all_positions(length, world, layout)])
            pairs = _gather_to_zero(torch.tensor(stats["pairs"]).view(1, 1, 1, world), [1] * world)
            if rank != 0:
                continue
            ring_out, ring_dq, ring_dk, ring_dv = unshard(parts, layout).split(dim, dim=-1)
            full = [x.clone().requires_grad_() for x in (q, k, v)]
            ref = dense_reference(*full, causal=causal)
            ref.backward(dout)
            sim_in = [x.clone().requires_grad_() for x in (q, k, v)]
            sim = simulate_ring(*sim_in, world=world, causal=causal, layout=layout)
            sim.backward(dout)
            rows.append({
                "length": length, "causal": causal, "layout": layout, "world": world,
                "dtype": str(dtype).removeprefix("torch."),
                "max_abs_error": (ring_out - ref.detach()).abs().max().item(),
                "grad_max_abs_error": max((a - b.grad).abs().max().item() for a, b in
                                          zip((ring_dq, ring_dk, ring_dv), full)),
                "simulation_difference": max((a - b).abs().max().item() for a, b in zip(
                    (ring_out, ring_dq, ring_dk, ring_dv),
                    (sim.detach(), *(x.grad for x in sim_in)))),
                "pairs": torch.cat([p.view(-1) for p in pairs]).view(world, world).tolist()})
    return rows if rank == 0 else None


def hang_rank_then(rank_to_hang, seconds, timeout, length=12):
    """Every rank but `rank_to_hang` calls ring_attention; that one sleeps `seconds` instead (a
    peer that never answers). Used to show that the others stop with a TimeoutError naming it."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == rank_to_hang:
        time.sleep(seconds)
        return None
    x = torch.randn(1, 1, length, 4)
    local = shard(x, world, rank, "contiguous")
    return ring_attention(local, local, local, causal=True, timeout=timeout).sum().item()


def mismatched_shapes(bad_rank, length=12):
    """Every rank calls ring_attention; `bad_rank` passes a different head dimension."""
    rank, world = dist.get_rank(), dist.get_world_size()
    x = torch.randn(1, 2, length, 8 if rank != bad_rank else 4)
    local = shard(x, world, rank, "contiguous")
    return ring_attention(local, local, local, timeout=60.0).sum().item()


# ---------------------------------------------------------------- the command

def _status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def _reset_peak():
    """Reset the kernel's peak-resident-memory counter (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _chunk_seed(seed, stream, chunk):
    """A 32-bit seed per (seed, stream, chunk): torch's CPU generator keeps only 32 bits of a
    seed, so packing the three into the high bits would give every stream the same numbers."""
    digest = hashlib.blake2b(f"{seed},{stream},{chunk}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def random_rows(positions, batch, heads, dim, seed, stream, dtype=torch.float32, chunk=1024):
    """Rows `positions` of a (batch, heads, T, dim) standard-normal tensor that is defined chunk by
    chunk (chunk c drawn from its own generator), so a rank makes its shard, or rank 0 a few rows,
    without ever drawing all T rows at once. stream picks q, k, v or dout."""
    out = torch.empty(batch, heads, len(positions), dim, dtype=dtype)
    chunks = torch.div(positions, chunk, rounding_mode="floor")
    for c in torch.unique(chunks).tolist():
        where = (chunks == c).nonzero().view(-1)
        g = torch.Generator().manual_seed(_chunk_seed(seed, stream, c))
        block = torch.randn(batch, heads, chunk, dim, generator=g, dtype=dtype)
        out[:, :, where] = block[:, :, positions[where] - c * chunk]
    return out


def _check_rows(length, check_rows):
    if check_rows is None:
        check_rows = length if length <= 32768 else 256
    if check_rows >= length:
        return torch.arange(length)
    return torch.linspace(0, length - 1, check_rows).round().long().unique()


def _reference(length, rows, batch, heads, dim, causal, seed, dtype, compute_dtype,
               chunk_rows=256):
    """Dense SDPA output for query rows `rows` and the gradients of sum(out[rows] * dout[rows]):
    (out_rows, dq_rows, dk, dv). All rows: one SDPA call on the whole sequence (torch's fused CPU
    kernel, which never forms the T x T matrix). A subset: SDPA for chunks of those rows against
    all keys with an explicit mask, so memory is O(rows x T) per chunk. The inputs are drawn in
    `dtype` and computed in `compute_dtype` (float64 gives the exact answer to compare against)."""
    everything = torch.arange(length)

    def draw(positions, stream):
        return random_rows(positions, batch, heads, dim, seed, stream, dtype).to(compute_dtype)

    k, v = (draw(everything, s).requires_grad_() for s in (1, 2))
    if len(rows) == length:
        q = draw(everything, 0).requires_grad_()
        out = dense_reference(q, k, v, causal)
        out.backward(draw(everything, 3))
        return out.detach(), q.grad, k.grad, v.grad
    outs, dqs = [], []
    for start in range(0, len(rows), chunk_rows):
        r = rows[start:start + chunk_rows]
        q = draw(r, 0).requires_grad_()
        mask = _mask(r, everything) if causal else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out.backward(draw(r, 3))
        outs.append(out.detach())
        dqs.append(q.grad)
    return torch.cat(outs, 2), torch.cat(dqs, 2), k.grad, v.grad


def _errors(got, want):
    """(max |out error|, max |gradient error| over dq, dk, dv) of two (out, dq, dk, dv)."""
    diffs = [(a.double() - b.double()).abs().max().item() for a, b in zip(got, want)]
    return diffs[0], max(diffs[1:])


def run_rank(length, heads=4, dim=64, batch=1, causal=True, layout="zigzag", dtype="float32",
             seed=0, check_rows=None, timeout=120.0, float64_reference=False):
    """One rank's part of the command: make this rank's shard, time ring attention forward and
    backward, record the peak memory, then check against dense SDPA on rank 0. Returns the result
    dict on rank 0 (None elsewhere).

    Memory: the peak resident memory (VmHWM) minus the resident memory just before the inputs
    were made (torch and the process group excluded), per process; the raw VmHWM is kept too.
    The check compares every query row when length <= 32768, otherwise `check_rows` rows spread
    over the sequence (default 256): their output, and the gradients of sum(out * dout) with dout
    zero outside those rows, which rank 0 computes exactly from those rows alone. With
    float64_reference the reference is computed in float64, and dense SDPA in the input dtype is
    compared with it too (dense_max_abs_error, dense_grad_max_abs_error): the rounding error the
    ring's error should be held against."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch_dtype = getattr(torch, dtype)
    positions = all_positions(length, world, layout)
    mine = positions[rank]
    rows = _check_rows(length, check_rows)
    importlib.import_module(_FIRST_BACKWARD_IMPORTS)  # so the timed backward does not import it
    dist.barrier()
    baseline = _status_mb("VmRSS:")
    reset = _reset_peak()
    start = time.perf_counter()
    local = [random_rows(mine, batch, heads, dim, seed, s, torch_dtype).requires_grad_()
             for s in range(3)]
    dout = random_rows(mine, batch, heads, dim, seed, 3, torch_dtype)
    if len(rows) < length:
        dout[:, :, ~torch.isin(mine, rows)] = 0
    setup = time.perf_counter() - start
    stats = {}
    start = time.perf_counter()
    out = ring_attention(*local, causal=causal, layout=layout, timeout=timeout, stats=stats)
    forward = time.perf_counter() - start
    out.backward(dout)
    backward = time.perf_counter() - start - forward
    peak = _status_mb("VmHWM:")
    mine_stats = torch.tensor([[[[peak - baseline, peak, baseline, forward, backward, setup,
                                  *stats["pairs"]]]]], dtype=torch.float64)
    per_rank = _gather_to_zero(mine_stats, [1] * world)
    packed = torch.cat([out.detach(), *(x.grad for x in local)], dim=-1)  # (B, H, n, 4D)
    del out, local, dout
    parts = _gather_to_zero(packed, [len(p) for p in positions])
    if rank != 0:
        return None
    start = time.perf_counter()
    ring_out, ring_dq, ring_dk, ring_dv = unshard(parts, layout).split(dim, dim=-1)
    del parts
    reference = _reference(length, rows, batch, heads, dim, causal, seed, torch_dtype,
                           torch.float64 if float64_reference else torch_dtype)
    errors = _errors((ring_out[:, :, rows], ring_dq[:, :, rows], ring_dk, ring_dv), reference)
    extra = {}
    if float64_reference:
        dense = _reference(length, rows, batch, heads, dim, causal, seed, torch_dtype, torch_dtype)
        extra = dict(zip(("dense_max_abs_error", "dense_grad_max_abs_error"),
                         _errors(dense, reference)))
    check_seconds = time.perf_counter() - start
    table = torch.cat([p.view(-1) for p in per_rank]).view(world, -1)
    where = "the whole sequence" if len(rows) == length else \
        f"{len(rows)} query rows spread over the sequence"
    return {
        "length": length, "world": world, "layout": layout, "causal": causal, "batch": batch,
        "heads": heads, "dim": dim, "dtype": dtype, "backend": dist.get_backend(),
        "max_abs_error": errors[0], "grad_max_abs_error": errors[1], **extra,
        "checked_rows": len(rows),
        "reference": f"torch SDPA in {'float64' if float64_reference else dtype} on {where}",
        "peak_mb_per_rank": [round(x, 1) for x in table[:, 0].tolist()],
        "peak_mb": round(table[:, 0].max().item(), 1),
        "peak_rss_mb_per_rank": [round(x, 1) for x in table[:, 1].tolist()],
        "baseline_rss_mb_per_rank": [round(x, 1) for x in table[:, 2].tolist()],
        "peak_reset": reset,
        "forward_seconds": round(table[:, 3].max().item(), 3),
        "backward_seconds": round(table[:, 4].max().item(), 3),
        "seconds": round((table[:, 3] + table[:, 4]).max().item(), 3),
        "check_seconds": round(check_seconds, 3),
        "pairs_per_step": table[:, 6:].long().tolist(),
        "threads_per_rank": torch.get_num_threads(),
    }


def run(world, length, heads=4, dim=64, batch=1, causal=True, layout="zigzag", dtype="float32",
        seed=0, check_rows=None, timeout=120.0, backend="gloo", threads=None,
        float64_reference=False):
    """Start `world` processes on this machine and run run_rank on each (what
    `python -m lcviz.ring --world N ...` does); returns rank 0's result dict."""
    validate_run(world, length, heads, dim, batch, layout, dtype)
    started = time.perf_counter()
    result = launch(run_rank, world, length, heads, dim, batch, causal, layout, dtype, seed,
                    check_rows, timeout, float64_reference, backend=backend, timeout=timeout,
                    threads=threads)[0]
    result["total_seconds"] = round(time.perf_counter() - started, 3)
    return result


def validate_run(world, length, heads, dim, batch, layout, dtype):
    check_int("length", length, minimum=1)
    check_int("heads", heads, minimum=1)
    check_int("dim", dim, minimum=1)
    check_int("batch", batch, minimum=1)
    check_choice("dtype", dtype, ("float32", "float64"))
    _check_layout(length, world, layout)


# ---------------------------------------------------------------- benchmark

# glibc keeps freed blocks below its (self-raising) mmap threshold in the heap, so a process's
# peak RSS also counts memory it has freed. With a fixed threshold every large tensor is mmapped
# and returned on free: the peak then follows the tensors alive at once.
LIVE_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _dense_rank(length, heads, dim, batch, causal, kernel, threads):
    """One process: dense SDPA forward + backward on the whole sequence, peak memory as in
    run_rank (inputs included, torch excluded). kernel "fused" (torch's CPU flash kernel, the
    default for fp32 without a mask) or "math" (forms the (B, H, T, T) scores and weights)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    length, heads, dim, batch, threads = map(int, (length, heads, dim, batch, threads))
    torch.set_num_threads(threads)
    importlib.import_module(_FIRST_BACKWARD_IMPORTS)
    everything = torch.arange(length)
    baseline = _status_mb("VmRSS:")
    _reset_peak()
    q, k, v = (random_rows(everything, batch, heads, dim, 0, s).requires_grad_() for s in range(3))
    dout = random_rows(everything, batch, heads, dim, 0, 3)
    backend = SDPBackend.FLASH_ATTENTION if kernel == "fused" else SDPBackend.MATH
    start = time.perf_counter()
    with sdpa_kernel(backend):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal == "True")
        forward = time.perf_counter() - start
        out.backward(dout)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM:")
    return {"length": length, "kernel": kernel, "peak_mb": round(peak - baseline, 1),
            "peak_rss_mb": round(peak, 1), "baseline_rss_mb": round(baseline, 1),
            "forward_seconds": round(forward, 3), "seconds": round(seconds, 3), "threads": threads}


def _subprocess_json(args, env=None, timeout=7200):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                            timeout=timeout, env={**os.environ, **(env or {})})
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")] or lines[-5:]
        raise RuntimeError(f"python {' '.join(args)} failed: {' | '.join(errors)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_dense(length, heads=4, dim=64, batch=1, causal=True, kernel="fused", env=None,
                  threads=None):
    """_dense_rank in a fresh Python process (its own peak memory)."""
    check_choice("kernel", kernel, ("fused", "math"))
    threads = threads or os.cpu_count() or 1
    code = ("import json, sys; from lcviz.ring import _dense_rank; "
            "print(json.dumps(_dense_rank(*sys.argv[1:])))")
    return _subprocess_json(["-c", code, str(length), str(heads), str(dim), str(batch),
                             str(bool(causal)), kernel, str(threads)], env)


def measure_ring(world, length, heads=4, dim=64, batch=1, causal=True, layout="zigzag",
                 check_rows=None, float64_reference=False, env=None):
    """`python -m lcviz.ring --world W ...` in a fresh process; its JSON line as a dict."""
    args = ["-m", "lcviz.ring", "--world", str(world), "--length", str(length), "--heads",
            str(heads), "--dim", str(dim), "--batch", str(batch), "--layout", layout,
            "--timeout", "3600"] + (["--causal"] if causal else []) + (
        ["--check-rows", str(check_rows)] if check_rows else []) + (
        ["--float64-reference"] if float64_reference else [])
    return _subprocess_json(args, env)


def _line(points):
    """(intercept, slope) of the straight line through two (x, y) points."""
    (x0, y0), (x1, y1) = points
    slope = (y1 - y0) / (x1 - x0)
    return y0 - slope * x0, slope


def machine_megabytes():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemTotal:")) / 1024


def benchmark(length=16384, world=4, heads=4, dim=64, layout="zigzag", math_lengths=(1024, 2048),
              far_world=64, goal=0.3):
    """Ring attention against dense SDPA at T=length, H=heads, D=dim, fp32, causal, W=world.

    Measured, each in a fresh process: the ring at T and T/2 (errors against float64 SDPA, peak
    memory per rank, seconds), dense SDPA forward+backward with torch's fused CPU kernel at T and
    T/2, dense SDPA with the math kernel (the T x T scores) at two small lengths; the ring and the
    fused kernel again with a fixed glibc mmap threshold, so the peaks follow live tensors.
    summarize() derives the rest from straight-line fits through the measured points."""
    check_int("length", length, minimum=16)
    _check_layout(length, world, layout)
    half = length // 2
    measured = {
        "length": length, "world": world, "heads": heads, "dim": dim, "batch": 1,
        "dtype": "float32", "causal": True, "layout": layout,
        "ring": {"default": [measure_ring(world, half, heads, dim, layout=layout, check_rows=64),
                             measure_ring(world, length, heads, dim, layout=layout,
                                          float64_reference=True)],
                 "live": [measure_ring(world, n, heads, dim, layout=layout, check_rows=64,
                                       env=LIVE_ALLOCATOR) for n in (half, length)]},
        "dense_fused": {"default": [measure_dense(n, heads, dim) for n in (half, length)],
                        "live": [measure_dense(n, heads, dim, env=LIVE_ALLOCATOR)
                                 for n in (half, length)]},
        "dense_math": [measure_dense(n, heads, dim, kernel="math") for n in math_lengths]}
    return summarize(measured, far_world, goal)


def summarize(measured, far_world=64, goal=0.3):
    """The benchmark's measured rows plus what follows from them on this machine's memory M:
    per rank the ring needs a + b T/W MB (line through its two lengths), dense fused SDPA
    c + d T, dense SDPA that stores the scores e T^2 + f (line in T^2). From these: the largest
    length that fits (dense; the ring with all W ranks here, or one rank per machine like this),
    the memory per rank W=far_world would need at the same T, and the smallest W whose peak per
    rank is at most `goal` x dense fused SDPA's."""
    length, world = measured["length"], measured["world"]
    total = machine_megabytes()
    rings, dense = measured["ring"], measured["dense_fused"]
    main = rings["default"][1]
    runtime = max(main["baseline_rss_mb_per_rank"])  # torch + gloo per process, before inputs
    spare = total - runtime
    f, e = _line([(r["length"] ** 2, r["peak_mb"]) for r in measured["dense_math"]])
    math_at_length = e * length ** 2 + f
    fits = {}
    for allocator in ("default", "live"):
        a, b = _line([(r["length"] / world, r["peak_mb"]) for r in rings[allocator]])  # per rank
        c, d = _line([(r["length"], r["peak_mb"]) for r in dense[allocator]])
        room = goal * (c + d * length) - a  # what the T/W term may use under the goal
        fits[allocator] = {
            "ring_mb_per_rank": {"intercept": a, "per_token_of_shard": b},
            "dense_fused_mb": {"intercept": c, "per_token": d},
            "largest_length": {
                "dense SDPA storing the T x T scores (math kernel), one process":
                    int(math.sqrt((spare - f) / e)),
                "dense fused SDPA, one process": int((spare - c) / d),
                f"ring W={world}, all ranks on this machine":
                    int((total / world - runtime - a) * world / b),
                f"ring W={world}, one rank per machine like this": int((spare - a) * world / b),
                f"ring W={far_world}, one rank per machine like this":
                    int((spare - a) * far_world / b)},
            f"ring_W{far_world}_mb_per_rank_at_length": a + b * length / far_world,
            "ratio_to_dense_fused": rings[allocator][1]["peak_mb"] / dense[allocator][1]["peak_mb"],
            "smallest_world_for_goal": math.ceil(b * length / room) if room > 0 else None}
    work = pairs_per_step(length, world, measured["layout"]).sum(1)
    return {
        **measured, "machine_mb": round(total), "goal_ratio_to_dense": goal,
        "memory": "peak resident memory (VmHWM, reset just before the inputs are made) minus the "
                  "resident memory at that moment, per process: inputs, outputs, gradients and "
                  "buffers count, the torch runtime does not (runtime_mb_per_process)",
        "runtime_mb_per_process": runtime,
        "dense_math_mb_at_length": round(math_at_length),
        "ratio_to_dense_math": main["peak_mb"] / math_at_length,
        "fits": fits,
        "max_abs_error": main["max_abs_error"], "grad_max_abs_error": main["grad_max_abs_error"],
        "dense_max_abs_error": main["dense_max_abs_error"],
        "dense_grad_max_abs_error": main["dense_grad_max_abs_error"],
        "seconds": main["seconds"], "dense_seconds": dense["default"][1]["seconds"],
        "seconds_per_length_squared": main["seconds"] / length ** 2,
        "work_per_rank": work.tolist(),
        "limits": "All ranks share 2 CPU cores: their blocks are not computed in parallel, so the "
                  "seconds show neither the W-fold speed-up nor communication hidden behind "
                  "compute (loopback gloo). Only exactness and memory per rank carry over.",
    }


def _parser():
    parser = argparse.ArgumentParser(prog="python -m lcviz.ring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=int, help="processes to start here (not under torchrun); "
                                                  "default 4")
    parser.add_argument("--length", type=int, default=16384, help="sequence length T")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=64, help="head dimension D")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--causal", action="store_true", help="causal mask (default: none)")
    parser.add_argument("--layout", choices=LAYOUTS, default="contiguous")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-rows", type=int, help="query rows checked against dense SDPA "
                        "(default: all up to T=32768, else 256)")
    parser.add_argument("--float64-reference", action="store_true", help="check against SDPA "
                        "in float64, and report float32 SDPA's own error against it")
    parser.add_argument("--backend", default="gloo", help="torch.distributed backend")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the group to form and for each peer")
    parser.add_argument("--threads", type=int, help="torch threads per rank (default: cores / "
                                                    "processes on this machine)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    try:
        if under_torchrun:
            world = int(os.environ["WORLD_SIZE"])
            if args.world is not None and args.world != world:
                raise ValueError(f"--world {args.world} disagrees with torchrun's WORLD_SIZE "
                                 f"{world}: drop --world under torchrun")
            validate_run(world, args.length, args.heads, args.dim, args.batch, args.layout,
                         args.dtype)
            local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local))
            started = time.perf_counter()
            init_group(args.backend, args.timeout)
            result = run_rank(args.length, args.heads, args.dim, args.batch, args.causal,
                              args.layout, args.dtype, args.seed, args.check_rows, args.timeout,
                              args.float64_reference)
            if result is not None:
                result["total_seconds"] = round(time.perf_counter() - started, 3)
            dist.destroy_process_group()
        else:
            # the new processes import the worker functions by name: lcviz.ring's, not __main__'s
            result = importlib.import_module("lcviz.ring").run(args.world or 4, args.length, args.heads, args.dim, args.batch,
                              args.causal, args.layout, args.dtype, args.seed, args.check_rows,
                              args.timeout, args.backend, args.threads, args.float64_reference)
    except (ValueError, TimeoutError, ConnectionError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        if under_torchrun:
            os._exit(1)
        return 1
    if result is not None:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
