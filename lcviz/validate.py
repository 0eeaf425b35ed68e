"""Argument checks shared by every public lcviz function.

A bad value raises ValueError naming the argument, the
value given and what is allowed. Nothing is silently clamped.
"""

import math
import numbers


def check_int(name, value, *, minimum=None, maximum=None):
    """Return `value` if it is an int within [minimum, maximum], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(name, value, *, greater_than=None, minimum=None, maximum=None):
    """Return `value` as float if it is a real number within the bounds, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got NaN")
    if greater_than is not None and not value > greater_than:
        raise ValueError(f"{name} must be > {greater_than}, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(name, value, choices):
    """Return `value` if it is one of `choices`, else raise ValueError listing them."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def check_window(window, length):
    """A causal window w lets a query see itself and the w-1 tokens before it: 1 <= w <= length."""
    check_int("length", length, minimum=1)
    return check_int("window", window, minimum=1, maximum=length)
