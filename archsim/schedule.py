"""A schedule: tile operations on units, in loops, with dependencies.

Shape: `blocks` identical, independent blocks (e.g. query groups of every head), each a
sequence of `Segment`s; a segment repeats its ops `iterations` times (e.g. one iteration per
M1 tile). Program order per unit is the order the ops are listed, block after block; an op
with `lag` L of block b is issued among the ops of block b + L (software pipelining).

Dependencies (`deps`) name other ops of the same block:
- "X": op X of the same iteration if X is in the same segment, else the last instance of X
  in an earlier segment;
- "prev:X": op X of the previous iteration of the same segment (absent for the first).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from archsim.errors import ScheduleError

PREVIOUS = "prev:"  # prefix of a dependency on the previous iteration (module docstring)


def parse_dep(ref: str) -> tuple[bool, str]:
    """(on the previous iteration?, op name) of a dependency reference "X" or "prev:X"."""
    previous = ref.startswith(PREVIOUS)
    return previous, ref[len(PREVIOUS):] if previous else ref


def resolve_dep(schedule: str, seg_of: Mapping[str, int], si: int, ref: str, who: str) -> tuple[bool, str, int]:
    """(on the previous iteration?, op name, its segment) of dependency `ref` of op `who` in segment `si`
    of schedule `schedule`, whose ops are in the segments `seg_of`. ScheduleError for an unknown op, a
    "prev:" across segments, or an op of a later segment."""
    prev, name = parse_dep(ref)
    if name not in seg_of:
        raise ScheduleError(f"{schedule}: op {who!r} depends on unknown op {name!r}")
    tsi = seg_of[name]
    if prev and tsi != si:
        raise ScheduleError(f"{schedule}: {who!r}: 'prev:{name}' must name an op of the same segment")
    if not prev and tsi > si:
        raise ScheduleError(f"{schedule}: op {who!r} depends on {name!r} of a later segment")
    return prev, name, tsi


@dataclass(frozen=True)
class TileOp:
    """One operation on one tile.

    cycles: compute cycles on `unit` (None: a pure DMA op).
    lag: blocks by which the op is issued late (software pipelining, module docstring).
    load_bytes / store_bytes: DRAM traffic before / after the compute (bytes).
    buffer_bytes: global-buffer bytes held from the load until `hold_until` (default: this op) ends.
    load_after_deps: the load reads data stored by a dependency, so it waits for those stores.
    actions: action counts for energy, keys "component.action" (e.g. "array2d.mac", "buffer.read_words").
    einsum: the Einsum the op belongs to (for breakdowns).
    """
    name: str
    unit: str | None
    cycles: float
    einsum: str = ""
    deps: tuple[str, ...] = ()
    load_bytes: float = 0.0
    store_bytes: float = 0.0
    buffer_bytes: float = 0.0
    hold_until: str | None = None
    load_after_deps: bool = False
    lag: int = 0
    actions: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Segment:
    """`ops` repeated `iterations` times (e.g. once per M1 tile), in the order listed."""
    name: str
    iterations: int
    ops: tuple[TileOp, ...]


@dataclass(frozen=True)
class Schedule:
    """What the engine runs. `reserved_buffer_bytes` is held statically for the whole run."""
    name: str
    blocks: int
    segments: tuple[Segment, ...]
    reserved_buffer_bytes: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def max_lag(self) -> int:
        """The largest `lag` of any op (0 without software pipelining), in blocks."""
        return max((op.lag for seg in self.segments for op in seg.ops), default=0)

    def with_counts(self, blocks: int, iterations: tuple[int, ...]) -> "Schedule":
        """The same schedule with `blocks` blocks and each segment's iteration count replaced."""
        segs = tuple(replace(s, iterations=n) for s, n in zip(self.segments, iterations))
        return replace(self, blocks=blocks, segments=segs)

    def instances_per_op(self) -> list[tuple[TileOp, int]]:
        """Every op with the number of times it runs in the whole schedule."""
        return [(op, self.blocks * s.iterations) for s in self.segments for op in s.ops]
