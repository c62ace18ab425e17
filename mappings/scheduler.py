"""The generic scheduler: (cascade, pass analysis, MappingSpec, architecture, sizes) -> Schedule.

A block is one group of query rows (`query_group`) of one (batch, head) pair; all blocks are
identical (query groups that see different numbers of key tiles under a mask are simulated as
the average group: exact totals of work and traffic, the group-to-group imbalance ignored).

`fusion: pass`: one segment per pass over the tiled rank (`einsum_cascade.passes`), each
iterating over the key tiles; Einsums that do not iterate over the rank run after the pass in
which their inputs complete (a prologue for those that read only inputs). Per tile:

- each Einsum's work is the cascade's own operator counts (`einsum_cascade.cost`'s counting) at
  one tile and one block, priced by the bound unit's operator table;
- streamed inputs (indexed by the rank) are loaded by their first reader of each pass, re-read
  once per array-width of query rows with `stationarity: output`, once with `weight`;
  non-streamed inputs are block-resident (`buffer_resident`) or re-read per array-width of keys;
- live-across-pass tensors are kept (buffer) or spilled per `spill`: the producer stores the
  spilled fraction, the consumer of a later pass loads it (after the store); a consumer of a
  partly spilled tensor processes the kept part first, so the reload overlaps it;
- recurrences over the rank are loop-carried dependencies ("prev:" of the previous tile);
- masks (`where` on the key and query positions) are counted with global positions: tiles no
  query of the group sees are skipped (`skip_masked_tiles`), partial tiles are charged for
  their visible points, full tiles for all; without skipping every tile is computed whole.

Block-resident bytes (resident inputs and outputs, recurrence state, kept live tensors) are held
by a LOAD op until the block's last op (`pipeline: tiles | none`) or reserved statically
(`pipeline: blocks`, where later stages are issued `lag` blocks late).

`fusion: none`: each maximal run of consecutive Einsums on one unit is a stage; per head, each
stage runs over all query chunks before the next starts, tensors between stages through DRAM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import einsum_cascade as ec
from einsum_cascade.memo import per_object
from einsum_cascade.ast import Access, value_vars
from einsum_cascade.cost import einsum_ops as _einsum_ops
from einsum_cascade.cost import numeric_points
from einsum_cascade.numeric_cost import numeric_cost

from archsim.config import Architecture, PEArray
from archsim.schedule import Schedule, Segment, TileOp, parse_dep
from mappings.divisors import divisors
from mappings.masks import held_points, mask_pair_counts, tile_classes
from mappings.spec import MappingSpec, SpecError
from mappings.work import MappingError, cost_on_unit, fuse_operators


# -- the cascade's structure (cached per cascade) --------------------------------------------------
@dataclass
class _Structure:
    computing: list  # Einsum objects that compute (views looked through)
    views: dict[str, str]
    passes: dict[str, int | None]
    complete: dict[str, int]
    n_passes: int
    live: list[str]


def _cache(cascade: ec.Cascade) -> dict:
    """A per-cascade memo (cascades are not hashable), kept while the cascade lives."""
    return per_object(cascade, dict, "scheduler")


def _structure(cascade: ec.Cascade, rank: str) -> _Structure:
    memo = _cache(cascade)
    if ("structure", rank) not in memo:
        memo[("structure", rank)] = _structure_of(cascade, rank)
    return memo[("structure", rank)]


def _structure_of(cascade: ec.Cascade, rank: str) -> _Structure:
    mains = [e for e in cascade.einsums if not e.is_initial]
    views = {}
    for e in mains:
        if isinstance(e.expr, Access) and not e.where and not e.implicit_vars and not e.reduced_vars:
            views[e.name] = e.expr.tensor
    report = ec.passes(cascade, rank)
    return _Structure(
        computing=[e for e in mains if e.name not in views], views=views,
        passes={p.name: p.pass_ for p in report.einsums}, complete={p.name: p.complete for p in report.einsums},
        n_passes=report.passes, live=list(report.live_across_passes))


def _ops(cascade: ec.Cascade, sizes_key: tuple, masked: bool) -> dict[str, dict[str, float]]:
    """Operator counts per Einsum at `sizes_key` (sorted items); `masked=False` ignores `where`."""
    memo = _cache(cascade)
    key = ("ops", sizes_key, masked)
    if key not in memo:
        memo[key] = _ops_of(cascade, sizes_key, masked)
    return memo[key]


def _ops_of(cascade: ec.Cascade, sizes_key: tuple, masked: bool) -> dict[str, dict[str, float]]:
    if masked:  # the cascade's counts, memoised per process (shared with mappings/certify.py)
        per = numeric_cost(cascade, dict(sizes_key)).per_einsum
        return {n: {k: float(x) for k, x in ops.items() if x} for n, ops in per.items()}
    bound = cascade.bind_sizes({}, dict(sizes_key))
    points = numeric_points(cascade, bound)
    fn = points if masked else (lambda v, w: points(v, ()))
    return {e.name: {k: float(n) for k, n in _einsum_ops(e, fn).items() if n}
            for e in cascade.einsums if not e.is_initial}


def ops_at(cascade: ec.Cascade, sizes: dict, masked: bool = True) -> dict[str, dict[str, float]]:
    """Operator counts of each Einsum at `sizes` (cached)."""
    known = set(cascade.size_names) | set(cascade.params)
    return _ops(cascade, tuple(sorted((k, v) for k, v in sizes.items() if k in known)), masked)


def is_sum_of_products(e) -> bool:
    """An Einsum with an implicit sum of products (QK, AV, ...)."""
    return bool(e.implicit_vars)


def resolve_binding(cascade: ec.Cascade, spec: MappingSpec, arch: Architecture, rank: str = "M") -> dict[str, str]:
    """Einsum -> unit from `binding` then `binding_rules`; errors name the spec file and field."""
    st = _structure(cascade, rank)
    names = {e.name for e in st.computing}
    for n, u in spec.binding.items():
        if n not in names:
            what = "a view (it computes nothing)" if n in st.views else "not an Einsum of the cascade"
            raise SpecError(f"{spec.source}: binding.{n}: {n!r} is {what} {cascade.name} "
                            f"(Einsums: {', '.join(sorted(names))})")
        if u not in arch.units:
            raise SpecError(f"{spec.source}: binding.{n}: unknown unit {u!r} of {arch.name} "
                            f"(units: {', '.join(arch.units)})")
    out = dict(spec.binding)
    for i, r in enumerate(spec.binding_rules):
        if r.unit not in arch.units:
            raise SpecError(f"{spec.source}: binding_rules[{i}].unit: unknown unit {r.unit!r} of {arch.name} "
                            f"(units: {', '.join(arch.units)})")
        for e in st.computing:
            if e.name in out:
                continue
            if r.einsums == e.name or r.einsums == "rest" or (r.einsums == "sum_of_products" and is_sum_of_products(e)):
                out[e.name] = r.unit
        if r.einsums not in ("rest", "sum_of_products") and r.einsums not in names:
            raise SpecError(f"{spec.source}: binding_rules[{i}].einsums: {r.einsums!r} is neither an Einsum of "
                            f"{cascade.name} nor 'sum_of_products' or 'rest'")
    missing = [e.name for e in st.computing if e.name not in out]
    if missing:
        raise SpecError(f"{spec.source}: binding: Einsum(s) {', '.join(missing)} of {cascade.name} are bound to no unit")
    return out


# -- sizes -------------------------------------------------------------------------------------
def _size_value(v, arch: Architecture, whole: int, where: str) -> int:
    if isinstance(v, int):
        return v
    if v in ("whole", "all"):
        return whole
    unit, _, dim = str(v).partition(".")
    if unit in arch.units and dim in ("rows", "cols"):
        return getattr(arch.units[unit], dim)
    raise SpecError(f"{where}: expected a positive integer, 'whole'/'all' or UNIT.rows / UNIT.cols, got {v!r}")


def tensor_words(cascade: ec.Cascade, tensor: str, sizes: dict, drop: set[str] = frozenset()) -> float:
    """Elements of `tensor` at `sizes`, the dimensions indexed by variables in `drop` left out."""
    decl = cascade.inputs.get(tensor)
    if decl is not None:
        variables = decl.indices
    else:
        e = cascade.einsum(tensor)
        variables = [str(s) for x in e.lhs for s in x.free_symbols if str(s) in cascade.var_rank]
        if e.iterative_var:
            variables = [v for v in variables if v != e.iterative_var]
    return float(math.prod(sizes[cascade.var_rank[v]] for v in variables if v not in drop))


def _uses(cascade: ec.Cascade, tensor: str, var_set: set[str]) -> bool:
    decl = cascade.inputs.get(tensor)
    if decl is not None:
        return bool(set(decl.indices) & var_set)
    e = cascade.einsum(tensor)
    return bool({str(s) for x in e.lhs for s in x.free_symbols} & var_set) or e.iterative_var in var_set


@dataclass
class Plan:
    """One Einsum of a block: unit, cycles and actions per tile (tiled) or per block."""
    name: str
    unit: str
    tiled: bool
    pass_: int
    cycles: float
    actions: dict[str, float]
    deps: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    masked: bool = False


class _Ctx:
    """Everything the two loop nests share for one (cascade, spec, arch, sizes)."""

    def __init__(self, cascade: ec.Cascade, spec: MappingSpec, arch: Architecture, sizes: dict):
        self.c, self.arch, self.wb = cascade, arch, arch.word_bytes
        self.spec = spec.resolved(sizes)
        spec = self.spec
        self.where = f"{spec.name} ({spec.source})"
        if spec.rank not in cascade.ranks:
            raise SpecError(f"{spec.source}: rank: {cascade.name} has no rank {spec.rank!r} "
                            f"(ranks: {', '.join(cascade.ranks)})")
        self.st = _structure(cascade, spec.rank)
        self.binding = resolve_binding(cascade, spec, arch, spec.rank)
        names = {e.name for e in self.st.computing} | set(cascade.inputs) | set(self.st.views)
        for fld in ("register_file", "buffer_resident"):
            for t in getattr(spec, fld):
                if t not in names:
                    raise SpecError(f"{spec.source}: {fld}: {t!r} is not a tensor of {cascade.name}")
        for t in spec.spill:
            if t not in self.st.live:
                raise SpecError(f"{spec.source}: spill.{t}: {t!r} is not live across passes in {cascade.name} "
                                f"(live: {', '.join(self.st.live) or 'none'})")
        for t in spec.stall:
            if t not in self.binding:
                raise SpecError(f"{spec.source}: stall.{t}: not an Einsum of {cascade.name}")
        rank = cascade.ranks[spec.rank]
        self.rvars = cascade.rank_vars(spec.rank)
        self.N = int(sizes[spec.rank])
        if rank.parts:
            outer, inner = rank.parts[0], rank.parts[-1]
            if len(rank.parts) != 2:
                raise SpecError(f"{spec.source}: rank: {spec.rank} is split in {len(rank.parts)} parts; "
                                "the scheduler tiles a rank split in two (outer x tile)")
            self.tile_var = next(v for v, r in cascade.var_rank.items() if r == outer)
            self.key_vars = (self.tile_var, next(v for v, r in cascade.var_rank.items() if r == inner))
            self.inner_rank = inner
            self.T = _size_value(spec.tile, arch, self.N, f"{spec.source}: tile")
            if inner in sizes:  # the algorithm's block size (the user's or the cascade's): kept
                block = int(sizes[inner])
                if block <= 0 or self.N % block:
                    raise SpecError(f"--size {inner}={sizes[inner]:g}: does not divide {spec.rank} = {self.N}")
                per_tile = max(1, self.T // block) if spec.tile not in ("whole", "all") else 1
                while (self.N // block) % per_tile:
                    per_tile -= 1
                self.block, self.T = block, per_tile * block  # a tile: per_tile blocks of the cascade
            else:
                self.block = self.T  # the mapping's tile sets the inner size
        else:
            self.tile_var = next(iter(self.rvars))
            self.key_vars = (self.tile_var,)
            self.inner_rank = None
            self.T = _size_value(spec.tile, arch, self.N, f"{spec.source}: tile")
            self.block = self.T
        if self.T <= 0 or self.N % self.T:
            raise SpecError(f"{spec.source}: tile: {self.T} keys per tile does not divide {spec.rank} = {self.N}")
        self.n_tiles = self.N // self.T
        if spec.query_rank != "P" and spec.query_rank not in cascade.ranks:  # "P" (default): none if absent
            raise SpecError(f"{spec.source}: query_rank: {cascade.name} has no rank {spec.query_rank!r} "
                            f"(ranks: {', '.join(cascade.ranks)})")
        self.qr = spec.query_rank if spec.query_rank in cascade.ranks else None
        self.q_parts: tuple[str, ...] = tuple(cascade.ranks[self.qr].parts) if self.qr else ()
        self.q_inner = 1  # rows of a split query rank's inner part: a block groups whole inner blocks
        if self.q_parts:
            if len(self.q_parts) != 2:
                raise SpecError(f"{spec.source}: query_rank: {cascade.name} splits {self.qr} into "
                                f"{' x '.join(self.q_parts)}; the scheduler groups the rows of a rank split in two")
            if self.q_parts[1] not in sizes:
                raise SpecError(f"--size: {cascade.name} splits {self.qr} = {' x '.join(self.q_parts)}: "
                                f"give {self.q_parts[1]} (e.g. --size {self.q_parts[1]}=256)")
            self.q_inner = int(sizes[self.q_parts[1]])
            var_of = {r: v for v, r in cascade.var_rank.items()}
            self.qvar = (var_of[self.q_parts[0]], var_of[self.q_parts[1]])
        else:
            self.qvar = cascade.ranks[self.qr].var if self.qr else None
        self.P = int(sizes[self.qr]) if self.qr else 1
        if self.q_parts and (self.q_inner <= 0 or self.P % self.q_inner):
            raise SpecError(f"--size {self.q_parts[1]}={self.q_inner}: does not divide {self.qr} = {self.P}")
        self.sizes = dict(sizes)

    def with_rows(self, s: dict, rows: int) -> dict:
        """`s` with the query rank at `rows` rows (a split one: rows / inner blocks of the inner size)."""
        if self.qr:
            s[self.qr] = rows
            if self.q_parts:
                s[self.q_parts[0]], s[self.q_parts[1]] = rows // self.q_inner, self.q_inner
        return s

    # sizes of one tile of one block of `rows` query rows
    def tile_sizes(self, rows: int) -> dict:
        s = dict(self.sizes)
        s[self.spec.rank] = self.T
        if self.inner_rank:
            s[self.inner_rank] = self.block
            s[self.c.ranks[self.spec.rank].parts[0]] = self.T // self.block
        return self.with_rows(s, rows)

    def global_sizes(self) -> dict:
        s = dict(self.sizes)
        if self.inner_rank:
            s[self.inner_rank] = self.block
            s[self.c.ranks[self.spec.rank].parts[0]] = self.N // self.block
        return s

    kv_share = 1.0  # KV heads / query heads (build_schedule)

    @property
    def lockstep(self) -> int:
        """Query heads of one KV head whose blocks are held in the buffer at once."""
        return round(1 / self.kv_share)

    def shared_kv(self, t: str) -> bool:
        """An input indexed by the key rank and by no query rank: shared by the query heads of a KV head."""
        return t in self.c.inputs and self.streamed(t) and not (self.qr and _uses(self.c, t, self.c.rank_vars(self.qr)))

    def unit(self, einsum: str) -> PEArray:
        return self.arch.units[self.binding[einsum]]

    def price(self, name: str, counts: dict[str, float]) -> tuple[float, dict[str, float]]:
        try:
            return cost_on_unit(self.unit(name), fuse_operators(counts, self.spec.fold_shift_into_exp),
                                f"{self.spec.source}: binding.{name}: Einsum {name} on {self.arch.name}")
        except MappingError as err:
            raise SpecError(str(err)) from None

    def streamed(self, t: str) -> bool:
        return _uses(self.c, t, self.rvars)

    def source(self, t: str) -> str:
        while t in self.st.views:
            t = self.st.views[t]
        return t

    def reads(self, e) -> list[str]:
        out = []
        for a in e.reads:
            s = self.source(a.tensor)
            if s != e.name and s not in out:
                out.append(s)
        return out

    def deps(self, e, tiled: dict[str, bool]) -> list[str]:
        out = []
        for u, _, data in self.c.graph.in_edges(e.name, data=True):
            for src in self._producers(u):
                if src == e.name or src not in tiled:
                    continue
                ref = f"prev:{src}" if data.get("delayed") and tiled[src] and tiled[e.name] else src
                if ref not in out:
                    out.append(ref)
        return out

    def _producers(self, t: str) -> list[str]:
        if t in self.st.views:
            return [p for u in self.c.graph.predecessors(t) for p in self._producers(u)]
        return [t]

    def buffer_actions(self, e, sizes: dict, actions: dict) -> None:
        """Buffer words read and written per tile by `e` (tensors not in the register file)."""
        rf = set(self.spec.register_file)
        for a in e.reads:
            if self.source(a.tensor) in rf:
                continue
            variables = {str(s) for x in a.indices for s in getattr(x, "free_symbols", ()) if str(s) in self.c.var_rank}
            actions["buffer.read_words"] = actions.get("buffer.read_words", 0.0) + \
                math.prod(float(sizes[self.c.var_rank[v]]) for v in variables)
        if e.name not in rf:
            actions["buffer.write_words"] = actions.get("buffer.write_words", 0.0) + tensor_words(self.c, e.name, sizes)


# -- masks -------------------------------------------------------------------------------------
def _mask_of(ctx: _Ctx, e) -> tuple:
    keyed = set(ctx.key_vars) | set(ctx.rvars)
    return tuple(c for c in e.where if value_vars(c, ctx.c.variables) & keyed)


def _classes(cascade, masks: tuple, key_vars: tuple, qvar: str, sizes_key: tuple, P: int, N: int, G: int, T: int):
    memo = _cache(cascade)
    key = ("classes", masks, key_vars, qvar, sizes_key, P, N, G, T)
    if key not in memo:
        memo[key] = _classes_of(cascade, masks, key_vars, qvar, sizes_key, P, N, G, T)
    return memo[key]


def _classes_of(cascade, masks: tuple, key_vars: tuple, qvar: str, sizes_key: tuple, P: int, N: int, G: int, T: int):
    sizes = dict(sizes_key)
    counts, held = [], []
    for mask in masks:
        outer = cascade.var_rank[key_vars[0]]
        whole = next((r.var for r in cascade.ranks.values() if outer in r.parts), None) if len(key_vars) == 2 else None
        counts.append(mask_pair_counts(cascade, mask, key_vars, qvar, sizes, P, N, G, T, cascade.name, whole))
        held.append(held_points(cascade, mask, key_vars, qvar, whole, sizes))
    return tile_classes(counts, G, T, held)


# -- fused (one segment per pass) ---------------------------------------------------------------
def _plans(ctx: _Ctx, rows: int) -> tuple[list[Plan], dict]:
    """Per-tile (or per-block) plans at block size `rows`, and the mask classes (or None)."""
    c, st = ctx.c, ctx.st
    tsz = ctx.tile_sizes(rows)
    dense = ops_at(c, tsz, masked=False)
    tiled = {e.name: st.passes[e.name] is not None for e in st.computing}
    masked = {e.name: _mask_of(ctx, e) for e in st.computing}
    info = {"classes": None}
    scale = {e.name: 1.0 for e in st.computing}
    if any(masked.values()) and ctx.qr is None:
        raise MappingError(f"{ctx.where}: {c.name} masks keys but has no query rank {ctx.spec.query_rank!r}")
    if any(masked.values()) and ctx.spec.skip_masked_tiles:
        masks = tuple(sorted({m for m in masked.values() if m}, key=str))
        gsz = ctx.global_sizes()
        known = set(c.size_names) | set(c.params)
        cls = _classes(c, masks, ctx.key_vars, ctx.qvar, tuple(sorted((k, v) for k, v in gsz.items() if k in known)),
                       ctx.P, ctx.N, rows, ctx.T)
        info["classes"] = cls
        glob = ops_at(c, gsz, masked=True)
        for e in st.computing:
            if not masked[e.name] or not tiled[e.name]:
                continue
            # in priced cycles (the unit's table, as the certificate prices the cascade's counts): the
            # share of a partial tile is the Einsum's visible work less that of the full tiles
            d = ctx.price(e.name, dense[e.name])[0]
            total = ctx.price(e.name, glob[e.name])[0]
            if cls.partial:
                scale[e.name] = max(0.0, (total - cls.full * d) / (cls.partial * d)) if d else 0.0
            info.setdefault("partial_scale", {})[e.name] = scale[e.name]
    plans = []
    for e in st.computing:
        counts = dense[e.name]
        cycles, actions = ctx.price(e.name, counts)
        ctx.buffer_actions(e, tsz, actions)
        if e.name in ctx.spec.stall:
            cycles += ctx.spec.stall[e.name] * cycles
        p = st.passes[e.name] if tiled[e.name] else st.complete[e.name]
        plans.append(Plan(e.name, ctx.binding[e.name], tiled[e.name], p, cycles, actions,
                          ctx.deps(e, tiled), ctx.reads(e), bool(masked[e.name])))
    return plans, info


def _resident_bytes(ctx: _Ctx, rows: int) -> float:
    """Bytes a block keeps in the buffer: resident inputs/outputs, recurrence state, kept live tensors."""
    c, wb = ctx.c, ctx.wb
    bsz = ctx.with_rows(dict(ctx.sizes), rows)
    if ctx.inner_rank:
        bsz[ctx.inner_rank] = ctx.block
        bsz[c.ranks[ctx.spec.rank].parts[0]] = ctx.N // ctx.block
    total = 0.0
    for t in ctx.spec.buffer_resident:
        total += tensor_words(c, ctx.source(t), bsz) * wb
    for t in c.inputs:
        if not ctx.streamed(t) and t not in ctx.spec.buffer_resident and ctx.spec.pipeline != "blocks":
            total += tensor_words(c, t, bsz) * wb  # non-streamed inputs are held for the block by default
    for e in ctx.st.computing:
        if e.name in ctx.spec.register_file:
            continue
        if e.iterative_var in ctx.rvars:  # recurrence state
            total += tensor_words(c, e.name, bsz) * wb
        elif ctx.n_tiles > 1 and ctx.st.passes[e.name] is not None and not ctx.streamed(e.name):
            total += tensor_words(c, e.name, bsz) * wb  # a sum or max over the tiles, accumulated in the buffer
    kept = [(1 - ctx.spec.spill.get(t, 0.0)) * tensor_words(c, t, bsz) * wb for t in ctx.st.live]
    return total + max(kept, default=0.0)


def _staging_bytes(ctx: _Ctx, rows: int) -> float:
    """Buffer bytes of one tile's streamed operands (all streamed inputs of the tile at once)."""
    tsz = ctx.tile_sizes(rows)
    keys = min(ctx.T, max(u.cols for u in ctx.arch.units.values()))  # one array-wide slice of the tile
    return sum(tensor_words(ctx.c, t, tsz) * keys / ctx.T * ctx.wb for t in ctx.c.inputs if ctx.streamed(t))


def query_group_rows(ctx: _Ctx) -> int:
    """Rows of P per block: the spec's, or (auto) the largest fitting multiple of query_block."""
    spec = ctx.spec
    if ctx.qr is None:
        return 1
    P = ctx.P
    if spec.query_group != "auto":
        g = _size_value(spec.query_group, ctx.arch, P, f"{spec.source}: query_group")
        if P % g:
            raise SpecError(f"{spec.source}: query_group: {g} rows does not divide {ctx.qr} = {P}")
        if g % ctx.q_inner:
            raise SpecError(f"{spec.source}: query_group: {g} rows are not whole blocks of {ctx.q_parts[1]} = "
                            f"{ctx.q_inner} rows ({ctx.qr} = {' x '.join(ctx.q_parts)})")
        return g
    qb = math.lcm(_size_value(spec.query_block, ctx.arch, P, f"{spec.source}: query_block"), ctx.q_inner)
    if P <= qb:
        return P
    if P % qb:
        raise SpecError(f"{spec.source}: query_block: {ctx.qr} = {P} is not a multiple of the {qb}-row query block")
    nblocks = P // qb
    cap = ctx.arch.buffer.capacity_bytes
    if spec.fusion == "none":
        rows = ctx.q_inner
        while rows * 2 <= max(1, P // spec.min_blocks) and P % (rows * 2) == 0 and \
                2 * _stage_peak(ctx, rows * 2) <= cap // 2:
            rows *= 2
        return rows
    try:
        candidates = divisors(nblocks)  # by factorisation: P may be 1e30
    except ValueError as err:
        raise SpecError(f"{spec.source}: query_group: {ctx.qr} = {P}: {err}") from None
    allowed = [d for d in candidates if nblocks // d >= spec.min_blocks]  # ascending
    # the bytes held grow with the rows (word counts are products of sizes): the divisors that fit are
    # a prefix of `allowed`, and bisection finds the largest in log2(len) tries instead of len
    lo, hi = 0, len(allowed)
    while lo < hi:
        mid = (lo + hi) // 2
        if ctx.lockstep * _resident_bytes(ctx, allowed[mid] * qb) + _staging_bytes(ctx, allowed[mid] * qb) <= cap:
            lo = mid + 1
        else:
            hi = mid
    if lo:
        return allowed[lo - 1] * qb
    raise SpecError(f"{spec.source}: query_group: one {qb}-row query block ({_resident_bytes(ctx, qb):.0f} B held "
                    f"+ {_staging_bytes(ctx, qb):.0f} B per tile) does not fit the "
                    f"{cap} B buffer of {ctx.arch.name}")


def _crosses(ctx: _Ctx, tensor: str, reader: Plan) -> bool:
    """Whether `reader` reads live tensor `tensor` in a later pass than the one producing it."""
    made = ctx.st.passes.get(tensor)
    return tensor in ctx.st.live and made is not None and reader.tiled and reader.pass_ > made


def _lags(ctx: _Ctx, plans: list[Plan]) -> dict[str, int]:
    """Software-pipelining stage of each Einsum (pipeline: blocks): a new stage where an Einsum reads a
    fully spilled tensor, or returns to a unit after another unit ran."""
    stage, used, prev, out = 0, set(), None, {}
    for p in plans:
        if any(ctx.spec.spill.get(t, 0.0) >= 1.0 for t in p.reads if _crosses(ctx, t, p)):
            stage += 1
        elif p.unit in used and prev is not None and prev != p.unit:
            stage += 1
        out[p.name] = stage
        used.add(p.unit)
        prev = p.unit
    return out


def _fused(ctx: _Ctx, outer_blocks: int, label: str) -> Schedule:
    spec, c, wb = ctx.spec, ctx.c, ctx.wb
    rows = query_group_rows(ctx)
    groups = ctx.P // rows
    plans, info = _plans(ctx, rows)
    by = {p.name: p for p in plans}
    tsz = ctx.tile_sizes(rows)
    bsz = dict(tsz)
    bsz[spec.rank] = ctx.N
    if ctx.inner_rank:
        bsz[c.ranks[spec.rank].parts[0]] = ctx.N // ctx.block
    blocks_mode = spec.pipeline == "blocks"
    resident = _resident_bytes(ctx, rows)
    cap = ctx.arch.buffer.capacity_bytes
    lockstep = ctx.lockstep
    if lockstep * resident + _staging_bytes(ctx, rows) > cap:
        raise SpecError(f"{spec.source}: query_group: a block of {rows} rows holds {resident:.0f} B "
                        + (f"x {lockstep} query heads of one KV head " if lockstep > 1 else "") +
                        f"(+ {_staging_bytes(ctx, rows):.0f} B per tile), more than the {cap} B buffer of "
                        f"{ctx.arch.name}; spill live tensors or use smaller groups")
    lags = _lags(ctx, plans) if blocks_mode else {}
    # outputs written through a view, or summed over the tiles: a DMA store once the source completes
    late_stores = {o: ctx.source(o) for o in c.outputs
                   if ctx.source(o) in by and (ctx.source(o) != o or (by[o].tiled and ctx.n_tiles > 1
                                                                       and not ctx.streamed(o)))}
    loaded_in_pass: set[tuple[int, str]] = set()
    resident_inputs = set(spec.buffer_resident)
    if not blocks_mode:
        resident_inputs |= {t for t in c.inputs if not ctx.streamed(t)}
    cls = info["classes"]

    def op_for(p: Plan, seg_pass: int) -> list[TileOp]:
        unit = ctx.arch.units[p.unit]
        slice_keys = min(ctx.T, unit.cols)
        load = store = staging = 0.0
        deps = list(p.deps)
        for t in p.reads:
            if t in c.inputs:
                key = (seg_pass, t)
                if key in loaded_in_pass:
                    continue
                loaded_in_pass.add(key)
                if ctx.streamed(t):
                    words = tensor_words(c, t, tsz if p.tiled else bsz) * (ctx.kv_share if ctx.shared_kv(t) else 1.0)
                    reread = 1 if (spec.stationarity == "weight" or t in spec.buffer_resident) else \
                        max(1, rows // unit.cols)
                    load += words * reread * wb
                    staging += tensor_words(c, t, tsz) * slice_keys / ctx.T * wb  # one array-wide slice of keys
                elif t in resident_inputs:
                    if blocks_mode:
                        load += tensor_words(c, t, bsz) * wb
                    else:
                        deps.append("LOAD")
                else:
                    reread = max(1, (ctx.T if p.tiled else ctx.N) // unit.cols)
                    load += tensor_words(c, t, bsz) * reread * wb
                    if ctx.q_parts:
                        per_row = tensor_words(c, t, bsz) / (rows if _uses(c, t, c.rank_vars(ctx.qr)) else 1)
                    else:
                        per_row = tensor_words(c, t, {**bsz, ctx.qr: 1}) if ctx.qr else tensor_words(c, t, bsz)
                    staging += min(rows, unit.cols) * per_row * wb  # one array-wide slice of rows
        spilled_reads = [(t, spec.spill.get(t, 0.0)) for t in p.reads if _crosses(ctx, t, p) and spec.spill.get(t, 0.0) > 0]
        part = tsz if p.tiled else bsz
        f_in = max((f for _, f in spilled_reads), default=0.0)
        reload = sum(f * tensor_words(c, t, part) * wb for t, f in spilled_reads)
        if p.name in ctx.st.live and spec.spill.get(p.name, 0.0) > 0:
            store += spec.spill[p.name] * tensor_words(c, p.name, part) * wb
        if p.name in c.outputs and p.name not in late_stores:
            store += tensor_words(c, p.name, part) * wb
        if spilled_reads and f_in >= 1.0:
            staging += 2 * sum(slice_keys * tensor_words(c, t, part) / (ctx.T if p.tiled else ctx.N) * wb for t, _ in spilled_reads)
        ops = []
        lag = lags.get(p.name, 0)
        if spilled_reads and 0 < f_in < 1:
            ops.append(TileOp(f"{p.name}.onchip", p.unit, (1 - f_in) * p.cycles, p.name, tuple(deps), lag=lag,
                              actions={k: (1 - f_in) * v for k, v in p.actions.items()}))
            return ops + [TileOp(p.name, p.unit, f_in * p.cycles, p.name, tuple(deps), lag=lag, load_bytes=load + reload,
                                 store_bytes=store, buffer_bytes=staging, load_after_deps=True,
                                 actions={k: f_in * v for k, v in p.actions.items()})]
        return [TileOp(p.name, p.unit, p.cycles, p.name, tuple(deps), lag=lag, load_bytes=load + reload,
                       store_bytes=store, buffer_bytes=staging, load_after_deps=bool(spilled_reads),
                       actions=dict(p.actions))]

    segments: list[Segment] = []
    notes = []
    tile_plans = [p for p in plans if p.tiled]
    sinks = [p.name for p in tile_plans if not any(p.name in q.deps for q in tile_plans if q.name != p.name)]
    for k in range(0, ctx.st.n_passes + 1):
        block_ops = []
        for p in plans:
            if not p.tiled and p.pass_ == k:
                block_ops += op_for(p, k)
        for out, src in late_stores.items():  # outputs complete only at the end of a pass: stored once
            if by[src].pass_ == k:
                block_ops.append(TileOp(f"STORE.{out}", None, 0.0, out, (src,),
                                        store_bytes=tensor_words(c, out, bsz) * wb))
        if k == 0:
            if block_ops:
                segments.append(Segment("prologue", 1, tuple(block_ops)))
            continue
        tiled_k = [p for p in plans if p.tiled and p.pass_ == k]
        if tiled_k:
            segments += _tile_segments(ctx, k, tiled_k, op_for, cls, info, groups, sinks)
        if block_ops:
            segments.append(Segment(f"after{k}", 1, tuple(block_ops)))
    if not segments:
        raise MappingError(f"{ctx.where}: {c.name} has nothing to compute")
    segments = _rename_unique(segments)
    reserved = 0.0
    if blocks_mode:
        reserved = resident
    else:
        held_inputs = [t for t in resident_inputs if t in c.inputs]
        q_bytes = sum(tensor_words(c, t, bsz) * wb for t in held_inputs)
        last = segments[-1].ops[-1].name
        load_op = TileOp("LOAD", None, 0.0, "", (), load_bytes=q_bytes, buffer_bytes=resident, hold_until=last)
        segments.insert(0, Segment("load", 1, (load_op,)))
    if cls is not None:
        notes.append(f"mask: {cls.full} full, {cls.partial} partial, {cls.empty} skipped (query group, key tile) "
                     f"pairs over {groups} groups x {ctx.n_tiles} tiles")
    return Schedule(
        name=label, blocks=outer_blocks * groups, segments=tuple(segments), reserved_buffer_bytes=reserved,
        notes=(f"{outer_blocks} (batch, head) pairs x {groups} query groups of {rows} rows; {ctx.n_tiles} tiles of "
               f"{ctx.T} keys over {spec.rank}; {ctx.st.n_passes} pass(es)", *notes))


def _tile_segments(ctx: _Ctx, k: int, tiled_k: list[Plan], op_for, cls, info, groups: int, sinks) -> list[Segment]:
    """The segments of pass k: all tiles, or (masked, skipping) full tiles, partial tiles, then the
    skipped tiles' unmasked Einsums (a mask skips only the Einsums it is on), each an integer count
    of iterations plus a fractional remainder (the average query group)."""
    spec = ctx.spec

    def ops(plans: list[Plan], scale_masked: float, suffix: str, factor: float = 1.0) -> tuple[TileOp, ...]:
        out = []
        names = {q.name for q in plans}
        for p in plans:
            share = info.get("partial_scale", {}).get(p.name, 1.0) if scale_masked and p.masked else 1.0
            for op in op_for(p, (k, suffix)):
                deps = list(op.deps)
                if spec.pipeline == "none" and all(d.startswith("prev:") for d in p.deps):
                    deps += [f"prev:{x}" for x in sinks if x in names]
                out.append(_scaled(op, factor * share, deps, bytes_scale=factor))
        return tuple(out)

    if cls is None:
        return [Segment(f"pass{k}", ctx.n_tiles, ops(tiled_k, 0, ""))]
    segs = []
    unmasked = [p for p in tiled_k if not p.masked]
    for label, count, partial, plans in (("full", cls.full, False, tiled_k), ("partial", cls.partial, True, tiled_k),
                                         ("skipped", cls.empty, False, unmasked)):
        mean = count / groups
        whole = int(mean)
        if not plans:
            continue
        if whole:
            segs.append(Segment(f"pass{k}.{label}", whole, ops(plans, partial, f".{label}")))
        rest = mean - whole
        if rest > 1e-12:
            segs.append(Segment(f"pass{k}.{label}.rest", 1, ops(plans, partial, f".{label}.rest", rest)))
    return segs


def _scaled(op: TileOp, s: float, deps: list[str], bytes_scale: float | None = None) -> TileOp:
    """`op` with its work (cycles, actions) scaled by `s` and its DRAM bytes by `bytes_scale` (default
    `s`): a partial tile computes its visible points only, but loads and stores whole tiles."""
    from dataclasses import replace
    b = s if bytes_scale is None else bytes_scale
    if s == 1.0 and b == 1.0:
        return replace(op, deps=tuple(deps))
    return replace(op, cycles=op.cycles * s, load_bytes=op.load_bytes * b, store_bytes=op.store_bytes * b,
                   actions={a: v * s for a, v in op.actions.items()}, deps=tuple(deps))


def _rename_unique(segments: list[Segment]) -> list[Segment]:
    """Op names unique across segments (the engine's rule): later segments' copies get a suffix; deps
    name the copy of the same segment, else the latest earlier one."""
    from dataclasses import replace
    latest: dict[str, str] = {}
    out = []
    for si, seg in enumerate(segments):
        local = {}
        for op in seg.ops:
            new = op.name if op.name not in latest and op.name not in local else f"{op.name}#{si}"
            local[op.name] = new
        ops = []
        for op in seg.ops:
            deps = []
            for d in op.deps:
                prev, n = parse_dep(d)
                if n in local:
                    deps.append(("prev:" if prev else "") + local[n])
                elif not prev and n in latest:
                    deps.append(latest[n])
                elif not prev and n in ("LOAD",):
                    deps.append(n)
            ops.append(replace(op, name=local[op.name], deps=tuple(deps)))
        latest.update(local)
        out.append(replace(seg, ops=tuple(ops)))
    return out


# -- unfused (stages through DRAM) --------------------------------------------------------------
def _stages(ctx: _Ctx) -> list[list]:
    out: list[list] = []
    for e in ctx.st.computing:
        if out and ctx.binding[out[-1][-1].name] == ctx.binding[e.name]:
            out[-1].append(e)
        else:
            out.append([e])
    return out


def _chunk_sizes(ctx: _Ctx, rows: int) -> dict:
    return ctx.with_rows(ctx.global_sizes(), rows)


def _stage_peak(ctx: _Ctx, rows: int) -> float:
    s = _chunk_sizes(ctx, rows)
    return max(tensor_words(ctx.c, e.name, s) * ctx.wb for e in ctx.st.computing)


def _unfused(ctx: _Ctx, outer_blocks: int, label: str) -> Schedule:
    c, wb, spec = ctx.c, ctx.wb, ctx.spec
    rows = query_group_rows(ctx)
    chunks = ctx.P // rows
    s = _chunk_sizes(ctx, rows)
    dense = ops_at(c, s, masked=False)
    masked_ops = ops_at(c, ctx.global_sizes(), masked=True) if spec.skip_masked_tiles else None
    stages = _stages(ctx)
    stage_of = {e.name: i for i, st in enumerate(stages) for e in st}
    consumers: dict[str, set[int]] = {}
    for e in ctx.st.computing:
        for t in ctx.reads(e):
            consumers.setdefault(t, set()).add(stage_of[e.name])
    tiled = {e.name: True for e in ctx.st.computing}
    segments = []
    for i, stage in enumerate(stages):
        ops, loaded = [], set()
        for j, e in enumerate(stage):
            counts = dense[e.name]
            if masked_ops is not None and _mask_of(ctx, e):
                counts = {k: v / chunks for k, v in masked_ops[e.name].items()}
            cycles, actions = ctx.price(e.name, counts)
            ctx.buffer_actions(e, s, actions)
            load = 0.0
            biggest = 0.0
            after = False
            for t in ctx.reads(e):
                if t in loaded or (t in stage_of and stage_of[t] == i):
                    continue
                loaded.add(t)
                words = tensor_words(c, t, s)
                if t in c.inputs and not (ctx.qr and _uses(c, t, c.rank_vars(ctx.qr))):
                    words = tensor_words(c, t, s) / chunks  # read once per head, spread over the chunks
                    if ctx.shared_kv(t):
                        words *= ctx.kv_share  # once per KV head
                else:
                    biggest = max(biggest, words * wb)
                if t not in c.inputs:
                    after = True
                load += words * wb
            store = 0.0
            if e.name in c.outputs or any(k != i for k in consumers.get(e.name, ())):
                store = tensor_words(c, e.name, s) * wb
            for o in c.outputs:  # an output written through a view of e (RS[f] = R[f,M])
                if o != e.name and ctx.source(o) == e.name:
                    per_chunk = ctx.qr is None or not _uses(c, o, c.rank_vars(ctx.qr))
                    store += tensor_words(c, o, s) * wb / (chunks if per_chunk else 1)
            kw = {}
            if len(stage) > 1:
                if j == 0:
                    kw = dict(buffer_bytes=max(tensor_words(c, x.name, s) * wb for x in stage), hold_until=stage[-1].name)
            else:
                kw = dict(buffer_bytes=max(biggest, store))
            ops.append(TileOp(e.name, ctx.binding[e.name], cycles, e.name, tuple(ctx.deps(e, tiled)),
                              load_bytes=load, store_bytes=store, load_after_deps=after, actions=actions, **kw))
        segments.append(Segment(f"stage{i + 1}", chunks, tuple(ops)))
    return Schedule(name=label, blocks=outer_blocks, segments=tuple(segments),
                    notes=(f"{outer_blocks} (batch, head) pairs; {len(stages)} stages, each over {chunks} chunks "
                           f"of {rows} query rows",))


def build_schedule(cascade: ec.Cascade, spec: MappingSpec, arch: Architecture, sizes: dict,
                   outer_blocks: int = 1, label: str | None = None, kv_share: float = 1.0) -> Schedule:
    """The archsim Schedule of `cascade` at `sizes` (every rank size and param bound) mapped by `spec`
    on `arch`, for `outer_blocks` independent (batch, head) pairs. `kv_share` = KV heads / query heads
    (MQA, GQA): the query heads of one KV head run in lockstep, so each tile of the key-indexed inputs
    that no query indexes (K, V) is loaded once per KV head (their buffer state held at once)."""
    ctx = _Ctx(cascade, spec, arch, sizes)
    ctx.kv_share = kv_share
    label = label or f"{ctx.spec.name}:{cascade.name}:{int(sizes.get(ctx.spec.rank, 0))}"
    if ctx.spec.fusion == "none":
        return _unfused(ctx, outer_blocks, label)
    return _fused(ctx, outer_blocks, label)


def context(cascade: ec.Cascade, spec: MappingSpec, arch: Architecture, sizes: dict) -> _Ctx:
    """The resolved spec, binding and tiling of a mapping (for reports and the mapper)."""
    return _Ctx(cascade, spec, arch, sizes)
