"""Cycles of a loop tree on a memory hierarchy: the compute of each Einsum on its unit and the
traffic of each level at its bandwidth (a roofline: everything overlapped, nothing stalls).

- Work per Einsum: `mappings.work.einsum_ops` (the counts of `einsum_cascade.numeric_cost`),
  grouped into the operators a PE evaluates (a multiply and an add at one point are a MAC), on
  all PEs of the unit its compute node names (`mappings.work.cost_on_unit`: cycles = sum of
  count x operator cycles / PEs). Masks are honoured as numeric_cost honours them.
- A recurrence (an Einsum with a stepping index, `S[.., m+1] = f(S[.., m], ..)`) runs its steps
  one after another: each step takes at least the cycles of its slowest operator, however few
  points a step has: cycles = steps x max(work / steps, slowest operator's cycles).
- Units run concurrently (their cycles are summed per unit); each level's traffic with its
  parent takes `level_cycles` (DRAM: reads and writes at its one-port bandwidth).
- The tree's cycles are the largest of these; `bounding` names it.

Capacity is checked at every level first (`check_capacity`). Not modelled: stalls between
dependent Einsums, the latency of a pipeline's fill, double buffering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import einsum_cascade as ec
from mappings.looptree.traffic import Traffic, check_capacity, dram_traffic
from mappings.looptree.tree import LoopTree


def level_cycles(traffic: Traffic, hierarchy) -> dict[str, float]:
    """Cycles each level's traffic with its parent takes at the link's bandwidth: fills at the
    smaller of the parent's read and the level's write bytes per cycle, drains the other way; the
    DRAM's reads and writes together at its bandwidth (one port). Keys: the DRAM and each level."""
    wb = hierarchy.word_bytes
    dram = hierarchy.levels[0]
    out = {dram.name: traffic.total_bytes / dram.read_bytes_per_cycle}
    for level, into in traffic.fills.items():
        lv = hierarchy.level(level)
        parent = hierarchy.level(lv.parent)
        fill = sum(into.values()) * wb / min(parent.read_bytes_per_cycle, lv.write_bytes_per_cycle)
        drain = sum(traffic.drains.get(level, {}).values()) * wb / min(lv.read_bytes_per_cycle,
                                                                        parent.write_bytes_per_cycle)
        out[level] = fill + drain
    return out


@dataclass
class TreeCost:
    """What a tree costs: traffic (words), footprints (words per level), cycles per Einsum, per unit
    and per level link (module docstring)."""
    traffic: Traffic
    footprint_words: dict[str, float]
    einsum_cycles: dict[str, float] = field(default_factory=dict)
    unit_cycles: dict[str, float] = field(default_factory=dict)
    level_cycles: dict[str, float] = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, float]:
        return {**self.unit_cycles, **self.level_cycles}

    @property
    def cycles(self) -> float:
        return max(self.parts.values())

    @property
    def bounding(self) -> str:
        parts = self.parts
        return max(parts, key=parts.get)


def tree_cost(tree: LoopTree, c: ec.Cascade, hierarchy, sizes: dict[str, float],
              params: dict[str, float] | None = None) -> TreeCost:
    """The TreeCost of `tree` for `c` at `sizes` (every rank and split part bound) on `hierarchy`."""
    from mappings.work import cost_on_unit, einsum_ops, fuse_operators
    traffic = dram_traffic(tree, c, hierarchy, sizes, params)
    cost = TreeCost(traffic, check_capacity(tree, hierarchy, traffic), level_cycles=level_cycles(traffic, hierarchy))
    known = set(c.size_names) | set(c.params)
    ops = einsum_ops(c, {k: v for k, v in sizes.items() if k in known})
    for node, _ in tree.walk():
        if node.kind != "compute":
            continue
        name, unit = node.fields["einsum"], hierarchy.units[node.fields["unit"]]
        fused = fuse_operators(ops.get(name, {}), fold_shift_into_exp=False)
        cycles, _ = cost_on_unit(unit, fused, f"{tree.source}: {node.path}")
        e = c.einsum(name)
        if e.iterative_var and fused:
            steps = float(sizes[c.var_rank[e.iterative_var]])
            slowest = max(unit.operators[op].cycles for op in fused)
            cycles = steps * max(cycles / steps, slowest)
        cost.einsum_cycles[name] = cycles
        cost.unit_cycles[unit.name] = cost.unit_cycles.get(unit.name, 0.0) + cycles
    return cost


__all__ = ["TreeCost", "level_cycles", "tree_cost"]
