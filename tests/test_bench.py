"""The benchmark registry: every name resolves to a function, and the command line picks them."""

import importlib
import inspect

import pytest

from lcviz import bench


@pytest.mark.parametrize("name", list(bench.BENCHMARKS))
def test_every_benchmark_names_a_function(name):
    module, function = bench.BENCHMARKS[name][0].split(":")
    assert inspect.isfunction(getattr(importlib.import_module(module), function))


def ran(monkeypatch, argv):
    calls = []
    monkeypatch.setattr(bench, "run", lambda name, **options: calls.append((name, options)))
    assert bench.main(argv) == 0
    return calls


def test_app_with_browser_runs_the_chromium_benchmark(monkeypatch):
    assert ran(monkeypatch, ["app", "--browser"]) == [("app-browser", {})]
    assert ran(monkeypatch, ["app"]) == [("app", {})]


def test_lengths_go_to_the_attention_benchmark_only(monkeypatch):
    assert ran(monkeypatch, ["attention", "ring", "--lengths", "64", "128"]) == [
        ("attention", {"lengths": [64, 128]}), ("ring", {})]


def test_an_unknown_benchmark_is_named_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        bench.main(["atention"])
    error = capsys.readouterr().err
    assert "'atention'" in error and "attention" in error.split("choose from")[1]


def test_quick_goes_to_the_benchmark(monkeypatch):
    assert ran(monkeypatch, ["beacons", "--quick"]) == [("beacons", {"quick": True})]


def test_an_option_the_benchmark_lacks_is_named_before_it_runs():
    with pytest.raises(ValueError, match=r"'attention' takes no option \['quick'\]"):
        bench.run("attention", quick=True)
