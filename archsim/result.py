"""Run a schedule and collect the result: cycles, seconds, joules, bytes, busy fractions."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace

from archsim.config import Architecture
from archsim.energy import energy_breakdown
from archsim.engine import simulate
from archsim.schedule import Schedule


@dataclass
class Result:
    """Outcome of one simulation. Units: cycles, seconds, joules, bytes; busy fractions 0..1.

    `action_counts` holds the whole run's action counts per Einsum (keys "component.action"),
    from which `reprice` recomputes the energy under another accounting without simulating.
    """
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
    action_counts: dict[str, dict[str, float]] = field(default_factory=dict)
    accounting: str = "correct"

    def busy(self, unit: str) -> float:
        """Fraction of the run that `unit` computes."""
        return self.busy_cycles.get(unit, 0.0) / self.cycles if self.cycles else 0.0

    def to_dict(self) -> dict:
        """The result as plain dicts and numbers (JSON-serialisable), units as above."""
        return asdict(self)


def configuration_of(schedule_name: str) -> str:
    """The mapping (configuration) a schedule belongs to: its name up to the first ':'."""
    return schedule_name.split(":", 1)[0]


def reprice(result: Result, arch: Architecture, accounting: str, configuration: str | None = None) -> Result:
    """`result` with its energy recomputed under `accounting` ("correct" or "artifact", see
    archsim.energy); cycles, traffic and busy times are unchanged. `configuration` defaults to
    the schedule's mapping name."""
    configuration = configuration_of(result.name) if configuration is None else configuration
    counted = [(einsum, actions, 1) for einsum, actions in result.action_counts.items()]
    by_comp, by_einsum = energy_breakdown(arch, counted, accounting, configuration)
    return replace(result, joules=sum(by_comp.values()), energy_by_component=by_comp,
                   energy_by_einsum=by_einsum, accounting=accounting)


def run(schedule: Schedule, arch: Architecture, mode: str = "steady", accounting: str = "correct",
        configuration: str | None = None) -> Result:
    """Simulate `schedule` on `arch` (mode "steady" extrapolates, "exact" simulates every tile).

    Energy under `accounting` (default "correct"; see archsim.energy); `configuration`
    defaults to the schedule's mapping name.
    """
    cycles, peak = simulate(schedule, arch, mode)
    busy: dict[str, float] = defaultdict(float)
    busy_e: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    dram = 0.0
    for op, reps in schedule.instances_per_op():
        if op.unit:
            busy[op.unit] += op.cycles * reps
            busy_e[op.unit][op.einsum or op.name] += op.cycles * reps
        moved = op.load_bytes + op.store_bytes
        dram += moved * reps
        actions = dict(op.actions)
        if moved:
            actions["dram.bytes"] = actions.get("dram.bytes", 0.0) + moved
            words = arch.word_bytes
            actions["buffer.write_words"] = actions.get("buffer.write_words", 0.0) + op.load_bytes / words
            actions["buffer.read_words"] = actions.get("buffer.read_words", 0.0) + op.store_bytes / words
        for key, count in actions.items():
            totals[op.einsum or op.name][key] += count * reps
    result = Result(
        name=schedule.name,
        cycles=cycles,
        seconds=cycles / arch.clock_hz,
        joules=0.0,
        energy_by_component={},
        energy_by_einsum={},
        dram_bytes=dram,
        busy_cycles=dict(busy),
        busy_by_einsum={u: dict(v) for u, v in busy_e.items()},
        peak_buffer_bytes=peak,
        notes=list(schedule.notes),
        action_counts={e: dict(a) for e, a in totals.items()},
    )
    return reprice(result, arch, accounting, configuration)
