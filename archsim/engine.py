"""Discrete-event execution of a Schedule on an Architecture.

Each unit executes its ops in program order, an op starting when its dependencies are done
and its operands are loaded. A loader process reserves buffer bytes in program order (it
waits while they do not fit) and starts each op's load, which holds the single DRAM channel
for bytes / (bytes per cycle). Stores hold the channel after the op ends, then free the
buffer. Stores and loads of stored results take the channel before prefetches. Overlap of the 2D array, the 1D array and memory emerges from this.

Modes: `exact` simulates every tile. `steady` (default) simulates small copies of the
schedule (a few blocks, a few iterations per segment) and extrapolates the cycle count
multilinearly in the counts, which is exact once the pipeline is in a steady state (time
affine in each count). Action counts, busy cycles and DRAM bytes are summed exactly.

Implementations: `simulate_exact_simpy` states the model on simpy (the reference, every op
instance materialised); `simulate_exact` runs the same model on the lean, streamed event loop of
`archsim.streaming` (the same results bit for bit, memory linear in the instances in flight) and
memoises each simulation per process by its timing content (`timing_key`).
"""
from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, fields

from archsim.config import Architecture
from archsim.errors import ScheduleError
from archsim.schedule import Schedule, TileOp, resolve_dep
from archsim.streaming import BufferSpace, simulate_streamed

BLOCK_SAMPLES = (2, 4)
ITER_SAMPLES = (8, 16)


@dataclass
class _Inst:
    op: TileOp
    deps: list[int]
    release: int  # index of the instance whose end frees this one's buffer bytes


def _flatten(s: Schedule) -> list[_Inst]:
    """Program-order instances with dependencies resolved to indices."""
    index: dict[tuple, int] = {}
    insts: list[_Inst] = []
    seg_of = {}
    for si, seg in enumerate(s.segments):
        for op in seg.ops:
            if op.name in seg_of:
                raise ScheduleError(f"{s.name}: op name {op.name!r} used twice")
            seg_of[op.name] = si

    def resolve(block: int, si: int, it: int, ref: str, who: str) -> int | None:
        prev, name, tsi = resolve_dep(s.name, seg_of, si, ref, who)
        if prev:
            if it == 0:
                return None
            key = (block, tsi, it - 1, name)
        elif tsi == si:
            key = (block, tsi, it, name)
        else:  # an earlier segment: its last iteration
            key = (block, tsi, s.segments[tsi].iterations - 1, name)
        if key not in index:
            raise ScheduleError(f"{s.name}: op {who!r} depends on {name!r}, which is issued after it (lag)")
        return index[key]

    pending_release: list[tuple[int, tuple]] = []
    for b in range(s.blocks + s.max_lag):
        for si, seg in enumerate(s.segments):
            for it in range(seg.iterations):
                for op in seg.ops:
                    blk = b - op.lag
                    if not 0 <= blk < s.blocks:
                        continue
                    deps = [d for d in (resolve(blk, si, it, r, op.name) for r in op.deps) if d is not None]
                    i = len(insts)
                    index[(blk, si, it, op.name)] = i
                    insts.append(_Inst(op, deps, i))
                    if op.hold_until and op.hold_until != op.name:
                        if op.hold_until not in seg_of:
                            raise ScheduleError(f"{s.name}: op {op.name!r} holds until unknown op {op.hold_until!r}")
                        tsi = seg_of[op.hold_until]
                        tit = it if tsi == si else s.segments[tsi].iterations - 1
                        pending_release.append((i, (blk, tsi, tit, op.hold_until)))
    for i, key in pending_release:
        if key not in index:
            raise ScheduleError(f"{s.name}: hold_until target {key[3]!r} never runs")
        if index[key] < i:  # it could end before the bytes are reserved: they would never be held
            raise ScheduleError(f"{s.name}: op {insts[i].op.name!r} holds its buffer bytes until "
                                f"{key[3]!r}, which is issued before it")
        insts[i].release = index[key]
    return insts


_MEMO: dict[tuple, tuple[float, float]] = {}
_MEMO_LOCK = threading.Lock()
MEMO_ENTRIES = 4096


# fields that do not affect timing (names, breakdown labels, energy actions); every other field of
# TileOp, Segment and Schedule, present or added later, is part of the memo key
_NOT_TIMING = {"TileOp": {"einsum", "actions"}, "Segment": {"name", "ops"}, "Schedule": {"name", "notes", "segments"}}


def _timing_fields(obj) -> tuple:
    skip = _NOT_TIMING[type(obj).__name__]
    return tuple(getattr(obj, f.name) for f in fields(obj) if f.name not in skip)


def timing_key(s: Schedule, arch: Architecture) -> tuple:
    """What the timing of `s` on `arch` depends on: every field of the schedule, its segments and
    ops except names, Einsum labels and actions; and the whole architecture (its repr)."""
    segments = tuple((_timing_fields(seg), tuple(_timing_fields(op) for op in seg.ops)) for seg in s.segments)
    return (_timing_fields(s), segments, repr(arch))


def simulate_exact(s: Schedule, arch: Architecture) -> tuple[float, float]:
    """Simulate every op. Returns (cycles, peak buffer bytes). Memoised per process by the
    schedule's timing content (`timing_key`): a repeated sub-simulation is not run again."""
    try:
        key = timing_key(s, arch)
        hash(key)
    except TypeError:  # an unhashable field: simulate without the memo
        return _simulate_exact(s, arch)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    result = _simulate_exact(s, arch)
    with _MEMO_LOCK:
        if len(_MEMO) >= MEMO_ENTRIES:
            _MEMO.clear()
        _MEMO[key] = result
    return result


def clear_memo() -> None:
    """Forget every memoised simulation (for benchmarks)."""
    with _MEMO_LOCK:
        _MEMO.clear()


def _simulate_exact(s: Schedule, arch: Architecture) -> tuple[float, float]:
    capacity = _capacity(s, arch)
    # the schedule's structure errors first, as the reference finds them: on a small copy (the
    # same ops and lags; at most max_lag + 2 blocks and 2 iterations per segment)
    small = s.with_counts(min(s.blocks, s.max_lag + 2), tuple(min(seg.iterations, 2) for seg in s.segments))
    structure = (small.blocks, tuple((seg.iterations, tuple((op.name, op.deps, op.hold_until, op.lag) for op in seg.ops))
                                     for seg in small.segments))
    if structure not in _VALID:
        _flatten(small)
        _VALID.add(structure)
    return simulate_streamed(s, capacity, arch.dram_bytes_per_cycle)


_VALID: set[tuple] = set()  # structures whose small copy _flatten accepted


def _capacity(s: Schedule, arch: Architecture) -> float:
    """Buffer bytes left to the schedule's ops (bytes); checks that each op fits and runs on a known unit."""
    capacity = arch.buffer.capacity_bytes - s.reserved_buffer_bytes
    if capacity < 0:
        raise ScheduleError(f"{s.name}: reserved buffer {s.reserved_buffer_bytes:.0f} B exceeds "
                            f"{arch.buffer.capacity_bytes} B of {arch.name}")
    for op in (op for seg in s.segments for op in seg.ops):
        if op.buffer_bytes > capacity:
            raise ScheduleError(f"{s.name}: op {op.name!r} needs {op.buffer_bytes:.0f} B of buffer, "
                                f"only {capacity:.0f} B available in {arch.name}")
        if op.unit is not None and op.unit not in arch.units:
            raise ScheduleError(f"{s.name}: op {op.name!r} runs on unknown unit {op.unit!r}")
    return capacity


def simulate_exact_simpy(s: Schedule, arch: Architecture) -> tuple[float, float]:
    """The reference implementation of the model on simpy, every op instance materialised
    (tests check that `simulate_exact` gives the same results). Returns (cycles, peak buffer bytes).
    simpy is a test dependency, imported here only."""
    import simpy

    capacity = _capacity(s, arch)
    insts = _flatten(s)
    env = simpy.Environment()
    bpc = arch.dram_bytes_per_cycle
    done = [env.event() for _ in insts]
    stored = [env.event() for _ in insts]
    loaded = [env.event() for _ in insts]
    space = BufferSpace(simpy.Container(env, capacity=max(capacity, 1), init=max(capacity, 1)))
    dram = simpy.PriorityResource(env, capacity=1)  # stores and loads of stored results before prefetches
    releases: dict[int, list[float]] = {}
    for i, inst in enumerate(insts):
        if inst.op.buffer_bytes > 0:
            releases.setdefault(inst.release, []).append(inst.op.buffer_bytes)

    def load(i):
        inst = insts[i]
        if inst.op.load_after_deps and inst.deps:
            yield env.all_of([stored[d] for d in inst.deps])
        with dram.request(priority=0 if inst.op.load_after_deps else 1) as req:
            yield req
            yield env.timeout(inst.op.load_bytes / bpc)
        loaded[i].succeed()

    def loader():
        """Reserves buffer space in program order; loads that read stored results wait for them."""
        for i, inst in enumerate(insts):
            op = inst.op
            if op.buffer_bytes > 0:
                yield from space.take(op.buffer_bytes)
            if op.load_bytes > 0:
                env.process(load(i))
            else:
                loaded[i].succeed()

    def finish(i):
        op = insts[i].op
        if op.store_bytes > 0:
            with dram.request(priority=0) as req:
                yield req
                yield env.timeout(op.store_bytes / bpc)
        stored[i].succeed()
        for amount in releases.get(i, ()):
            yield from space.give(amount)

    def run_unit(ids):
        for i in ids:
            inst = insts[i]
            waits = [done[d] for d in inst.deps] + [loaded[i]]
            yield env.all_of(waits)
            if inst.op.cycles > 0:
                yield env.timeout(inst.op.cycles)
            done[i].succeed()
            env.process(finish(i))

    per_unit: dict[str, list[int]] = {}
    for i, inst in enumerate(insts):
        per_unit.setdefault(inst.op.unit or f"dma:{i}", []).append(i)
    env.process(loader())
    for ids in per_unit.values():
        env.process(run_unit(ids))
    env.run()
    if not all(e.triggered for e in stored):
        raise ScheduleError(f"{s.name}: the schedule deadlocked (a dependency cycle or buffer exhaustion)")
    return float(env.now), space.peak


def simulate(s: Schedule, arch: Architecture, mode: str = "steady") -> tuple[float, float]:
    """(cycles, peak buffer bytes) of a schedule (`mode` "steady" or "exact", module docstring).

    Steady mode checks its extrapolation along each extrapolated count: (1) against a simulation at
    4 x its upper sample (or the count itself when that is nearer; the others at their lower
    samples); (2) at the full count (the others at their upper samples), against the schedule's resource bound there (each unit's busy
    cycles and the DRAM bytes / bandwidth, linear in the counts, known without simulating); and at
    the full point against its resource bound. Where the model disagrees by more than
    AFFINE_TOLERANCE, or falls below a bound, the time is not affine along that count (a bottleneck
    that changes with it, a pipeline not yet steady at the samples) and that count is simulated in
    full. A change of regime that stays above the bounds and lies beyond the probe goes unseen.
    The returned time is never below the full point's resource bound (summed as archsim.result sums
    busy cycles and bytes): a model within AFFINE_TOLERANCE below it returns the bound.
    """
    if mode == "exact":
        return simulate_exact(s, arch)
    if mode != "steady":
        raise ValueError(f"unknown simulation mode {mode!r} (steady or exact)")
    counts = [s.blocks] + [seg.iterations for seg in s.segments]
    few_blocks = max(BLOCK_SAMPLES[0], 4 * s.max_lag)  # enough blocks to fill a software pipeline
    samples = [(few_blocks, few_blocks * BLOCK_SAMPLES[1] // BLOCK_SAMPLES[0])] + [ITER_SAMPLES] * len(s.segments)
    samples = [(lo, hi) if n > hi else (n, n) for n, (lo, hi) in zip(counts, samples)]
    peak = 0.0
    bpc = arch.dram_bytes_per_cycle

    def run_at(point: tuple[int, ...]) -> float:
        nonlocal peak
        cycles, p = simulate_exact(s.with_counts(point[0], tuple(point[1:])), arch)
        peak = max(peak, p)
        return cycles

    while True:
        corners = {c: run_at(c) for c in itertools.product(*[sorted({lo, hi}) for lo, hi in samples])}
        moved = list(samples)
        for j, (n, (lo, hi)) in enumerate(zip(counts, samples)):
            if lo == hi:
                continue
            base, low = tuple(h for _, h in samples), tuple(lo_ for lo_, _ in samples)
            probe = low[:j] + (min(n, 4 * hi),) + low[j + 1:]
            want = run_at(probe)
            far = base[:j] + (n,) + base[j + 1:]
            if abs(_multilinear(corners, samples, probe) - want) > AFFINE_TOLERANCE * max(want, 1.0) or \
                    _multilinear(corners, samples, far) < _resource_bound(s, far, bpc) * (1 - AFFINE_TOLERANCE):
                moved[j] = (n, n)
        if moved == samples:
            total = _multilinear(corners, samples, tuple(counts))
            bound = _resource_bound(s, tuple(counts), bpc)
            if total >= bound * (1 - AFFINE_TOLERANCE) or all(lo == hi for lo, hi in samples):
                # every run lasts at least its resource bound: a model within tolerance below it is
                # replaced by it, so latency >= every unit's busy cycles holds by construction
                return max(total, bound), peak
            j = max((i for i, (lo, hi) in enumerate(samples) if lo != hi), key=lambda i: counts[i])
            moved[j] = (counts[j], counts[j])  # below its bound, no single count to blame: the largest in full
        samples = moved


AFFINE_TOLERANCE = 1e-3  # relative disagreement of steady mode's model at its probe


def _resource_bound(s: Schedule, point: tuple[int, ...], bytes_per_cycle: float) -> float:
    """Cycles no run of `s` with (blocks, iterations per segment) = `point` can beat: each unit's
    busy cycles, and the DRAM bytes over the bandwidth."""
    busy: dict[str, float] = {}
    moved = 0.0
    for n, seg in zip(point[1:], s.segments):
        for op in seg.ops:
            if op.unit:
                busy[op.unit] = busy.get(op.unit, 0.0) + op.cycles * (point[0] * n)
            moved += (op.load_bytes + op.store_bytes) * (point[0] * n)
    return max(max(busy.values(), default=0.0), moved / bytes_per_cycle)


def _multilinear(corners: dict[tuple[int, ...], float], samples: list[tuple[int, int]], point: tuple[int, ...]) -> float:
    """The multilinear interpolation (or extrapolation) at `point` of the values at the corners of `samples`."""
    axes = []
    for x, (lo, hi) in zip(point, samples):
        axes.append(((lo, 1.0),) if lo == hi else ((lo, (hi - x) / (hi - lo)), (hi, (x - lo) / (hi - lo))))
    return sum(math.prod(w for _, w in corner) * corners[tuple(c for c, _ in corner)]
               for corner in itertools.product(*axes))
