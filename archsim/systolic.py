"""Systolic-array timing of a GEMM: SCALE-Sim's per-fold count (docs/references/reference-peers.md).

GEMM (M, N, K): ifmap M x K, filter K x N, output M x N, on an R x C array. Each fold runs
skewed fill, stream and drain to completion before the next; a partial fold costs a full one.
"""
from __future__ import annotations

import math

DATAFLOWS = ("os", "ws", "is")


def fold_shape(M: int, N: int, K: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T): operand dimensions mapped to rows, to columns, and streamed in time."""
    if dataflow == "os":
        return M, N, K
    if dataflow == "ws":
        return K, N, M
    if dataflow == "is":
        return K, M, N
    raise ValueError(f"unknown dataflow {dataflow!r} (one of {', '.join(DATAFLOWS)})")


def folds_and_cycles_per_fold(M: int, N: int, K: int, rows: int, cols: int, dataflow: str) -> tuple[int, int]:
    """Number of folds and cycles per fold (fill + stream + drain)."""
    sr, sc, t = fold_shape(M, N, K, dataflow)
    folds = math.ceil(sr / rows) * math.ceil(sc / cols)
    per_fold = rows + cols + t - 2 if dataflow == "os" else 2 * rows + cols + t - 2
    return folds, per_fold


def scalesim_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim's reported compute cycles: folds x per-fold - 1 (the index of the last cycle)."""
    folds, per_fold = folds_and_cycles_per_fold(M, N, K, rows, cols, dataflow)
    return folds * per_fold - 1
