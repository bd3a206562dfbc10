"""Plain statistics for the rig: percentiles, medians and spreads of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), nearest-rank: a value that was really observed.

    With 50 samples, p99 is the largest one (rank ceil(0.99 × 50) = 50)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def spread(samples: Sequence[float]) -> tuple[float, float]:
    """(lowest, highest) over the repeats."""
    if not samples:
        return math.nan, math.nan
    return min(samples), max(samples)
