import pytest
import torch

import lcviz
from lcviz.model import ModelConfig, TinyTransformer
from lcviz.recurrent import (
    MEMORY_KINDS,
    Memory,
    RecurrentConfig,
    RecurrentTransformer,
    crosstalk_prediction,
    decode,
    digit_ids,
    empty_memory,
    key_hits,
    memory_keys,
    memory_read,
    memory_update,
    passkey_accuracy,
    passkey_vocab_size,
    reach,
    retrieval_error,
    segment_mask,
    segment_passkey,
    sigma,
    state_numel,
    xl_reach_distance,
)

torch.set_num_threads(1)


def small_model(kind, segment=8, seed=0, **changes):
    """A random model whose weights are spread so that every path carries a visible signal."""
    lcviz.seed_everything(seed)
    settings = {"vocab_size": 20, "n_layer": 2, "n_head": 2, "n_embd": 16, **changes}
    config = RecurrentConfig(segment=segment, memory=kind, **settings)
    model = RecurrentTransformer(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def tiny_transformer_twin(model):
    """A lcviz.model.TinyTransformer (RoPE, no absolute positions) with the same weights."""
    c = model.config
    twin = TinyTransformer(ModelConfig(vocab_size=c.vocab_size, n_layer=c.n_layer,
                                       n_head=c.n_head, n_embd=c.n_embd, pos="rope",
                                       block_size=256, attn_impl="reference"))
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("beta")}
    twin.load_state_dict(state)
    return twin.eval()


# ---------------------------------------------------------------- memory: eq. 3-5 by hand

def loop_memory(phi_k, v):
    """Eq. 4 written with explicit sums over batch, heads and tokens, one segment."""
    B, H, S, dk = phi_k.shape
    M, z = torch.zeros(B, H, dk, v.shape[-1]), torch.zeros(B, H, dk)
    for b in range(B):
        for h in range(H):
            for t in range(S):
                M[b, h] += torch.outer(phi_k[b, h, t], v[b, h, t])
                z[b, h] += phi_k[b, h, t]
    return Memory(M, z)


def test_memory_read_and_linear_update_equal_the_formulas():
    g = torch.Generator().manual_seed(0)
    phi_k, phi_q = sigma(torch.randn(2, 3, 5, 4, generator=g)), sigma(torch.randn(2, 3, 7, 4,
                                                                                  generator=g))
    v = torch.randn(2, 3, 5, 6, generator=g)
    memory = memory_update(empty_memory(2, 3, 4, 6), phi_k, v, "linear")
    want = loop_memory(phi_k, v)
    torch.testing.assert_close(memory.M, want.M)
    torch.testing.assert_close(memory.z, want.z)
    read = memory_read(memory, phi_q)  # eq. 3: sigma(q) M / (sigma(q) z)
    by_hand = torch.einsum("bhtk,bhkv->bhtv", phi_q, want.M) / torch.einsum(
        "bhtk,bhk->bht", phi_q, want.z)[..., None]
    torch.testing.assert_close(read, by_hand, rtol=1e-4, atol=1e-5)
    assert torch.equal(memory_read(empty_memory(2, 3, 4, 6), phi_q), torch.zeros(2, 3, 7, 6))


def test_delta_update_writes_only_what_the_memory_does_not_return():
    g = torch.Generator().manual_seed(1)
    memory = memory_update(empty_memory(1, 2, 4, 3), sigma(torch.randn(1, 2, 6, 4, generator=g)),
                           torch.randn(1, 2, 6, 3, generator=g), "linear")
    phi_k, v = sigma(torch.randn(1, 2, 5, 4, generator=g)), torch.randn(1, 2, 5, 3, generator=g)
    new = memory_update(memory, phi_k, v, "delta")
    retrieved = (phi_k @ memory.M) / (phi_k @ memory.z[..., None])  # eq. 5's inner read
    torch.testing.assert_close(new.M, memory.M + phi_k.transpose(-1, -2) @ (v - retrieved),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(new.z, memory.z + phi_k.sum(2))
    # writing values the memory already returns changes nothing in M
    again = memory_update(new, phi_k, memory_read(new, phi_k), "delta")
    torch.testing.assert_close(again.M, new.M, rtol=1e-4, atol=1e-5)


def test_delta_rule_overwrites_a_repeated_key_exactly_the_linear_rule_does_not():
    key = torch.zeros(1, 1, 1, 4)
    key[..., 2] = 1.0  # an orthogonal (one-hot) key
    values = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([5.0, -1.0, 0.5]),
              torch.tensor([-2.0, 0.0, 4.0])]
    memories = {rule: empty_memory(1, 1, 4, 3) for rule in ("linear", "delta")}
    for value in values:
        memories = {rule: memory_update(memory, key, value.view(1, 1, 1, 3), rule,
                                        normalize=False) for rule, memory in memories.items()}
    read = {rule: memory_read(m, key, normalize=False).flatten() for rule, m in memories.items()}
    torch.testing.assert_close(read["delta"], values[-1])  # exactly the latest value
    torch.testing.assert_close(read["linear"], sum(values))  # the sum: interference
    assert (read["linear"] - values[-1]).abs().max() > 1


def test_with_the_papers_normaliser_an_overwritten_key_reads_divided_by_its_count():
    """Eq. 5 keeps adding phi_k to z on every write, so after r writes of one key the
    normalised read returns the latest value / r the first time it is overwritten."""
    key = torch.zeros(1, 1, 1, 4)
    key[..., 0] = 1.0
    first, second = torch.tensor([[[[2.0, 4.0]]]]), torch.tensor([[[[6.0, -2.0]]]])
    memory = memory_update(empty_memory(1, 1, 4, 2), key, first, "delta")
    torch.testing.assert_close(memory_read(memory, key), first, rtol=1e-5, atol=1e-5)
    memory = memory_update(memory, key, second, "delta")
    torch.testing.assert_close(memory.M[0, 0, 0], second.flatten())  # M holds the new value
    torch.testing.assert_close(memory_read(memory, key), second / 2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_orthogonal_keys_are_exact_up_to_d_k_pairs(rule):
    for n in (1, 8, 16):
        assert retrieval_error(n, 16, rule, "orthogonal") < 1e-5
    past = retrieval_error(32, 16, rule, "orthogonal")  # every key written twice
    assert (past < 1e-5) == (rule == "delta")


def test_linear_memory_error_with_random_keys_follows_the_crosstalk_formula():
    for n, d_k in [(9, 64), (33, 64), (16, 32), (64, 32)]:
        measured = retrieval_error(n, d_k, "linear", "random", trials=200)
        assert measured == pytest.approx(crosstalk_prediction(n, d_k), rel=0.15)
    errors = [retrieval_error(n, 32, "linear", "random") for n in (4, 16, 64)]
    assert errors == sorted(errors) and errors[-1] > 1


def test_memory_keys_latest_index_points_at_the_same_key():
    keys, latest = memory_keys(40, 16, "orthogonal", torch.Generator().manual_seed(0), trials=3)
    for r in range(3):
        for i in range(40):
            j = int(latest[r, i])
            assert j >= i and torch.equal(keys[r, 0, j], keys[r, 0, i])
            assert not any(torch.equal(keys[r, 0, t], keys[r, 0, i]) for t in range(j + 1, 40))


# ---------------------------------------------------------------- the model: forms agree

@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_stream_equals_the_parallel_forward(kind):
    model = small_model(kind)
    idx = torch.randint(0, 20, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, _ = model(idx)
    for chunk in (1, 4, 8):
        got, _ = model.stream(idx, chunk=chunk)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    partial, _ = model.stream(idx[:, :29])  # a partial last segment: stream reads it
    torch.testing.assert_close(partial, want[:, :29], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["local", "xl", "full"])
def test_softmax_kinds_equal_a_tiny_transformer_with_the_segment_mask(kind):
    model = small_model(kind)
    twin = tiny_transformer_twin(model)
    idx = torch.randint(0, 20, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, _ = model(idx)
        want, _ = twin(idx, attn_mask=segment_mask(32, 8, kind))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_infini_with_its_gate_closed_is_the_local_model():
    local, infini = small_model("local"), small_model("delta")
    infini.load_state_dict({**local.state_dict(), **{k: torch.full_like(v, -40.0) for k, v in
                                                     infini.state_dict().items()
                                                     if k.endswith("beta")}})
    idx = torch.randint(0, 20, (1, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(infini(idx)[0], local(idx)[0])
        opened = infini.state_dict()
        for k in opened:
            if k.endswith("beta"):
                opened[k].fill_(0.0)
        infini.load_state_dict(opened)
        assert (infini(idx)[0][:, 8:] - local(idx)[0][:, 8:]).abs().max() > 1e-3


def test_linear_parallel_memory_equals_the_segment_recurrence():
    model = small_model("linear")
    attn = model.blocks[0].attn
    g = torch.Generator().manual_seed(3)
    phi_q, phi_k = sigma(torch.randn(1, 2, 4, 8, 8, generator=g)), sigma(torch.randn(
        1, 2, 4, 8, 8, generator=g))
    v = torch.randn(1, 2, 4, 8, 8, generator=g)
    parallel = list(attn._memory_reads(phi_q, phi_k, v))
    memory = empty_memory(1, 2, 8, 8)
    for s in range(4):
        torch.testing.assert_close(parallel[s], memory_read(memory, phi_q[:, :, s]),
                                   rtol=1e-4, atol=1e-5)
        memory = memory_update(memory, phi_k[:, :, s], v[:, :, s], "linear")


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_every_kind_is_causal(kind):
    model = small_model(kind)
    idx = torch.randint(0, 20, (2, 32), generator=torch.Generator().manual_seed(4))
    changed = idx.clone()
    changed[:, 19:] = (changed[:, 19:] + 1) % 20
    with torch.no_grad():
        torch.testing.assert_close(model(changed)[0][:, :19], model(idx)[0][:, :19])
        assert (model(changed)[0][:, 19] - model(idx)[0][:, 19]).abs().max() > 1e-4


# ---------------------------------------------------------------- reach

def influence(model, length, seed=5):
    """bool (T, T): does changing token j change the logits at i? (forward perturbation)"""
    idx = torch.randint(0, 20, (1, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        base, _ = model(idx)
        rows = []
        for j in range(length):
            changed = idx.clone()
            changed[0, j] = (changed[0, j] + 7) % 20
            rows.append((model(changed)[0][0] - base[0]).abs().amax(-1) > 1e-6)  # (T,) over i
    return torch.stack(rows, dim=1)  # (T, T): [i, j]


@pytest.mark.parametrize("kind, layers", [("xl", 1), ("xl", 2), ("xl", 3), ("local", 2),
                                          ("linear", 2)])
def test_reach_is_exactly_what_a_token_can_influence(kind, layers):
    model = small_model(kind, segment=4, n_layer=layers)
    assert torch.equal(influence(model, 24), reach(24, 4, kind, layers))


@pytest.mark.parametrize("layers, segment", [(1, 4), (2, 4), (3, 8), (4, 16)])
def test_xl_reach_grows_by_one_segment_per_layer(layers, segment):
    length = segment * (layers + 3)
    field = reach(length, segment, "xl", layers)
    for i in range(length):
        farthest = i - int(field[i].nonzero().min())
        offset = i % segment
        assert farthest == min(i, xl_reach_distance(layers, segment, offset))


def test_xl_gradient_stays_in_the_segment_but_the_forward_reaches_further():
    """Transformer-XL's stop-gradient: the forward pass reads two segments back with 2 layers,
    but the gradient of a token's output never leaves its own segment (only the weights that
    read the cache learn; nothing teaches an earlier segment what to leave in it)."""
    length, segment = 24, 4
    reached = {}
    for detach in (True, False):
        model = small_model("xl", segment=segment, xl_detach=detach)
        idx = torch.randint(0, 20, (1, length), generator=torch.Generator().manual_seed(6))
        emb = model.tok_emb(idx).detach().requires_grad_(True)
        h = emb
        for block in model.blocks:
            h = block(h)
        out = model.head(model.ln_f(h))[0]  # (T, V)
        rows = []
        for i in range(length):
            (grad,) = torch.autograd.grad(out[i].sum(), emb, retain_graph=True)
            rows.append(grad[0].abs().amax(-1) > 0)
        reached[detach] = torch.stack(rows)  # (T, T): [i, j]
    assert torch.equal(reached[False], reach(length, segment, "xl", 2))
    assert torch.equal(reached[True], segment_mask(length, segment, "local"))


# ---------------------------------------------------------------- constant state

@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_state_size_is_constant_in_length_except_for_full_attention(kind):
    model = small_model(kind)
    c = model.config
    sizes = []
    for length in (64 + 5, 1024 + 5):  # 5 tokens into a segment
        idx = torch.randint(0, 20, (1, length), generator=torch.Generator().manual_seed(7))
        _, state = model.stream(idx)
        sizes.append(state_numel(state))
    if kind == "full":  # a KV cache: 2 C numbers per token and layer
        assert sizes == [2 * c.n_layer * c.n_embd * (64 + 5), 2 * c.n_layer * c.n_embd * 1029]
    else:
        assert sizes[0] == sizes[1]
    per_token = 2 * c.n_embd  # k and v of each token in the current segment
    if kind in ("linear", "delta"):  # + sigma(k) of each, + M (H, D, D) and z (H, D)
        per_layer = 5 * (per_token + c.n_embd) + c.n_head * c.head_dim * (c.head_dim + 1)
        assert sizes[0] == c.n_layer * per_layer
    if kind == "xl":  # + the cached segment's k and v
        assert sizes[0] == c.n_layer * (5 + c.segment) * per_token


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, words", [
    (lambda: empty_memory(1, 1, 0, 4), "d_k must be >= 1"),
    (lambda: empty_memory(1, 1, 4, 0), "d_v must be >= 1"),
    (lambda: memory_read(Memory(torch.zeros(1, 1, 0, 3), torch.zeros(1, 1, 0)),
                         torch.zeros(1, 1, 2, 0)), "zero-size state"),
    (lambda: memory_update(empty_memory(1, 1, 4, 3), torch.ones(1, 1, 2, 5),
                           torch.ones(1, 1, 2, 3)), r"phi_k must be \(B, H, T, d_k\)"),
    (lambda: memory_update(empty_memory(1, 1, 4, 3), torch.ones(1, 1, 2, 4),
                           torch.ones(1, 1, 2, 3), rule="hebb"), "rule must be one of"),
    (lambda: memory_read("memory", torch.ones(1, 1, 2, 4)), "must be a lcviz.recurrent.Memory"),
    (lambda: RecurrentConfig(segment=-4), "segment must be >= 1"),
    (lambda: RecurrentConfig(segment=0), "segment must be >= 1"),
    (lambda: RecurrentConfig(memory="lstm"), "memory must be one of"),
    (lambda: RecurrentConfig(n_embd=64, n_head=3), "must divide n_embd"),
    (lambda: small_model("linear")(torch.zeros(1, 20, dtype=torch.long)),
     "segment 8 must divide the length 20"),
    (lambda: small_model("xl").stream(torch.zeros(1, 20, dtype=torch.long), chunk=3),
     "chunk 3 must divide the segment 8"),
    (lambda: small_model("local")(torch.full((1, 8), 99)), r"token ids must be in 0\.\.19"),
    (lambda: small_model("local").gates(), "only Infini models"),
    (lambda: segment_passkey(2, 3, 6, n_digits=3), "segment must be >= 7"),
    (lambda: segment_passkey(2, 3, 16, gap=3), "gap must be <= 2"),
    (lambda: segment_passkey(2, 3, 16, filler="lorem"), "filler must be one of"),
    (lambda: reach(16, 4, "xl", 0), "n_layer must be >= 1"),
    (lambda: xl_reach_distance(2, 4, 4), "offset must be <= 3"),
    (lambda: retrieval_error(0, 8, "linear"), "n must be >= 1"),
    (lambda: memory_keys(4, 8, "sparse"), "kind must be one of"),
])
def test_bad_inputs_raise_clear_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()


# ---------------------------------------------------------------- passkey across segments

def test_passkey_prompts_hide_the_key_only_in_the_needle():
    g = torch.Generator().manual_seed(8)
    batch = segment_passkey(400, 5, 16, n_digits=3, generator=g)
    digits = digit_ids()
    T = batch.x.size(1)
    assert T == 80 and batch.n_segments == 5
    assert sorted(batch.gaps.unique().tolist()) == [0, 1, 2, 3, 4]
    for r in range(400):
        row = batch.x[r]
        start = int(batch.needle_start[r])
        assert int(start // 16) == 4 - int(batch.gaps[r])  # the needle sits in its segment
        assert start % 16 + 4 <= 16  # ... wholly
        assert torch.equal(row[start + 1:start + 4], digits[batch.keys[r]])
        is_digit = torch.isin(row, digits)
        assert is_digit.sum() == 3 + 2 and decode(row[T - 3:T - 2]) == "ask:"
        assert (batch.y[r] != -100).nonzero().flatten().tolist() == [T - 3, T - 2, T - 1]
        assert torch.equal(batch.y[r, -3:], digits[batch.keys[r]])
    offsets = (batch.needle_start % 16)[batch.gaps > 0]
    assert offsets.min() == 0 and offsets.max() == 12  # every place the needle fits
    zipf = segment_passkey(400, 5, 16, filler="zipf", generator=g).x
    assert (zipf == 0).float().mean() > 2 * (batch.x == 0).float().mean()


@pytest.mark.parametrize("n_digits", [1, 2])
def test_key_hits_equal_greedy_decoding(n_digits):
    model = small_model("linear", segment=8, vocab_size=passkey_vocab_size())
    batch = segment_passkey(200, 3, 8, n_digits=n_digits,
                            generator=torch.Generator().manual_seed(9))
    hits = key_hits(model, batch)
    prompt = batch.x[:, :batch.x.size(1) - n_digits + 1]  # ends with "ask:"
    digits = digit_ids()
    decoded = []
    for _ in range(n_digits):
        logits, _ = model.stream(prompt)
        best = logits[:, -1, digits].argmax(-1)
        decoded.append(best)
        prompt = torch.cat([prompt, digits[best][:, None]], dim=1)
    greedy = torch.stack(decoded, 1)
    assert torch.equal(hits, (greedy == batch.keys).all(1))
    if n_digits == 1:  # chance is 1 in 10: both outcomes occur, so the comparison means something
        assert 0 < int(hits.sum()) < 200


def test_passkey_accuracy_counts_hits_with_a_wilson_interval():
    model = small_model("local", segment=8, vocab_size=passkey_vocab_size())
    hits, n, (low, high) = passkey_accuracy(model, 2, 1, n=150, n_digits=1, batch_size=40)
    batch = segment_passkey(150, 2, 8, gap=1, n_digits=1,
                            generator=torch.Generator().manual_seed(1234))
    assert n == 150 and low <= hits / n <= high
    assert (low, high) == lcviz.stats.wilson_interval(hits, n)
    assert hits == int(key_hits(model, batch).sum())  # the same prompts, whatever batch_size


# ---------------------------------------------------------------- checkers

def test_check_delta_update_passes_eq5_and_fails_the_usual_mistakes():
    from lcviz.checks import recurrent as checks
    from lcviz.recurrent import Memory as Mem

    def right(M, z, phi_k, v):
        new = memory_update(Mem(M, z), phi_k, v, "delta")
        return new.M, new.z

    def linear(M, z, phi_k, v):  # forgot to subtract what the memory already returns
        return M + phi_k.transpose(-1, -2) @ v, z + phi_k.sum(2)

    def unnormalised(M, z, phi_k, v):  # subtracts phi_k M without dividing by phi_k z
        return M + phi_k.transpose(-1, -2) @ (v - phi_k @ M), z + phi_k.sum(2)

    def stub(M, z, phi_k, v):
        raise NotImplementedError

    assert checks.check_delta_update(right).passed
    for wrong in (linear, unnormalised):
        result = checks.check_delta_update(wrong)
        assert result.status == "fail" and "cases pass" in result.message
    assert checks.check_delta_update(stub).status == "not attempted"


def test_check_capacity_measures_the_learners_n():
    from lcviz.checks import recurrent as checks
    from lcviz.recurrent import capacity_pairs

    assert checks.check_capacity(capacity_pairs).passed
    assert checks.check_capacity(lambda d_k, error: 1 + round(error * error * d_k)).passed
    linear_guess = checks.check_capacity(lambda d_k, error: round(error * d_k))
    assert linear_guess.status == "fail" and "measured error" in linear_guess.message
    assert checks.check_capacity(lambda d_k, error: d_k).status == "fail"  # "d_k pairs fit"
    assert checks.check_capacity(lambda d_k, error: 2.5).status == "fail"


def test_check_xl_reach_passes_the_formula_and_fails_the_window_formula():
    from lcviz.checks import recurrent as checks

    assert checks.check_xl_reach(xl_reach_distance).passed
    assert checks.check_xl_reach(lambda n_layer, segment, offset: n_layer * (segment - 1)
                                 ).status == "fail"
    assert checks.check_xl_reach(lambda n_layer, segment, offset: n_layer * segment
                                 ).status == "fail"  # forgets the offset in its own segment


# ---------------------------------------------------------------- figures and page

def test_figures_are_built_without_showing():
    import matplotlib.figure
    import plotly.graph_objects as go

    from lcviz.plots import recurrent as figures
    from lcviz.recurrent import retrieval_table

    rows = retrieval_table(d_k=8, ratios=(0.5, 1.0, 2.0), trials=2)
    fig = figures.retrieval_error_figure(rows)
    assert isinstance(fig, go.Figure) and len(fig.data) == len(rows)
    gaps = {"local": {"0": [40, 50], "1": [0, 50]}, "xl": {"0": [45, 50], "1": [30, 50]}}
    fig = figures.passkey_gap_figure(gaps, highlight="xl")
    assert [trace.y[1] for trace in fig.data] == [0.0, 0.6]
    assert fig.data[1].error_y.array[1] > 0 and abs(fig.data[0].error_y.arrayminus[1]) < 1e-12
    assert isinstance(figures.reach_figure(16, 4, 2), matplotlib.figure.Figure)
    assert isinstance(figures.gate_figure([[0.2, 0.9], [0.5, 0.1]]), matplotlib.figure.Figure)
    row = {"kind": "full", "position": [0, 512], "ms_per_token": [0.5, 0.9]}
    assert isinstance(figures.token_time_figure([row]), go.Figure)


def test_app_page_runs_and_recomputes_on_a_slider_move():
    from streamlit.testing.v1 import AppTest

    def page():
        from lcviz.app import state
        from lcviz.app.pages import recurrent as page_module
        with state.guarded():
            page_module.render()

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception and not at.error
    before = at.metric[0].value
    at.slider(key="layers").set_value(5).run()
    assert not at.exception and not at.error and at.metric[0].value != before
    at.selectbox(key="keys").set_value("random").run()
    assert not at.exception and not at.error


def test_the_linear_rule_does_not_depend_on_how_writes_are_grouped_and_the_delta_rule_does():
    phi_k, _ = memory_keys(12, 8, "random", torch.Generator().manual_seed(0))  # (1, 1, 12, 8)
    values = torch.randn(1, 1, 12, 8, generator=torch.Generator().manual_seed(1))
    for rule, same in (("linear", True), ("delta", False)):
        at_once = memory_update(empty_memory(1, 1, 8, 8), phi_k, values, rule, False)
        one_by_one = empty_memory(1, 1, 8, 8)
        for t in range(12):
            one_by_one = memory_update(one_by_one, phi_k[:, :, t:t + 1], values[:, :, t:t + 1],
                                          rule, False)
        assert torch.allclose(at_once.M, one_by_one.M, atol=1e-5) == same
