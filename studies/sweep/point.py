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
import math
from pathlib import Path
from typing import Any

import einsum_cascade as ec
from archsim.config import Architecture
from archsim.errors import ArchError, ScheduleError
from archsim.yamlio import YamlFileError, load_yaml_text
from einsum_cascade.errors import CascadeError
from mappings.work import MappingError
from mappings.workload import WorkloadError
from studies.checked import nonfinite_fields
from studies.outcome import INFEASIBLE
from studies.sweep.area import point_area_mm2
from studies.sweep.journal import code_fingerprint, journal_key
from studies.sweep.spec import apply_arch, point_identity

_TEXTS: dict[str, tuple[str, str]] = {}  # sha -> (path, text) of the files of the sweep, per worker


@functools.lru_cache(maxsize=64)
def _document(sha: str) -> Any:
    path, text = _TEXTS[sha]
    return load_yaml_text(text, path)


@functools.lru_cache(maxsize=1024)
def _architecture(sha: str, params: str, overrides: str) -> Architecture:
    return apply_arch(_document(sha), _TEXTS[sha][0], json.loads(params), json.loads(overrides))


@functools.lru_cache(maxsize=64)
def _base_architecture(sha: str) -> Architecture:
    """The design a sweep varies: the file with its default template parameters, no overrides."""
    return apply_arch(_document(sha), _TEXTS[sha][0], {}, {})


@functools.lru_cache(maxsize=64)
def _cascade(sha: str) -> ec.Cascade:
    path, text = _TEXTS[sha]
    return ec.parse(text, path)


def evaluate(point: dict, arch: Architecture):
    """The generic mapper's SimulationResult of one point."""
    from mappings import simulate
    return simulate(_cascade(point["cascade"]["sha"]), arch, point["sizes"], mapping=point["mapping"],
                    objective=point["objective"], batch=point["batch"], heads=point["heads"])


def _row(status: str, error: str | None, arch: Architecture | None = None, sim: Any = None,
         base: Architecture | None = None) -> dict:
    row: dict[str, Any] = {"status": status, "error": error, "mapping": None, "latency_s": None,
                           "energy_j": None, "area_mm2": None, "dram_bytes": None, "cycles": None,
                           "util": {}, "bound": None}
    if arch is not None:
        row["area_mm2"] = point_area_mm2(arch, base or arch)
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
    arch = base = None
    try:
        base = _base_architecture(point["arch"]["sha"])
        arch = _architecture(point["arch"]["sha"], json.dumps(point["params"], sort_keys=True),
                             json.dumps(point["overrides"], sort_keys=True))
        row = _row("ok", None, arch, evaluate(point, arch), base)
    except INFEASIBLE as err:
        return _row("infeasible", str(err), arch, base=base)
    except Exception as err:  # noqa: BLE001 - a bug in one point must not stop a 10^5-point sweep
        return _row("error", f"{type(err).__name__}: {err}", arch, base=base)
    bad = nonfinite_fields(row)
    if bad:  # never recorded as ok: an input out of any physical range made the model overflow
        return _row("error", f"NonFiniteResult: {bad[0]} = {row[bad[0].split('.')[0]]!r}: the point's "
                             "inputs are out of any physical range", arch, base=base)
    return row


def sweep_fingerprint() -> str:
    """What computes a row: the model's code and data and studies/sweep/point.py (16 hex digits)."""
    return code_fingerprint(Path(__file__))


def point_key(point: dict, fingerprint: str) -> str:
    """The journal key of `point` under `fingerprint` (32 hex digits)."""
    return journal_key(fingerprint, point_identity(point))


STATUSES = ("ok", "infeasible", "error")
ROW_FIELDS = {"status", "error", "mapping", "latency_s", "energy_j", "area_mm2", "dram_bytes", "cycles",
              "util", "bound"}


def _number(row: dict, name: str, positive: bool = False) -> str | None:
    v = row[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or \
            (positive and v == 0):
        return f"{name}: expected a {'positive' if positive else 'non-negative'} finite number, got {v!r}"
    return None


def check_row(row: dict) -> str | None:
    """The problem of a journal row read back (fields, types, ranges of `_row`), None if sound."""
    if set(row) != ROW_FIELDS:
        missing, extra = ROW_FIELDS - set(row), set(row) - ROW_FIELDS
        return f"expected the fields of a sweep row ({'missing ' + ', '.join(sorted(missing)) if missing else ''}" \
               f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(sorted(extra)) if extra else ''})"
    if row["status"] not in STATUSES:
        return f"status: expected one of {', '.join(STATUSES)}, got {row['status']!r}"
    if row["area_mm2"] is not None and _number(row, "area_mm2"):
        return _number(row, "area_mm2")
    if row["status"] != "ok":
        return None if isinstance(row["error"], str) and row["error"] else "error: expected the reason"
    for name, positive in (("latency_s", True), ("energy_j", True), ("dram_bytes", False), ("cycles", True),
                           ("area_mm2", False)):
        problem = _number(row, name, positive)
        if problem:
            return problem
    if not isinstance(row["util"], dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 + 1e-9
            for v in row["util"].values()):
        return "util: expected busy fractions in [0, 1]"
    if not isinstance(row["mapping"], str) or not isinstance(row["bound"], str):
        return "mapping, bound: expected names"
    return None
