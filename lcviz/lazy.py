"""Lazy attribute access for lcviz.plots and lcviz.checks: `plots.mask_heatmap` imports only the
topic file that defines it, so a notebook that draws masks does not depend on (and is not made
stale by) the other topics' figure files."""

import ast
import importlib
from pathlib import Path


def public_functions(package_dir):
    """{function name: module stem} of the public top-level functions of the topic files in
    `package_dir` (lcviz/plots or lcviz/checks), read from their source without importing them."""
    names = {}
    for path in sorted(Path(package_dir).glob("*.py")):
        if path.stem == "__init__":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                names[node.name] = path.stem
    return names


def lazy_package(package, init_file):
    """(__getattr__, __dir__) for lcviz.plots and lcviz.checks: `plots.mask_heatmap` imports only
    the topic file that defines it, so a notebook that draws masks does not depend on the rest."""
    index = public_functions(Path(init_file).parent)

    def attribute(name):
        if name not in index:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{index[name]}"), name)
    return attribute, lambda: sorted(index)
