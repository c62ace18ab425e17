"""Cascades that are one matrix product, recognised by structure, and their GEMM shape.

A cascade whose only Einsum is `Y[n,t] = X[d,t] * W[d,n]` (two inputs, one implicit sum, no mask,
no function; any rank names and index order) is a GEMM of M = |t| rows, N = |n| columns and
K = |d| reduction. Accelerators run it as folds on the 2D array (mappings/gemm.py, validated
against SCALE-Sim), so cascades without a key rank, such as the projections and FFN matrices of
an LLM layer, can be simulated like any other.
"""
from __future__ import annotations

from dataclasses import dataclass

import einsum_cascade as ec
from einsum_cascade.ast import Access, Binary


@dataclass(frozen=True)
class GemmShape:
    """rows x reduction times reduction x cols, ranks named as in the cascade."""
    rows: str
    cols: str
    reduction: str


def gemm_shape(c: ec.Cascade) -> GemmShape | None:
    """The GEMM shape of `c` if it is one plain matrix product (module docstring), else None."""
    if len(c.einsums) != 1 or len(c.inputs) != 2 or c.params:
        return None
    e = c.einsums[0]
    if e.where or e.is_initial or e.iterative_var or len(e.implicit_vars) != 1 or len(e.output_vars) != 2:
        return None
    x = e.expr
    if not (isinstance(x, Binary) and x.op == "*" and isinstance(x.left, Access) and isinstance(x.right, Access)):
        return None
    (red,) = e.implicit_vars
    var_sets = []
    for a in (x.left, x.right):
        names = [str(i) for i in a.indices]
        if a.tensor not in c.inputs or len(names) != 2 or red not in names or len(set(names)) != 2:
            return None
        var_sets.append(next(n for n in names if n != red))
    rows, cols = var_sets
    if {rows, cols} != set(e.output_vars):
        return None
    rank = c.var_rank
    if any(len(c.ranks[rank[v]].parts) for v in (rows, cols, red)):
        return None
    # the operand indexed by the output's last variable (tokens, in the library's layout) gives the rows
    last = str(e.lhs[-1])
    if last == cols:
        rows, cols = cols, rows
    return GemmShape(rows=rank[rows], cols=rank[cols], reduction=rank[red])
