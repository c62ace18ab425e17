"""The spatial-accelerator target: a cascade mapped by a spec or the mapper, simulated by archsim."""
from __future__ import annotations

import math

import einsum_cascade as ec

from archsim.config import Architecture
from archsim.result import Result, run
from mappings.matrix_product import GemmShape, gemm_shape
from mappings.size_completion import complete_sizes
from mappings.spec import MappingSpec, load_spec
from mappings.targets.result import SimulationResult
from mappings.work import MappingError


class AcceleratorTarget:
    """An archsim Architecture (PE arrays, buffer, DRAM); `simulate` maps and simulates a cascade on it."""
    kind = "accelerator"

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.name = arch.name

    def simulate(self, c: ec.Cascade, sizes: dict[str, float] | None, options) -> SimulationResult:
        """Map `c` with options.mapping ("auto": the mapper on options.objective) and simulate it."""
        a = self.arch
        mapping = options.mapping
        if str(mapping) == "auto" and "M" not in c.ranks:
            shape = gemm_shape(c)
            if shape is not None:
                return gemm_result(c, a, sizes, shape, options)
        spec = mapping if isinstance(mapping, MappingSpec) else None
        if spec is None and str(mapping) != "auto":
            spec = load_spec(mapping)
        full, how = complete_sizes(c, sizes, spec.query_rank if spec else "P", spec.rank if spec else "M")
        batch, heads = options.batch, options.heads
        kv = options.kv_heads or heads
        if heads % kv:
            raise MappingError(f"--kv-heads: {kv} KV heads do not divide {heads} query heads")
        if spec is None:
            from mappings.mapper import search
            found = search(c, a, full, objective=options.objective, batch=batch, heads=heads, kv_heads=kv)
            spec, res, n = found.spec, found.result, found.candidates
            if options.mode != "steady":
                res = evaluate(c, spec, a, full, batch, heads, options.mode, kv_heads=kv)
        else:
            res, n = evaluate(c, spec, a, full, batch, heads, options.mode, kv_heads=kv), 1
        out = accelerator_result(c, a, full, how, batch, heads, spec, res, n, options.objective)
        out.kv_heads = kv
        if options.check:
            out.notes += certify(c, a, spec, full, batch, heads, res, options.mode, kv_heads=kv).notes
        return out


def evaluate(c: ec.Cascade, spec: MappingSpec, a: Architecture, sizes: dict, batch: int = 1, heads: int = 1,
             mode: str = "steady", kv_heads: int | None = None) -> Result:
    """archsim Result of `spec` (sizes complete, partition inner size from the spec's tile; `kv_heads`:
    heads of K and V, default `heads`)."""
    from mappings.scheduler import build_schedule
    sched = build_schedule(c, spec, a, sizes, outer_blocks=batch * heads, kv_share=(kv_heads or heads) / heads)
    return run(sched, a, mode, configuration=spec.name)


def certify(c: ec.Cascade, a: Architecture, spec: MappingSpec, sizes: dict, batch: int, heads: int, res: Result,
            mode: str = "steady", kv_heads: int | None = None):
    """Check archsim Result `res` of mapping `spec` against the bounds of mappings/certify.py (raises
    InvariantViolation naming the invariant, the figures and the point); returns the Certificate."""
    from mappings.certify import bounds, check_result, point_label
    from mappings.scheduler import context, query_group_rows
    ctx = context(c, spec, a, sizes)
    full = ctx.global_sizes()
    kv = kv_heads or heads
    ctx.kv_share = kv / heads
    point = point_label(c.name, a.name, full, spec.name, batch, heads, kv_heads=kv, mode=mode)
    shared = {t: batch * kv for t in c.inputs if ctx.shared_kv(t)}  # K/V: once per KV head
    cert = bounds(c, a, ctx.binding, full, batch * heads, key_rank=ctx.spec.rank, query_rank=ctx.spec.query_rank,
                  stall=ctx.spec.stall,
                  skip_masked_tiles=ctx.spec.skip_masked_tiles, fold_shift_into_exp=ctx.spec.fold_shift_into_exp,
                  accounting=res.accounting, configuration=spec.name, point=point,
                  query_groups=ctx.P // query_group_rows(ctx), kv_pairs=shared)
    return check_result(cert, a, res.cycles, res.dram_bytes, res.joules, res.busy_cycles, res.busy_by_einsum,
                        res.seconds)


def utilisation_and_bound(res: Result, a: Architecture) -> tuple[dict[str, float], str]:
    """Each unit's busy fraction of the run, and what bounds it: the busiest unit, or "dram" when
    the DRAM's busy fraction (bytes / bandwidth / cycles) is larger."""
    util = {u: res.busy(u) for u in a.units}
    busiest = max(util, key=util.get) if util else None
    dram_frac = res.dram_bytes / a.dram_bytes_per_cycle / res.cycles if res.cycles else 0.0
    return util, "dram" if busiest is None or dram_frac > util[busiest] else busiest


def accelerator_result(c: ec.Cascade, a: Architecture, sizes, how, batch: int, heads: int, spec: MappingSpec,
                       res: Result, n: int, objective: str) -> SimulationResult:
    """The SimulationResult of archsim Result `res` of mapping `spec` (n: candidates evaluated)."""
    from mappings.scheduler import context
    ctx = context(c, spec, a, sizes)
    util, bounding = utilisation_and_bound(res, a)
    mapping = spec.resolved(sizes).model_dump(exclude_defaults=True)
    mapping["name"] = spec.name
    return SimulationResult(
        target="accelerator", cascade=c.name, arch=a.name, sizes=dict(sizes), batch=batch, heads=heads,
        latency_s=res.seconds, cycles=res.cycles, energy_j=res.joules, energy_by_component=res.energy_by_component,
        dram_bytes=res.dram_bytes, util=util, bounding_unit=bounding, passes=ctx.st.n_passes, mapping=mapping,
        candidates_evaluated=n, objective=objective, sizes_defaulted=how, notes=list(res.notes), result=res)


def gemm_result(c: ec.Cascade, a: Architecture, sizes: dict[str, float] | None, shape: GemmShape,
                options) -> SimulationResult:
    """A one-matrix-product cascade as folds on the 2D array (mappings/gemm.py), batch x heads times."""
    from dataclasses import replace

    full, how = complete_sizes(c, sizes)
    if "array2d" not in a.units:
        raise MappingError(f"{c.name}: a matrix product runs on the 2D array, and {a.name} has no unit 'array2d'")
    rows, cols, red = (int(full[r]) for r in (shape.rows, shape.cols, shape.reduction))
    pairs = options.batch * options.heads
    sched, chunks = _chunked_gemm(c.name, rows, cols, red, a)
    res = run(replace(sched, blocks=sched.blocks * pairs * chunks), a, options.mode, configuration="gemm")
    util, bounding = utilisation_and_bound(res, a)
    out = SimulationResult(
        target="accelerator", cascade=c.name, arch=a.name, sizes=dict(full), batch=options.batch,
        heads=options.heads, latency_s=res.seconds, cycles=res.cycles, energy_j=res.joules,
        energy_by_component=res.energy_by_component, dram_bytes=res.dram_bytes, util=util, bounding_unit=bounding,
        passes=None, mapping={"name": "gemm", "rows": shape.rows, "cols": shape.cols, "reduction": shape.reduction},
        candidates_evaluated=1, objective=options.objective, sizes_defaulted=how,
        notes=list(res.notes) + [f"GEMM {rows} x {red} x {cols} (mappings/gemm.py)"]
        + ([f"reduction split in {chunks} chunks to fit the buffer; partial sums through DRAM"] if chunks > 1 else []),
        result=res)
    if options.check:
        from mappings.certify import check_gemm
        check_gemm(out, a, rows, cols, red, pairs)
    return out


def _chunked_gemm(name: str, rows: int, cols: int, red: int, a: Architecture):
    """The GEMM's schedule and its number of reduction chunks: the array's operand strips of one chunk,
    (array rows + cols) x chunk words, fit the buffer; each chunk after the first reads the partial
    sums back (rows x cols words), and every chunk writes them (an upper bound on the traffic)."""
    from dataclasses import replace

    from mappings.gemm import gemm_schedule
    unit = a.units["array2d"]
    strip_words = (unit.rows + unit.cols) * a.word_bytes
    chunks = max(1, math.ceil(strip_words * red / a.buffer.capacity_bytes))
    if chunks > red:
        raise MappingError(f"{name}: the 2D array's operand strips do not fit the buffer of {a.name}")
    sched = gemm_schedule(name, rows, cols, math.ceil(red / chunks), a)
    if chunks == 1:
        return sched, 1
    (seg,) = sched.segments
    (op,) = seg.ops
    reread = (chunks - 1) / chunks * rows * cols * a.word_bytes / seg.iterations  # partial sums, per fold
    op = replace(op, load_bytes=op.load_bytes + reread)
    return replace(sched, segments=(replace(seg, ops=(op,)),)), chunks


__all__ = ["AcceleratorTarget", "MappingError", "accelerator_result", "certify", "evaluate", "gemm_result"]
