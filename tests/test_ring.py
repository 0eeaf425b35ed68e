"""Ring attention: layouts, per-rank work, the merge, the one-process ring and the real one over
gloo process groups (started here on 127.0.0.1), against dense SDPA."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lcviz import ring
from lcviz.attention import reference_attention

ROOT = Path(__file__).resolve().parent.parent


def qkv(length, batch=2, heads=3, dim=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, generator=g, dtype=dtype) for _ in range(4)]


# ---------------------------------------------------------------- layouts and work counts

@pytest.mark.parametrize("length", [1, 5, 16, 37])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("layout", ring.LAYOUTS)
def test_layouts_partition_the_sequence(length, world, layout):
    if world > length:
        with pytest.raises(ValueError, match="world size .* larger than the length"):
            ring.shard_positions(length, world, 0, layout)
        return
    positions = ring.all_positions(length, world, layout)
    assert torch.equal(torch.sort(torch.cat(positions)).values, torch.arange(length))
    assert all(len(p) >= 1 and torch.equal(p, torch.sort(p).values) for p in positions)
    sizes = [len(p) for p in positions]
    assert max(sizes) - min(sizes) <= (2 if layout == "zigzag" else 1)
    x = torch.randn(1, 2, length, 3)
    assert torch.equal(ring.unshard([ring.shard(x, world, r, layout) for r in range(world)],
                                    layout), x)


def test_layouts_are_the_published_ones():
    T, W = 16, 4
    assert ring.shard_positions(T, W, 1, "contiguous").tolist() == [4, 5, 6, 7]
    assert ring.shard_positions(T, W, 1, "striped").tolist() == [1, 5, 9, 13]  # i mod W
    assert ring.shard_positions(T, W, 1, "zigzag").tolist() == [2, 3, 12, 13]  # chunks 1, 6
    assert ring.ring_schedule(3).tolist() == [[0, 2, 1], [1, 0, 2], [2, 1, 0]]


def brute_force_pairs(length, world, layout, causal):
    allowed = torch.ones(length, length, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    positions = ring.all_positions(length, world, layout)
    counts = torch.zeros(world, world, dtype=torch.long)
    for r in range(world):
        for s in range(world):
            src = (r - s) % world
            counts[r, s] = allowed[positions[r]][:, positions[src]].sum()
    return counts


@pytest.mark.parametrize("layout", ring.LAYOUTS)
@pytest.mark.parametrize("causal", [True, False])
def test_pairs_per_step_equals_brute_force(layout, causal):
    for length in (7, 16, 37, 64):
        for world in (1, 2, 3, 4, 5, 8):
            if world <= length:
                assert torch.equal(ring.pairs_per_step(length, world, layout, causal),
                                   brute_force_pairs(length, world, layout, causal))


def test_contiguous_is_unbalanced_zigzag_and_striped_are_flat():
    T, W = 4096, 8
    per_rank = {layout: ring.pairs_per_step(T, W, layout).sum(1).double()
                for layout in ring.LAYOUTS}
    spread = {layout: (c.max() / c.min()).item() for layout, c in per_rank.items()}
    assert spread["contiguous"] > 10  # the last rank does ~2W - 1 times rank 0's work
    assert spread["zigzag"] == 1.0  # T divisible by 2W: exactly equal
    assert spread["striped"] < 1.01
    steps = ring.pairs_per_step(T, W, "contiguous")
    assert (steps[:, 1:] == 0).sum() == W * (W - 1) // 2  # future blocks: nothing to compute
    # zigzag: every step after the first costs every rank the same (2 full chunk-by-chunk blocks)
    zigzag = ring.pairs_per_step(T, W, "zigzag")
    c = T // (2 * W)
    assert (zigzag[:, 1:] == 2 * c * c).all() and (zigzag[:, 0] == 2 * c * c + c).all()


# ---------------------------------------------------------------- the merge and one block

def test_merge_of_blocks_equals_attention_over_all_keys():
    q, k, v, _ = qkv(12)
    out, lse = ring.block_attention(q, k[:, :, :5], v[:, :, :5])
    block_out, block_lse = ring.block_attention(q, k[:, :, 5:], v[:, :, 5:])
    merged, merged_lse = ring.merge(out, lse, block_out, block_lse)
    scores = q @ k.transpose(-1, -2) / 8 ** 0.5
    torch.testing.assert_close(merged, F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-12)
    torch.testing.assert_close(merged_lse, torch.logsumexp(scores, -1), rtol=0, atol=1e-12)
    # the sigmoid form of ring-flash-attention is the same update
    sig_out = out - torch.sigmoid(block_lse - lse)[..., None] * (out - block_out)
    sig_lse = lse - F.logsigmoid(lse - block_lse)
    torch.testing.assert_close(sig_out, merged, rtol=0, atol=1e-12)
    torch.testing.assert_close(sig_lse, merged_lse, rtol=0, atol=1e-12)


def test_naive_merge_overflows_where_the_stable_one_does_not():
    q, k, v, _ = qkv(8, dtype=torch.float32)
    q = q * 40  # scores of a few hundred: e^score is inf in fp32
    parts = [ring.block_attention(q, k[:, :, s], v[:, :, s]) for s in (slice(0, 4), slice(4, 8))]
    naive, _ = ring.naive_merge(*parts[0], *parts[1])
    stable, _ = ring.merge(*parts[0], *parts[1])
    assert torch.isnan(naive).any()
    assert torch.isfinite(stable).all()
    torch.testing.assert_close(stable, F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-5)


def test_merge_keeps_rows_that_saw_nothing():
    out, lse = torch.zeros(1, 1, 2, 3), torch.full((1, 1, 2), float("-inf"))
    new_out, new_lse = ring.merge(out, lse, out, lse)
    assert torch.equal(new_out, out) and torch.isneginf(new_lse).all()
    block = torch.ones(1, 1, 2, 3)
    new_out, new_lse = ring.merge(out, lse, block, torch.tensor([[[0.5, float("-inf")]]]))
    assert new_out[0, 0, 0].tolist() == [1.0] * 3 and new_out[0, 0, 1].tolist() == [0.0] * 3


@pytest.mark.parametrize("max_scores", [1, 40, ring.MAX_SCORES])
def test_block_attention_and_its_backward(max_scores):
    q, k, v, dout = qkv(9)
    q_pos, k_pos = torch.tensor([2, 3, 5, 7, 8, 11, 12, 13, 20]), torch.arange(4, 13)
    k, v = k[:, :, :9], v[:, :, :9]
    mask = k_pos[None, :] <= q_pos[:, None]
    out, lse = ring.block_attention(q, k, v, q_pos, k_pos, causal=True, max_scores=max_scores)
    seen = mask.any(-1)  # queries 2 and 3 see no key of this block: out 0, lse -inf
    ref, _ = reference_attention(q[:, :, seen], k, v, mask[seen])
    torch.testing.assert_close(out[:, :, seen], ref, rtol=0, atol=1e-12)
    assert (out[:, :, ~seen] == 0).all() and torch.isneginf(lse[:, :, ~seen]).all()
    # backward of a block that is the whole sequence: equals autograd through reference attention
    full = [x.clone().requires_grad_() for x in (q, k, v)]
    causal_mask = torch.ones(9, 9, dtype=torch.bool).tril()
    ref_out, _ = reference_attention(*full, causal_mask)
    ref_out.backward(dout)
    out, lse = ring.block_attention(q, k, v, causal=True, max_scores=max_scores)
    grads = ring.block_attention_backward(dout, q, k, v, lse, (dout * out).sum(-1),
                                          causal=True, max_scores=max_scores)
    for got, want in zip(grads, full):
        torch.testing.assert_close(got, want.grad, rtol=0, atol=1e-12)


def test_block_attention_rejects_bad_input():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="agree in B, H, D"):
        ring.block_attention(q, torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="need q_pos and k_pos"):
        ring.block_attention(q, q[:, :, :3], q[:, :, :3], causal=True)
    with pytest.raises(ValueError, match="layout must be one of"):
        ring.shard_positions(8, 2, 0, "diagonal")
    with pytest.raises(ValueError, match="rank must be <= 1"):
        ring.shard_positions(8, 2, 2)


# ---------------------------------------------------------------- the ring in one process

@pytest.mark.parametrize("layout", ring.LAYOUTS)
@pytest.mark.parametrize("causal", [True, False])
def test_simulated_ring_equals_dense_attention(layout, causal):
    for length in (1, 6, 13):
        for world in (1, 2, 3, 4, 5):
            if world > length:
                continue
            q, k, v, dout = qkv(length, seed=length * 10 + world)
            full = [x.clone().requires_grad_() for x in (q, k, v)]
            ref = F.scaled_dot_product_attention(*full, is_causal=causal)
            ref.backward(dout)
            sim_in = [x.clone().requires_grad_() for x in (q, k, v)]
            out = ring.simulate_ring(*sim_in, world, causal, layout)
            out.backward(dout)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
            for got, want in zip(sim_in, full):
                torch.testing.assert_close(got.grad, want.grad, rtol=0, atol=1e-12)


def test_simulated_ring_trains_a_parameter():
    """Gradients through the ring move a projection the same way as through dense attention."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 10, 4)
    losses = {}
    for name, attend in (("dense", lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True)), ("ring", lambda q, k, v: ring.simulate_ring(
                q, k, v, 3, True, "striped"))):
        weight = torch.nn.Parameter(torch.eye(4))
        opt = torch.optim.SGD([weight], lr=0.1)
        for _ in range(5):
            y = attend(x @ weight, x, x)
            loss = (y - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[name] = loss.item()
    assert losses["ring"] == pytest.approx(losses["dense"], abs=1e-6)


# ---------------------------------------------------------------- the real ring (gloo)

CASES = [(length, causal, layout, 2, 2, 8, "float32", seed)
         for seed, (length, causal, layout) in enumerate(
             (length, causal, layout) for length in (24, 37) for causal in (True, False)
             for layout in ring.LAYOUTS)]
CASES.append((19, True, "zigzag", 1, 2, 4, "float64", 99))


@pytest.fixture(scope="module")
def distributed_rows():
    """One group of 4 processes; rings of 1, 2, 3 and 4 ranks (subgroups) run every case."""
    return ring.launch(ring.check_cases, 4, CASES, [1, 2, 3, 4], 30.0, timeout=60.0)[0]


def test_distributed_ring_equals_dense_attention(distributed_rows):
    assert len(distributed_rows) == 4 * len(CASES)
    assert {row["world"] for row in distributed_rows} == {1, 2, 3, 4}
    for row in distributed_rows:
        tolerance = 1e-12 if row["dtype"] == "float64" else 1e-5
        assert row["max_abs_error"] <= tolerance, row
        assert row["grad_max_abs_error"] <= tolerance, row


def test_simulation_equals_distributed_ring(distributed_rows):
    for row in distributed_rows:
        assert row["simulation_difference"] == 0.0, row  # same arithmetic in the same order


def test_distributed_work_per_step_equals_brute_force(distributed_rows):
    for row in distributed_rows:
        expected = brute_force_pairs(row["length"], row["world"], row["layout"], row["causal"])
        assert row["pairs"] == expected.tolist(), row


def test_hung_peer_times_out_naming_the_rank():
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="rank 1 did not answer within 1.5 s"):
        ring.launch(ring.hang_rank_then, 3, 1, 60.0, 1.5, timeout=30.0)
    assert time.perf_counter() - start < 30  # the sleeping rank was stopped, nothing hung


def test_mismatched_shapes_are_a_clear_error_on_every_rank():
    with pytest.raises(ValueError, match="ranks disagree on D: rank 0 has 8, rank 1 has 4"):
        ring.launch(ring.mismatched_shapes, 2, 1, timeout=30.0)


def test_world_larger_than_length_is_refused_before_starting():
    with pytest.raises(ValueError, match="world size 5 is larger than the length 4"):
        ring.run(5, 4)
    assert ring.main(["--world", "5", "--length", "4"]) == 1


def test_ring_attention_needs_a_process_group():
    x = torch.randn(1, 1, 4, 2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        ring.ring_attention(x, x, x)


def test_command_prints_one_json_line(capsys):
    assert ring.main(["--world", "2", "--length", "50", "--heads", "2", "--dim", "8",
                      "--causal", "--layout", "striped", "--timeout", "30"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["checked_rows"] == 50 and result["world"] == 2
    assert result["max_abs_error"] <= 1e-5 and result["grad_max_abs_error"] <= 1e-5
    assert len(result["peak_mb_per_rank"]) == 2 and result["seconds"] > 0
    assert result["pairs_per_step"] == ring.pairs_per_step(50, 2, "striped").tolist()


def test_checking_a_subset_of_rows():
    result = ring.run(3, 61, heads=2, dim=8, causal=True, layout="zigzag", check_rows=7,
                      timeout=30.0)
    assert result["checked_rows"] == 7 and "7 query rows" in result["reference"]
    assert result["max_abs_error"] <= 1e-5 and result["grad_max_abs_error"] <= 1e-5


def test_under_torchrun():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = str(ROOT)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "lcviz.ring",
         "--length", "33", "--heads", "2", "--dim", "8", "--causal", "--layout", "zigzag",
         "--timeout", "60"], check=False, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["world"] == 2 and last["max_abs_error"] <= 1e-5
    assert last["grad_max_abs_error"] <= 1e-5


# ---------------------------------------------------------------- inputs, checkers, figures

def test_random_rows_are_one_tensor_drawn_chunk_by_chunk():
    everything = torch.arange(2500)
    full = [ring.random_rows(everything, 1, 2, 3, seed=4, stream=s) for s in range(4)]
    assert all(not torch.equal(full[0], other) for other in full[1:])  # q, k, v, dout differ
    rows = torch.tensor([3, 1023, 1024, 2499])
    assert torch.equal(ring.random_rows(rows, 1, 2, 3, seed=4, stream=1), full[1][:, :, rows])
    assert not torch.equal(ring.random_rows(rows, 1, 2, 3, seed=5, stream=1), full[1][:, :, rows])


def stub(*args):
    raise NotImplementedError


def test_merge_checker(capsys):
    from lcviz import checks

    assert checks.check_ring_merge(ring.merge).passed
    assert checks.check_ring_merge(stub).status == "not attempted"
    result = checks.check_ring_merge(ring.naive_merge)  # e^lse overflows
    assert result.status == "fail" and "nan" in result.message

    def plain_exp_weights(out, lse, block_out, block_lse):  # stable, but 0/0 on empty rows
        new = torch.logaddexp(lse, block_lse)
        return (out * torch.exp(lse - new)[..., None]
                + block_out * torch.exp(block_lse - new)[..., None]), new
    result = checks.check_ring_merge(plain_exp_weights)
    assert "4 of 5 cases pass" in result.message

    def forgot_lse(out, lse, block_out, block_lse):
        return ring.merge(out, lse, block_out, block_lse)[0], torch.maximum(lse, block_lse)
    assert "lse: largest difference" in checks.check_ring_merge(forgot_lse).message


def test_zigzag_work_checker():
    from lcviz import checks

    assert checks.check_zigzag_work(lambda t, w: ring.pairs_per_step(t, w, "zigzag")).passed
    assert checks.check_zigzag_work(stub).status == "not attempted"

    def no_diagonal_extra(length, world):  # 2c^2 everywhere: forgets the c diagonal pairs
        c = length // (2 * world)
        return [[2 * c * c] * world for _ in range(world)]
    result = checks.check_zigzag_work(no_diagonal_extra)
    assert result.status == "fail" and "step 0" in result.message
    contiguous = checks.check_zigzag_work(lambda t, w: ring.pairs_per_step(t, w, "contiguous"))
    assert not contiguous.passed


def test_striped_mask_checker():
    from lcviz import checks

    def right(n_queries, n_keys, rank, source, world):
        a, b = torch.arange(n_queries)[:, None], torch.arange(n_keys)[None, :]
        return b <= a if source <= rank else b < a
    assert checks.check_striped_mask(right).passed
    plain = checks.check_striped_mask(lambda nq, nk, r, s, w: torch.ones(nq, nk).tril().bool())
    assert plain.status == "fail" and "4 of 6 cases pass" in plain.message  # src > rank wrong
    assert checks.check_striped_mask(stub).status == "not attempted"


def test_figures():
    from matplotlib.figure import Figure
    from plotly.graph_objects import Figure as PlotlyFigure

    from lcviz import plots

    for world, step in ((1, 0), (4, 2), (8, 7)):
        assert isinstance(plots.ring_schedule(world, step), Figure)
    with pytest.raises(ValueError, match="step must be <= 3"):
        plots.ring_schedule(4, 4)
    assert isinstance(plots.ring_ownership(32, 4), Figure)
    assert isinstance(plots.ring_balance(64, 4), Figure)
    work = plots.ring_work(ring.pairs_per_step(32, 4, "striped"), step=1)
    assert isinstance(work, PlotlyFigure) and work.data[0].z.shape == (4, 4)
    pairs = plots.ring_step_pairs(12, 3, "zigzag", step=1)
    z = pairs.data[0].z
    assert isinstance(pairs, PlotlyFigure)
    # every allowed pair is computed at exactly one step: counting over steps gives the mask
    computed = sum((plots.ring_step_pairs(12, 3, "zigzag", s).data[0].z >= 0) for s in range(3))
    assert (computed == torch.ones(12, 12).tril().numpy()).all() and np.isnan(z[0, 1])
    assert isinstance(plots.ring_memory([1, 2, 4], [100, 55, 30], dense_mb=90), Figure)


# ---------------------------------------------------------------- app page

def _page():
    from lcviz.app import state
    from lcviz.app.pages import ring as page

    with state.guarded():
        page.render()


def run_page(**params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page, default_timeout=120)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


@pytest.mark.skipif(not hasattr(__import__("lcviz.app.state", fromlist=["plot"]), "plot"),
                    reason="the ring page draws with lcviz.app.state.plot, which lands with the app rework")
def test_page_shows_the_work_of_each_layout():
    at = run_page(world=4, layout="contiguous", causal="causal", length=32, step=1)
    for layout in ring.LAYOUTS:
        at.selectbox(key="layout").set_value(layout).run()
        assert not at.exception and not at.error
        counts = ring.pairs_per_step(32, 4, layout)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["pairs computed at step 1"] == f"{int(counts[:, 1].sum()):,}"
        totals = counts.sum(1)
        assert metrics["busiest / idlest rank (whole ring)"] == \
            f"{(totals.max() / totals.min()).item():.2f}×"


@pytest.mark.skipif(not hasattr(__import__("lcviz.app.state", fromlist=["plot"]), "plot"),
                    reason="the ring page draws with lcviz.app.state.plot, which lands with the app rework")
def test_page_refuses_more_ranks_than_tokens_and_survives_one_rank():
    at = run_page(world=6, length=4)
    assert not at.exception
    assert "every rank needs at least one token" in at.error[0].value
    at = run_page(world=1, length=4, causal="bidirectional")
    assert not at.exception and not at.error
