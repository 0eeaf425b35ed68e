"""What every exercise checker shares. `check_<name>(your_function)` runs every case, prints
"k of n cases pass" and, for the first failing case, its inputs and a precise diff.

An unattempted stub (it raises NotImplementedError) prints "not attempted yet" and does not stop
the notebook. A checker returns a CheckResult (status "pass", "fail" or "not attempted").
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "not attempted"
    message: str

    @property
    def passed(self):
        return self.status == "pass"

    def _ipython_display_(self):
        pass  # the checker already printed its message; don't print it twice in a notebook


SHOW_VALUES = 32  # tensors with at most this many numbers are printed in full


def describe(args):
    """Text of a case's arguments: small tensors printed in full, larger ones by shape."""
    def one(value):
        if isinstance(value, torch.Tensor):
            if value.numel() <= SHOW_VALUES:
                text = np.array2string(value.numpy(), precision=3, suppress_small=True)
                return ("\n" + text).replace("\n", "\n    ")
            return f"tensor of shape {tuple(value.shape)}"
        return repr(value)
    return ", ".join(f"{k}={one(v)}" for k, v in args.items())


def compare_tensors(got, want, atol=1e-5):
    """None when got matches want (shape, and values within atol); else a sentence saying how."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if want.dtype == torch.bool:
        if got.dtype != torch.bool:
            return f"dtype {got.dtype}, expected torch.bool (True = may attend)"
        wrong = (got != want).nonzero()
        if len(wrong):
            i, j = wrong[0].tolist()
            return (f"{len(wrong)} entries differ; first at row {i}, column {j}: got "
                    f"{bool(got[i, j])}, expected {bool(want[i, j])}\n"
                    f"row {i} got      {bool_row(got[i])}\nrow {i} expected {bool_row(want[i])}")
        return None
    diff = (got.double() - want.double()).abs()
    if torch.isnan(got).any() or diff.max() > atol:
        worst = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if not torch.isnan(
            diff.max()) else tuple(int(i) for i in torch.nonzero(torch.isnan(got))[0])
        return (f"largest difference {diff.max().item():.3g} (allowed {atol:g}) at index {worst}:"
                f" got {got[worst].item():.6g}, expected {want[worst].item():.6g}")
    return None


def bool_row(row):
    return "".join("1" if v else "0" for v in row.tolist())


def compare_values(got, want):
    return None if got == want else f"got {got!r}, expected {want!r}"


def run_check(name, fn, cases, reference, compare=compare_tensors):
    """Call fn and reference on every case (a dict of arguments, passed in order); print how many
    match and the first mismatch with its inputs. Put the most informative case first."""
    failures = []
    for case in cases:
        try:
            got = fn(*case.values())
        except NotImplementedError:
            return report(name, "not attempted", f"{name}: not attempted yet - fill in the "
                          "function, run its cell, then run this check again.")
        except Exception as error:  # noqa: BLE001 - a learner's bug is reported, not raised
            failures.append((case, f"your function raised {type(error).__name__}: {error}"))
            continue
        problem = compare(got, reference(*case.values()))
        if problem:
            failures.append((case, problem))
    passed = len(cases) - len(failures)
    if not failures:
        return report(name, "pass", f"{name}: pass ({passed} of {len(cases)} cases match)")
    case, problem = failures[0]
    return report(name, "fail", f"{name}: {passed} of {len(cases)} cases pass. First failing case: "
                  f"{describe(case)}\n{problem}")


def report(name, status, message):
    print(("✅ " if status == "pass" else "❌ " if status == "fail" else "⏳ ") + message)
    return CheckResult(name, status, message)
