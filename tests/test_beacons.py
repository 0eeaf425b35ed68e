import pytest
import torch

import lcviz
from lcviz.beacons import (
    BeaconTransformer,
    beacon_layout,
    beacon_mask,
    kv_entries,
)
from lcviz.model import ModelConfig, TinyTransformer


def brute_force_mask(n_tokens, chunk, ratio, coverage):
    """Build the interleaved sequence entry by entry, then decide every pair by the rule."""
    entries = []  # (is_beacon, chunk index, index inside the chunk: raw token i or beacon j)
    for start in range(0, n_tokens, chunk):
        c, size = start // chunk, min(chunk, n_tokens - start)
        entries += [(False, c, i) for i in range(size)]
        if size == chunk and start + chunk < n_tokens:
            entries += [(True, c, j) for j in range(chunk // ratio)]
    S = len(entries)
    mask = torch.zeros(S, S, dtype=torch.bool)
    for q, (q_beacon, q_chunk, q_index) in enumerate(entries):
        for k, (k_beacon, k_chunk, k_index) in enumerate(entries[:q + 1]):
            if not k_beacon:  # raw keys: own chunk only; beacon j: its first (j + 1) * ratio
                stepwise_ok = not q_beacon or coverage == "full" or k_index < (q_index + 1) * ratio
                mask[q, k] = k_chunk == q_chunk and stepwise_ok
            else:
                mask[q, k] = k_chunk < q_chunk or (q_beacon and k_chunk == q_chunk)
    return mask


@pytest.mark.parametrize("coverage", ["stepwise", "full"])
@pytest.mark.parametrize("n_tokens, chunk, ratio", [(16, 4, 2), (17, 4, 4), (40, 8, 2), (9, 3, 1),
                                                    (5, 8, 2), (64, 16, 16), (48, 16, 4)])
def test_beacon_mask_equals_brute_force_and_hides_earlier_raw_tokens(n_tokens, chunk, ratio, coverage):
    layout = beacon_layout(n_tokens, chunk, ratio, coverage)
    mask = beacon_mask(layout)
    assert torch.equal(mask, brute_force_mask(n_tokens, chunk, ratio, coverage))
    raw = ~layout.is_beacon
    earlier_raw = raw[None, :] & (layout.chunk_of[None, :] < layout.chunk_of[:, None])
    assert not (mask & earlier_raw).any()  # nobody sees a raw token of an earlier chunk
    assert len(layout.raw_index) == n_tokens and mask.diagonal().all()


@pytest.mark.parametrize("n_tokens, chunk, ratio", [(16, 4, 2), (17, 4, 4), (40, 8, 1), (64, 16, 16)])
def test_raw_tokens_keep_their_positions_and_each_beacon_sits_on_its_group(n_tokens, chunk, ratio):
    layout = beacon_layout(n_tokens, chunk, ratio)
    assert torch.equal(layout.positions[layout.raw_index], torch.arange(n_tokens))
    for c in layout.chunk_of[layout.is_beacon].unique().tolist():
        beacons = layout.positions[layout.is_beacon & (layout.chunk_of == c)]
        # the last token of each group of `ratio`: c*chunk + ratio - 1, ... , (c+1)*chunk - 1
        assert beacons.tolist() == [c * chunk + ratio * (j + 1) - 1 for j in range(chunk // ratio)]


@pytest.mark.parametrize("n_tokens, chunk, ratio", [(16, 4, 2), (17, 4, 4), (128, 16, 8), (7, 8, 2),
                                                    (129, 16, 2)])
def test_kv_entries_equal_the_keys_the_last_token_sees(n_tokens, chunk, ratio):
    layout = beacon_layout(n_tokens, chunk, ratio)
    last_raw = layout.raw_index[-1]
    assert beacon_mask(layout)[last_raw].sum().item() == kv_entries(n_tokens, chunk, ratio)
    finished = (n_tokens - 1) // chunk
    assert kv_entries(n_tokens, chunk, ratio) == finished * chunk // ratio + n_tokens - finished * chunk


@pytest.mark.parametrize("chunk, ratio, words", [
    (16, 0, "ratio must be >= 1"), (16, 32, "ratio must be <= 16"), (16, 3, "must divide the chunk"),
    (16, 2.5, "ratio must be an integer"), (0, 1, "chunk must be >= 1")])
def test_bad_ratios_raise_clear_errors(chunk, ratio, words):
    with pytest.raises(ValueError, match=words):
        beacon_layout(32, chunk, ratio)


def test_bad_coverage_and_a_missing_ratio_raise_clear_errors():
    with pytest.raises(ValueError, match="coverage must be one of 'stepwise', 'full'; got 'all'"):
        beacon_layout(32, 16, 4, coverage="all")
    config = ModelConfig(vocab_size=20, block_size=64, n_layer=1, n_head=2, n_embd=16, pos="rope")
    with pytest.raises(ValueError, match="needs a condensing ratio"):
        BeaconTransformer(config, chunk=8)(torch.zeros(1, 12, dtype=torch.long))


def test_stepwise_beacons_cover_growing_prefixes_of_their_chunk():
    layout = beacon_layout(32, 8, 2)  # chunk 0: raw 0..7, beacons 8..11, then raw 12..19 ...
    mask = beacon_mask(layout)
    assert [int(mask[8 + j, :8].sum()) for j in range(4)] == [2, 4, 6, 8]
    full = beacon_mask(beacon_layout(32, 8, 2, coverage="full"))
    assert [int(full[8 + j, :8].sum()) for j in range(4)] == [8, 8, 8, 8]


def test_beacon_model_is_causal_and_each_ratio_runs():
    lcviz.seed_everything(0)
    config = ModelConfig(vocab_size=20, block_size=64, n_layer=2, n_head=2, n_embd=16, pos="rope")
    model = BeaconTransformer(config, chunk=8).eval()
    idx = torch.randint(0, 20, (2, 30))
    for ratio in (1, 2, 4, 8):
        logits, _ = model(idx, ratio=ratio)
        assert logits.shape == (2, 30, 20)
        changed = idx.clone()
        changed[:, 20:] = (changed[:, 20:] + 1) % 20
        torch.testing.assert_close(model(changed, ratio=ratio)[0][:, :20], logits[:, :20])
    # inside the first chunk there are no beacons yet: the same as the plain model
    plain = TinyTransformer(config).eval()
    plain.load_state_dict(model.model.state_dict())
    torch.testing.assert_close(model(idx[:, :8], ratio=2)[0], plain(idx[:, :8])[0])


@pytest.mark.parametrize("n_tokens, ratio", [(30, 1), (30, 2), (32, 4), (5, 2), (41, 8)])
def test_streaming_with_a_beacon_only_cache_gives_the_masked_model_s_logits(n_tokens, ratio):
    from lcviz.beacons import stream

    lcviz.seed_everything(0)
    config = ModelConfig(vocab_size=20, block_size=64, n_layer=3, n_head=2, n_embd=16, pos="rope")
    model = BeaconTransformer(config, chunk=8).eval()
    idx = torch.randint(0, 20, (2, n_tokens))
    logits, cached = stream(model, idx, ratio)
    torch.testing.assert_close(logits, model(idx, ratio=ratio)[0])
    # before chunk c the cache holds c * chunk / ratio beacons: kv_entries minus the raw tokens
    assert cached == [c * 8 // ratio for c in range(len(cached))]
    assert cached[-1] + n_tokens - 8 * (len(cached) - 1) == kv_entries(n_tokens, 8, ratio)


@pytest.mark.slow
def test_beacon_checkpoints_reproduce_their_recorded_accuracy():
    """Re-measured on the same held-out prompts, one prompt of slack (a near-tie argmax may flip
    under another CPU's float rounding). The equal-budget windows are passkey models (their
    topic's test re-measures them)."""
    from lcviz.beacons import ratio_accuracy
    from lcviz.checkpoints import load_checkpoint
    from lcviz.recipes import RECIPES

    for name in [n for n, r in RECIPES.items() if r.topic == "beacons"]:
        model, info = load_checkpoint(name)
        assert info["beacon"] == {"chunk": model.chunk, "coverage": model.coverage}, name
        for ratio in (2, 16):
            recorded = info["metrics"]["key_by_ratio"][str(ratio)]
            measured = ratio_accuracy(model, ratio, recorded["n"])["k"]
            assert measured == pytest.approx(recorded["k"], abs=1), name


def tiny_comparison_models(vocab):
    lcviz.seed_everything(0)
    config = ModelConfig(vocab_size=vocab, block_size=160, n_layer=2, n_head=2, n_embd=16, pos="rope")
    runs = [BeaconTransformer(config, chunk=16).eval() for _ in range(3)]
    windows = {r: TinyTransformer(ModelConfig(**{**config.to_dict(), "window": 8})).eval()
               for r in (4, 16)}
    return {"full": TinyTransformer(config).eval(), "runs": runs,
            "variants": {"beacons, full coverage":
                         BeaconTransformer(config, chunk=16, coverage="full").eval()},
            "windows": windows}


def test_every_method_of_the_comparison_reads_the_same_prompts_and_the_runs_are_pooled():
    from lcviz.beacons import BEACONS, EVICTION, FULL, WINDOW, compare_at_budget, comparison_prompts
    from lcviz.passkey import passkey_tokenizer

    models = tiny_comparison_models(passkey_tokenizer().vocab_size)
    prompts = comparison_prompts(4, n=6, length=128)  # window 44, field 87; keys reach 85
    assert [len(p) for p in prompts.values()] == [6, 6, 0]
    again = comparison_prompts(4, n=6, length=128)
    assert [p.tokens for p in prompts["relayed"]] == [p.tokens for p in again["relayed"]]
    cells = compare_at_budget(models, prompts["inside"], ratio=4)
    runs = [cells[f"{BEACONS} run {run}"] for run in range(3)]
    assert set(cells) == {FULL, WINDOW, *EVICTION, *[f"{BEACONS} run {r}" for r in range(3)],
                          BEACONS, f"{BEACONS}, full coverage"}
    assert all(c["n"] == 6 for c in cells.values() if "runs" not in c)
    assert cells[BEACONS]["n"] == 18 and cells[BEACONS]["k"] == sum(c["k"] for c in runs)
    assert cells[BEACONS]["spread"] == [min(c["rate"] for c in runs), max(c["rate"] for c in runs)]
    only = compare_at_budget(models, prompts["inside"], ratio=4, methods={WINDOW, f"{BEACONS} run 1"})
    assert set(only) == {WINDOW, f"{BEACONS} run 1"}


def test_the_window_baselines_keep_exactly_the_beacons_budget():
    from lcviz.beacons import BEACON_BUDGETS, BEACON_CHUNK, EVAL_LENGTH, distance_bands
    from lcviz.recipes import RECIPES

    for ratio, budget in BEACON_BUDGETS.items():
        layout = beacon_layout(EVAL_LENGTH, BEACON_CHUNK, ratio)
        assert beacon_mask(layout)[layout.raw_index[-1]].sum() == budget  # the question's keys
        assert RECIPES[f"beacons-window-w{budget}"].settings["window"] == budget
    assert distance_bands(46) == {"inside": (0, 45), "relayed": (46, 90), "beyond": (91, 10 ** 9)}


def test_pooled_cell_sums_the_runs_and_keeps_their_spread():
    from lcviz.beacons import pooled_cell
    from lcviz.passkey import rate_cell

    runs = [rate_cell([True] * k + [False] * (10 - k)) for k in (2, 7, 4)]
    pooled = pooled_cell(runs)
    assert (pooled["k"], pooled["n"], pooled["runs"]) == (13, 30, 3)
    assert pooled["spread"] == [0.2, 0.7] and pooled["low"] < 13 / 30 < pooled["high"]
