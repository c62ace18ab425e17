"""Energy from action counts and area from the component table.

Action keys are "component.action": for a PE array, `mac`, `add`, `max`, `exp`, `divide`
(priced by `action_pj`) and `rf_read` / `rf_write` (priced by that array's register file;
the counts are per element, so every PE's register file is counted); `buffer.read_words`
and `buffer.write_words` (priced per access of the buffer width); `dram.bytes`.
Energies in joules, areas in um2.

Accounting (`accounting=`): "correct" (the default) prices every action. "artifact"
reproduces the two bookkeeping errors of the FuseMax paper's public artifact
(docs/references/reference-fusemax.md section 3), so that results can be compared with the
paper's published energies: (1) register-file energy counted for one PE of each array instead
of all of them (each unit's `rf_read` / `rf_write` energy divided by its PE count), and
(2) the exp-unit energy of the paper's "cascade" configuration lost through a misspelled key
(its `exp` actions priced at 0; see ARTIFACT_LOST_ACTIONS). Accounting changes energy only:
action counts, cycles and traffic are the same under both.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

from archsim.config import Architecture
from archsim.errors import ScheduleError

PJ = 1e-12
ACCOUNTINGS = ("correct", "artifact")
# configuration (mapping name) -> actions whose energy the artifact lost (a misspelled key)
ARTIFACT_LOST_ACTIONS: dict[str, frozenset[str]] = {"cascade": frozenset({"exp"})}


def action_energy_j(arch: Architecture, key: str, count: float) -> float:
    """Joules of `count` actions `key` ("component.action")."""
    component, _, action = key.partition(".")
    if component == "dram":
        if action != "bytes":
            raise ScheduleError(f"unknown DRAM action {action!r}")
        return count * arch.dram.pj_per_byte * PJ
    if component == "buffer":
        per_access = {"read_words": arch.buffer.read_pj, "write_words": arch.buffer.write_pj}
        if action not in per_access:
            raise ScheduleError(f"unknown buffer action {action!r}")
        return count / arch.buffer_width_words * per_access[action] * PJ
    unit = arch.units.get(component)
    if unit is None:
        raise ScheduleError(f"action {key!r}: unknown component {component!r} in {arch.name}")
    if action == "rf_read":
        return count * unit.register_file.read_pj * PJ
    if action == "rf_write":
        return count * unit.register_file.write_pj * PJ
    if action not in arch.action_pj:
        raise ScheduleError(f"action {key!r}: unknown action {action!r} in {arch.name}")
    return count * arch.action_pj[action] * PJ


def energy_breakdown(arch: Architecture, counted: Iterable[tuple[str, Mapping[str, float], float]],
                     accounting: str = "correct", configuration: str = ""
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """Joules by component and by Einsum from (einsum, actions, repetitions) triples.

    Components: each unit's compute ("array2d"), its register files ("array2d.rf"),
    "buffer" and "dram". `accounting` is "correct" or "artifact" (module docstring);
    `configuration` names the paper's configuration the actions belong to (e.g. "cascade"),
    which matters only in artifact accounting.
    """
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting: unknown value {accounting!r} (expected one of {', '.join(ACCOUNTINGS)})")
    artifact = accounting == "artifact"
    lost = ARTIFACT_LOST_ACTIONS.get(configuration, frozenset()) if artifact else frozenset()
    by_component: dict[str, float] = defaultdict(float)
    by_einsum: dict[str, float] = defaultdict(float)
    for einsum, actions, reps in counted:
        for key, count in actions.items():
            component, _, action = key.partition(".")
            j = action_energy_j(arch, key, count * reps)
            if action in lost:  # the artifact's misspelled key: this action's energy was never added
                j = 0.0
            if action.startswith("rf_"):
                if artifact:  # the artifact counted one PE's register file per array
                    j /= arch.units[component].pes
                component += ".rf"
            by_component[component] += j
            by_einsum[einsum or "other"] += j
    return dict(by_component), dict(by_einsum)


def area_um2(arch: Architecture) -> dict[str, float]:
    """Area by component: each PE array (functional units + register files) and the buffer."""
    out = {}
    for name, unit in arch.units.items():
        per_pe = sum(arch.area_um2[h] for h in unit.hardware) + unit.register_file.area_um2
        out[name] = unit.pes * per_pe
    out["buffer"] = arch.buffer.area_um2
    return out
