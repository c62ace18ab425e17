"""Sizes of a simulated point: the user's, completed.

A missing query rank P (or key rank M) is the other one (self-attention); a split rank's inner size
(M0) comes from the mapping's tile; other missing sizes come from the cascade's own defaults where it
declares them, else are an error naming them.
"""
from __future__ import annotations

import einsum_cascade as ec

from mappings.work import MappingError


def complete_sizes(c: ec.Cascade, sizes: dict[str, float] | None, query_rank: str = "P",
                   key_rank: str = "M") -> tuple[dict[str, float], dict[str, str]]:
    """`sizes` completed (module docstring) and, for each size filled in, where it came from."""
    out = {k: v for k, v in (sizes or {}).items()}
    how: dict[str, str] = {}
    for a, b in ((query_rank, key_rank), (key_rank, query_rank)):
        if a in c.ranks and a not in out and b in out:
            out[a] = out[b]
            how[a] = f"= {b} (self-attention)"
    from einsum_cascade.sizes import with_defaults  # a part the others determine is derived, not defaulted

    for k, v in with_defaults(c, out).items():
        if k not in out:
            out[k] = v
            how[k] = "the cascade's default"
    unknown = sorted(set(out) - set(c.size_names) - set(c.params))
    if unknown:
        raise MappingError(f"--size: {', '.join(unknown)} not a rank or param of {c.name} "
                           f"(sizes: {', '.join(c.size_names + c.params)})")
    parts = {x for r in c.ranks.values() if len(r.parts) == 2 for x in r.parts}  # set by the mapping's tile
    missing = [n for n in c.size_names + c.params if n not in out and n not in parts]
    if missing:
        raise MappingError(f"--size: {c.name} needs {', '.join(missing)} (e.g. --size "
                           f"{' '.join(f'{m}=64' for m in missing)})")
    return out, how
