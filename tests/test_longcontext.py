import pytest
import torch

from lcviz import checks, longcontext
from lcviz.longcontext import (
    TECHNIQUES,
    effective_length,
    middle_batch,
    string_match_all,
    variable_tracking_batch,
)
from lcviz.passkey import min_passkey_length


def interpret(row):
    """Run a variable-tracking prompt as a program: assignments in reading order, the last token
    asks one variable. Returns (the value it holds, how many variables its value passed through
    to get there): a brute-force reference."""
    memory, tokens = {}, row.tolist()
    for position in range(0, len(tokens) - 2, 2):
        name, source = tokens[position], tokens[position + 1]
        if name:
            value, hops = memory.get(source, (source, -1))
            memory[name] = (value, hops + 1)
    return memory[tokens[-1]]


@pytest.mark.parametrize("hops, chains, length", [(0, 1, 16), (1, 4, 64), (2, 4, 128), (3, 4, 128),
                                                  (5, 2, 40)])
def test_variable_tracking_answer_is_what_the_program_computes(hops, chains, length):
    x, y = variable_tracking_batch(32, length, hops, chains, 128, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (32, length)
    assert ((y != -100).sum(1) == 1).all() and (y[:, -1] >= 64).all()
    for row, target in zip(x, y[:, -1]):
        assert interpret(row) == (int(target), hops)
        assert int((row[:-1] != 0).sum()) == 2 * chains * (hops + 1)  # every statement placed


def test_variable_tracking_trace_targets_are_each_variables_value_when_assigned():
    x, y = variable_tracking_batch(16, 64, 2, 3, 128, torch.Generator().manual_seed(2),
                                   trace=True)
    for row, targets in zip(x, y):
        memory = {}
        for position in range(0, len(row) - 2, 2):  # statement slots; the last token asks
            name, source = int(row[position]), int(row[position + 1])
            if name:
                memory[name] = memory.get(source, source)
                assert int(targets[position + 1]) == memory[name]
            else:
                assert int(targets[position + 1]) == -100
        assert int(targets[-1]) == memory[int(row[-1])]


def test_variable_tracking_places_statements_at_random_not_in_a_fixed_layout():
    x, _ = variable_tracking_batch(64, 128, 2, 4, 128, torch.Generator().manual_seed(1))
    first = (x[:, :-1] != 0).float().argmax(1)
    assert len(set(first.tolist())) > 5


def test_middle_batch_asks_the_pair_at_the_gold_place():
    for gold in (0, 7, 15):
        x, y = middle_batch(20, 16, gold, 128, 128, torch.Generator().manual_seed(gold))
        assert torch.equal(x[:, -1], x[:, 2 * gold])
        assert torch.equal(y[:, -1], x[:, 2 * gold + 1])
        assert (x[:, 32:-1] == 0).all()  # filler between the pairs and the question


@pytest.mark.parametrize("call, match", [
    (lambda: variable_tracking_batch(2, 10, 2, 4, 128), "length >= 25"),
    (lambda: variable_tracking_batch(2, 400, 20, 4, 64), "vocab_size"),
    (lambda: variable_tracking_batch(2, 64, -1, 4, 128), "hops"),
    (lambda: middle_batch(2, 16, 16, 128, 128), "gold"),
    (lambda: middle_batch(2, 16, 3, 20, 128), "length"),
    (lambda: longcontext.needle_prompts(256, 101, 1, 0), "depth"),
    (lambda: longcontext.segment_needles(100, 50, 1, 0), "multiple of the segment"),
    (lambda: string_match_all("x", []), "references"),
    (lambda: longcontext.measure_document("dense", 1000), "method"),
])
def test_bad_input_names_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_needle_depth_places_the_needle_from_first_to_last():
    length = 256
    n_filler = length - min_passkey_length()
    first = longcontext.needle_prompts(length, 0, 3, seed=0)
    last = longcontext.needle_prompts(length, 100, 3, seed=0)
    assert all(p.length == length and p.depth == 0 for p in first)
    assert all(p.depth == 1 for p in last)
    assert all(p.needle_start < q.needle_start - n_filler + 1 for p, q in zip(first, last))


def test_segment_needle_depth_maps_to_the_gap():
    batch = longcontext.segment_needles(128, 0, 4, seed=0)  # 8 segments, needle in the first
    assert batch.gaps.tolist() == [7] * 4
    assert longcontext.segment_needles(128, 100, 4, seed=0).gaps.tolist() == [0] * 4


def test_string_match_all_and_effective_length_follow_ruler():
    assert string_match_all("Values: 4021, 77", ["4021", "77", "9"]) == pytest.approx(2 / 3)
    cells = {"128": {"rate": 1.0}, "256": {"rate": 0.9}, "512": {"rate": 0.5},
             "1024": {"rate": 0.95}}
    assert effective_length(cells) == 256  # 1024 passes again, but 512 failed first
    assert effective_length(cells, threshold=0.96) == 128
    assert effective_length({"64": {"rate": 0.1}}) == 0


def test_checkers_pass_the_reference_and_catch_a_wrong_answer():
    assert checks.check_effective_length(longcontext.effective_length).passed
    assert checks.check_string_match_all(longcontext.string_match_all).passed
    largest_passing = lambda by_length, threshold: max(
        [int(k) for k, c in by_length.items() if c["rate"] >= threshold] or [0])
    assert checks.check_effective_length(largest_passing).status == "fail"
    exact_only = lambda prediction, references: sum(
        r in prediction for r in references) / len(references)
    assert checks.check_string_match_all(exact_only).status == "fail"


def test_hierarchical_mixer_is_exact_near_and_approximate_far():
    from lcviz.subquadratic import RecallConfig, RecallModel
    torch.manual_seed(0)
    model = RecallModel(RecallConfig(mixer="attention", length=64)).eval()
    idx = torch.randint(0, 128, (2, 64))
    exact, _ = model(idx)
    for mixer in model.mixers:
        mixer.block = 32  # T = 2b: every key is near, the hierarchical form is exact
    near, _ = model(idx)
    for mixer in model.mixers:
        mixer.block = 4
    far, _ = model(idx)
    assert torch.allclose(near, exact, atol=1e-5)
    assert not torch.allclose(far, exact, atol=1e-3)


@pytest.mark.parametrize("label", ["recent entries", "H2O", "SnapKV (sees the question)",
                                   "trained window 16, 2 layers", "full attention"])
def test_kept_entries_is_what_the_streaming_cache_holds(label):
    from lcviz.streaming import Policy, StreamingDecoder
    technique = TECHNIQUES[label]
    model = longcontext.load_models(technique)[0]
    length = 100
    entries = longcontext.kept_entries(technique, model, length)
    if technique.policy:
        name, budget, extra = technique.policy
        policy, streamed = Policy(name, budget, **dict(extra)), model
    elif model.config.window is None:
        policy, streamed = Policy("full"), model
    else:
        policy = Policy("window", model.config.window, positions="original")
        streamed = model.with_config(window=None)
    decoder = StreamingDecoder(streamed, policy, 1, prompt_length=length, record=True)
    for token in torch.randint(1, 10, (length + 1,)):  # the prompt, then the first answer token
        decoder.step(token[None])
    # (L, B, H, n): the keys the first answer token's query read (SnapKV compresses before it)
    assert decoder.kept[-1].shape[-1] == longcontext.kept_entries(technique, model, length + 1)
    numbers = longcontext.cost(technique, [model], length)["numbers"]
    assert numbers == 2 * model.config.n_layer * model.config.n_embd * entries


def test_segment_cost_counts_the_state_the_stream_keeps():
    from lcviz.recurrent import state_numel
    technique = TECHNIQUES["Transformer-XL"]
    model = longcontext.load_models(technique)[0]
    row = longcontext.cost(technique, [model], 64)
    state = model.empty_state(1, capacity=64)
    model.stream(torch.randint(1, 10, (1, 63)), state=state)
    assert row["numbers"] == state_numel(state) > 0
    assert row["decode_seconds"] > 0 and row["prefill_seconds"] > 0


def test_ring_attention_reproduces_the_full_models_layer():
    ring = longcontext.ring_check(length=128, world=4)
    assert ring["max_abs_error"] < 1e-5


def test_document_reasons_are_the_sizes_of_what_would_be_held():
    reasons = longcontext.document_reasons(200_000)
    assert "640 GB" in reasons["layer: softmax, explicit T x T"]  # 4 heads x 200K^2 x 4 bytes


def test_window_global_reader_matches_the_mask_it_names():
    from lcviz.checkpoints import load_checkpoint
    from lcviz.masks import global_local_mask
    technique = TECHNIQUES[f"window {longcontext.BUDGET} + {longcontext.GLOBAL_TOKENS} global tokens"]
    reader = longcontext.load_models(technique)[0]
    full = load_checkpoint("passkey-full")[0]
    idx = torch.randint(1, 20, (1, 90))
    mask = global_local_mask(90, longcontext.BUDGET, list(range(longcontext.GLOBAL_TOKENS)))
    assert torch.allclose(reader(idx)[0], full(idx, attn_mask=mask)[0])
    assert not torch.allclose(reader(idx)[0], full(idx)[0], atol=1e-4)


def test_quick_benchmark_has_every_technique_and_task():
    results = longcontext.benchmark(quick=True)
    assert set(results["techniques"]) == set(TECHNIQUES)
    for label, technique in TECHNIQUES.items():
        tasks = ("needle",) if technique.family != "recall" else ("multikey", "vt", "middle")
        for task in tasks:
            cells = results[task][label]
            assert cells and all("k" in c or all("k" in d for d in c.values())
                                 for c in cells.values())
        assert label in results["effective_length"] and results["cost"][label]
    assert results["ring"]["max_abs_error"] < 1e-5 and "document" not in results


def test_saved_table_is_reproduced_by_rerunning_one_cell():
    """Every cell of data/bench-longcontext.json comes from a seeded generator: re-running one
    gives the same counts."""
    from lcviz.checkpoints import load_results
    saved = load_results("longcontext")
    label, length = "H2O", "256"
    technique = TECHNIQUES[label]
    row = longcontext.needle_row(technique, longcontext.load_models(technique), int(length),
                                 saved["n_needle"], seed=1000 * int(length))
    for depth, cell in saved["needle"][label][length].items():  # one prompt of slack per cell:
        assert abs(row[depth]["k"] - cell["k"]) <= 1              # float rounding on another CPU
    recall = TECHNIQUES["recall: linear attention"]
    cell = longcontext.recall_cell("multikey", longcontext.load_models(recall), saved["n_recall"],
                                   seed=256, length=256)
    assert abs(cell["k"] - saved["multikey"][recall.label]["256"]["k"]) <= 1
