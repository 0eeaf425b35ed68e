"""Stored notebook outputs must come from the current code and data: `make notebooks` if not."""

import copy
import os
from pathlib import Path

import nbformat
import pytest

from lcviz import notebooks
from lcviz.course import INTRO_NOTEBOOK, ROOT, TOPICS
from lcviz.notebooks import NOTEBOOK_DIR, stale_reason

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_the_notebooks_are_the_course_table():
    assert [str(p.relative_to(ROOT)) for p in NOTEBOOKS] == [INTRO_NOTEBOOK] + [
        t.notebook for t in TOPICS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_fresh(path: Path):
    reason = stale_reason(nbformat.read(path, as_version=4))
    assert reason is None, f"{path.name} is stale: {reason}. Run `make notebooks`."


def stamped(name):
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    assert stale_reason(notebook) is None
    return notebook


def test_a_topic_module_makes_only_its_importers_stale(monkeypatch):
    intro, beacons = stamped("00-start-here.ipynb"), stamped("07-beacons.ipynb")
    assert "lcviz/beacons.py" in beacons.metadata["lcviz"]["files"]
    real = notebooks.file_hashes
    monkeypatch.setattr(notebooks, "file_hashes", lambda files: {
        name: ("edited" if name == "lcviz/beacons.py" else digest)
        for name, digest in real(files).items()})
    assert stale_reason(intro) is None
    assert "lcviz/beacons.py changed" in stale_reason(beacons)


def test_a_data_file_it_read_makes_it_stale(monkeypatch):
    notebook = stamped("06-passkey.ipynb")
    read = [f for f in notebook.metadata["lcviz"]["files"] if f.startswith("data/")]
    assert read, "notebook 06 reads checkpoints; they must be in its stamp"
    real = notebooks.file_hashes
    monkeypatch.setattr(notebooks, "file_hashes", lambda files: {
        name: ("edited" if name == read[0] else digest) for name, digest in real(files).items()})
    assert f"{read[0]} changed" in stale_reason(notebook)


def test_edited_code_and_missing_files_are_named():
    notebook = copy.deepcopy(stamped("02-masks.ipynb"))
    next(c for c in notebook.cells if c.cell_type == "code").source += "\n# edited"
    assert "edited after it was executed" in stale_reason(notebook)
    notebook = copy.deepcopy(stamped("02-masks.ipynb"))
    notebook.metadata["lcviz"]["files"]["lcviz/gone.py"] = "0"
    assert "lcviz/gone.py, which no longer exist" in stale_reason(notebook)


def test_make_lab_opens_the_learners_copies_and_never_overwrites_them(tmp_path):
    """A learner edits workspace/ copies; notebooks/ (what the tests execute) stays untouched."""
    import subprocess

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / NOTEBOOKS[1].name).write_text("my edits")

    def make_lab():
        return subprocess.run(["make", "-s", "lab", f"WORKSPACE={workspace}", "LAB=echo opening"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout

    output = make_lab()
    assert sorted(p.name for p in workspace.iterdir()) == [p.name for p in NOTEBOOKS]
    assert (workspace / NOTEBOOKS[1].name).read_text() == "my edits"
    assert (workspace / NOTEBOOKS[0].name).read_bytes() == NOTEBOOKS[0].read_bytes()
    assert f"opening {'--allow-root ' if os.getuid() == 0 else ''}{workspace}/" in output
    assert "copied" not in make_lab()  # a second run copies nothing


def test_a_learners_workspace_is_ignored_by_git_and_ruff():
    assert "workspace/" in (ROOT / ".gitignore").read_text().split()
    assert '"workspace"' in (ROOT / "pyproject.toml").read_text()


def test_the_recorded_run_time_is_the_kernels_time_not_the_clients_idling():
    notebook = nbformat.v4.new_notebook()
    timings = [("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:02.500Z"),
               ("2026-01-01T00:02:40.000Z", "2026-01-01T00:02:41.000Z")]  # 157.5 s idle between
    for busy, idle in timings:
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["execution"] = {"iopub.status.busy": busy, "iopub.status.idle": idle}
        notebook.cells.append(cell)
    notebook.cells.append(nbformat.v4.new_markdown_cell("no timing"))
    assert notebooks.kernel_seconds(notebook) == pytest.approx(3.5)
