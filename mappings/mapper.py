"""The mapper (`mapping: auto`): search the mapspace of a cascade on an architecture.

Dimensions: the binding of each Einsum to a unit that has all its operators; loop nest (`fusion`
pass or none); key tile sizes; query-group sizes; stationarity; pipelining (tiles or blocks);
which inputs stay in the buffer; the fraction of live-across-pass tensors spilled (the least
that fits the buffer). Register-file tensors follow a rule: a tensor made and used only on one
2D array within a tile stays in its PEs.

Search, cheapest first:
1. bindings: every assignment of Einsums to allowed units is scored numerically at once (numpy:
   the busiest unit's cycles, then compute energy) and the best few kept, plus the few with the
   fewest cross-unit dependencies among those within NEAR_BOUND of the best cycles;
2. each kept binding x each structural choice is built into a schedule (pruned by buffer
   capacity: infeasible candidates raise and are dropped) and scored without simulation:
   bound = max(each unit's busy cycles, DRAM bytes / bandwidth); energy = exact (action counts);
3. the best candidates by that score are simulated (archsim, steady mode); the best by the
   objective (latency, energy or edp) wins.

`candidates` counts every spec scored in step 2; `simulated` those simulated in step 3.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

import einsum_cascade as ec

from archsim.config import Architecture
from archsim.energy import energy_breakdown
from archsim.errors import ScheduleError
from archsim.result import Result, run
from mappings.divisors import divisors
from mappings.scheduler import _cache, _structure, build_schedule, ops_at
from mappings.spec import MappingSpec
from mappings.work import MappingError, cost_on_unit, fuse_operators

MAX_BINDINGS = 4  # bindings kept after the numeric scoring of step 1
MAX_SIMULATED = 8  # candidates simulated in step 3
MAX_ENUMERATED = 200_000  # units ** Einsums above which bindings are chosen greedily
NEAR_BOUND = 0.1  # bindings within 10% of the best busiest-unit cycles also kept, fewest hand-overs first


@dataclass
class Found:
    """The mapper's answer: the best spec, its simulated result, candidates scored and simulated."""
    spec: MappingSpec
    result: Result
    candidates: int
    simulated: int


def _allowed(c: ec.Cascade, arch: Architecture, sizes: dict, rank: str) -> tuple[list[str], dict, dict]:
    """Computing Einsums, and per Einsum the cycles and compute joules on each unit that can run it."""
    st = _structure(c, rank)
    probe = dict(sizes)
    for r in c.ranks.values():
        if len(r.parts) == 2 and r.parts[-1] not in probe:
            inner = min(u.rows for u in arch.units.values() if u.rows > 1) if any(u.rows > 1 for u in arch.units.values()) else 1
            whole = int(probe[r.name]) if r.name in probe else None
            if whole and whole % inner:  # a 3-row array and M = 4096: probe with the largest tile that divides M
                inner = max(d for d in divisors(whole) if d <= inner)
            probe[r.parts[-1]] = inner
            probe[r.parts[0]] = probe[r.name] // inner
    ops = ops_at(c, probe, masked=True)
    names = [e.name for e in st.computing]
    cycles: dict[str, dict[str, float]] = {}
    joules: dict[str, dict[str, float]] = {}
    for n in names:
        cycles[n], joules[n] = {}, {}
        lacking = {}
        for u, unit in arch.units.items():
            try:
                cy, act = cost_on_unit(unit, fuse_operators(ops.get(n, {}), True), n)
            except MappingError:
                lacking[u] = sorted(set(fuse_operators(ops.get(n, {}), True)) - set(unit.operators))
                continue
            cycles[n][u] = cy
            by_comp, _ = energy_breakdown(arch, [(n, act, 1)])
            joules[n][u] = sum(by_comp.values())
        if not cycles[n]:
            raise MappingError(f"auto mapping: no unit of {arch.name} has every operator Einsum {n} of {c.name} needs ("
                               + "; ".join(f"{u} lacks {', '.join(ops_)}" for u, ops_ in lacking.items()) + ")")
    return names, cycles, joules


def best_bindings(c: ec.Cascade, arch: Architecture, sizes: dict, rank: str = "M", keep: int = MAX_BINDINGS,
                  objective: str = "latency") -> list[dict[str, str]]:
    """The `keep` best bindings by the busiest unit's cycles (energy breaks ties; for the energy
    objective, by compute energy first), every assignment scored at once with numpy."""
    names, cycles, joules = _allowed(c, arch, sizes, rank)
    units = list(arch.units)
    options = [list(cycles[n]) for n in names]
    total = int(np.prod([len(o) for o in options], dtype=float))
    if total > MAX_ENUMERATED:  # greedy: each Einsum to the unit where it is fastest
        return [{n: min(cycles[n], key=cycles[n].get) for n in names}]
    combos = np.array(list(itertools.product(*[range(len(o)) for o in options])), dtype=np.int64).reshape(total, len(names))
    load = np.zeros((total, len(units)))
    energy = np.zeros(total)
    for j, n in enumerate(names):
        cy = np.array([cycles[n][u] for u in options[j]])
        jo = np.array([joules[n][u] for u in options[j]])
        uidx = np.array([units.index(u) for u in options[j]])
        np.add.at(load, (np.arange(total), uidx[combos[:, j]]), cy[combos[:, j]])
        energy += jo[combos[:, j]]
    bound = load.max(axis=1)
    # cross-unit dependencies (each one a hand-over between units a tile must wait for)
    cross = np.zeros(total)
    index = {n: j for j, n in enumerate(names)}
    st = _structure(c, rank)
    for j, n in enumerate(names):
        for src in {st.views.get(a.tensor, a.tensor) for a in c.einsum(n).reads}:
            if src in index and src != n:
                i = index[src]
                cross += np.array([units.index(u) for u in options[i]])[combos[:, i]] != \
                    np.array([units.index(u) for u in options[j]])[combos[:, j]]
    order = list(np.lexsort((bound, energy)) if objective == "energy" else np.lexsort((energy, bound)))[:keep]
    near = np.flatnonzero(bound <= bound.min() * (1 + NEAR_BOUND))  # nearly as balanced, fewer hand-overs
    order += [i for i in near[np.lexsort((bound[near], cross[near]))] if i not in order][:keep]
    return [{n: options[j][combos[i, j]] for j, n in enumerate(names)} for i in order]


def _register_file(c: ec.Cascade, arch: Architecture, binding: dict[str, str], rank: str) -> list[str]:
    """Tensors made and read only on one multi-row array (not outputs, not live across passes)."""
    st = _structure(c, rank)
    readers: dict[str, set[str]] = {}
    for e in st.computing:
        for a in e.reads:
            t = a.tensor
            while t in st.views:
                t = st.views[t]
            readers.setdefault(t, set()).add(e.name)
    out = []
    for e in st.computing:
        unit = arch.units[binding[e.name]]
        if unit.rows <= 1 or e.name in c.outputs or e.name in st.live or e.iterative_var:
            continue
        rs = readers.get(e.name, set())
        if rs and all(binding[r] == binding[e.name] for r in rs) and e.name not in rs:
            out.append(e.name)
    return out


def _structures(c: ec.Cascade, arch: Architecture, sizes: dict, rank: str, qrank: str | None = "P") -> list[dict]:
    """Structural choices (spec fields besides the binding) worth scoring for this cascade, with the
    rows of query rank `qrank` grouped (None: no query rank)."""
    st = _structure(c, rank)
    N = int(sizes[rank])
    multi = [u for u in arch.units.values() if u.rows > 1]
    cols = max(u.cols for u in arch.units.values())
    keys = sorted({u.rows for u in multi} | {cols} | {64, 128, 512})
    tiles = [t for t in keys if N % t == 0 and t < N]
    out = []
    split = c.ranks[rank].parts
    qrank = qrank if qrank in c.ranks else None
    P = int(sizes.get(qrank, 1)) if qrank else 1
    groups: list = ["auto"]
    if any(e.where for e in st.computing) and qrank:  # masked: smaller groups skip more tiles
        groups += [g for g in (cols, 4 * cols, 16 * cols) if g < P and P % g == 0]
    # P no longer than the array (a 2-D grid's rows, a short sequence): blocks of fewer rows than the
    # array's width too, for when all P rows (times the other query ranks) do not fit the buffer
    blocks = [min(cols, P)] + ([1] if 1 < P <= cols else []) if qrank else [1]
    for tile in tiles or [N]:
        for stat in ("weight", "output"):
            for g in groups:
                for qb in blocks:
                    out.append(dict(fusion="pass", tile=tile, pipeline="tiles", stationarity=stat, query_group=g,
                                    query_block=qb))
    if not split and st.n_passes > 1 or not split and N <= 4 * cols:
        for g in sorted({min(P, x) for x in (cols, 1024, 4096, P)}):
            if P % g:
                continue
            for stat in ("output", "weight"):
                for resident in ([], ["Q"]):
                    out.append(dict(fusion="pass", tile="whole", pipeline="blocks", stationarity=stat,
                                    query_group=g, buffer_resident=[r for r in resident if r in c.inputs]))
    if not split:
        out.append(dict(fusion="none", query_group="auto", min_blocks=16))
    return out


def _analytic(schedule, arch: Architecture) -> tuple[float, float]:
    """(lower bound on cycles, joules) of a schedule without simulating it."""
    busy: dict[str, float] = {}
    dram = 0.0
    counted = []
    for op, reps in schedule.instances_per_op():
        if op.unit:
            busy[op.unit] = busy.get(op.unit, 0.0) + op.cycles * reps
        moved = op.load_bytes + op.store_bytes
        dram += moved * reps
        actions = dict(op.actions)
        if moved:
            actions["dram.bytes"] = actions.get("dram.bytes", 0.0) + moved
            actions["buffer.write_words"] = actions.get("buffer.write_words", 0.0) + op.load_bytes / arch.word_bytes
            actions["buffer.read_words"] = actions.get("buffer.read_words", 0.0) + op.store_bytes / arch.word_bytes
        counted.append((op.einsum, actions, reps))
    by_comp, _ = energy_breakdown(arch, counted)
    return max(max(busy.values(), default=0.0), dram / arch.dram_bytes_per_cycle), sum(by_comp.values())


def _spill_options(c, arch, sizes, rank) -> list[dict[str, float]]:
    st = _structure(c, rank)
    if not st.live:
        return [{}]
    return [{}, {t: 1.0 for t in st.live}]


def rank_choices(c: ec.Cascade, rank: str = "M") -> list[tuple[str, str | None]]:
    """(tiled rank, query rank) pairs the mapper tries: (M, P) for attention; for a cascade without
    rank `rank` (an FFN, a layer norm), every unsplit rank tiled with the rows of every other unsplit
    rank that indexes an output grouped, or none grouped."""
    if rank in c.ranks:
        return [(rank, "P")]
    whole = [r for r in c.ranks if not c.ranks[r].parts and not any(r in x.parts for x in c.ranks.values())]
    out_vars = {v for o in c.outputs for v in _tensor_vars(c, o)}
    rows = [r for r in whole if c.ranks[r].var in out_vars]
    return [(t, q) for t in whole for q in [q for q in rows if q != t] + [None]]


def _tensor_vars(c: ec.Cascade, t: str) -> set[str]:
    decl = c.inputs.get(t)
    if decl is not None:
        return set(decl.indices)
    e = c.einsum(t)
    return {str(s) for x in e.lhs for s in x.free_symbols if str(s) in c.var_rank}


def search(c: ec.Cascade, arch: Architecture, sizes: dict, objective: str = "latency", batch: int = 1,
           heads: int = 1, rank: str = "M", kv_heads: int | None = None) -> Found:
    """The best mapping of `c` at `sizes` on `arch` for `objective` (module docstring); `kv_heads`:
    heads of K and V (MQA, GQA; default `heads`), the query heads of one KV head run together.
    Without rank `rank`, each pair of `rank_choices` is searched and the best kept."""
    memo = _cache(c)
    kv_share = (kv_heads or heads) / heads
    key = ("search", repr(arch), tuple(sorted(sizes.items())), objective, batch, heads, rank, kv_share)  # by content
    if key in memo:
        return memo[key]
    if rank in c.ranks:
        found = _search(c, arch, sizes, objective, batch, heads, rank, "P", kv_share)
    else:
        best, errors = None, []
        for t, q in rank_choices(c, rank):
            try:
                f = _search(c, arch, sizes, objective, batch, heads, t, q, kv_share)
            except MappingError as err:
                errors.append(str(err))
                continue
            value = _objective(f.result, objective)
            if best is None or value < best[0] * (1 - 1e-9):
                best = (value, f)
        if best is None:
            raise MappingError(f"auto mapping: no rank of {c.name} can be tiled on {arch.name}"
                               + (f" (e.g. {errors[0]})" if errors else ""))
        found = best[1]
    memo[key] = found
    return found


def _objective(res: Result, objective: str) -> float:
    return {"latency": res.cycles, "energy": res.joules, "edp": res.cycles * res.joules}[objective]


def _search(c: ec.Cascade, arch: Architecture, sizes: dict, objective: str, batch: int, heads: int, rank: str,
            qrank: str | None, kv_share: float) -> Found:
    """The best mapping tiling `rank`, the rows of `qrank` grouped (None: none)."""
    bindings = best_bindings(c, arch, sizes, rank, objective=objective)
    scored = []
    n = 0
    errors = []
    for b_i, binding in enumerate(bindings):
        rf = _register_file(c, arch, binding, rank)
        for fields in _structures(c, arch, sizes, rank, qrank):
            for spill in _spill_options(c, arch, sizes, rank) + ([None] if _structure(c, rank).live else []):
                spill_fields = dict(spill or {})
                spec = MappingSpec(name="auto", description=f"auto ({objective}) for {c.name} on {arch.name}",
                                   cascade=c.name, arch=arch.name, rank=rank, query_rank=qrank or "P",
                                   binding=binding, register_file=rf,
                                   **fields, spill=spill_fields, source="auto mapping")
                if spill is None:  # the least spilled fraction that fits
                    spec = _fit_spill(c, spec, arch, sizes, batch * heads)
                    if spec is None:
                        continue
                try:
                    sched = build_schedule(c, spec, arch, sizes, outer_blocks=batch * heads, kv_share=kv_share)
                except (MappingError, ScheduleError) as err:
                    errors.append(str(err))
                    continue
                n += 1
                bound, joules = _analytic(sched, arch)
                scored.append((bound, joules, n, spec, sched))
    if not scored:
        raise MappingError(f"auto mapping: no candidate mapping of {c.name} fits {arch.name}"
                           + (f" (e.g. {errors[0]})" if errors else ""))
    if objective == "energy":
        scored.sort(key=lambda x: (x[1], x[0]))
    elif objective == "edp":
        scored.sort(key=lambda x: (x[0] * x[1], x[0]))
    else:
        scored.sort(key=lambda x: (x[0], x[1]))
    best = None
    simulated = 0
    for bound, joules, _, spec, sched in scored[:MAX_SIMULATED]:
        try:
            res = run(sched, arch, "steady", configuration="auto")
        except ScheduleError as err:
            errors.append(str(err))
            continue
        simulated += 1
        value = _objective(res, objective)
        if best is None or value < best[0] * (1 - 1e-9):
            best = (value, spec, res)
    if best is None:
        raise MappingError(f"auto mapping: no candidate mapping of {c.name} runs on {arch.name}"
                           + (f" (e.g. {errors[-1]})" if errors else ""))
    return Found(best[1], best[2], n, simulated)


def _fit_spill(c, spec: MappingSpec, arch: Architecture, sizes: dict, outer: int) -> MappingSpec | None:
    """`spec` with the least equal spilled fraction of its live tensors that fits the buffer (None: none
    needed or even a full spill does not fit)."""
    from mappings.scheduler import _resident_bytes, _staging_bytes, context, query_group_rows
    st = _structure(c, spec.rank)
    try:
        ctx = context(c, spec.model_copy(update={"spill": {t: 1.0 for t in st.live}}), arch, sizes)
        rows = query_group_rows(ctx)
        base = _resident_bytes(ctx, rows) + _staging_bytes(ctx, rows)
        ctx0 = context(c, spec.model_copy(update={"spill": {}}), arch, sizes)
        full = _resident_bytes(ctx0, rows) + _staging_bytes(ctx0, rows)
    except MappingError:
        return None
    cap = arch.buffer.capacity_bytes
    if full <= cap or base > cap or full == base:
        return None
    f = min(1.0, (full - cap) / (full - base) * 1.0001)
    return spec.model_copy(update={"spill": {t: f for t in st.live}, "query_group": rows})
