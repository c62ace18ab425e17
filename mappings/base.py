"""The mapping API: (cascade, workload, architecture) -> Schedule.

A mapping decides the tiling of ranks, the loop order, the unit that runs each Einsum
(`binding`) and where each tensor lives (`locations`: "buffer", the default, or "array" for
values that stay in the PEs' register files). The work of each op comes from the cascade
(`work.einsum_ops`), its cycles from the unit's operator table; dependencies come from the
cascade's dataflow graph. Subclasses set the tiling and DRAM traffic in `schedule()`.

`plan_einsums` is the building block: it returns one `EinsumPlan` per computing Einsum of a
block (views such as BK[e,m1,m0] = K[...] that compute nothing are looked through).
"""
from __future__ import annotations

import abc
import math
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field

import einsum_cascade as ec

from archsim.config import Architecture
from archsim.schedule import Schedule
from mappings.work import MappingError, cost_on_unit, einsum_ops, fuse_operators
from mappings.workload import Workload


@dataclass
class EinsumPlan:
    """One Einsum of a block: cycles on `unit` and action counts, per tile (if `tiled`) or per block."""
    name: str
    unit: str
    tiled: bool
    cycles: float
    actions: dict[str, float]
    deps: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # tensors read (views resolved, inputs included)


def _free_vars(cascade, exprs) -> set[str]:
    out = set()
    for x in exprs:
        for sym in getattr(x, "free_symbols", ()):
            if str(sym) in cascade.var_rank:
                out.add(str(sym))
    return out


def _elements(cascade, variables, sizes, tiled_var) -> float:
    return math.prod(float(sizes[cascade.var_rank[v]]) for v in variables if v != tiled_var)


def plan_einsums(cascade: ec.Cascade, sizes: MappingOf[str, float], arch: Architecture, binding: MappingOf[str, str], *,
                 mapping: str, tiled_var: str | None = None, fold_shift_into_exp: bool = True,
                 locations: MappingOf[str, str] | None = None) -> list[EinsumPlan]:
    """Plan every computing Einsum of one block at `sizes` (the block's rank sizes).

    With `tiled_var` (e.g. "m1"), Einsums that iterate over it are per tile: their counts are
    divided by that rank's size. Buffer reads and writes (in words) are counted per tile for every
    tensor whose location is "buffer". Cycles are the unit's cycles with all its PEs busy.
    """
    locations = dict(locations or {})
    ops = einsum_ops(cascade, sizes)
    n_tiles = float(sizes[cascade.var_rank[tiled_var]]) if tiled_var else 1.0
    mains = [e for e in cascade.einsums if not e.is_initial]
    views = {}
    for e in mains:
        if not ops.get(e.name) and e.name not in binding:
            srcs = {a.tensor for a in e.reads}
            if len(srcs) != 1:
                raise MappingError(f"{mapping}: Einsum {e.name} computes nothing but reads {sorted(srcs)}")
            views[e.name] = srcs.pop()

    def source(t: str) -> str:
        while t in views:
            t = views[t]
        return t

    def loc(t: str) -> str:
        return locations.get(source(t), "buffer")

    computing = [e for e in mains if e.name not in views]
    tiled = {}
    for e in computing:
        evars = set(e.space_vars) | set(e.reduced_vars) | ({e.iterative_var} if e.iterative_var else set())
        tiled[e.name] = bool(tiled_var) and tiled_var in evars
    plans = []
    for e in computing:
        if e.name not in binding:
            raise MappingError(f"{mapping}: Einsum {e.name} is not bound to a unit")
        unit_name = binding[e.name]
        if unit_name not in arch.units:
            raise MappingError(f"{mapping}: Einsum {e.name} bound to unknown unit {unit_name!r} of {arch.name}")
        unit = arch.units[unit_name]
        counts = {k: v / (n_tiles if tiled[e.name] else 1.0) for k, v in ops.get(e.name, {}).items()}
        cycles, actions = cost_on_unit(unit, fuse_operators(counts, fold_shift_into_exp),
                                       f"{mapping}: Einsum {e.name} on {arch.name}")
        tv = tiled_var if tiled[e.name] else None
        reads, deps = [], []
        for acc in e.reads:
            src = source(acc.tensor)
            if loc(acc.tensor) == "buffer":
                actions["buffer.read_words"] = actions.get("buffer.read_words", 0.0) + \
                    _elements(cascade, _free_vars(cascade, acc.indices), sizes, tv)
            if src not in reads:
                reads.append(src)
        if loc(e.name) == "buffer":
            actions["buffer.write_words"] = actions.get("buffer.write_words", 0.0) + \
                _elements(cascade, _free_vars(cascade, e.lhs), sizes, tv)
        for u, _, data in cascade.graph.in_edges(e.name, data=True):
            for src in _producers(u, views, cascade):
                if src == e.name or src not in tiled:
                    continue
                ref = f"prev:{src}" if data.get("delayed") and tiled[src] and tiled[e.name] else src
                if ref not in deps:
                    deps.append(ref)
        plans.append(EinsumPlan(e.name, unit_name, tiled[e.name], cycles, actions, deps, reads))
    return plans


def _producers(t: str, views: MappingOf[str, str], cascade) -> list[str]:
    if t in views:
        return [p for u in cascade.graph.predecessors(t) for p in _producers(u, views, cascade)]
    return [t]


class Mapping(abc.ABC):
    """Base class: subclasses set `name`, `cascade_name`, `default_arch` and implement `schedule`."""
    name = "mapping"
    cascade_name = ""
    default_arch = ""
    description = ""

    def cascade(self) -> ec.Cascade:
        """The library cascade this mapping schedules."""
        return ec.load_library(self.cascade_name)

    @abc.abstractmethod
    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        """The tile operations of `workload` on `arch`, for archsim's engine."""
