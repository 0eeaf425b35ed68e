"""Honest accuracies: a rate with its n and a Wilson 95% interval (Wilson 1927), the interval the
course reports beside every accuracy. Two rates whose intervals overlap are called a tie."""

import math

from lcviz.validate import check_int

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes, n, z=Z95):
    """(low, high) of the Wilson score interval for `successes` out of `n` trials."""
    check_int("n", n, minimum=1)
    check_int("successes", successes, minimum=0, maximum=n)
    rate = successes / n
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_text(successes, n):
    """'97.5% [95.5, 98.6] (n=400)': the rate, its 95% interval and n, for tables and prints."""
    low, high = wilson_interval(successes, n)
    return f"{100 * successes / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}] (n={n})"


def separated(a, b):
    """True when two (successes, n) rates have non-overlapping 95% intervals."""
    low_a, high_a = wilson_interval(*a)
    low_b, high_b = wilson_interval(*b)
    return high_a < low_b or high_b < low_a
