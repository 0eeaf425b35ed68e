import pytest
import torch

import lcviz
from lcviz.beacons import (
    BeaconTransformer,
    beacon_layout,
    beacon_mask,
    importance,
    keep_important,
    kept_keys_mask,
    kv_entries,
)
from lcviz.model import ModelConfig, TinyTransformer


def brute_force_mask(n_tokens, chunk, ratio):
    """Build the interleaved sequence entry by entry, then decide every pair by the rule."""
    entries = []  # (is_beacon, chunk index)
    for start in range(0, n_tokens, chunk):
        c, size = start // chunk, min(chunk, n_tokens - start)
        entries += [(False, c)] * size
        if size == chunk and start + chunk < n_tokens:
            entries += [(True, c)] * (chunk // ratio)
    S = len(entries)
    mask = torch.zeros(S, S, dtype=torch.bool)
    for q, (q_beacon, q_chunk) in enumerate(entries):
        for k, (k_beacon, k_chunk) in enumerate(entries[:q + 1]):
            if not k_beacon:
                mask[q, k] = k_chunk == q_chunk  # raw keys: own chunk only
            else:
                mask[q, k] = k_chunk < q_chunk or (q_beacon and k_chunk == q_chunk)
    return mask


@pytest.mark.parametrize("n_tokens, chunk, ratio", [(16, 4, 2), (17, 4, 4), (40, 8, 2), (9, 3, 1),
                                                    (5, 8, 2), (64, 16, 16)])
def test_beacon_mask_equals_brute_force_and_hides_earlier_raw_tokens(n_tokens, chunk, ratio):
    layout = beacon_layout(n_tokens, chunk, ratio)
    mask = beacon_mask(layout)
    assert torch.equal(mask, brute_force_mask(n_tokens, chunk, ratio))
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


def test_token_importance_keeps_order_positions_and_the_budget():
    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, pos="rope"))
    idx = torch.randint(0, 20, (1, 40))
    scores = importance(model.attention_maps(idx), n_recent=8)
    kept = keep_important(scores, budget=16, n_recent=8)
    assert len(kept) == 16 and torch.equal(kept, kept.sort().values)  # original order
    assert torch.equal(kept[-8:], torch.arange(32, 40))  # the recent tokens always stay
    older_best = scores[:32].topk(8).indices.sort().values
    assert torch.equal(kept[:8], older_best)
    mask = kept_keys_mask(40, kept, n_recent=8)
    assert mask[39].sum() == 16 and mask[:32].equal(torch.ones(32, 40, dtype=torch.bool).tril()[:32])
    with pytest.raises(ValueError, match="budget must be >= 8"):
        keep_important(scores, budget=4, n_recent=8)


def test_keep_only_with_every_token_kept_is_the_full_model_and_drops_what_it_should():
    from lcviz.beacons import KeepOnly

    lcviz.seed_everything(0)
    model = TinyTransformer(ModelConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, pos="rope")).eval()
    idx = torch.randint(0, 20, (1, 24))
    everything = KeepOnly(model, torch.arange(24), first_query=16)
    torch.testing.assert_close(everything(idx)[0], model(idx)[0])
    partial = KeepOnly(model, torch.tensor([0, 1, 2]), first_query=16)
    changed = idx.clone()
    changed[0, 5] = (changed[0, 5] + 1) % 20  # a dropped token that no kept token has seen
    torch.testing.assert_close(partial(changed)[0][0, 16:], partial(idx)[0][0, 16:])
    assert not torch.allclose(model(changed)[0][0, 16:], model(idx)[0][0, 16:])


@pytest.mark.slow
def test_beacon_checkpoint_reproduces_its_recorded_accuracy_per_ratio():
    from lcviz.checkpoints import load_checkpoint
    from lcviz.passkey import PASSKEY_EVAL, passkey_metrics
    from lcviz.recipes import RECIPES

    for name in [n for n, r in RECIPES.items() if r.topic == "beacons"]:
        model, info = load_checkpoint(name)
        assert isinstance(model, BeaconTransformer) and info["beacon"] == {"chunk": model.chunk}
        for ratio in (2, 16):
            recorded = info["metrics"]["by_ratio"][str(ratio)]
            measured = passkey_metrics(model, ratio=ratio)
            for score in ("key", "digit"):
                assert measured[score] == pytest.approx(recorded[score],
                                                        abs=1 / PASSKEY_EVAL["n"] + 1e-9), name
