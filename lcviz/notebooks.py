"""Execute the course notebooks and stamp them, so a test can tell when stored outputs are stale.

    python -m lcviz.notebooks                      # re-execute every notebooks/*.ipynb (`make notebooks`)
    python -m lcviz.notebooks notebooks/01-*.ipynb # just these

Each executed notebook records in its metadata a fingerprint of its own code cells and of the
lcviz sources it ran against; tests/test_notebooks.py recomputes it and fails when it differs.
"""

import argparse
import hashlib
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


def library_fingerprint():
    """sha256 over every lcviz/*.py file (path and text), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "lcviz").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_fingerprint(notebook):
    """sha256 over the notebook's code cell sources."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()[:16]


def execute(path, timeout=300):
    """Run a notebook top to bottom in its folder, save outputs and fingerprints; returns seconds."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    notebook.metadata["lcviz"] = {"library": library_fingerprint(),
                                  "code": code_fingerprint(notebook)}
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
