"""Execute the course notebooks and stamp them, so a test can tell when stored outputs are stale.

    python -m lcviz.notebooks                      # re-execute every notebooks/*.ipynb (`make notebooks`)
    python -m lcviz.notebooks notebooks/01-*.ipynb # just these

Each executed notebook records in its metadata the hashes of its own code cells, of the lcviz
source files its kernel imported and of the data files it read through lcviz.checkpoints;
tests/test_notebooks.py recomputes them (stale_reason) and fails when one differs.
"""

import argparse
import hashlib
import json
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


# Run after the notebook's own cells: which lcviz files did the kernel import, which data files
# did it read?
PROBE_CODE = """
import json as _json, sys as _sys
_read = _sys.modules["lcviz.checkpoints"].FILES_READ if "lcviz.checkpoints" in _sys.modules else ()
print(_json.dumps({"modules": sorted(m.__file__ for n, m in _sys.modules.items()
                                     if n.split(".")[0] == "lcviz" and getattr(m, "__file__", None)),
                   "data": sorted(_read)}))
"""


def file_hashes(files):
    """{relative path: sha256 prefix} of files relative to the repository root."""
    return {name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:16]
            for name in sorted(files)}


def code_fingerprint(notebook):
    """sha256 over the notebook's code cell sources."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()[:16]


def stale_reason(notebook):
    """None when the stored outputs come from the current code and data; else what changed."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    if counts != list(range(1, len(code) + 1)):
        return f"its cells were not executed once each, top to bottom (execution counts {counts})"
    stamp = notebook.metadata.get("lcviz", {})
    if "files" not in stamp:
        return "it has no lcviz stamp"
    if stamp.get("code") != code_fingerprint(notebook):
        return "its code was edited after it was executed"
    gone = [name for name in stamp["files"] if not (ROOT / name).exists()]
    if gone:
        return f"it used {', '.join(gone)}, which no longer exist"
    changed = [name for name, digest in file_hashes(stamp["files"]).items()
               if digest != stamp["files"][name]]
    if changed:
        return f"{', '.join(changed)} changed after it was executed"
    return None


def kernel_seconds(notebook):
    """Seconds the kernel spent running the code cells (busy to idle, as nbclient timed them)."""
    total = 0.0
    for cell in notebook.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" in timing and "iopub.status.idle" in timing:
            total += (datetime.fromisoformat(timing["iopub.status.idle"])
                      - datetime.fromisoformat(timing["iopub.status.busy"])).total_seconds()
    return total


def execute(path, timeout=150):
    """Run a notebook top to bottom in its folder, save outputs and the stamp; returns the
    seconds its cells ran (kernel_seconds).

    `timeout` bounds each cell. It is kept short because nbclient sometimes idles until it
    expires after a cell that opens ipywidgets, then carries on (jupyter/nbclient#312); that
    idle time is the client's, not the notebook's, so the recorded time leaves it out."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE_CODE))
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    used = json.loads(notebook.cells.pop().outputs[0]["text"])
    seconds = kernel_seconds(notebook)
    files = [str(Path(f).resolve().relative_to(ROOT)) for f in used["modules"] + used["data"]]
    notebook.metadata["lcviz"] = {"files": file_hashes(files), "code": code_fingerprint(notebook),
                                  "seconds": round(seconds, 1)}
    nbformat.write(notebook, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: executed in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
