"""Execute the course notebooks and stamp them, so a test can tell when stored outputs are stale.

    python -m lcviz.notebooks                      # re-execute every notebooks/*.ipynb (`make notebooks`)
    python -m lcviz.notebooks notebooks/01-*.ipynb # just these

Each executed notebook records in its metadata a fingerprint of its own code cells and of the
lcviz source files its kernel imported; tests/test_notebooks.py recomputes it and fails when it differs.
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


# Run after the notebook's own cells: which lcviz source files did the kernel actually import?
LOADED_MODULES_CODE = """
import json as _json, sys as _sys
print(_json.dumps(sorted(m.__file__ for n, m in _sys.modules.items()
                         if n.split(".")[0] == "lcviz" and getattr(m, "__file__", None))))
"""


def library_fingerprint(files):
    """sha256 over the given lcviz source files (relative path and text), in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def code_fingerprint(notebook):
    """sha256 over the notebook's code cell sources."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()[:16]


def execute(path, timeout=300):
    """Run a notebook top to bottom in its folder, save outputs and fingerprints; returns seconds.

    The stamp lists the lcviz files the kernel imported, so editing lcviz/beacon.py makes only the
    notebooks that use it stale.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(LOADED_MODULES_CODE))
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    probe = notebook.cells.pop()
    loaded = json.loads(probe.outputs[0]["text"])
    files = [str(Path(f).resolve().relative_to(ROOT)) for f in loaded]
    notebook.metadata["lcviz"] = {"library": library_fingerprint(files), "modules": sorted(files),
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
