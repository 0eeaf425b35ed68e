"""Figures, one file per topic (lcviz/plots/<slug>.py) plus core.py.

`from lcviz import plots; plots.<name>(...)` imports only the topic file that defines <name>.
"""

from pathlib import Path

from lcviz.course import lazy_attribute, public_functions

_INDEX = public_functions(Path(__file__).parent)


def __getattr__(name):
    return lazy_attribute(__name__, _INDEX, name)


def __dir__():
    return sorted(_INDEX)
