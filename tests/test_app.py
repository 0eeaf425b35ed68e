"""The lecturer's app, headless: streamlit.testing.v1.AppTest runs app.py without a browser."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from lcviz import masks
from lcviz.app import PAGES, SCENES
from lcviz.receptive import window_receptive_field

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def run_app(**params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


def metrics(at):
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_runs_and_its_sliders_reach_their_bounds(page):
    at = run_app(page=page)
    assert not at.exception and not at.error, (at.exception, at.error)
    for key in [s.key for s in at.slider]:
        slider = at.slider(key=key)
        low, high = slider.min, slider.max
        for value in (low, (low + high) // 2, high):
            at.slider(key=key).set_value(value).run()
            assert not at.exception, (page, key, value, at.exception)
        at.slider(key=key).set_value(slider.value).run()


def test_default_page_without_url_parameters():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and at.query_params["page"] == list(PAGES)[0]


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
    from lcviz.app import transformer_page
    from lcviz.train import load_checkpoint
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
