"""Work of each Einsum: operator counts at bound sizes, and their cost on a PE array."""
from __future__ import annotations

from collections import Counter
from typing import Mapping

from cascadesim_errors import InputError
from einsum_cascade.numeric_cost import numeric_cost

from archsim.config import PEArray


class MappingError(InputError, ValueError):
    """An infeasible mapping: names the mapping, the Einsum and what does not fit."""


def einsum_ops(cascade, sizes: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Operator counts of each main Einsum of `cascade` at `sizes` (all ranks and params bound),
    from `einsum_cascade.cost`'s counting rules (the FuseMax paper's convention), evaluated
    numerically (`einsum_cascade.numeric_cost`: no symbolic simplification)."""
    per = numeric_cost(cascade, dict(sizes)).per_einsum
    return {name: {op: float(n) for op, n in ops.items() if n} for name, ops in per.items()}


def fuse_operators(ops: Mapping[str, float], fold_shift_into_exp: bool) -> dict[str, float]:
    """Group primitive counts into the operators a PE evaluates.

    A multiply and an add at the same point form a MAC; with `fold_shift_into_exp` the
    subtraction of exp's argument (one add per exp) is folded into the exp, as the paper counts.
    """
    out: dict[str, float] = {}
    for k, v in ops.items():  # a subtraction is an add; both may occur in one Einsum
        key = "add" if k == "subtract" else k
        out[key] = out.get(key, 0.0) + v
    mac = min(out.get("multiply", 0.0), out.get("add", 0.0))
    if mac:
        out["mac"] = out.get("mac", 0.0) + mac
        out["multiply"] -= mac
        out["add"] -= mac
    if fold_shift_into_exp and out.get("exp") and out.get("add"):
        out["add"] -= min(out["add"], out["exp"])
    return {k: v for k, v in out.items() if v}


def cost_on_unit(unit: PEArray, ops: Mapping[str, float], where: str) -> tuple[float, dict[str, float]]:
    """(cycles, actions) of operator counts on all PEs of `unit`: cycles = sum(count x cycles) / PEs,
    actions counted per element ("unit.action" keys).

    Raises MappingError naming `where` when the unit lacks an operator.
    """
    cycles = 0.0
    actions: Counter = Counter()
    for op, n in ops.items():
        if op not in unit.operators:
            raise MappingError(f"{where}: needs operator {op!r}, which unit {unit.name!r} does not have "
                               f"(it has {', '.join(sorted(unit.operators))})")
        spec = unit.operators[op]
        cycles += n * spec.cycles
        for a, k in spec.actions.items():
            actions[f"{unit.name}.{a}"] += n * k
    return cycles / unit.pes, dict(actions)
