"""Stored notebook outputs must come from the current code: re-run `make notebooks` if not."""

from pathlib import Path

import nbformat
import pytest

from lcviz.notebooks import NOTEBOOK_DIR, code_fingerprint, library_fingerprint

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_the_course_has_notebooks():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert numbers == [f"{i:02d}" for i in range(len(numbers))] and len(numbers) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_fresh(path: Path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{path.name} has unexecuted cells: make notebooks"
    stamp = notebook.metadata.get("lcviz", {})
    assert stamp.get("modules"), f"{path.name} has no lcviz stamp: run `make notebooks`"
    assert stamp.get("code") == code_fingerprint(notebook), \
        f"{path.name} was edited after it was executed: run `make notebooks`"
    assert stamp.get("library") == library_fingerprint(stamp.get("modules", [])), \
        f"{path.name} was executed against older lcviz code: run `make notebooks`"
