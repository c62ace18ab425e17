"""The engine's model on a lean event loop, with the schedule streamed (linear memory).

Same model as the simpy version in `archsim.engine` (`simulate_exact_simpy`, the reference) and
the same results bit for bit: the event loop reproduces simpy's semantics exactly (a heap of
(time, priority, sequence number) entries; callbacks in registration order; a condition
triggers when its last event is processed; a process resumes one event step after what it
waits for; the DRAM channel is a priority resource whose queue is ordered by (priority,
request time) and served when a release is processed; the buffer is a container). It drops
the events nobody waits for (a finished process, ...), which does not change the order of
the others.

Op instances are generated in program order as the loader or a unit first needs them, and
forgotten once issued and finished: memory grows with the instances in flight (bounded by
the buffer and the blocks a lag keeps open), not with the whole schedule.

A DMA op (`unit` None) is, in the reference, a process of its own started at time 0; its
wait is registered here when the op is generated, ranked among the waits on each event as
if it had been registered at time 0 (`_Wait.rank`).
"""
from __future__ import annotations

import bisect
import gc
import heapq
import itertools
from collections import deque
from collections.abc import Iterator

from archsim.errors import ScheduleError
from archsim.schedule import Schedule, TileOp, resolve_dep

URGENT, NORMAL = 0, 1
LATE = 1 << 62  # ranks of waits registered after time 0 start here


class _Event:
    """An event: None callbacks once processed; `triggered` once scheduled."""

    __slots__ = ("callbacks", "triggered", "amount", "key")

    def __init__(self) -> None:
        self.callbacks: list | None = []
        self.triggered = False
        self.key: list[int] | None = None  # ranks of the callbacks, once a ranked wait is registered


class _Loop:
    """The event heap and the clock (simpy.Environment's scheduling, without processes' end events)."""

    def __init__(self) -> None:
        self.queue: list = []
        self.now = 0.0
        self._eid = itertools.count()

    def schedule(self, ev: _Event, priority: int = NORMAL, delay: float = 0) -> None:
        heapq.heappush(self.queue, (self.now + delay, priority, next(self._eid), ev))

    def succeed(self, ev: _Event) -> None:
        ev.triggered = True
        self.schedule(ev)

    @staticmethod
    def succeed_quiet(ev: _Event) -> None:
        """Trigger and process at once an event that nothing will ever wait for (not scheduled)."""
        ev.triggered = True
        ev.callbacks = None

    def timeout(self, delay: float) -> _Event:
        ev = _Event()
        ev.triggered = True
        self.schedule(ev, NORMAL, delay)
        return ev

    def start(self, gen) -> None:
        """A process: resumed first by an urgent initialisation event (as simpy's Process)."""
        init = _Event()
        init.triggered = True
        init.callbacks.append(_Process(gen).resume)
        self.schedule(init, URGENT)

    def call_soon(self, callback, priority: int = NORMAL) -> None:
        """Run `callback` when an event scheduled now is processed (a process's first step)."""
        ev = _Event()
        ev.triggered = True
        ev.callbacks.append(callback)
        self.schedule(ev, priority)

    def run(self) -> None:
        queue, pop = self.queue, heapq.heappop
        while queue:
            self.now, _, _, ev = pop(queue)
            callbacks, ev.callbacks = ev.callbacks, None
            for callback in callbacks:
                callback(ev)


class _Process:
    __slots__ = ("gen",)

    def __init__(self, gen) -> None:
        self.gen = gen

    def resume(self, _ev=None) -> None:
        send = self.gen.send
        while True:
            try:
                target = send(None)
            except StopIteration:
                return
            if target.callbacks is not None:
                target.callbacks.append(self.resume)
                return


class _AllOf(_Event):
    """Triggers (scheduled) when every event of `events` has been processed."""

    __slots__ = ("loop", "count", "n")

    def __init__(self, loop: _Loop, events: list[_Event], rank: int | None = None):
        super().__init__()
        self.loop = loop
        self.count = 0
        self.n = len(events)
        if not events:
            loop.succeed(self)
            return
        for ev in events:
            if ev.callbacks is None:
                self._check(ev)
            elif rank is None:
                if ev.key is not None:
                    ev.key.append(LATE)
                ev.callbacks.append(self._check)
            else:
                _insert_ranked(ev, rank, self._check)

    def _check(self, _ev) -> None:
        if self.triggered:
            return
        self.count += 1
        if self.count == self.n:
            self.loop.succeed(self)


def _insert_ranked(ev: _Event, rank: int, callback) -> None:
    """Insert `callback` among `ev`'s callbacks in the order of their ranks."""
    ranks = ev.key
    if ranks is None:  # every callback so far registered late, in order
        ranks = ev.key = [LATE] * len(ev.callbacks)
    at = bisect.bisect_right(ranks, rank)
    ranks.insert(at, rank)
    ev.callbacks.insert(at, callback)


class BufferSpace:
    """The buffer bytes in use over a run and their peak, around a container of the free bytes (a
    simpy.Container or _Container). `take` and `give` are process steps: `yield from space.take(n)`."""

    def __init__(self, free):
        self.free = free
        self.now = 0.0
        self.peak = 0.0

    def take(self, nbytes: float):
        yield self.free.get(nbytes)
        self.now += nbytes
        self.peak = max(self.peak, self.now)

    def give(self, nbytes: float):
        self.now -= nbytes
        yield self.free.put(nbytes)


class _PriorityChannel:
    """simpy.PriorityResource of capacity 1: requests ordered by (priority, request time), stably."""

    def __init__(self, loop: _Loop):
        self.loop = loop
        self.busy = False
        self.queue: list[_Event] = []
        self.keys: list[tuple] = []

    def request(self, priority: int) -> _Event:
        req = _Event()
        key = (priority, self.loop.now)
        at = bisect.bisect_right(self.keys, key)
        self.keys.insert(at, key)
        self.queue.insert(at, req)
        self._trigger_put()
        return req

    def _trigger_put(self, _ev=None) -> None:
        if self.queue and not self.busy:
            self.keys.pop(0)
            req = self.queue.pop(0)
            self.busy = True
            self.loop.succeed(req)

    def release(self) -> None:
        self.busy = False
        ev = _Event()
        ev.callbacks.append(self._trigger_put)
        self.loop.succeed(ev)


class _Container:
    """simpy.Container: get waits while the level is short; a put re-checks gets when processed."""

    def __init__(self, loop: _Loop, capacity: float):
        self.loop = loop
        self.capacity = capacity
        self.level = capacity
        self.gets: list[_Event] = []
        self.puts: list[_Event] = []

    def get(self, amount: float) -> _Event:
        ev = _Event()
        ev.amount = amount
        self.gets.append(ev)
        ev.callbacks.append(self._trigger_put)
        self._trigger_get()
        return ev

    def put(self, amount: float) -> _Event:
        ev = _Event()
        ev.amount = amount
        self.puts.append(ev)
        ev.callbacks.append(self._trigger_get)
        self._trigger_put()
        return ev

    def _trigger_get(self, _ev=None) -> None:
        while self.gets:
            ev = self.gets[0]
            if self.level >= ev.amount:
                self.level -= ev.amount
                self.loop.succeed(ev)
                self.gets.pop(0)
            else:
                break

    def _trigger_put(self, _ev=None) -> None:
        while self.puts:
            ev = self.puts[0]
            if self.capacity - self.level >= ev.amount:
                self.level += ev.amount
                self.loop.succeed(ev)
                self.puts.pop(0)
            else:
                break


class _Inst:
    """One op instance: its events, the events it waits for, and the bytes its end frees."""

    __slots__ = ("op", "dep_done", "dep_stored", "done", "stored", "loaded", "releases", "rank", "quiet")

    def __init__(self, op: TileOp):
        self.op = op
        self.done = _Event()
        self.stored = _Event()
        self.loaded = _Event()
        self.releases: list[float] = []
        self.rank: int | None = None


class _Stream:
    """Program-order instances of a schedule, generated on demand (see the module docstring)."""

    def __init__(self, s: Schedule, on_new):
        self.s = s
        self.on_new = on_new  # called with each new instance, in program order
        self.seg_of: dict[str, int] = {}
        for si, seg in enumerate(s.segments):
            for op in seg.ops:
                if op.name in self.seg_of:
                    raise ScheduleError(f"{s.name}: op name {op.name!r} used twice")
                self.seg_of[op.name] = si
        self.unit_rank: dict[str, int] = {}  # a unit's position among the reference's processes
        self.created = 0  # processes the reference would have created at time 0 so far
        self.produced = 0
        self.exhausted = False
        self._gen = self._generate()

    def pull(self) -> bool:
        """Generate the next instance; False when there are no more."""
        if self.exhausted:
            return False
        try:
            next(self._gen)
        except StopIteration:
            self.exhausted = True
            return False
        return True

    def _plan(self) -> list[list[tuple]]:
        """Per segment and op: (op, dependencies as (segment, iteration offset or None for the
        last iteration, name), hold-until target as (segment, same iteration?, name) or None)."""
        s, seg_of = self.s, self.seg_of
        plans = []
        for si, seg in enumerate(s.segments):
            plan = []
            for op in seg.ops:
                deps = []
                for ref in op.deps:
                    prev, name, tsi = resolve_dep(s.name, seg_of, si, ref, op.name)
                    deps.append((tsi, -1 if prev else 0 if tsi == si else None, name))
                hold = None
                if op.hold_until and op.hold_until != op.name:
                    if op.hold_until not in seg_of:
                        raise ScheduleError(f"{s.name}: op {op.name!r} holds until unknown op {op.hold_until!r}")
                    tsi = seg_of[op.hold_until]
                    hold = (tsi, tsi == si, op.hold_until)
                plan.append((op, tuple(deps), hold))
            plans.append(plan)
        # events nobody ever waits for are not scheduled (that cannot change the others' order)
        self.done_waited = {ref.removeprefix("prev:") for seg in s.segments for op in seg.ops for ref in op.deps}
        self.stored_waited = {ref.removeprefix("prev:") for seg in s.segments for op in seg.ops
                              if op.load_after_deps for ref in op.deps}
        return plans

    def _generate(self) -> Iterator[None]:
        s = self.s
        plans = self._plan()
        done_waited, stored_waited = self.done_waited, self.stored_waited
        index: dict[int, dict[tuple, _Inst]] = {}  # per block: (segment, iteration, name) -> instance
        pending: dict[tuple, list[float]] = {}  # (block, hold_until target key) -> bytes it frees
        holders: dict[tuple, str] = {}
        last = [seg.iterations - 1 for seg in s.segments]
        blocks, max_lag = s.blocks, s.max_lag
        on_new = self.on_new
        for b in range(blocks + max_lag):
            for si, seg in enumerate(s.segments):
                plan = plans[si]
                for it in range(seg.iterations):
                    for op, deps, hold in plan:
                        blk = b - op.lag
                        if not 0 <= blk < blocks:
                            continue
                        mine = index.get(blk)
                        if mine is None:
                            mine = index[blk] = {}
                        inst = _Inst(op)
                        inst.quiet = (op.name not in done_waited, op.name not in stored_waited)
                        done, stored = [], []
                        for tsi, offset, name in deps:
                            if offset == -1:
                                if it == 0:
                                    continue
                                found = mine.get((tsi, it - 1, name))
                            else:
                                found = mine.get((tsi, it if offset == 0 else last[tsi], name))
                            if found is None:
                                raise ScheduleError(f"{s.name}: op {op.name!r} depends on {name!r}, which is "
                                                    "issued after it (lag)")
                            done.append(found.done)
                            stored.append(found.stored)
                        inst.dep_done = done
                        inst.dep_stored = stored if op.load_after_deps else None
                        key = (si, it, op.name)
                        mine[key] = inst
                        if it >= 2 and not max_lag:
                            # two iterations back: no later instance can depend on it (without lags,
                            # which issue an op's dependents in a later round)
                            mine.pop((si, it - 2, op.name), None)
                        if pending:
                            inst.releases.extend(pending.pop((blk, *key), ()))
                        if holders:
                            holders.pop((blk, *key), None)
                        if hold is not None:
                            tsi, same, name = hold
                            target = (tsi, it if same else last[tsi], name)
                            if target in mine:
                                raise ScheduleError(f"{s.name}: op {op.name!r} holds its buffer bytes until "
                                                    f"{name!r}, which is issued before it")
                            if op.buffer_bytes > 0:
                                pending.setdefault((blk, *target), []).append(op.buffer_bytes)
                            holders.setdefault((blk, *target), op.name)
                        elif op.buffer_bytes > 0:
                            inst.releases.append(op.buffer_bytes)
                        if op.unit is None:
                            inst.rank = self.created
                            self.created += 1
                        elif op.unit not in self.unit_rank:
                            self.unit_rank[op.unit] = self.created
                            self.created += 1
                        self.produced += 1
                        on_new(inst)
                        yield
            done_block = b - max_lag  # no later instance belongs to this block
            if 0 <= done_block < blocks:
                index.pop(done_block, None)
                for key in [k for k in holders if k[0] == done_block]:
                    raise ScheduleError(f"{s.name}: hold_until target {key[3]!r} never runs")
        if holders:
            key = next(iter(holders))
            raise ScheduleError(f"{s.name}: hold_until target {key[3]!r} never runs")


def first_units(s: Schedule) -> list[str]:
    """Units in the order of their first op in program order (the reference's process order)."""
    order: list[str] = []
    for b in range(s.blocks + s.max_lag):
        for seg in s.segments:
            if seg.iterations <= 0:
                continue
            for op in seg.ops:
                if op.unit is not None and 0 <= b - op.lag < s.blocks and op.unit not in order:
                    order.append(op.unit)
        if b >= s.max_lag:
            break
    return order


def simulate_streamed(s: Schedule, capacity: float, bytes_per_cycle: float) -> tuple[float, float]:
    """(cycles, peak buffer bytes) of `s` with `capacity` bytes of buffer for its ops (already
    checked) and a DRAM channel of `bytes_per_cycle`; same results as the simpy reference.

    The cyclic garbage collector is paused meanwhile: the loop creates many short-lived objects
    and almost no reference cycles (a few hundred per run), which are collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _simulate(s, capacity, bytes_per_cycle)
    finally:
        if enabled:
            gc.enable()


def _simulate(s: Schedule, capacity: float, bytes_per_cycle: float) -> tuple[float, float]:
    loop = _Loop()
    bpc = bytes_per_cycle
    space = BufferSpace(_Container(loop, max(capacity, 1)))
    dram = _PriorityChannel(loop)
    units = first_units(s)
    for_loader: deque[_Inst] = deque()
    for_unit: dict[str, deque[_Inst]] = {u: deque() for u in units}
    stored_count = [0]

    def on_new(inst: _Inst) -> None:
        for_loader.append(inst)
        if inst.op.unit is None:
            _start_dma(inst)
        else:
            for_unit[inst.op.unit].append(inst)

    stream = _Stream(s, on_new)

    def next_of(q: deque) -> _Inst | None:
        while not q:
            if not stream.pull():
                return None
        return q.popleft()

    def load(inst: _Inst):
        op = inst.op
        if op.load_after_deps and inst.dep_stored:
            yield _AllOf(loop, inst.dep_stored)
        inst.dep_stored = None
        req = dram.request(0 if op.load_after_deps else 1)
        yield req
        yield loop.timeout(op.load_bytes / bpc)
        dram.release()
        loop.succeed(inst.loaded)

    def loader():
        while True:
            inst = next_of(for_loader)
            if inst is None:
                return
            op = inst.op
            if op.buffer_bytes > 0:
                yield from space.take(op.buffer_bytes)
            if op.load_bytes > 0:
                loop.start(load(inst))
            else:
                inst.dep_stored = None
                loop.succeed(inst.loaded)

    def finish(inst: _Inst):
        op = inst.op
        if op.store_bytes > 0:
            req = dram.request(0)
            yield req
            yield loop.timeout(op.store_bytes / bpc)
            dram.release()
        loop.succeed_quiet(inst.stored) if inst.quiet[1] else loop.succeed(inst.stored)
        stored_count[0] += 1
        for amount in inst.releases:
            yield from space.give(amount)

    def execute(inst: _Inst, rank: int | None):
        waits = inst.dep_done + [inst.loaded]
        inst.dep_done = None
        yield _AllOf(loop, waits, rank)
        if inst.op.cycles > 0:
            yield loop.timeout(inst.op.cycles)
        loop.succeed_quiet(inst.done) if inst.quiet[0] else loop.succeed(inst.done)
        if inst.op.store_bytes > 0 or inst.releases:
            loop.start(finish(inst))
        elif inst.quiet[1]:  # the finish process would do nothing anyone can observe
            inst.stored.triggered = True
            inst.stored.callbacks = None
            stored_count[0] += 1
        else:  # the finish process only triggers `stored`, when it starts
            loop.call_soon(lambda _ev, inst=inst: finish_now(inst), URGENT)

    def finish_now(inst: _Inst) -> None:
        loop.succeed(inst.stored)
        stored_count[0] += 1

    def run_unit(unit: str):
        q = for_unit[unit]
        first = True
        while True:
            inst = next_of(q)
            if inst is None:
                return
            # the first wait of a unit is registered at time 0 in the reference: ranked
            yield from execute(inst, stream.unit_rank[unit] if first else None)
            first = False

    def _start_dma(inst: _Inst) -> None:
        proc = _Process(execute(inst, inst.rank))
        proc.resume()  # registers its wait now, ranked as at time 0

    loop.start(loader())
    for u in units:  # the reference's creation order (its DMA processes are started as generated)
        loop.start(run_unit(u))
    loop.run()
    if not stream.exhausted or stored_count[0] != stream.produced:
        raise ScheduleError(f"{s.name}: the schedule deadlocked (a dependency cycle or buffer exhaustion)")
    return float(loop.now), space.peak

