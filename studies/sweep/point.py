"""The evaluation of ONE sweep point: `simulate_point(point, context) -> row` (a plain dict).

This is the only place where a sweep touches the mappers: each point is one call of the generic
mapper `mappings.simulate(cascade, arch, sizes, mapping, objective, batch, heads)` (`mapping` is
`auto`, a spec name or a spec file).

What is shared between points (the parsed architecture documents and architectures, parsed
cascades) is cached once per worker process; costs are cached by `einsum_cascade.numeric_cost`.
A point that cannot be mapped (MappingError, ScheduleError, an architecture the parser rejects,
...) is a row with status "infeasible" and the reason in `error`; any other exception is status
"error" with its type.

Row fields (units): latency_s (seconds), energy_j (joules), area_mm2 (mm^2), dram_bytes (bytes),
cycles (clock cycles), util (unit -> busy fraction of the run, 0..1), bound (the unit, or "dram",
with the largest busy time: busy cycles, or DRAM bytes / bytes per cycle), mapping (the spec
used), candidates (mappings the mapper evaluated), status ("ok", "infeasible", "error"), error
(the reason, or None).
"""
from __future__ import annotations

import functools
import json
from typing import Any

import einsum_cascade as ec
from archsim.config import Architecture
from archsim.energy import area_um2
from archsim.errors import ArchError, ScheduleError
from archsim.yamlio import YamlFileError, load_yaml_text
from einsum_cascade.errors import CascadeError
from mappings.work import MappingError
from mappings.workload import WorkloadError
from studies.sweep.spec import apply_arch

INFEASIBLE = (MappingError, ScheduleError, ArchError, WorkloadError, CascadeError, YamlFileError)

_TEXTS: dict[str, tuple[str, str]] = {}  # sha -> (path, text) of the files of the sweep, per worker


@functools.lru_cache(maxsize=64)
def _document(sha: str) -> Any:
    path, text = _TEXTS[sha]
    return load_yaml_text(text, path)


@functools.lru_cache(maxsize=1024)
def _architecture(sha: str, params: str, overrides: str) -> Architecture:
    return apply_arch(_document(sha), _TEXTS[sha][0], json.loads(params), json.loads(overrides))


@functools.lru_cache(maxsize=64)
def _cascade(sha: str) -> ec.Cascade:
    path, text = _TEXTS[sha]
    return ec.parse(text, path)


def evaluate(point: dict, arch: Architecture):
    """The generic mapper's SimulationResult of one point."""
    from mappings import simulate
    return simulate(_cascade(point["cascade"]["sha"]), arch, point["sizes"], mapping=point["mapping"],
                    objective=point["objective"], batch=point["batch"], heads=point["heads"])


def _row(status: str, error: str | None, arch: Architecture | None = None, sim: Any = None) -> dict:
    row: dict[str, Any] = {"status": status, "error": error, "mapping": None, "latency_s": None,
                           "energy_j": None, "area_mm2": None, "dram_bytes": None, "cycles": None,
                           "util": {}, "bound": None}
    if arch is not None:
        row["area_mm2"] = sum(area_um2(arch).values()) / 1e6
    if sim is not None:
        r = sim.result
        busy = {u: r.busy_cycles.get(u, 0.0) for u in sorted(arch.units)}
        busy["dram"] = r.dram_bytes / arch.dram_bytes_per_cycle
        row.update(mapping=sim.mapping["name"], latency_s=r.seconds, energy_j=r.joules,
                   dram_bytes=r.dram_bytes, cycles=r.cycles, util={u: r.busy(u) for u in sorted(arch.units)},
                   bound=max(busy, key=lambda u: (busy[u], u)))
    return row


def install_context(context: dict[str, tuple[str, str]]) -> None:
    """Make the files of a sweep (sha -> (path, text)) known to this worker process."""
    _TEXTS.update(context)


def simulate_point(point: dict, context: dict[str, tuple[str, str]] | None = None) -> dict:
    """Evaluate one point (see studies.sweep.spec: arch, params, overrides, cascade, sizes, ...);
    `context` maps the sha of each file of the sweep to (path, text), unless install_context did.
    Returns the row (see the module docstring)."""
    if context:
        _TEXTS.update(context)
    arch = None
    try:
        arch = _architecture(point["arch"]["sha"], json.dumps(point["params"], sort_keys=True),
                             json.dumps(point["overrides"], sort_keys=True))
        return _row("ok", None, arch, evaluate(point, arch))
    except INFEASIBLE as err:
        return _row("infeasible", str(err), arch)
    except Exception as err:  # noqa: BLE001 - a bug in one point must not stop a 10^5-point sweep
        return _row("error", f"{type(err).__name__}: {err}", arch)
