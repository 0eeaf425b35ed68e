"""The lecturer's app, headless: streamlit.testing.v1.AppTest runs app.py without a browser."""

import base64
import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from lcviz import beacons, masks, passkey, receptive, rope
from lcviz.app import PAGES, SCENES
from lcviz.checkpoints import load_checkpoint, load_results
from lcviz.receptive import window_receptive_field
from lcviz.rope import rope_scaling

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def run_app(**params):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


def metrics(at):
    return {m.label: m.value for m in at.metric}


def widgets(at):
    """{key: value} of the page's own widgets (sliders, option sliders, selectboxes, text)."""
    found = {}
    for kind in (at.slider, at.select_slider, at.selectbox, at.text_area):
        found.update({w.key: w.value for w in kind if w.key})
    return found


def decode(value):
    """A plotly JSON array (a list, or {"dtype", "bdata", "shape"}) as a numpy array."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return array.reshape([int(s) for s in str(shape).split(",")]) if shape else array
    return np.asarray(value)


def charts(at):
    """The page's plotly figures, in order, as the JSON the browser receives."""
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def option_values(slider):
    """The values of an option slider (its options are the formatted labels, e.g. "4,096")."""
    return [int(o.replace(",", "")) for o in slider.options]


BOUNDARY = "This view failed"  # the error boundary's words for an exception it did not expect


def sweep(page):
    """Open `page`, move each slider to its minimum, middle and maximum (each option slider to
    its first, middle and last option); the problems seen: an exception, or the error
    boundary's message (a bug the page turned into an st.error)."""
    problems = []
    at = run_app(page=page)

    def look(where):
        problems.extend(f"{where}: {e.value}" for e in at.exception)
        problems.extend(f"{where}: {e.value}" for e in at.error if BOUNDARY in e.value)
    look("default view")
    if at.error:
        problems.append(f"default view: {at.error[0].value}")
    for key in [s.key for s in at.slider]:
        if key not in [s.key for s in at.slider]:
            continue  # an earlier move hid it (e.g. no step slider on a ring of one rank)
        slider = at.slider(key=key)
        low, high = slider.min, slider.max
        middle = low + (high - low) / 2 if isinstance(low, float) else (low + high) // 2
        for value in (low, middle, high):
            at.slider(key=key).set_value(value).run()
            look(f"{key}={value}")
        at.slider(key=key).set_value(slider.value).run()
    for key in [s.key for s in at.select_slider]:
        start = at.select_slider(key=key).value
        options = option_values(at.select_slider(key=key))
        for value in (options[0], options[len(options) // 2], options[-1]):
            if value in option_values(at.select_slider(key=key)):
                at.select_slider(key=key).set_value(value).run()
                look(f"{key}={value}")
        at.select_slider(key=key).set_value(start).run()
    return problems


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_runs_and_its_sliders_reach_their_bounds(page):
    assert sweep(page) == []


@pytest.mark.parametrize("page", list(PAGES))
def test_the_sweep_goes_red_when_a_page_raises(page, monkeypatch):
    import importlib
    module = importlib.import_module(f"lcviz.app.pages.{page}")

    def broken():
        raise RuntimeError("broken on purpose")
    monkeypatch.setattr(module, "render", broken)
    assert any("broken on purpose" in problem for problem in sweep(page))


def test_default_page_without_url_parameters():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and at.query_params["page"] == next(iter(PAGES))


# ---- navigation: a page never inherits another page's widget values ------------------------

def every_ordered_pair(nodes):
    """A walk through `nodes` that goes from every node to every other exactly once (an Euler
    circuit of the complete directed graph, Hierholzer's algorithm)."""
    unused = {a: [b for b in nodes if b != a] for a in nodes}
    stack, walk = [nodes[0]], []
    while stack:
        if unused[stack[-1]]:
            stack.append(unused[stack[-1]].pop())
        else:
            walk.append(stack.pop())
    return walk[::-1]


def test_the_walk_covers_every_ordered_pair():
    walk = every_ordered_pair(list("abcd"))
    assert sorted(pairwise(walk)) == sorted((a, b) for a in "abcd" for b in "abcd" if a != b)


def push_every_widget_to_its_end(at):
    """Move every slider and option slider of the page to its maximum (one rerun)."""
    for slider in at.slider:
        slider.set_value(slider.max)
    for slider in at.select_slider:
        slider.set_value(option_values(slider)[-1])
    return at.run()


def test_every_page_opens_on_its_defaults_from_every_other_page():
    defaults = {page: widgets(run_app(page=page)) for page in PAGES}
    walk = every_ordered_pair(list(PAGES))
    at = run_app(page=walk[0])
    problems = []
    for before, after in pairwise(walk):
        push_every_widget_to_its_end(at)
        at.sidebar.radio(key="page").set_value(after).run()
        where = f"{before} -> {after}"
        problems += [f"{where}: {e.value}" for e in at.exception]
        problems += [f"{where}: {e.value}" for e in at.error]
        if widgets(at) != defaults[after]:
            problems.append(f"{where}: widgets {widgets(at)}, defaults {defaults[after]}")
        foreign = set(at.query_params) - {"page"} - set(defaults[after])
        if foreign:
            problems.append(f"{where}: URL keeps {sorted(foreign)} of another page")
    assert problems == []


@pytest.mark.parametrize("label, page, values", SCENES)
def test_every_scene_opens_its_view(label, page, values):
    start = "beacons" if page != "beacons" else "memory"
    at = push_every_widget_to_its_end(run_app(page=start))
    at.button(key=f"scene:{label}").click().run()
    assert not at.exception and not at.error
    assert at.query_params["page"] == page
    for key, value in values.items():
        assert at.query_params[key] == str(value)
    fresh = widgets(run_app(page=page, **values))
    assert widgets(at) == fresh  # the scene's values, the page's defaults for the rest


def test_a_value_outside_the_new_range_moves_to_the_nearest_with_a_note():
    at = run_app(page="beacons", length=64, chunk=16, ratio=16)
    at.slider(key="chunk").set_value(12).run()
    assert not at.exception and not at.error
    assert at.select_slider(key="ratio").value == 12  # 16 no longer divides: nearest divisor
    assert any("16 is not offered here" in i.value for i in at.info)
    assert at.query_params["ratio"] == "12"


# ---- masks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", list(masks.MASK_PATTERNS))
def test_masks_page_reports_the_pairs_of_every_pattern(pattern):
    at = run_app(page="masks", pattern=pattern, length=40)
    assert not at.exception and not at.error
    mask = masks.build_mask(pattern, 40)
    assert metrics(at)["attended pairs"] == f"{masks.attended_pairs(mask):,}"
    heatmap = charts(at)[0]["data"][0]
    np.testing.assert_array_equal(decode(heatmap["z"]), mask.numpy().astype(np.uint8))
    assert "query %{y} → key %{x}" in heatmap["hovertemplate"]


@pytest.mark.parametrize("length, window", [(6, 3), (100, 7), (4096, 256)])
def test_masks_page_pair_count_equals_the_closed_form(length, window):
    at = run_app(page="masks", pattern="sliding window", length=length, window=window)
    assert metrics(at)["attended pairs"] == f"{masks.sliding_window_pairs(length, window):,}"
    assert at.query_params["window"] == str(window)  # the view is in the URL


def test_a_long_mask_is_drawn_in_cells_that_count_its_pairs():
    at = run_app(page="masks", pattern="sliding window", length=4096, window=256)
    figure = charts(at)[0]
    z = decode(figure["data"][0]["z"])
    assert z.shape == (256, 256)  # 16 x 16 pairs per cell: the figure stays small
    mask = masks.sliding_window_mask(4096, 256)
    np.testing.assert_array_equal(z, mask.reshape(256, 16, 256, 16).sum((1, 3)).numpy())
    assert figure["data"][0]["x"][1] == "16–31"  # hover names the cell's keys
    assert "of 256 pairs may attend" in figure["data"][0]["hovertemplate"]
    assert len(json.dumps(figure)) < 300_000


@pytest.mark.parametrize("pattern", list(masks.MASK_PATTERNS))
def test_the_mask_title_stays_short_at_any_length(pattern):
    at = run_app(page="masks", pattern=pattern, length=4096, window=8, stride=8, block=8)
    assert not at.error
    title = charts(at)[0]["layout"]["title"]["text"]
    assert "4,096" in title and len(title) <= 32, title  # fits a 600-pixel column
    assert any("16 × 16 query-key pairs" in c.value for c in at.caption)


def test_impossible_combination_shows_what_to_change():
    at = run_app(page="masks", pattern="sliding window", length=16, window=4)
    at.slider(key="window").set_value(40).run()
    assert not at.exception
    assert "window = 40 is larger than the length T = 16" in at.error[0].value


@pytest.mark.parametrize("params, words", [
    ({"page": "nowhere"}, "Unknown page 'nowhere'"),
    ({"page": "masks", "length": "abc"}, "length='abc' is not allowed"),
    ({"page": "masks", "length": "99999"}, "an integer from 1 to 4096"),
    ({"page": "masks", "pattern": "diagonal"}, "pattern='diagonal' is not allowed"),
    ({"page": "memory", "length": "4608"}, "length='4608' is not allowed"),
    ({"page": "beacons", "chunk": "16", "ratio": "3"}, "ratio='3' is not allowed (one of 1, 2, 4"),
])
def test_bad_url_parameters_warn_and_fall_back(params, words):
    at = run_app(**params)
    assert not at.exception and not at.error
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


# ---- transformer -----------------------------------------------------------------------------

def test_missing_checkpoint_is_an_error_not_a_traceback(monkeypatch, tmp_path):
    from lcviz.app.pages import transformer as transformer_page
    monkeypatch.setattr(transformer_page, "load_checkpoint",
                        lambda name: load_checkpoint(name, data_dir=tmp_path))  # an empty data/
    transformer_page.charlm.clear()
    at = run_app(page="transformer")
    transformer_page.charlm.clear()
    assert not at.exception
    assert "python -m lcviz.train charlm" in at.error[0].value


def test_the_transformer_text_lives_in_the_url():
    at = run_app(page="transformer", text="x = 1\nprint(x)")
    assert at.text_area(key="text").value == "x = 1\nprint(x)"
    at.text_area(key="text").input("def f(a):").run()
    assert at.query_params["text"] == "def f(a):"
    heatmap = charts(at)[0]["data"][0]
    assert list(heatmap["x"]) == ["0 d", "1 e", "2 f", "3 ␣", "4 f", "5 (", "6 a", "7 )", "8 :"]


def test_the_attention_map_carries_the_model_weights_and_the_tokens():
    from lcviz.tokenize import CharTokenizer
    text = "for i in range(3):\n"
    at = run_app(page="transformer", text=text, layer=1, head=2)
    heatmap = charts(at)[0]["data"][0]
    model, _ = load_checkpoint("charlm")
    with torch.no_grad():
        expected = model.attention_maps(CharTokenizer().encode(text)[None])[1][0, 2]
    np.testing.assert_allclose(decode(heatmap["z"]), expected.numpy(), atol=1e-6)
    assert heatmap["y"][3] == "3 ␣" and heatmap["x"][-1] == f"{len(text) - 1} ⏎"
    assert "weight %{z:.3f}" in heatmap["hovertemplate"]


# ---- receptive -------------------------------------------------------------------------------

def test_receptive_page_matches_the_exact_formula():
    at = run_app(page="receptive", pattern="sliding window", length=2048, window=128, layers=8)
    values = list(metrics(at).values())
    assert values[0] == values[1] == f"{window_receptive_field(128, 8):,}" == "1,017"


def test_the_growth_curve_has_integer_layer_ticks_and_the_measured_sizes():
    at = run_app(page="receptive", pattern="sliding window", length=64, window=4, layers=3)
    growth, reach = charts(at)
    axis = growth["layout"]["xaxis"]
    assert axis["tickmode"] == "linear" and axis["tick0"] == 1 and axis["dtick"] == 1
    mask = masks.sliding_window_mask(64, 4)
    sizes = receptive.reachable_from(mask, 63, 3).sum(-1).tolist()
    assert list(decode(growth["data"][0]["y"])) == sizes == [4, 7, 10]
    expected = np.full((64, 64), np.nan, dtype=np.float32)
    for layer, matrix in reversed(list(enumerate(receptive.reachability(mask, 3), start=1))):
        expected[matrix.numpy()] = layer
    np.testing.assert_array_equal(decode(reach["data"][0]["z"]), expected)
    assert "reached after %{z} layer(s)" in reach["data"][0]["hovertemplate"]


# ---- memory ----------------------------------------------------------------------------------

def test_memory_length_offers_only_powers_of_two():
    at = run_app(page="memory")
    options = option_values(at.select_slider(key="length"))
    assert options == [2**p for p in range(9, 18)]
    at.select_slider(key="length").set_value(16384).run()
    assert metrics(at)["dense scores"] == "4,096 MB"


def test_the_benchmark_figure_shows_the_measured_rows_and_the_chosen_length():
    at = run_app(page="memory", length=8192, window=64)
    figure = charts(at)[0]
    rows = [r for r in load_results("attention")["rows"] if r["method"] == "dense SDPA"]
    dense = next(t for t in figure["data"] if t["name"] == "dense SDPA")
    np.testing.assert_allclose(decode(dense["y"]), [r["seconds"] * 1e3 for r in rows])
    kept = next(t for t in figure["data"] if t["name"] == "scores a window of 64 keeps")
    x, y = list(decode(kept["x"])), decode(kept["y"])
    assert y[x.index(8192)] == pytest.approx(4 * masks.sliding_window_pairs(8192, 64) * 4 / 2**20)
    assert any(shape.get("x0") == 8192 for shape in figure["layout"]["shapes"])


# ---- rope ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, kept, interpolated", [
    ("default", 64, 0), ("linear", 0, 64), ("yarn", None, None), ("llama3", None, None)])
def test_rope_page_counts_kept_and_interpolated_pairs(method, kept, interpolated):
    at = run_app(page="rope", method=method, factor=8.0, original=4096)
    assert not at.exception and not at.error
    freq, factor = rope.rope_frequencies(method, 128, seq_len=8 * 4096,
                                         **rope_scaling(method, 8.0, 4096)["rope_params"])
    ratio = freq.double() / rope.default_frequencies(128, 10000.0)
    if kept is None:  # YaRN and llama3 keep some and interpolate some: count independently
        kept = int(np.isclose(ratio, 1, rtol=1e-4).sum())
        interpolated = int(np.isclose(ratio, 1 / 8, rtol=1e-4).sum())
        assert 0 < kept < 64 and 0 < interpolated < 64
    shown = metrics(at)
    assert shown["pairs kept"] == str(kept)
    assert shown["pairs divided by 8"] == str(interpolated)
    assert shown["pairs in between"] == str(64 - kept - interpolated)
    assert shown["attention factor"] == f"{factor:.3f}"
    assert torch.isfinite(freq).all()


@pytest.mark.parametrize("method", rope.ROPE_TYPES)
def test_at_factor_one_nothing_is_interpolated_and_nothing_is_noise(method):
    at = run_app(page="rope", method=method, factor=1.0, original=2048)
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["pairs kept"] == "64"
    assert shown["pairs divided by 1"] == "0"
    ratios = [t for t in charts(at)[1]["data"] if t["xaxis"] == "x2"]
    assert all((decode(t["y"]) == 1.0).all() for t in ratios)  # flat, not float noise
    assert charts(at)[1]["layout"]["yaxis2"]["range"] == [0, 1.12]


def test_rope_legends_are_words():
    at = run_app(page="rope", method="yarn", factor=4.0, original=2048)
    scores, pairs = charts(at)
    texts = [a["text"] for a in pairs["layout"]["annotations"]]
    assert "training length L = 2,048" in texts and "scaled length 4 × L = 8,192" in texts
    assert [t["name"] for t in scores["data"]] == ["default (no scaling)", "yarn"]


# ---- passkey ---------------------------------------------------------------------------------

def passkey_models():
    from lcviz.app.pages.passkey import available_models
    return available_models()


def test_the_passkey_page_offers_the_checkpoints_at_hand():
    from lcviz.app.pages.passkey import PASSKEY_RECIPES
    at = run_app(page="passkey")
    offered = at.selectbox(key="model").options
    present = [n for n in PASSKEY_RECIPES if Path(f"{ROOT}/data/{n}.pt").exists()]
    assert len(offered) == len(present) >= 1
    assert at.selectbox(key="model").value == passkey_models()[0]
    assert load_checkpoint(passkey_models()[0])[0].config.window is None  # full attention first


LAYOUT = "fixed layout (Landmark)"


def expected_prompt(length, depth, seed, filler="random sentences"):
    """The page's prompt, rebuilt from the passkey generators: the needle after depth % of the
    filler, its key min_key_distance + (filler after it) tokens before the question."""
    generator = torch.Generator().manual_seed(seed)
    if filler == LAYOUT:
        return passkey.make_passkey(length, depth / 100, generator=generator)
    n_filler = length - passkey.min_passkey_length()
    after = n_filler - round(depth / 100 * n_filler)
    prompt = passkey.passkey_at(length, after, generator=generator)
    assert prompt.distance == passkey.min_key_distance() + after
    return prompt


@pytest.mark.parametrize("filler", ["random sentences", LAYOUT])
@pytest.mark.parametrize("depth", [30, 100])
@pytest.mark.parametrize("model", passkey_models())
def test_passkey_page_reports_the_distance_and_whether_it_is_in_reach(model, depth, filler):
    at = run_app(page="passkey", model=model, length=passkey.PASSKEY_LENGTH, depth=depth, seed=3,
                 filler=filler)
    assert not at.exception and not at.error
    prompt = expected_prompt(passkey.PASSKEY_LENGTH, depth, 3, filler)
    text = " ".join(m.value for m in at.markdown)
    assert f"**{prompt.distance}** tokens" in text
    config = load_checkpoint(model)[0].config
    if config.window is not None:
        side = "inside" if passkey.recoverable(prompt.distance, config.window,
                                               config.n_layer) else "beyond"
        assert f"**{side}** it" in text
    assert f"Key `{prompt.key}`" in text


def test_the_answer_is_text_not_a_metric_and_found_or_missed_has_no_arrow():
    seen = set()
    for model in passkey_models():
        for depth in (0, 100):
            at = run_app(page="passkey", model=model, depth=depth, seed=1)
            assert not at.metric  # a metric value is cut short in a narrow column
            answer = next(m.value for m in at.markdown if m.value.startswith("#### Key"))
            verdicts = [e.value for e in (*at.success, *at.warning)]
            seen |= {v.split(":")[0] for v in verdicts if v.startswith(("found", "missed"))}
            assert answer.count("`") == 4 and len(answer.split("`")[3]) == 5  # the whole answer
    assert seen == {"found", "missed"}


def test_no_page_draws_a_metric_delta():
    for page in PAGES:
        at = run_app(page=page)
        assert [m.label for m in at.metric if m.proto.delta] == [], page


def test_the_question_attention_names_each_token_and_outlines_the_key():
    at = run_app(page="passkey", model=passkey_models()[0], depth=40, seed=5)
    prompt = expected_prompt(passkey.PASSKEY_LENGTH, 40, 5)
    attention = charts(at)[0]
    heatmap = attention["data"][0]
    assert heatmap["x"] == [f"{i} {t}" for i, t in enumerate(prompt.tokens)]
    assert decode(heatmap["z"]).shape[1] == prompt.length
    outlined = sorted(round(s["x0"] + 0.5) for s in attention["layout"]["shapes"])
    assert outlined == sorted(prompt.key_positions)


@pytest.mark.parametrize("model", passkey_models())
def test_the_accuracy_figure_carries_the_recorded_counts(model):
    from lcviz.app.pages.passkey import recorded_curve
    at = run_app(page="passkey", model=model)
    assert not at.exception and not at.error
    curve = recorded_curve(model)
    if curve is None:
        assert any("records no accuracy" in i.value for i in at.info)
        return
    trace = charts(at)[1]["data"][0]
    xs = sorted(curve[2])
    assert [int(x) for x in decode(trace["x"])] == xs
    assert [list(c) for c in decode(trace["customdata"])] == \
        [[round(curve[2][x][0] * curve[2][x][1]), curve[2][x][1]] for x in xs]


def test_the_needle_grid_counts_found_keys():
    name = passkey_models()[0]
    at = run_app(page="passkey", model=name)
    at.toggle(key="grid").set_value(True).run()
    assert not at.exception and not at.error
    grid = charts(at)[-1]["data"][0]
    found = decode(grid["customdata"])
    assert found.shape[-1] == 2 and (found[..., 1] == 8).all()
    np.testing.assert_allclose(decode(grid["z"]), found[..., 0] / found[..., 1])


# ---- beacons ---------------------------------------------------------------------------------

@pytest.mark.parametrize("length, chunk, ratio", [(128, 16, 2), (17, 4, 4), (4096, 256, 8)])
def test_beacon_page_reports_the_kv_formula(length, chunk, ratio):
    at = run_app(page="beacons", length=length, chunk=chunk, ratio=ratio)
    assert not at.exception and not at.error
    assert metrics(at)["KV entries kept"] == \
        f"{beacons.kv_entries(length, chunk, ratio):,}"


@pytest.mark.parametrize("chunk", [16, 12, 7])
def test_the_ratio_slider_offers_only_divisors_of_the_chunk(chunk):
    at = run_app(page="beacons", chunk=chunk)
    options = option_values(at.select_slider(key="ratio"))
    assert options == [r for r in range(1, chunk + 1) if chunk % r == 0]


def test_the_beacon_mask_figure_is_the_mask():
    at = run_app(page="beacons", length=40, chunk=8, ratio=4)
    heatmap = charts(at)[0]["data"][0]
    layout = beacons.beacon_layout(40, 8, 4)
    z = decode(heatmap["z"])
    mask = beacons.beacon_mask(layout).numpy()
    np.testing.assert_array_equal(~np.isnan(z), mask)
    np.testing.assert_array_equal(z[mask], np.where(layout.is_beacon.numpy()[None, :], 2, 1)
                                  .repeat(len(mask), 0)[mask])
    assert heatmap["x"][8] == "beacon 0 of chunk 0" and heatmap["x"][10] == "token 8"


@pytest.mark.parametrize("coverage", ["stepwise", "full"])
def test_the_beacon_mask_follows_the_coverage_choice(coverage):
    at = run_app(page="beacons", length=40, chunk=8, ratio=2, coverage=coverage)
    layout = beacons.beacon_layout(40, 8, 2, coverage)
    z = decode(charts(at)[0]["data"][0]["z"])
    np.testing.assert_array_equal(~np.isnan(z), beacons.beacon_mask(layout).numpy())


@pytest.mark.parametrize("ratio", [4, 16])
def test_beacon_page_shows_the_saved_equal_budget_comparison_for_its_ratio(ratio):
    at = run_app(page="beacons", chunk=16, ratio=ratio)
    saved = load_results("beacons")["comparison"][str(ratio)]
    bars = charts(at)[1]
    assert str(saved["budget"]) in bars["layout"]["title"]["text"]
    for trace in bars["data"]:
        found = decode(trace["customdata"])  # (bands, 2): k, n
        cells = [band["cells"][trace["name"]] for band in saved["bands"].values()
                 if band and trace["name"] in band["cells"]]
        assert found.tolist() == [[c["k"], c["n"]] for c in cells]
        np.testing.assert_allclose(decode(trace["y"]), [c["rate"] for c in cells])


def test_beacon_page_without_a_trained_ratio_says_which_ratios_exist():
    at = run_app(page="beacons", chunk=12, ratio=3)
    assert not at.exception and not at.error
    assert "choose one of those" in " ".join(i.value for i in at.info)
    assert len(charts(at)) == 1  # the mask only


# ---- property tests --------------------------------------------------------------------------

SLOW = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(pattern=st.sampled_from(list(masks.MASK_PATTERNS)), length=st.integers(1, 512),
       window=st.integers(1, 600))
def test_masks_page_never_crashes(pattern, length, window):
    at = run_app(page="masks", pattern=pattern, length=length, window=window, stride=window,
                 block=window)
    assert not at.exception
    if not at.error and "window" in masks.MASK_PATTERNS[pattern][1]:
        assert window <= length


@SLOW
@given(pattern=st.sampled_from(["sliding window", "dilated window", "global + local", "strided"]),
       length=st.integers(2, 1024), window=st.integers(1, 64), layers=st.integers(1, 12))
def test_receptive_page_never_crashes(pattern, length, window, layers):
    at = run_app(page="receptive", pattern=pattern, length=length, window=window, layers=layers)
    assert not at.exception
    assert bool(at.error) == (window > length)


def test_the_length_slider_reaches_four_times_every_models_training_length():
    from lcviz.app.pages.passkey import trained_lengths
    at = run_app(page="passkey")
    longest = max(trained_lengths(name)[1] for name in passkey_models())
    assert at.slider(key="length").max >= 4 * longest
