"""Sizes of a simulated point: the user's, completed.

A missing query rank P (or key rank M) is the other one (self-attention); a split rank's inner size
(M0) comes from the mapping's tile; other missing sizes come from the cascade's own defaults where it
declares them, else are an error naming them. `bind_split_ranks` completes split ranks from the
sizes alone, for a model with no tile (private inference).
"""
from __future__ import annotations

import math

import einsum_cascade as ec
from einsum_cascade.sizes import missing_sizes_message

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


def bind_split_ranks(c: ec.Cascade, sizes: dict[str, float]) -> dict[str, float]:
    """`sizes` checked (finite; sizes positive integers) with each split rank's third size from the
    other two (M = M1 * M0; a part is rounded up: ceil(M / M0)), for a model that prices every
    size as given (private inference); errors name the size."""
    known = set(c.size_names) | set(c.params)
    for name in sizes:
        if name not in known:
            raise ec.CascadeError(f"unknown size or param {name!r} (known: {', '.join(sorted(known))})", c.file)
    bound = dict(sizes)
    for name, value in bound.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ec.CascadeError(f"--size {name}={value!r}: expected a finite number", c.file)
        if name in c.size_names and (value != int(value) or value < 1):
            raise ec.CascadeError(f"--size {name}={value!r}: a size must be a positive integer", c.file)
        if name in c.size_names:
            bound[name] = int(value)
    for rank in c.ranks.values():
        if len(rank.parts) == 2:
            whole, (outer, inner) = rank.name, rank.parts
            if whole in bound and inner in bound and outer not in bound:
                bound[outer] = math.ceil(bound[whole] / bound[inner])
            elif whole in bound and outer in bound and inner not in bound:
                bound[inner] = math.ceil(bound[whole] / bound[outer])
            elif outer in bound and inner in bound and whole not in bound:
                bound[whole] = bound[outer] * bound[inner]
    missing = [name for name in c.size_names + c.params if name not in bound]
    if missing:
        raise ec.CascadeError(missing_sizes_message(missing, sizes), c.file)
    return bound
