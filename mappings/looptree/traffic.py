"""The DRAM traffic a loop tree implies, from its storage nodes (words and bytes).

For each tensor T kept by an on-chip storage node N whose nearest storage node above holding T is in
DRAM (N is T's outermost on-chip copy):

- tile(T, N): T's elements in one iteration of the loops above N: each dimension of T spans the tile
  of the innermost loop above N over its rank (the whole rank without one; a part of a split rank
  `M = M1 * M0` spans tile / M0 blocks (M1) or min(M0, tile) keys (M0)); a recurrence's stepping
  index is left out (one step of state is kept);
- fills(T, N): how often the tile changes: the product of the trip counts of the loops above N, from
  the outermost down to the innermost loop over a rank of T that steps (more than one trip); loops
  below that one but above N do not change T's tile, so it stays (reuse); spatial loops over ranks T
  lacks multicast (count 1);
- an input read in N's subtree is read tile x fills words; a tensor produced in N's subtree (an output,
  or an intermediate kept in DRAM) is written tile x fills words, and its partial sums are read back
  tile x (fills - distinct tiles) words (a loop over a reduced rank outside its innermost own loop);
  an intermediate kept in DRAM and read (not produced) in N's subtree is read tile x fills words;
- `spill: {T: f}` on N (whose parent level is DRAM): a fraction f of each tile lives in DRAM: written
  f x tile x fills words, and read back that much once per reader in a later branch than T's producer
  of a `sequential` node below N and above every loop over T's ranks (a branch that sees the whole
  tile: a later pass; a reader inside the producer's loops reads the part just made, still on chip).

Masks are not honoured (dense tiles): a mapping that skips masked tiles moves less.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import einsum_cascade as ec
from mappings.looptree.tree import LoopTree, LoopTreeError, Node, source_of


@dataclass
class Traffic:
    """DRAM words read and written per tensor, and their total in bytes; `fills` / `drains`: words
    moved into / back out of each on-chip level from / to the level above it (per tensor, any
    parent level, DRAM included); `held`: storage-node path -> (level, {tensor: tile words})."""
    word_bytes: int
    reads: dict[str, float] = field(default_factory=dict)
    writes: dict[str, float] = field(default_factory=dict)
    fills: dict[str, dict[str, float]] = field(default_factory=dict)
    drains: dict[str, dict[str, float]] = field(default_factory=dict)
    held: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)

    def add(self, table: dict, t: str, words: float) -> None:
        if words:
            table[t] = table.get(t, 0.0) + words

    @property
    def total_words(self) -> float:
        return sum(self.reads.values()) + sum(self.writes.values())

    def level_words(self, level: str) -> float:
        """Words moved between `level` and its parent (fills plus drains)."""
        return sum(self.fills.get(level, {}).values()) + sum(self.drains.get(level, {}).values())

    @property
    def total_bytes(self) -> float:
        return self.total_words * self.word_bytes


@dataclass(frozen=True)
class _Loop:
    kind: str
    rank: str
    trips: int


def _tensor_vars(c: ec.Cascade, t: str) -> list[str]:
    if t in c.inputs:
        return list(c.inputs[t].indices)
    e = c.einsum(t)
    out = []
    for x in e.lhs:
        for s in sorted(x.free_symbols, key=str):
            v = str(s)
            if v in c.var_rank and v != e.iterative_var and v not in out:
                out.append(v)
    return out


def _rank_of_var(c: ec.Cascade, v: str) -> tuple[str, str | None]:
    """(rank, part) of a variable: part is None, 'outer' or 'inner' for a split rank's parts."""
    r = c.var_rank[v]
    if r in c.ranks:
        return r, None
    for rank in c.ranks.values():
        if r in rank.parts:
            return rank.name, "outer" if r == rank.parts[0] else "inner"
    raise KeyError(v)


def _readers_and_producers(tree: LoopTree, c: ec.Cascade) -> dict[str, tuple[set, set]]:
    """Node path -> (tensors read, tensors produced) by the compute nodes at or below it (views resolved)."""
    out: dict[str, tuple[set, set]] = {}

    def visit(chain) -> tuple[set, set]:
        reads, made = set(), set()
        for node in reversed(chain):  # a node's subtree: the nodes after it in its chain and their branches
            if node.kind == "compute":
                e = c.einsum(node.fields["einsum"])
                reads |= {source_of(c, a.tensor) for a in e.reads if source_of(c, a.tensor) != e.name}
                made.add(e.name)
            for b in node.branches:
                r, m = visit(b)
                reads |= r
                made |= m
            out[node.path] = (set(reads), set(made))
        return reads, made

    visit(tree.chain)
    return out


def _whole_tile_sequentials(rest, ranks: set[str]) -> set[str]:
    """Paths of the sequential nodes in `rest` (the nodes after a storage node in its chain, and their
    branches) above every loop over `ranks`: their branches see the storage node's whole tile."""
    out: set[str] = set()
    for node in rest:
        if node.kind in ("temporal", "spatial") and node.fields["rank"] in ranks:
            return out
        if node.kind == "sequential":
            out.add(node.path)
        for b in node.branches:
            out |= _whole_tile_sequentials(b, ranks)
    return out


def _later_readers(tree: LoopTree, c: ec.Cascade, t: str, eligible: set[str]) -> int:
    """Readers of `t` in a later branch than its producer of a sequential node in `eligible`."""
    positions = {}  # einsum -> tuple of (sequential node path, branch index) along its path

    def visit(chain, trail):
        for node in chain:
            if node.kind == "compute":
                positions[node.fields["einsum"]] = trail
            for j, b in enumerate(node.branches):
                visit(b, trail + ((node.path, j),) if node.kind == "sequential" else trail)

    visit(tree.chain, ())
    made = positions.get(t, ())
    count = 0
    for e in c.einsums:
        if e.is_initial or e.name == t or e.name not in positions:
            continue
        if not any(source_of(c, a.tensor) == t for a in e.reads):
            continue
        for (p1, j1), (p2, j2) in zip(made, positions[e.name]):
            if p1 != p2:
                break
            if j2 > j1 and p1 in eligible:
                count += 1
                break
            if j2 < j1:
                break
    return count


def dram_traffic(tree: LoopTree, c: ec.Cascade, hierarchy, sizes: dict[str, float],
                 params: dict[str, float] | None = None, checked: bool = False, partial: bool = False) -> Traffic:
    """The DRAM traffic `tree` implies for `c` at `sizes` on `hierarchy` (module docstring), with the
    traffic between every on-chip level and its parent counted the same way (`fills`, `drains`).
    `params` bind the tree's parameters (its defaults otherwise); `checked`: the tree was already
    validated against `c` and `hierarchy` (a search evaluating one tree at many tiles).
    `partial`: a tile need not divide its extent (ceil(extent / tile) trips, the last one short; not
    on a split rank); the tile of every trip is then counted at its true size: a tensor moves its
    whole size once per step of the loops above its innermost own loop that do not index it."""
    from mappings.looptree.tree import validate
    if not checked:
        validate(tree, c, hierarchy)
    values = {**tree.params, **(params or {})}
    unbound = sorted(k for k, v in values.items() if v is None)
    if unbound:
        raise LoopTreeError(f"{tree.source}: params: {', '.join(unbound)} not given")
    sizes = dict(sizes)
    _complete_split_sizes(tree, c, sizes, values)
    dram_levels = {lv.name for lv in hierarchy.levels if lv.kind == "dram"}
    below = _readers_and_producers(tree, c)
    traffic = Traffic(hierarchy.word_bytes)
    M0 = {r.name: sizes[r.parts[-1]] for r in c.ranks.values() if len(r.parts) == 2}

    def tile_words(t: str, extent: dict) -> float:
        words = 1.0
        for v in _tensor_vars(c, t):
            rank, part = _rank_of_var(c, v)
            ext = extent[rank]
            if part == "outer":
                ext = max(1.0, ext / M0[rank])
            elif part == "inner":
                ext = min(M0[rank], ext)
            words *= ext
        return words

    def ranks_of(t: str) -> set[str]:
        return {_rank_of_var(c, v)[0] for v in _tensor_vars(c, t)}

    def tile_value(node: Node) -> int:
        tile = node.fields["tile"]
        if isinstance(tile, str):
            tile = sizes[tile] if tile in sizes else values[tile]
        if int(tile) != tile or tile < 1:
            raise LoopTreeError(f"{tree.source}: {node.path}.tile: {tile!r} is not a positive integer")
        return int(tile)

    def visit(chain, extent: dict, loops: list, held: dict) -> None:
        extent, loops, held = dict(extent), list(loops), dict(held)
        for index, node in enumerate(chain):
            f = node.fields
            if node.kind in ("temporal", "spatial"):
                tile, rank = tile_value(node), f["rank"]
                if extent[rank] % tile and partial and len(c.ranks[rank].parts) != 2:
                    short[0] = True
                elif extent[rank] % tile:
                    raise LoopTreeError(f"{tree.source}: {node.path}.tile: {tile} does not divide the {extent[rank]:g} "
                                        f"of {rank} the loops above leave")
                trips = math.ceil(extent[rank] / tile)
                if node.kind == "spatial":
                    unit, _, dim = f["over"].partition(".")
                    width = getattr(hierarchy.units[unit], dim) if dim else hierarchy.level(unit).fanout.count
                    if trips > width:
                        raise LoopTreeError(f"{tree.source}: {node.path}.tile: {trips} parallel steps of {rank} "
                                            f"exceed the {width} of {f['over']}")
                loops.append(_Loop(node.kind, rank, trips))
                extent[rank] = min(tile, extent[rank])
            elif node.kind == "storage":
                reads, made = below[node.path]
                traffic.held[node.path] = (f["level"], {t: tile_words(t, extent) for t in f["tensors"]})
                for t in f["tensors"]:
                    outer = held.get(t)
                    held[t] = f["level"]
                    spill_to_dram = hierarchy.level(f["level"]).parent in dram_levels and t in f["spill"]
                    if outer is None and not spill_to_dram:
                        continue
                    words, mine = tile_words(t, extent), ranks_of(t)
                    relevant = [i for i, lp in enumerate(loops) if lp.rank in mine and lp.trips > 1]  # 1 trip: no step
                    last = relevant[-1] if relevant else -1
                    fills = math.prod(lp.trips for i, lp in enumerate(loops[:last + 1])
                                      if lp.kind == "temporal" or lp.rank in mine)
                    distinct = math.prod(loops[i].trips for i in relevant)
                    if short[0]:  # tiles of true size: the whole tensor per step of the loops that do not index it
                        words, fills, distinct = tile_words(t, extent0), fills // distinct, 1
                    if outer is not None:  # this level's traffic with the level above it
                        into = traffic.fills.setdefault(f["level"], {})
                        if t in made:
                            traffic.add(traffic.drains.setdefault(f["level"], {}), t, words * fills)
                            traffic.add(into, t, words * (fills - distinct))
                        elif t in reads:
                            traffic.add(into, t, words * fills)
                    from_dram = outer in dram_levels
                    if from_dram and t in made:
                        traffic.add(traffic.writes, t, words * fills)
                        traffic.add(traffic.reads, t, words * (fills - distinct))
                    elif from_dram and t in reads:
                        traffic.add(traffic.reads, t, words * fills)
                    frac = f["spill"].get(t, 0.0)
                    frac = float(values[frac]) if isinstance(frac, str) else frac
                    if not 0.0 <= frac <= 1.0:
                        raise LoopTreeError(f"{tree.source}: {node.path}.spill.{t}: {frac} is not a fraction in [0, 1]")
                    if frac:
                        traffic.add(traffic.writes, t, frac * words * fills)
                        later = _later_readers(tree, c, t, _whole_tile_sequentials(chain[index + 1:], mine))
                        traffic.add(traffic.reads, t, frac * words * fills * later)
            for b in node.branches:
                visit(b, extent, loops, held)

    extent0 = {r: float(sizes[r]) for r in c.ranks}
    short = [False]  # a loop whose tile does not divide its extent was met (`partial`)
    visit(tree.chain, extent0, [], {})
    for t, w in {**traffic.reads, **traffic.writes}.items():
        if not math.isfinite(w) or w < 0:
            raise LoopTreeError(f"{tree.source}: traffic of {t} is {w!r}")
    return traffic


def footprints(tree: LoopTree, traffic: Traffic) -> dict[str, float]:
    """Words each level holds at once: the tiles of its storage nodes summed along a chain, the
    largest over the branches of a `sequential` node (one runs at a time), summed over the branches
    of a `pipelined` node (they run together). No double buffering is assumed."""
    def chain_words(chain) -> dict[str, float]:
        out: dict[str, float] = {}
        for node in chain:
            if node.path in traffic.held:
                level, tiles = traffic.held[node.path]
                out[level] = out.get(level, 0.0) + sum(tiles.values())
            if node.branches:
                parts = [chain_words(b) for b in node.branches]
                for level in {lv for p in parts for lv in p}:
                    values = [p.get(level, 0.0) for p in parts]
                    out[level] = out.get(level, 0.0) + (sum(values) if node.kind == "pipelined" else max(values))
        return out

    return chain_words(tree.chain)


def check_capacity(tree: LoopTree, hierarchy, traffic: Traffic) -> dict[str, float]:
    """The footprint of every on-chip level (words); LoopTreeError naming the first storage node of
    a level whose tiles exceed its capacity."""
    words = footprints(tree, traffic)
    for level, w in words.items():
        cap = hierarchy.level(level).capacity_bytes
        if cap is not None and w * hierarchy.word_bytes > cap:
            first = next(path for path, (lv, _) in traffic.held.items() if lv == level)
            need = w * hierarchy.word_bytes
            raise LoopTreeError(f"{tree.source}: {first}: the tiles kept in {level} need {need:.0f} B, more than its {cap} B")
    return words


def _complete_split_sizes(tree: LoopTree, c: ec.Cascade, sizes: dict, values: dict) -> None:
    """A split rank's parts from the innermost temporal loop over it when `sizes` lacks them."""
    for r in c.ranks.values():
        if len(r.parts) != 2 or r.parts[-1] in sizes:
            continue
        tiles = [n.fields["tile"] for n, _ in tree.walk() if n.kind == "temporal" and n.fields["rank"] == r.name]
        if not tiles:
            raise LoopTreeError(f"{tree.source}: tree: no temporal loop over {r.name} sets its tile {r.parts[-1]} "
                                f"(or give --size {r.parts[-1]}=N)")
        tile = tiles[-1]
        tile = sizes.get(tile, values.get(tile)) if isinstance(tile, str) else tile
        sizes[r.parts[-1]] = tile
        sizes[r.parts[0]] = sizes[r.name] // tile


__all__ = ["Traffic", "check_capacity", "dram_traffic", "footprints"]
