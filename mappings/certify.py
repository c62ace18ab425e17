"""Certified results: every simulated number is checked against bounds computed independently of
the schedule, before it leaves `simulate`.

The bounds come only from the cascade's own operation counts (`einsum_cascade.numeric_cost`'s
counting, `where` masks and all) and the architecture's datasheet (PEs, cycles and actions per
operator of the unit each Einsum is bound to, DRAM bandwidth and energy per byte); the schedule's
ops and the engine's timing are what is checked, never an input. For P (batch, head) pairs:

- work: Einsum e bound to unit u executes ops(e) (its visible points only where e has the mask),
  costing W(e) = sum(count x cycles/op) / PEs(u) cycles; dense(e): the same with the masks ignored;
- executed: the busy cycles the schedule charges Einsum e lie in [P x W(e), P x dense(e)] x (1 +
  stall) (a masked point may be computed as part of a whole tile, never skipped unless masked);
  and equal P x W(e) x (1 + stall) when masked tiles are skipped and e's mask is on the key rank
  (partial tiles are charged for their visible points; work above the dense count is a known,
  pessimistic overcount of an operation after a reduction over the tiled rank: reported in the
  result's notes, not refused); an Einsum with no query index may be
  computed again by each of the G query groups of a pair (up to G x dense(e): recomputation, never
  less than once);
- per unit: busy(u) >= P x sum of W(e) bound to u; busy(u) <= latency; utilisation in [0, 1];
- compulsory DRAM bytes: every input read once and every output written once (an input only ever
  read under a mask counts at least its visible share: visible points / dense points of its
  reader; none is held on chip from a previous call);
- latency >= max(each unit's work bound, compulsory bytes / bandwidth, the bytes the schedule
  moves / bandwidth); DRAM bytes >= compulsory bytes;
- energy >= the energy of the compulsory actions (the compute actions of the work, compulsory DRAM
  bytes), priced under the result's accounting;
- every number finite and >= 0.

A violated invariant is a bug of the simulator: `InvariantViolation` names the invariant, the
figures and the point. Units: cycles, bytes, joules.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field, replace
from typing import Mapping

import einsum_cascade as ec
from einsum_cascade.ast import Access, value_vars
from einsum_cascade.cost import einsum_ops
from einsum_cascade.numeric_cost import numeric_cost
from einsum_cascade.points import numeric_points

from archsim.config import Architecture
from archsim.energy import energy_breakdown
from einsum_cascade.memo import per_object

REL = 1e-5  # relative slack of the comparisons (floating-point sums over millions of fractional tiles)


class InvariantViolation(Exception):
    """A simulated result that breaks a physical or accounting invariant (a simulator bug)."""


@dataclass
class Certificate:
    """The bounds a result was checked against (per the module docstring; cycles, bytes, joules)."""
    point: str
    work_cycles: dict[str, float]  # unit -> lower bound on its busy cycles
    einsum_cycles: dict[str, tuple[float, float]]  # Einsum -> (lowest, highest) executed cycles
    compulsory_bytes: float
    latency_bound_cycles: float
    energy_bound_j: float
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # work charged above the cascade's counts (pessimistic)


def _fail(point: str, invariant: str, detail: str) -> InvariantViolation:
    return InvariantViolation(f"invariant violated: {invariant}: {detail} [{point}]")


def _le(a: float, b: float) -> bool:
    """a <= b up to the relative slack."""
    return a <= b * (1 + REL) + 1e-9


def _finite(point: str, what: str, x: float | None) -> None:
    if x is None:
        return
    if not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
        raise _fail(point, "finite and >= 0", f"{what} = {x!r}")


def _priced(unit, counts: Mapping[str, float], fold_shift_into_exp: bool) -> tuple[float, dict[str, float]]:
    """(cycles, actions) of operator counts on all PEs of `unit`, from its datasheet table."""
    from mappings.work import fuse_operators
    cycles, actions = 0.0, {}
    for op, n in fuse_operators(counts, fold_shift_into_exp).items():
        spec = unit.operators.get(op)
        if spec is None:
            raise InvariantViolation(f"invariant violated: operator on its unit: unit {unit.name!r} lacks "
                                     f"{op!r} yet was charged for it")
        cycles += n * spec.cycles
        for a, k in spec.actions.items():
            actions[f"{unit.name}.{a}"] = actions.get(f"{unit.name}.{a}", 0.0) + n * k
    return cycles / unit.pes, actions


def _views(c: ec.Cascade) -> dict[str, str]:
    """Einsums that only rename or reindex a tensor (compute nothing) -> the tensor they read."""
    out = {}
    for e in c.einsums:
        if not e.is_initial and isinstance(e.expr, Access) and not e.where and not e.implicit_vars \
                and not e.reduced_vars:
            out[e.name] = e.expr.tensor
    return out


def _index_vars(c: ec.Cascade, indices) -> set[str]:
    return {str(x) for i in indices for x in getattr(i, "free_symbols", ()) if str(x) in c.variables}


class _Shares:
    """Lower bounds on the share of a tensor's elements an Einsum touches under its mask: for a mask
    on the key and query positions only, the keys some query sees (or the queries that see some
    key) counted from the per-query visible intervals; otherwise visible / dense points of the
    Einsum (each element lies in at most dense / elements points, so this many are touched)."""

    def __init__(self, c: ec.Cascade, sizes: dict, points, key_rank: str, query_rank: str):
        self.c, self.sizes, self.points = c, sizes, points
        self.key_rank = key_rank if key_rank in c.ranks else None
        self.query_rank = query_rank if query_rank in c.ranks and not c.ranks[query_rank].parts else None
        self.memo: dict = {}

    def of(self, e, tensor_vars: set[str]) -> float:
        if not e.where:
            return 1.0
        c = self.c
        keyed = bool(self.key_rank and tensor_vars & c.rank_vars(self.key_rank))
        queried = bool(self.query_rank and tensor_vars & c.rank_vars(self.query_rank))
        key = (e.name, keyed, queried)
        if key not in self.memo:
            self.memo[key] = self._share(e, keyed, queried)
        return self.memo[key]

    def _share(self, e, keyed: bool, queried: bool) -> float:
        import numpy as np
        from mappings.masks import key_intervals
        from mappings.work import MappingError
        c = self.c
        if self.key_rank and self.query_rank and not (keyed and queried):
            parts = c.ranks[self.key_rank].parts
            key_vars = tuple(p.lower() for p in parts) if len(parts) == 2 else (c.ranks[self.key_rank].var,)
            n_keys, n_queries = int(self.sizes[self.key_rank]), int(self.sizes[self.query_rank])
            try:
                lo, hi = key_intervals(c, e.where, key_vars, c.ranks[self.query_rank].var, self.sizes,
                                       n_queries, n_keys, c.name)
            except (MappingError, KeyError, TypeError, ValueError):
                lo = None
            if lo is not None:
                seen = hi >= lo
                if queried:
                    return float(seen.mean())
                if not keyed:
                    return 1.0 if seen.any() else 0.0
                edges = np.zeros(n_keys + 1, dtype=np.int64)
                np.add.at(edges, lo[seen], 1)
                np.add.at(edges, hi[seen] + 1, -1)
                return float((np.cumsum(edges[:-1]) > 0).mean())
        space = frozenset(e.space_vars)
        return min(1.0, self.points(space, tuple(e.space_where)) / max(1, self.points(space, ())))


def _source(views: dict[str, str], t: str) -> str:
    while t in views:
        t = views[t]
    return t


def bounds(c: ec.Cascade, arch: Architecture, binding: Mapping[str, str], sizes: dict, pairs: int,
           key_rank: str = "M", query_rank: str = "P", stall: Mapping[str, float] | None = None, skip_masked_tiles: bool = True,
           fold_shift_into_exp: bool = True, accounting: str = "correct", configuration: str = "",
           kv_pairs: Mapping[str, int] | None = None, query_groups: int = 1, point: str = "") -> Certificate:
    """The bounds of `c` at `sizes` (every rank size bound, split ranks' parts included) with each
    computing Einsum on unit `binding[e]`, for `pairs` (batch, head) pairs; `kv_pairs`: inputs read
    by fewer pairs (K/V shared by the query heads of one KV head) -> their number of copies;
    `query_groups`: the blocks of query rows of one pair, each of which may compute again an Einsum
    with no query index (a key-side function, a recurrence over the keys).

    The bounds depend on the schedule through none of their inputs: they are memoised per live
    cascade and architecture object (both treated as immutable) under an explicit key of every other
    argument, so that checking the candidates and modes of one point recomputes nothing."""
    stall, kv_pairs = dict(stall or {}), dict(kv_pairs or {})
    key = (tuple(sorted(binding.items())), tuple(sorted(sizes.items())), pairs, key_rank, query_rank,
           tuple(sorted(stall.items())), skip_masked_tiles, fold_shift_into_exp, accounting, configuration,
           tuple(sorted(kv_pairs.items())), query_groups)
    memo = per_object(c, dict, "certify-bounds")
    hit = memo.get((id(arch), key))
    if hit is None or hit[0]() is not arch:  # an architecture object's id is reused only once it is gone
        hit = (weakref.ref(arch), _bounds(c, arch, binding, sizes, pairs, key_rank, query_rank, stall,
                                          skip_masked_tiles, fold_shift_into_exp, accounting, configuration,
                                          kv_pairs, query_groups))
        memo[(id(arch), key)] = hit
    return replace(hit[1], point=point, checked=[], notes=[])


def _bounds(c: ec.Cascade, arch: Architecture, binding: Mapping[str, str], sizes: dict, pairs: int,
            key_rank: str, query_rank: str, stall: Mapping[str, float], skip_masked_tiles: bool,
            fold_shift_into_exp: bool, accounting: str, configuration: str, kv_pairs: Mapping[str, int],
            query_groups: int) -> Certificate:
    """`bounds`, computed."""
    known = set(c.size_names) | set(c.params)
    bound = c.bind_sizes({}, {k: v for k, v in sizes.items() if k in known})
    points = numeric_points(c, bound) if any(e.where for e in c.einsums) else None  # only masks need it
    counts = numeric_cost(c, bound)  # the cascade's counts, masks and all, and tensor sizes (memoised)
    per_einsum, elements = counts.per_einsum, counts.tensor_sizes
    views = per_object(c, lambda: _views(c), "certify-views")
    key_vars = c.rank_vars(key_rank) if key_rank in c.ranks else set()
    query_vars = c.rank_vars(query_rank) if query_rank in c.ranks else set()
    work: dict[str, float] = {u: 0.0 for u in arch.units}
    executed: dict[str, tuple[float, float]] = {}
    counted = []
    visible_share: dict[str, float] = {}  # tensor -> the largest visible share among its readers
    shares = _Shares(c, bound, points, key_rank, query_rank)
    for e in c.einsums:
        if e.is_initial or e.name in views:
            continue
        masked = {k: float(n) for k, n in per_einsum[e.name].items() if n}
        dense = {k: float(n) for k, n in einsum_ops(e, lambda v, w: points(v, ())).items() if n} if e.where \
            else masked
        unit = arch.units[binding[e.name]]
        lo, actions = _priced(unit, masked, fold_shift_into_exp)
        hi, _ = _priced(unit, dense, fold_shift_into_exp) if e.where else (lo, None)
        f = 1.0 + stall.get(e.name, 0.0)
        on_key_mask = any(value_vars(w, c.variables) & key_vars for w in e.where)
        top = lo if skip_masked_tiles and on_key_mask else hi
        if query_vars and not (e.space_vars | e.reduced_vars) & query_vars:
            top = hi * query_groups  # no query index: each query group may compute it again
        executed[e.name] = (pairs * lo * f, pairs * top * f)
        work[unit.name] += pairs * lo
        counted.append((e.name, actions, pairs))
        for a in e.reads:
            t = _source(views, a.tensor)
            if visible_share.get(t, 0.0) < 1.0:
                share = shares.of(e, _index_vars(c, a.indices)) if e.where else 1.0
                visible_share[t] = max(visible_share.get(t, 0.0), share)
    wb = arch.word_bytes
    compulsory = 0.0
    for t in c.inputs:
        if t in visible_share:
            compulsory += visible_share[t] * elements[t] * wb * kv_pairs.get(t, pairs)
    for o in c.outputs:
        src = _source(views, o)
        if src in c.inputs:
            continue
        e = c.einsum(src)
        share = shares.of(e, set(e.output_vars))
        compulsory += share * elements[o] * wb * pairs  # the output's own shape
    counted.append(("dram", {"dram.bytes": compulsory}, 1))
    by_comp, _ = energy_breakdown(arch, counted, accounting, configuration)
    latency_bound = max(max(work.values(), default=0.0), compulsory / arch.dram_bytes_per_cycle)
    return Certificate(point="", work_cycles=work, einsum_cycles=executed, compulsory_bytes=compulsory,
                       latency_bound_cycles=latency_bound, energy_bound_j=sum(by_comp.values()))


def check_result(cert: Certificate, arch: Architecture, cycles: float, dram_bytes: float, joules: float,
                 busy_cycles: Mapping[str, float], busy_by_einsum: Mapping[str, Mapping[str, float]],
                 seconds: float | None = None) -> Certificate:
    """Check an accelerator result against `cert` (module docstring); raises InvariantViolation."""
    pt = cert.point
    for what, x in (("latency (cycles)", cycles), ("latency (s)", seconds), ("DRAM bytes", dram_bytes),
                    ("energy (J)", joules), *((f"busy {u}", b) for u, b in busy_cycles.items())):
        _finite(pt, what, x)
    for u, b in busy_cycles.items():
        if not _le(b, cycles):
            raise _fail(pt, "busy <= latency", f"unit {u} busy {b:.6g} cycles > latency {cycles:.6g} cycles "
                        f"(utilisation {b / cycles if cycles else math.inf:.3%})")
    for u, need in cert.work_cycles.items():
        if not _le(need, busy_cycles.get(u, 0.0)):
            raise _fail(pt, "busy >= work bound", f"unit {u} busy {busy_cycles.get(u, 0.0):.6g} cycles < "
                        f"{need:.6g} cycles of the operations bound to it")
    by_einsum: dict[str, float] = {}
    for per in busy_by_einsum.values():
        for e, b in per.items():
            by_einsum[e] = by_einsum.get(e, 0.0) + b
    for e, (lo, hi) in cert.einsum_cycles.items():
        got = by_einsum.get(e, 0.0)
        if _le(lo, got) and not _le(got, hi):  # more work than the cascade's: pessimistic, reported
            cert.notes.append(f"certificate: Einsum {e} charged {got:.6g} cycles of work, above the cascade's "
                              f"{hi:.6g} (an operation after a reduction over the tiled rank counted per tile)")
            continue
        if not (_le(lo, got) and _le(got, hi)):
            want = f"{lo:.6g}" if math.isclose(lo, hi, rel_tol=REL) else f"in [{lo:.6g}, {hi:.6g}]"
            raise _fail(pt, "executed operations = the cascade's counts",
                        f"Einsum {e}: the schedule executes {got:.6g} cycles of work, the cascade's counts "
                        f"give {want}")
    if not _le(cert.latency_bound_cycles, cycles):
        raise _fail(pt, "latency >= max(work bound, compulsory bytes / bandwidth)",
                    f"latency {cycles:.6g} cycles < bound {cert.latency_bound_cycles:.6g} cycles (work "
                    f"{max(cert.work_cycles.values(), default=0):.6g}, DRAM {cert.compulsory_bytes:.6g} B / "
                    f"{arch.dram_bytes_per_cycle:.6g} B/cycle)")
    if not _le(dram_bytes / arch.dram_bytes_per_cycle, cycles):
        raise _fail(pt, "latency >= DRAM bytes / bandwidth",
                    f"latency {cycles:.6g} cycles < {dram_bytes:.6g} B moved / {arch.dram_bytes_per_cycle:.6g} "
                    f"B/cycle = {dram_bytes / arch.dram_bytes_per_cycle:.6g} cycles")
    if not _le(cert.compulsory_bytes, dram_bytes):
        raise _fail(pt, "DRAM bytes >= compulsory bytes", f"{dram_bytes:.6g} B moved < {cert.compulsory_bytes:.6g} B "
                    "(every input read once, every output written once)")
    if not _le(cert.energy_bound_j, joules):
        raise _fail(pt, "energy >= compulsory actions", f"energy {joules:.6g} J < {cert.energy_bound_j:.6g} J")
    cert.checked = ["finite", "busy<=latency", "busy>=work", "executed=counts", "latency>=bound",
                    "latency>=dram/bw", "dram>=compulsory", "energy>=compulsory"]
    return cert


def point_label(cascade: str, arch: str, sizes: Mapping[str, float], mapping: str, batch: int, heads: int,
                kv_heads: int | None = None, mode: str = "steady") -> str:
    """The point a result belongs to, as one line fragment."""
    kv = f" kv_heads {kv_heads}" if kv_heads and kv_heads != heads else ""
    return (f"{cascade} on {arch}, " + " ".join(f"{k}={v:g}" for k, v in sizes.items())
            + f", batch {batch} heads {heads}{kv}, mapping {mapping}, mode {mode}")


def check_sanity(result, point: str | None = None) -> None:
    """Every number of a SimulationResult finite and >= 0 (targets without a full certificate)."""
    pt = point or point_label(result.cascade, result.arch, result.sizes, "-", result.batch, result.heads)
    for what in ("latency_s", "cycles", "energy_j", "dram_bytes", "comm_bytes"):
        _finite(pt, what, getattr(result, what))
    for u, x in (result.util or {}).items():
        _finite(pt, f"utilisation {u}", x)
        if x > 1 + REL:
            raise _fail(pt, "utilisation in [0, 1]", f"{u} {x:.6g}")


def check_gpu(result, c: ec.Cascade, gpu_name: str) -> None:
    """A GPU result: finite, >= 0, latency >= HBM bytes / bandwidth and >= the cascade's arithmetic
    (every add and multiply of its counts, masks and all) / the fastest peak of the GPU description."""
    from archsim.gpu.specs import load_gpu
    check_sanity(result)
    pt = point_label(result.cascade, result.arch, result.sizes, "gpu kernel", result.batch, result.heads)
    gpu = load_gpu(gpu_name)
    if result.dram_bytes is not None and not _le(result.dram_bytes / gpu.hbm_bytes_per_s, result.latency_s):
        raise _fail(pt, "latency >= HBM bytes / bandwidth", f"{result.latency_s:.6g} s < {result.dram_bytes:.6g} B / "
                    f"{gpu.hbm_bytes_per_s:.6g} B/s")
    known = set(c.size_names) | set(c.params)
    sizes = {k: v for k, v in result.sizes.items() if k in known}
    for r in c.ranks.values():  # a split rank's block size left open: one block (the fewest rescaling ops)
        if len(r.parts) == 2 and r.parts[-1] not in sizes and r.name in sizes:
            sizes[r.parts[-1]], sizes[r.parts[0]] = sizes[r.name], 1
    counts = numeric_cost(c, sizes).total
    flops = float(counts.get("multiply", 0) + counts.get("add", 0)) * result.batch * result.heads
    peak = max([gpu.peak_tensor_flops_per_s(d) for d in ("fp16", "bf16", "tf32", "fp8")] + [gpu.alu_ops_per_s])
    if not _le(flops / peak, result.latency_s):
        raise _fail(pt, "latency >= flops / peak", f"{result.latency_s:.6g} s < {flops:.6g} FLOP / {peak:.6g} FLOP/s")


def check_gemm(result, arch: Architecture, rows: int, cols: int, red: int, pairs: int) -> None:
    """A GEMM on the 2D array: finite, busy <= 1, DRAM bytes >= compulsory (both operands and the
    output once), latency >= max(MACs / (PEs x clock), compulsory bytes / DRAM bandwidth)."""
    check_sanity(result)
    pt = point_label(result.cascade, result.arch, result.sizes, "gemm", result.batch, result.heads)
    unit = arch.units["array2d"]
    compulsory = float(pairs) * (rows * red + red * cols + rows * cols) * arch.word_bytes
    if not _le(compulsory, result.dram_bytes):
        raise _fail(pt, "DRAM bytes >= compulsory", f"{result.dram_bytes:.6g} B < {compulsory:.6g} B")
    compute_s = float(pairs) * rows * cols * red / (unit.rows * unit.cols) / arch.clock_hz
    memory_s = compulsory / (arch.dram_bytes_per_cycle * arch.clock_hz)
    if not _le(max(compute_s, memory_s), result.latency_s):
        raise _fail(pt, "latency >= max(compute bound, DRAM bound)",
                    f"{result.latency_s:.6g} s < max({compute_s:.6g}, {memory_s:.6g}) s")


__all__ = ["Certificate", "check_gemm", "InvariantViolation", "bounds", "check_gpu", "check_result", "check_sanity",
           "point_label"]
