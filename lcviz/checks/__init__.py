"""Exercise checkers, one file per topic (lcviz/checks/<slug>.py) plus core.py.

`from lcviz import checks; checks.<name>(...)` imports only the topic file that defines <name>.
"""

from lcviz.lazy import lazy_package

__getattr__, __dir__ = lazy_package(__name__, __file__)
