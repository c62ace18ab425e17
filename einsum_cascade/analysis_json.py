"""The analysis of a cascade as data: passes over each rank, symbolic operation counts (and their
values at sizes when given), tensor sizes, and the notes a reader of the numbers must know. This is
the documented JSON of `cascadesim analyze --json`."""
from __future__ import annotations

from einsum_cascade.ast import Reduce, is_data_dependent, walk
from einsum_cascade.cost import cost as cascade_cost
from einsum_cascade.ir import Cascade
from einsum_cascade.passes import passes


def analysis_json(cascade: Cascade, ranks: list[str], sizes: dict[str, float]) -> dict:
    """Everything `analyze --json` prints, as a dict."""
    reports = [passes(cascade, r) for r in ranks]
    cost = cascade_cost(cascade)
    cost_json = {
        "per_einsum": {n: {op: str(v) for op, v in ops.items()} for n, ops in cost.per_einsum.items()},
        "total": {op: str(v) for op, v in cost.total.items()},
        "tensor_sizes": {n: str(v) for n, v in cost.tensor_sizes.items()},
    }
    if sizes:
        at = cost.at(sizes)
        cost_json["at_sizes"] = {
            "sizes": sizes,
            "per_einsum": at.per_einsum,
            "total": at.total,
            "tensor_sizes": at.tensor_sizes,
        }
    if len(ranks) == 1:
        out = reports[0].to_json()
    else:
        out = {"cascade": cascade.name, "ranks": [r.to_json() for r in reports]}
    out["cost"] = cost_json
    out["notes"] = analysis_notes(cascade)
    return out


def analysis_notes(cascade: Cascade) -> list[str]:
    """Facts a reader of the numbers must know: transposed reads, data-dependent masks."""
    notes = [t.describe(cascade.file) + " (allowed only where the swapped ranks have equal sizes)"
             for t in cascade.transposed_reads]
    for e in cascade.einsums:
        conds = list(e.space_where) + [c for n in walk(e.expr) if isinstance(n, Reduce) for c in n.where]
        if any(is_data_dependent(c) for c in conds):
            notes.append(f"{e.name} (line {e.line}) has a data-dependent mask: its points are "
                         "counted as an upper bound (every point the affine conditions admit)")
    return notes
