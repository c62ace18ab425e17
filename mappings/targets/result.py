"""What `simulate` returns on every target."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from archsim.result import Result
from mappings.work import MappingError


@dataclass
class SimulationResult:
    """Outcome of `simulate`. Units: seconds, cycles, joules, bytes; util busy fractions 0..1.
    Fields that do not apply to the target are None."""
    target: str  # "accelerator", "gpu" or "private-inference"
    cascade: str
    arch: str
    sizes: dict[str, float]
    batch: int
    heads: int
    latency_s: float
    cycles: float | None = None
    energy_j: float | None = None
    energy_by_component: dict[str, float] | None = None
    dram_bytes: float | None = None
    util: dict[str, float] | None = None
    bounding_unit: str | None = None
    passes: int | None = None
    mapping: dict[str, Any] | None = None
    candidates_evaluated: int | None = None
    objective: str | None = None
    comm_bytes: float | None = None
    rounds: int | None = None
    network: str | None = None
    kv_heads: int | None = None  # heads of K and V (MQA / GQA); None: one per query head
    bound: str | None = None   # what limits it, on every target: GPU (compute, exp, memory, serial,
                               # launch); otherwise the bounding unit (array2d, array1d, dram, ...)
    kernel: str | None = None  # GPU: the kernel profile used
    sizes_defaulted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    result: Result | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.bound is None:
            self.bound = self.bounding_unit

    def to_dict(self) -> dict:
        """Plain JSON-serialisable fields (the archsim Result left out)."""
        d = asdict(self)
        d.pop("result")
        return d

    def score(self, objective: str) -> float:
        """The objective's value: latency_s, energy_j, or their product (edp, joule-seconds)."""
        if objective == "latency":
            return self.latency_s
        if self.energy_j is None:
            raise MappingError(f"objective {objective!r}: the {self.target} target has no energy model")
        return self.energy_j if objective == "energy" else self.energy_j * self.latency_s
