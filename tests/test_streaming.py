"""Streaming and KV-cache eviction: every policy against an independent reference.

References used here are written from the papers' code, not from lcviz.streaming: StreamingLLM's
`kv_cache.py` slicing, the key re-rotation check of kvpress, a masked full-recompute simulation of
H2O and TOVA decisions (the greedy causal form of H2O's `local_heavy_hitter_mask`), SnapKV's
`topk(pool(attn[-w:, :-w].sum(-2)))`, and a token-by-token loop for strided perplexity.
"""

import math

import pytest
import torch

from lcviz import streaming as S
from lcviz.model import ModelConfig, TinyTransformer


def tiny_model(n_layer=2, n_head=4, n_embd=32, vocab=20, seed=0, pos="rope", std=0.3):
    """A float64 model with large random weights, so attention is far from uniform and top-k
    choices have no near ties."""
    torch.manual_seed(seed)
    model = TinyTransformer(ModelConfig(vocab_size=vocab, block_size=16, n_layer=n_layer,
                                        n_head=n_head, n_embd=n_embd, pos=pos)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model


def tokens(n, vocab=20, seed=1, batch=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    return torch.randint(0, vocab, shape, generator=g)


# ---------------------------------------------------------------- bad settings

@pytest.mark.parametrize("settings, word", [
    ({"name": "window", "budget": 0}, "budget"),
    ({"name": "window", "budget": -3}, "budget"),
    ({"name": "sink", "budget": 2.5, "n_sink": 1}, "budget"),
    ({"name": "sink", "budget": "64"}, "budget"),
    ({"name": "sink", "budget": True}, "budget"),
    ({"name": "sink", "budget": None}, "budget"),
    ({"name": "sink", "budget": 4, "n_sink": 4}, "n_sink"),
    ({"name": "sink", "budget": 4, "n_sink": 9}, "n_sink"),
    ({"name": "sink", "budget": 8, "n_sink": 1.0}, "n_sink"),
    ({"name": "full", "budget": 64}, "budget"),
    ({"name": "h2o", "budget": 8, "n_recent": 0}, "n_recent"),
    ({"name": "h2o", "budget": 8, "n_recent": 9}, "n_recent"),
    ({"name": "tova", "budget": 8, "n_sink": 2}, "n_sink"),
    ({"name": "snapkv", "budget": 8, "window": 8}, "window"),
    ({"name": "snapkv", "budget": 16, "kernel": 4}, "kernel"),
    ({"name": "snapkv", "budget": 16, "pooling": "median"}, "pooling"),
    ({"name": "sink", "budget": 16, "positions": "absolute"}, "positions"),
    ({"name": "lru", "budget": 16}, "policy"),
])
def test_bad_settings_name_the_argument(settings, word):
    with pytest.raises(ValueError, match=word):
        S.Policy(**settings)


def test_stream_rejects_models_and_inputs_it_cannot_run():
    with pytest.raises(ValueError, match="pos="):
        S.stream(tiny_model(pos="learned"), tokens(8), S.Policy("full"))
    windowed = tiny_model().with_config(window=4)
    with pytest.raises(ValueError, match="window"):
        S.stream(windowed, tokens(8), S.Policy("full"))
    training = tiny_model().train()
    with pytest.raises(ValueError, match="eval"):
        S.stream(training, tokens(8), S.Policy("full"))
    model = tiny_model()
    with pytest.raises(ValueError, match="token ids"):
        S.stream(model, torch.tensor([1, 2, 99]), S.Policy("full"))
    with pytest.raises(ValueError, match="ids"):
        S.stream(model, torch.zeros(1, 2, 3, dtype=torch.long), S.Policy("full"))
    with pytest.raises(ValueError, match="prompt_length"):
        S.stream(model, tokens(8), S.Policy("snapkv", 6, window=2), prompt_length=9)


# ---------------------------------------------------------------- budget >= length: the full cache

ALL_POLICIES = [S.Policy("full"), S.Policy("window", 30), S.Policy("recompute", 30),
                S.Policy("sink", 30, n_sink=4), S.Policy("sink", 30, n_sink=4,
                                                         positions="original"),
                S.Policy("h2o", 30), S.Policy("h2o", 30, positions="cache"),
                S.Policy("snapkv", 30, window=4), S.Policy("tova", 30),
                S.Policy("tova", 30, positions="cache")]


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.label)
def test_budget_covering_the_stream_is_the_full_cache(policy):
    model = tiny_model()
    ids = tokens(30, batch=2)
    want, _ = model(ids)
    got = S.stream(model, ids, policy)
    torch.testing.assert_close(got.logits, want, atol=1e-10, rtol=0)
    assert got.kv_entries == list(range(1, 31))


def test_generation_with_the_full_cache_is_greedy_generation():
    model = tiny_model()
    ids = tokens(10)
    want = model.generate(ids[None], 6, temperature=0)[0, 10:]
    got = S.stream(model, ids, S.Policy("full"), new_tokens=6)
    assert got.generated[0].tolist() == want.tolist()
    assert got.logits.shape[1] == 10 + 5  # the last generated token is not fed


# ---------------------------------------------------------------- StreamingLLM

def start_recent(cache, start_size, recent_size):
    """streaming-llm kv_cache.py StartRecentKVCache.__call__, on a list of positions."""
    if len(cache) <= start_size + recent_size:
        return cache
    return cache[:start_size] + cache[len(cache) - recent_size:]


@pytest.mark.parametrize("n_sink, budget", [(4, 12), (1, 6), (0, 5), (3, 4)])
@pytest.mark.parametrize("positions", ["cache", "original"])
def test_streaming_llm_keeps_first_sinks_and_last_recent_at_every_step(n_sink, budget, positions):
    model = tiny_model()
    name = "sink" if n_sink else "window"
    result = S.stream(model, tokens(40), S.Policy(name, budget, n_sink=n_sink,
                                                  positions=positions), record=True)
    cache = []  # the reference's cache between steps: start_size + recent_size = budget - 1
    for t, kept in enumerate(result.kept):
        visible = cache + [t]
        L, B, H, _n = kept.shape
        assert kept.tolist() == [[[visible] * H] * B] * L, f"step {t}"
        cache = start_recent(visible, n_sink, budget - 1 - n_sink)
    assert max(result.kv_entries) == budget


def test_rolling_positions_in_one_layer_equal_reencoding_the_kept_tokens():
    """In a one-layer model the cached keys and values depend on their token only, so the sink
    cache with positions inside the cache is exactly the model run on the kept tokens at
    positions 0..n-1; with original positions, the model run at the kept tokens' positions."""
    model = tiny_model(n_layer=1)
    ids = tokens(40)
    for positions in ("cache", "original"):
        result = S.stream(model, ids, S.Policy("sink", 10, n_sink=3, positions=positions),
                          record=True)
        for t in range(0, 40, 3):
            kept = result.kept[t][0, 0, 0]
            where = None if positions == "cache" else kept
            want, _ = model(ids[kept][None], positions=where)
            torch.testing.assert_close(result.logits[0, t], want[0, -1], atol=1e-10, rtol=0)


def test_in_two_layers_the_sink_cache_is_only_close_to_reencoding():
    """Deeper layers' keys were computed under an older context (streaming-llm issues #73, #93):
    the cache approximates re-encoding, it does not equal it."""
    model = tiny_model(n_layer=2)
    ids = tokens(40)
    result = S.stream(model, ids, S.Policy("sink", 10, n_sink=3), record=True)
    kept = result.kept[-1][0, 0, 0]
    want, _ = model(ids[kept][None])
    assert (result.logits[0, -1] - want[0, -1]).abs().max() > 1e-6


def reference_rope(x, positions, inv_freq):
    """RoPE with pairs (i, i + D/2), angles in float64, written out by the pair formula."""
    half = x.size(-1) // 2
    angle = positions.double()[:, None] * inv_freq.double()[None, :]  # (N, D/2)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()],
                     dim=-1)


@pytest.mark.parametrize("inv_freq", [1.0 / 10000 ** (torch.arange(0, 16, 2) / 16.0),
                                      1.0 / 500000 ** (torch.arange(0, 16, 2) / 16.0) / 8.0])
def test_rerotating_pruned_keys_equals_rotating_them_at_their_new_slots(inv_freq):
    """kvpress tests/presses/test_key_rerotation_press_rope.py in spirit:
    RoPE(prune(k), new) == rerotate(prune(RoPE(k, old)), old, new), fp64, atol 1e-6."""
    g = torch.Generator().manual_seed(0)
    k = torch.randn(2, 3, 3000, 16, generator=g, dtype=torch.float64)
    positions = torch.arange(3000)
    kept = S.sink_slots(3000, 4, 64)  # StreamingLLM's choice: 4 sinks + the last 60
    new = torch.arange(len(kept))
    want = reference_rope(k[:, :, kept], new, inv_freq)
    rotated = reference_rope(k, positions, inv_freq)
    got = S.rerotate(rotated[:, :, kept], positions[kept], new, inv_freq)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert (rotated[:, :, kept] - want).abs().max() > 1e-2  # without re-rotation: not equal


def test_rotate_matches_lcviz_rope():
    from lcviz import rope
    x = torch.randn(1, 2, 50, 8)
    inv_freq, _ = rope.rope_frequencies("default", 8)
    torch.testing.assert_close(S.rotate(x, torch.arange(50), inv_freq),
                               rope.apply_rope(x, torch.arange(50), inv_freq), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="positions"):
        S.rerotate(x, torch.arange(50), torch.arange(49), inv_freq)


# ---------------------------------------------------------------- H2O and TOVA: masked simulation

def simulate(model, ids, decide):
    """Independent reference for score-based policies: per layer a (H, N, N) mask whose row t is
    the set of keys query t may see; each step re-runs the model on ids[:t+1] with these masks
    (the model's own blocks, per-head masks), so the keys and values are those computed at their
    own step. decide(layer, t, weights (H, t+1), visible (H, t+1) bool) -> survivors (H, t+1)."""
    N, L, H = len(ids), len(model.blocks), model.config.n_head
    masks = [torch.zeros(H, N, N, dtype=torch.bool) for _ in range(L)]
    logits, kept = [], []
    for t in range(N):
        for mask in masks:
            mask[:, t, t] = True
        x = model.embed(ids[None, :t + 1])
        step_kept = []
        for layer, block in enumerate(model.blocks):
            mask = masks[layer][None, :, :t + 1, :t + 1]  # (1, H, t+1, t+1)
            x, weights = block(x, mask, torch.arange(t + 1), keep_weights=True)
            visible = masks[layer][:, t, :t + 1]
            step_kept.append([visible[h].nonzero()[:, 0].tolist() for h in range(H)])
            survivors = decide(layer, t, weights[0, :, -1], visible)
            if t + 1 < N:
                masks[layer][:, t + 1, :t + 1] = survivors
        logits.append(model.head(model.ln_f(x))[0, -1])
        kept.append(step_kept)
    return torch.stack(logits), kept


def h2o_reference(model, budget, n_recent):
    """H2O real-drop (H2OKVCache_LayerWise) in positions: accumulate every query's attention;
    when the cache exceeds capacity keep the last n_recent - 1 tokens and, among the rest, the
    capacity - (n_recent - 1) with the largest accumulated score, per head."""
    capacity = budget - 1
    scores = [torch.zeros(model.config.n_head, 200, dtype=torch.float64) for _ in model.blocks]

    def decide(layer, t, weights, visible):
        score = scores[layer]
        score[:, :t + 1] += torch.where(visible, weights, 0.0)
        survivors = visible.clone()
        for h in range(visible.size(0)):
            alive = visible[h].nonzero()[:, 0].tolist()
            if len(alive) <= capacity:
                continue
            recent = [p for p in alive if p > t - (n_recent - 1)]
            older = [p for p in alive if p not in recent]
            ranked = sorted(older, key=lambda p: -score[h, p].item())
            keep = set(ranked[:capacity - len(recent)]) | set(recent)
            survivors[h] = torch.tensor([p in keep for p in range(t + 1)])
            score[h, [p for p in alive if p not in keep]] = 0.0
        return survivors
    return decide


def tova_reference(budget):
    """TOVA (TOVACache.reduce) in positions: keep the budget - 1 keys the current query's
    attention, averaged over heads, ranks highest; the same set for every head."""
    def decide(layer, t, weights, visible):
        alive = visible[0].nonzero()[:, 0].tolist()
        if len(alive) <= budget - 1:
            return visible
        mean = weights.mean(0)
        keep = sorted(alive, key=lambda p: -mean[p].item())[:budget - 1]
        row = torch.tensor([p in keep for p in range(t + 1)])
        return row.expand_as(visible)
    return decide


def kept_lists(result):
    return [[[kept[layer, 0, h].tolist() for h in range(kept.size(2))]
             for layer in range(kept.size(0))] for kept in result.kept]


@pytest.mark.parametrize("budget, n_recent", [(8, 3), (6, 1), (10, 10)])
def test_h2o_equals_the_masked_simulation(budget, n_recent):
    model = tiny_model()
    ids = tokens(28)
    want_logits, want_kept = simulate(model, ids, h2o_reference(model, budget, n_recent))
    got = S.stream(model, ids, S.Policy("h2o", budget, n_recent=n_recent), record=True)
    assert kept_lists(got) == want_kept
    torch.testing.assert_close(got.logits[0], want_logits, atol=1e-10, rtol=0)
    per_head = {tuple(map(tuple, layer)) for step in want_kept for layer in step}
    if n_recent < budget:  # heavy hitters are chosen per head: the heads really differ
        assert any(len(set(heads)) > 1 for heads in per_head)


def test_tova_equals_the_masked_simulation():
    model = tiny_model()
    ids = tokens(28)
    want_logits, want_kept = simulate(model, ids, tova_reference(7))
    got = S.stream(model, ids, S.Policy("tova", 7), record=True)
    assert kept_lists(got) == want_kept
    torch.testing.assert_close(got.logits[0], want_logits, atol=1e-10, rtol=0)


def test_h2o_never_uses_a_future_query():
    """Change every token after step s: no eviction decided at or before s may change (the H2O
    lm-eval LLaMA simulation sums attention from all query rows, future ones included)."""
    model = tiny_model()
    ids = tokens(40)
    s = 25
    other = ids.clone()
    other[s + 1:] = (ids[s + 1:] + 7) % 20
    a = S.stream(model, ids, S.Policy("h2o", 8, n_recent=2), record=True)
    b = S.stream(model, other, S.Policy("h2o", 8, n_recent=2), record=True)
    for t in range(s + 2):  # step s + 1's query sees the cache pruned after step s
        assert torch.equal(a.kept[t], b.kept[t]), f"step {t}"
    assert (a.logits[0, s + 1:] - b.logits[0, s + 1:]).abs().max() > 1e-3  # a real change
    # the check has teeth: H2O's lm-eval LLaMA simulation ("global statistics": attention
    # summed over every query row, future ones included) fails it
    s, ids = 8, tokens(40, seed=2)
    other = ids.clone()
    other[s + 1:] = (ids[s + 1:] + 7) % 20
    before = global_statistics_kept(model, ids, 8), global_statistics_kept(model, other, 8)
    assert any(x != y for x, y in zip(before[0][:s + 2], before[1][:s + 2]))


def global_statistics_kept(model, ids, budget):
    """The non-causal oracle of H2O's utils_lm_eval/modify_llama.py: one heavy-hitter set from
    the column sums of the whole sequence's attention, applied to every step."""
    maps = model.attention_maps(ids[None])
    score = sum(w[0].sum(dim=(0, 1)) for w in maps)  # (N,) attention received from all queries
    heavy = score.topk(budget // 2).indices.tolist()
    return [sorted({p for p in heavy if p <= t} | set(range(max(0, t - budget // 2 + 1), t + 1)))
            for t in range(len(ids))]


# ---------------------------------------------------------------- SnapKV

def test_snapkv_keeps_topk_of_pooled_window_votes_plus_the_window():
    model = tiny_model()
    P, w, budget, kernel = 30, 4, 13, 5
    ids = tokens(P + 5)
    result = S.stream(model, ids, S.Policy("snapkv", budget, window=w, kernel=kernel),
                      prompt_length=P, record=True)
    maps = model.attention_maps(ids[None, :P])  # L x (1, H, P, P): no eviction in the prompt
    for layer, weights in enumerate(maps):
        votes = weights[0, :, -w:, :-w].sum(-2)  # (H, P - w)
        pooled = torch.nn.functional.avg_pool1d(votes[:, None], kernel, 1, kernel // 2)[:, 0]
        for h in range(model.config.n_head):
            top = pooled[h].topk(budget - 1 - w).indices.tolist()
            want = sorted(top) + list(range(P - w, P))
            assert result.kept[P][layer, 0, h].tolist() == want + [P]  # + the next token
    assert result.kv_entries[P - 1] == P  # the prompt itself is read with full attention
    assert result.kv_entries[P:] == list(range(budget, budget + 5))  # then the cache grows


def test_snapkv_kept_set_depends_on_the_window_only_through_attention():
    votes = torch.zeros(1, 1, 2, 10)
    votes[0, 0, :, 3] = 1.0
    assert S.snapkv_scores(votes, kernel=1)[0, 0].argmax().item() == 3
    max_pooled = S.snapkv_scores(votes, kernel=3, pooling="max")[0, 0]
    assert max_pooled[2:5].tolist() == [2.0, 2.0, 2.0]


# ---------------------------------------------------------------- recompute and records

def test_recompute_re_encodes_the_last_budget_tokens():
    model = tiny_model()
    ids = tokens(30)
    result = S.stream(model, ids, S.Policy("recompute", 8), record=True)
    for t in (3, 7, 8, 20, 29):
        window = ids[max(0, t - 7):t + 1]
        want, _ = model(window[None])
        torch.testing.assert_close(result.logits[0, t], want[0, -1], atol=1e-10, rtol=0)
        assert result.kept[t][0, 0, 0].tolist() == list(range(max(0, t - 7), t + 1))


def test_kept_map_marks_what_each_step_saw():
    result = S.stream(tiny_model(), tokens(20), S.Policy("sink", 6, n_sink=2), record=True)
    grid = S.kept_map(result)
    assert grid.shape == (20, 20)
    assert grid.sum(1).tolist() == [min(t + 1, 6) for t in range(20)]
    assert grid[19].nonzero()[:, 0].tolist() == [0, 1, 16, 17, 18, 19]
    with pytest.raises(ValueError, match="record=True"):
        S.kept_map(S.stream(tiny_model(), tokens(5), S.Policy("full")))
    with pytest.raises(ValueError, match="head"):
        S.kept_map(result, head=4)


def test_cache_memory_stays_bounded():
    model = tiny_model()
    decoder = S.StreamingDecoder(model, S.Policy("sink", 9, n_sink=2))
    for t in tokens(100).tolist():
        decoder.step(torch.tensor([t]))
    assert all(cache.k.size(2) == 9 and cache.n == 8 for cache in decoder.caches)


# ---------------------------------------------------------------- attention sinks

def test_sink_mass_of_uniform_attention_is_the_uniform_baseline():
    model = tiny_model(pos="none")
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:64].zero_()  # q = k = 0: every query spreads evenly
            block.attn.qkv.bias[:64].zero_()
    mass, uniform = S.sink_mass(model, tokens(32, batch=3), first=2, skip=8)
    assert mass.shape == (2, 4)
    torch.testing.assert_close(mass, torch.full((2, 4), uniform, dtype=mass.dtype), atol=1e-12,
                               rtol=0)
    with pytest.raises(ValueError, match="skip"):
        S.sink_mass(model, tokens(32, batch=3), skip=40)


def test_sink_windows_put_the_sink_first_and_ignore_its_target():
    ids = torch.arange(100)
    x, y = S.sink_windows(ids, 8, 3, sink_token=99, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 8)
    assert (x[:, 0] == 99).all() and (y[:, 0] == -100).all()
    assert torch.equal(y[:, 1:], x[:, 1:] + 1)


# ---------------------------------------------------------------- strided evaluation

def autoregressive_nll(model, ids, window):
    """Each target j predicted from the (at most) `window` tokens before it, one at a time."""
    out = []
    for j in range(1, len(ids)):
        context = ids[max(0, j - window):j]
        logits, _ = model(context[None])
        out.append(torch.nn.functional.cross_entropy(logits[0, -1:], ids[j:j + 1]))
    return torch.stack(out)


def test_stride_one_is_the_true_autoregressive_loss():
    model = tiny_model()
    ids = tokens(41)
    result = S.strided_loss(model, ids, window=8, stride=1)
    want = autoregressive_nll(model, ids, 8)
    torch.testing.assert_close(result.nll, want, atol=1e-10, rtol=0)
    assert result.loss == pytest.approx(want.mean().item(), abs=1e-12)


@pytest.mark.parametrize("stride", [16, 8, 4, 1])
def test_every_token_is_scored_exactly_once(stride):
    result = S.strided_loss(tiny_model(), tokens(77), window=16, stride=stride)
    assert result.counts.tolist() == [1] * 76  # including each window's first token (#30975)
    begin, end, first = result.windows[0]
    assert (begin, end, first) == (0, 16, 1)  # the first window is full length (#18906)
    assert all(e - b == 16 for b, e, _ in result.windows)


def test_the_loss_is_token_weighted_not_a_mean_of_window_means():
    model = tiny_model()
    ids = tokens(37)  # windows score 16, 16, then 4 targets
    result = S.strided_loss(model, ids, window=16, stride=16)
    assert [e - f + 1 for _, e, f in result.windows] == [16, 16, 4]
    assert result.loss == pytest.approx(result.nll.mean().item(), abs=1e-12)
    assert abs(result.per_window_mean - result.loss) > 1e-4  # what averaging windows would give


def test_a_prefix_token_starts_every_window():
    """PR #40524: a model trained with a BOS (here: sink) token needs it in every window."""
    model = tiny_model()
    ids = tokens(30, vocab=19)
    result = S.strided_loss(model, ids, window=9, stride=4, prefix_token=19)
    begin, end, first = result.windows[1]
    x = torch.cat([torch.tensor([19]), ids[begin:end]])
    logits, _ = model(x[None])
    want = torch.nn.functional.cross_entropy(logits[0, 1:], ids[begin + 1:end + 1],
                                             reduction="none")
    torch.testing.assert_close(result.nll[first - 1:end], want[first - 1 - begin:], atol=1e-10,
                               rtol=0)
    with pytest.raises(ValueError, match="stride"):
        S.strided_loss(model, ids, window=9, stride=9, prefix_token=19)


def test_strided_loss_falls_as_context_grows():
    model = tiny_model(std=0.2)
    ids = tokens(200)
    losses = [S.strided_loss(model, ids, 32, s).loss for s in (32, 8, 1)]
    assert losses == sorted(losses, reverse=True) or max(losses) - min(losses) < 1e-3


# ---------------------------------------------------------------- chunk merging

@pytest.mark.parametrize("length, chunk, left, right", [(100, 20, 4, 4), (37, 10, 0, 3),
                                                        (10, 20, 2, 2), (64, 16, 5, 0)])
def test_kept_centres_tile_the_input_once(length, chunk, left, right):
    spans = S.chunk_spans(length, chunk, left, right)
    covered = [p for _, _, a, b in spans for p in range(a, b)]
    assert covered == list(range(length))
    assert all(e - s <= chunk for s, e, _, _ in spans)
    with pytest.raises(ValueError, match="chunk"):
        S.chunk_spans(length, 8, 4, 4)


def test_centre_keep_merging_equals_the_unchunked_output():
    model = tiny_model(pos="rope")
    half = 3  # 2 layers x (3 - 1) = a field of 4 tokens each side
    x = tokens(90, batch=2)

    def tag(chunk):  # a bidirectional banded model: one output vector per token
        logits, _ = model(chunk, attn_mask=S.band_mask(chunk.size(1), half))
        return logits

    whole = tag(x)
    merged = S.merge_chunks(tag, x, chunk=24, left=4, right=4)
    # exact up to RoPE's float32 angles: a chunk reads its tokens at other positions
    torch.testing.assert_close(merged, whole, atol=1e-6, rtol=0)
    naive = S.merge_chunks(tag, x, chunk=24, left=0, right=0)
    assert (naive - whole).abs().amax(dim=(0, 2))[23:25].min() > 1e-3  # wrong at the seams
    short = S.merge_chunks(tag, x, chunk=24, left=2, right=2)
    assert (short - whole).abs().max() > 1e-3  # an overlap below the field is not enough


# ---------------------------------------------------------------- retrieval under a budget

def passkey_model():
    from lcviz.passkey import passkey_tokenizer
    tokenizer = passkey_tokenizer()
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64,
                                        n_layer=2, n_head=4, n_embd=32, pos="rope")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model, tokenizer


def test_retrieval_with_the_full_cache_answers_like_predict_keys():
    from lcviz.passkey import heldout_prompts, predict_keys
    model, tokenizer = passkey_model()
    prompts = heldout_prompts(12, 70, seed=3)
    got = S.retrieval_under_budget(model, prompts, tokenizer, S.Policy("full"), batch_size=5)
    assert got["answers"] == predict_keys(model, prompts, tokenizer)
    assert got["needle_seen"] == [1.0] * 12


def test_a_sink_cache_cannot_see_a_needle_outside_sinks_and_window():
    from lcviz.passkey import heldout_prompts
    model, tokenizer = passkey_model()
    prompts = heldout_prompts(8, 70, seed=4, depths=[0.3, 1.0])
    budget = 30
    got = S.retrieval_under_budget(model, prompts, tokenizer, S.Policy("sink", budget, n_sink=2))
    for prompt, seen in zip(prompts, got["needle_seen"]):  # the first answer step reads the
        first_recent = prompt.length - (budget - 2) + 1   # sinks and the last budget - 2 tokens
        far = prompt.key_positions[len(prompt.key)] < first_recent
        assert seen == (0.0 if far else 1.0)
    assert got["needle_seen"][0] == 0.0 and got["needle_seen"][1] == 1.0  # both cases occur
    with pytest.raises(ValueError, match="length"):
        mixed = heldout_prompts(1, 70, seed=1) + heldout_prompts(1, 71, seed=1)
        S.retrieval_under_budget(model, mixed, tokenizer, S.Policy("full"))


def test_math_of_the_budget_convention():
    """budget counts the query's own key: 'window' with budget w is the course's window rule."""
    from lcviz.attention import in_causal_window
    result = S.stream(tiny_model(), tokens(20), S.Policy("window", 5), record=True)
    for t, kept in enumerate(result.kept):
        want = [j for j in range(t + 1) if in_causal_window(t, j, 5)]
        assert kept[0, 0, 0].tolist() == want
    assert math.isclose(S.Policy("sink", 2005, n_sink=4).capacity, 2004)


# ---------------------------------------------------------------- exercise checkers

def test_rerotate_checker_passes_the_reference_and_fails_a_typical_slip(capsys):
    from lcviz.checks import streaming as C
    assert C.check_rerotate(S.rerotate).passed
    assert C.check_rerotate(lambda k, old, new, inv_freq: k).status == "fail"  # forgot to move
    wrong_sign = C.check_rerotate(lambda k, old, new, f: S.rotate(k, old - new, f))
    assert wrong_sign.status == "fail"

    def stub(*args):
        raise NotImplementedError
    assert C.check_rerotate(stub).status == "not attempted"
    assert "1 of 4" in capsys.readouterr().out  # the unmoved keys pass only the no-move case


def test_strided_windows_checker_fails_the_old_start_anchored_loop():
    from lcviz.checks import streaming as C
    assert C.check_strided_windows(S.strided_windows).passed

    def start_anchored(n_tokens, window, stride):  # windows begin every stride: last ones short
        out, done = [], 0
        for begin in range(0, n_tokens - 1, stride):
            end = min(begin + window, n_tokens - 1)
            out.append((begin, end, done + 1))
            done = end
            if end == n_tokens - 1:
                break
        return out
    assert C.check_strided_windows(start_anchored).status == "fail"


def test_needle_checker_compares_with_the_measured_answer():
    from lcviz.checks import streaming as C
    truth = {name: C.needle_kept(name) for name in C.NEEDLE_POLICIES}
    assert not truth["window"] and not truth["sink"]  # position 100 is far from the last 28
    assert C.check_needle_prediction(lambda policy: truth[policy]).passed
    assert C.check_needle_prediction(lambda policy: False).status == "fail" or not any(
        truth.values())
    assert C.check_needle_prediction(lambda policy: "no").status == "fail"


# ---------------------------------------------------------------- figures

def test_figures_build_from_small_inputs():
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    from lcviz.plots import streaming as P
    result = S.stream(tiny_model(), tokens(30), S.Policy("sink", 8, n_sink=2), record=True)
    grid = S.kept_map(result)
    heat = P.kept_heatmap(grid, marks={"needle": 5})
    assert isinstance(heat, go.Figure) and heat.data[0].z.shape == (30, 30)
    assert P.kept_heatmap(torch.ones(400, 400, dtype=torch.bool), max_cells=100).data[0].z.shape \
        == (100, 100)
    assert isinstance(P.kept_heatmaps({"a": grid, "b": grid}), go.Figure)
    losses = {"window, no sinks budget 8": torch.rand(64), "StreamingLLM x original": torch.rand(64)}
    assert isinstance(P.loss_along_stream(losses, 16, bucket=8), Figure)
    assert isinstance(P.stream_loss_plotly(losses, 16, bucket=8), go.Figure)
    assert isinstance(P.first_eviction(losses, 16), Figure)
    assert isinstance(P.sink_mass_bars({"m": (torch.rand(2, 4), 0.1)}), Figure)
    assert isinstance(P.strided_losses([8, 4, 1], [1.5, 1.4, 1.3], 8), Figure)
    assert isinstance(P.merge_errors({"x": torch.rand(20)}, S.chunk_spans(20, 8, 2, 2)), Figure)
    bench = {"lengths": [8, 16], "training_length": 8, "policies": [
        {"name": "sink", "label": "StreamingLLM", "positions": "cache", "loss": [1, 1],
         "ms_per_token": [1, 1], "kv_entries": [8, 8]}]}
    assert isinstance(P.cost_curves(bench), Figure)
    assert isinstance(P.benchmark_figure(bench), Figure)


def test_a_copied_decoder_continues_like_the_original():
    model = tiny_model()
    ids = tokens(30)
    for policy in (S.Policy("sink", 8, n_sink=2), S.Policy("h2o", 8), S.Policy("recompute", 8)):
        decoder = S.StreamingDecoder(model, policy)
        for t in range(20):
            decoder.step(ids[t:t + 1])
        twin = decoder.copy()
        a = [decoder.step(ids[t:t + 1]) for t in range(20, 30)]
        b = [twin.step(ids[t:t + 1]) for t in range(20, 30)]
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert decoder.t == twin.t == 30


def test_benchmark_reports_every_policy_at_every_length():
    results = S.benchmark(multiples=(1, 2), timing_window=4, sweep_budgets=(16,), sweep_steps=4,
                          plot=False)
    T = results["training_length"]
    assert results["lengths"] == [T, 2 * T]
    assert {r["name"] for r in results["policies"]} == {"full", "window", "recompute", "sink",
                                                        "h2o", "tova"}
    dense = next(r for r in results["policies"] if r["name"] == "full")
    assert dense["kv_entries"] == [T, 2 * T]
    assert all(r["kv_entries"] == [T, T] for r in results["policies"] if r["name"] != "full")
    assert results["budget_sweep"]["budgets"] == [16] and len(results["budget_sweep"]["speedup"]) == 1
    assert "process CPU time" in results["timing"] and results["threads"] == 1


def test_benchmark_restores_the_callers_thread_count():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        S.benchmark(multiples=(1,), timing_window=2, sweep_budgets=(8,), sweep_steps=2, plot=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- app page

def _page():
    from lcviz.app import state
    from lcviz.app.pages import streaming as page

    with state.guarded():
        page.render()


def run_page(**params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page, default_timeout=180)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


def test_page_shows_the_first_token_leaving_and_the_sink_keeping_it():
    at = run_page(model="sink-charlm", policy="window", budget=64, position=160,
                  view="loss minus re-computation")
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    assert "KV entries the query at 159 reads: **64**" in text
    at.selectbox(key="policy").set_value("sink").run()
    assert not at.exception and not at.error
    assert "StreamingLLM (sinks) 4+60" in " ".join(m.value for m in at.markdown)


@pytest.mark.parametrize("model", ["rope-charlm", "sink-charlm"])
@pytest.mark.parametrize("policy", ["sink", "h2o"])
def test_the_page_computes_a_short_view_as_the_start_of_the_whole_stream(model, policy):
    """The page streams only up to its position (rounded up): every policy but SnapKV decides
    step t from tokens up to t, so the short run must equal the start of the whole one."""
    from lcviz.app.pages import streaming as page

    chosen = page.make_policy(policy, 40, 4, "cache")
    length = page.computed_length(chosen, 100)
    assert length == page.BUCKET_TOKENS < page.STREAM
    short, whole = page.run(model, chosen, length), page.run(model, chosen, page.STREAM)
    assert torch.equal(short[0], whole[0][:length, :length])
    torch.testing.assert_close(short[1], whole[1][:length - 1])
    assert short[2] == whole[2][:length]
    torch.testing.assert_close(page.recomputed_loss(model, 40, length),
                               page.recomputed_loss(model, 40, page.STREAM)[:length - 1])
    assert page.computed_length(page.make_policy("snapkv", 40, 4, "cache"), 100) == page.STREAM


def test_page_refuses_more_sinks_than_the_budget():
    at = run_page(policy="sink", budget=8, sinks=8)
    assert not at.exception
    assert "n_sink < budget" in at.error[0].value


def test_every_policy_label_has_its_own_colour():
    from lcviz.plots.streaming import POLICY_COLOURS, colour
    for policy in S.comparison_policies(64) + [S.Policy("snapkv", 64)]:
        assert colour(policy.label) == POLICY_COLOURS[policy.name], policy.label
        assert colour(policy.name) == POLICY_COLOURS[policy.name]
