"""Run a schedule and collect the result: cycles, seconds, joules, bytes, busy fractions."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from archsim.config import Architecture
from archsim.energy import energy_breakdown
from archsim.engine import simulate
from archsim.schedule import Schedule


@dataclass
class Result:
    """Outcome of one simulation. Units: cycles, seconds, joules, bytes; busy fractions 0..1."""
    name: str
    cycles: float
    seconds: float
    joules: float
    energy_by_component: dict[str, float]
    energy_by_einsum: dict[str, float]
    dram_bytes: float
    busy_cycles: dict[str, float]
    busy_by_einsum: dict[str, dict[str, float]]
    peak_buffer_bytes: float
    notes: list[str] = field(default_factory=list)

    def busy(self, unit: str) -> float:
        """Fraction of the run that `unit` computes."""
        return self.busy_cycles.get(unit, 0.0) / self.cycles if self.cycles else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def run(schedule: Schedule, arch: Architecture, mode: str = "steady") -> Result:
    """Simulate `schedule` on `arch` (mode "steady" extrapolates, "exact" simulates every tile)."""
    cycles, peak = simulate(schedule, arch, mode)
    busy: dict[str, float] = defaultdict(float)
    busy_e: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    dram = 0.0
    counted = []
    for op, reps in schedule.instances_per_op():
        if op.unit:
            busy[op.unit] += op.cycles * reps
            busy_e[op.unit][op.einsum or op.name] += op.cycles * reps
        dram += (op.load_bytes + op.store_bytes) * reps
        actions = dict(op.actions)
        moved = op.load_bytes + op.store_bytes
        if moved:
            actions["dram.bytes"] = actions.get("dram.bytes", 0.0) + moved
            words = arch.word_bytes
            actions["buffer.write_words"] = actions.get("buffer.write_words", 0.0) + op.load_bytes / words
            actions["buffer.read_words"] = actions.get("buffer.read_words", 0.0) + op.store_bytes / words
        counted.append((op.einsum or op.name, actions, reps))
    by_comp, by_einsum = energy_breakdown(arch, counted)
    return Result(
        name=schedule.name,
        cycles=cycles,
        seconds=cycles / arch.clock_hz,
        joules=sum(by_comp.values()),
        energy_by_component=by_comp,
        energy_by_einsum=by_einsum,
        dram_bytes=dram,
        busy_cycles=dict(busy),
        busy_by_einsum={u: dict(v) for u, v in busy_e.items()},
        peak_buffer_bytes=peak,
        notes=list(schedule.notes),
    )
