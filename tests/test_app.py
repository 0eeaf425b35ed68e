"""The lecturer's app, headless: streamlit.testing.v1.AppTest runs app.py without a browser."""

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from lcviz import masks, passkey, rope
from lcviz.app import PAGES, SCENES
from lcviz.checkpoints import load_checkpoint, load_info
from lcviz.receptive import window_receptive_field
from lcviz.rope import rope_scaling

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def run_app(**params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


def metrics(at):
    return {m.label: m.value for m in at.metric}


BOUNDARY = "This view failed"  # the error boundary's words for an exception it did not expect


def sweep(page):
    """Open `page`, move each slider to its minimum, middle and maximum; the problems seen: an
    exception, or the error boundary's message (a bug the page turned into an st.error)."""
    problems = []
    at = run_app(page=page)

    def look(where):
        problems.extend(f"{where}: {e.value}" for e in at.exception)
        problems.extend(f"{where}: {e.value}" for e in at.error if BOUNDARY in e.value)
    look("default view")
    if at.error:
        problems.append(f"default view: {at.error[0].value}")
    for key in [s.key for s in at.slider]:
        slider = at.slider(key=key)
        low, high = slider.min, slider.max
        middle = low + (high - low) / 2 if isinstance(low, float) else (low + high) // 2
        for value in (low, middle, high):
            at.slider(key=key).set_value(value).run()
            look(f"{key}={value}")
        at.slider(key=key).set_value(slider.value).run()
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


@pytest.mark.parametrize("pattern", list(masks.MASK_PATTERNS))
def test_masks_page_reports_the_pairs_of_every_pattern(pattern):
    at = run_app(page="masks", pattern=pattern, length=40)
    assert not at.exception and not at.error
    expected = masks.attended_pairs(masks.build_mask(pattern, 40))
    assert metrics(at)["attended pairs"] == f"{expected:,}"


@pytest.mark.parametrize("length, window", [(6, 3), (100, 7), (4096, 256)])
def test_masks_page_pair_count_equals_the_closed_form(length, window):
    at = run_app(page="masks", pattern="sliding window", length=length, window=window)
    assert metrics(at)["attended pairs"] == f"{masks.sliding_window_pairs(length, window):,}"
    assert at.query_params["window"] == str(window)  # the view is in the URL


def test_receptive_page_matches_the_exact_formula():
    at = run_app(page="receptive", pattern="sliding window", length=2048, window=128, layers=8)
    values = list(metrics(at).values())
    assert values[0] == values[1] == f"{window_receptive_field(128, 8):,}" == "1,017"


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
])
def test_bad_url_parameters_warn_and_fall_back(params, words):
    at = run_app(**params)
    assert not at.exception and not at.error
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


def test_missing_checkpoint_is_an_error_not_a_traceback(monkeypatch, tmp_path):
    from lcviz.app.pages import transformer as transformer_page
    monkeypatch.setattr(transformer_page, "load_checkpoint",
                        lambda name: load_checkpoint(name, data_dir=tmp_path))  # an empty data/
    transformer_page.charlm.clear()
    at = run_app(page="transformer")
    transformer_page.charlm.clear()
    assert not at.exception
    assert "python -m lcviz.train charlm" in at.error[0].value


@pytest.mark.parametrize("label, page, values", SCENES)
def test_every_scene_opens_its_view(label, page, values):
    at = run_app(page="transformer")
    at.button(key=f"scene:{label}").click().run()
    assert not at.exception and not at.error
    assert at.query_params["page"] == page
    for key, value in values.items():
        assert at.query_params[key] == str(value)


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


@pytest.mark.parametrize("method, kept, interpolated", [
    ("default", 64, 0), ("linear", 0, 64), ("yarn", None, None), ("llama3", None, None)])
def test_rope_page_counts_kept_and_interpolated_pairs(method, kept, interpolated):
    at = run_app(page="rope", method=method, factor=8.0, original=4096)
    assert not at.exception and not at.error
    freq, factor = rope.rope_frequencies(method, 128, seq_len=8 * 4096,
                                         **rope_scaling(method, 8.0, 4096)["rope_params"])
    ratio = freq.double() / rope.default_frequencies(128, 10000.0)
    if kept is None:  # YaRN and llama3 keep some and interpolate some: count independently
        kept, interpolated = int((ratio > 0.99).sum()), int((ratio < 1.01 / 8).sum())
        assert 0 < kept < 64 and 0 < interpolated < 64
    shown = metrics(at)
    assert shown["pairs kept"] == str(kept)
    assert shown["pairs interpolated (divided by 8)"] == str(interpolated)
    assert shown["attention factor (scales q and k)"] == f"{factor:.3f}"
    assert torch.isfinite(freq).all()


@pytest.mark.parametrize("model, depth", [("passkey-layout", 30), ("passkey-layout-w32-l2", 30),
                                          ("passkey-layout-w32-l2", 100)])
def test_passkey_page_reports_the_distance_and_whether_it_is_in_reach(model, depth):
    at = run_app(page="passkey", model=model, length=128, depth=depth, seed=3)
    assert not at.exception and not at.error
    prompt = passkey.make_passkey(128, depth / 100, generator=torch.Generator().manual_seed(3))
    text = " ".join(m.value for m in at.markdown)
    assert f"**{prompt.distance}** tokens" in text
    config = load_checkpoint(model)[0].config
    window, layers = config.window, config.n_layer
    if window is not None:
        side = "inside" if passkey.recoverable(prompt.distance, window, layers) else "beyond"
        assert f"**{side}** it" in text
    assert next(iter(metrics(at))) == f"key {prompt.key}"


@pytest.mark.parametrize("length, chunk, ratio", [(128, 16, 2), (17, 4, 4), (4096, 256, 8)])
def test_beacon_page_reports_the_kv_formula(length, chunk, ratio):
    from lcviz.beacons import kv_entries

    at = run_app(page="beacons", length=length, chunk=chunk, ratio=ratio)
    assert not at.exception and not at.error
    assert metrics(at)["KV entries the last token attends to"] == f"{kv_entries(length, chunk, ratio):,}"


def test_beacon_page_shows_the_recorded_accuracy_of_both_beacon_models():
    at = run_app(page="beacons")
    table = at.table[0].value
    for column, name in (("4 layers", "beacon-passkey"), ("2 layers", "beacon-passkey-l2")):
        recorded = load_info(name)["metrics"]["by_ratio"]
        assert list(table[column]) == [f"{m['key']:.0%} / {m['digit']:.0%}" for m in recorded.values()]


def test_beacon_page_explains_a_ratio_that_does_not_divide_the_chunk():
    at = run_app(page="beacons", length=64, chunk=16, ratio=3)
    assert not at.exception
    assert "ratio 3 must divide the chunk size 16" in at.error[0].value
