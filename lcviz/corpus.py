"""Real text with no download: the Python standard library's own source files.

Code is a fine "long document": it has long-range structure (indentation, matching brackets,
names defined far above their use). The files are read from this machine's Python install.
"""

import sysconfig
from pathlib import Path

import torch

from lcviz.validate import check_float, check_int

# A fixed reading order, so the same machine always yields the same text.
STDLIB_FILES = ("textwrap.py", "string.py", "shlex.py", "fractions.py", "heapq.py", "bisect.py",
                "calendar.py", "difflib.py", "glob.py", "fnmatch.py", "statistics.py",
                "dataclasses.py", "functools.py", "argparse.py", "enum.py", "random.py")


def stdlib_text(n_chars=400_000):
    """The first n_chars characters of STDLIB_FILES joined in order (str)."""
    check_int("n_chars", n_chars, minimum=1)
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for name in STDLIB_FILES:
        path = root / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= n_chars:
            break
    if not parts:
        raise FileNotFoundError(f"no standard-library sources found under {root}")
    return "".join(parts)[:n_chars]


def train_val_split(ids, val_fraction=0.1):
    """Split a 1-D token tensor into (train, val): the last val_fraction is held out."""
    check_float("val_fraction", val_fraction, greater_than=0.0, maximum=0.5)
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]


def random_windows(ids, block_size, batch_size, generator=None):
    """Random contiguous windows of a 1-D token tensor: inputs x (B, T) and next tokens y (B, T)."""
    check_int("block_size", block_size, minimum=1, maximum=len(ids) - 1)
    check_int("batch_size", batch_size, minimum=1)
    starts = torch.randint(0, len(ids) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = ids[starts[:, None] + offsets]  # (B, T)
    y = ids[starts[:, None] + offsets + 1]  # (B, T): the token after each input
    return x, y
