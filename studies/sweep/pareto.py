"""Pareto fronts of two objectives to minimise (e.g. latency and energy)."""
from __future__ import annotations

import numpy as np


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where point i is on the Pareto front of minimising both x and y.

    A point is on the front unless another point is no worse in both and better in one. Equal
    points are all on the front; points with a NaN coordinate are never on it. O(n log n).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pareto_mask: x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    on = np.zeros(len(x), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    order = valid[np.lexsort((y[valid], x[valid]))]  # by x, then y
    best = np.inf  # least y over the points of strictly smaller x
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and x[order[j]] == x[order[i]]:
            j += 1
        group = order[i:j]
        least = y[group[0]]  # sorted by y within equal x
        if least < best:
            on[group[y[group] == least]] = True
        best = min(best, least)
        i = j
    return on
