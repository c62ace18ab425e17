"""The evaluation of ONE sweep point: `simulate_point(point, context) -> row` (a plain dict).

This is the only place where a sweep touches the mappers. `evaluate()` uses the generic mapper
`mappings.simulate(cascade, arch, sizes, mapping, objective, batch, heads)` when the installed
`mappings` package has it; otherwise it runs today's named mappings (`mappings.get_mapping`) the
way the FuseMax-vs-FLAT study does: a self-attention workload (M = P = sequence length, E, F,
heads, batch) scheduled by the mapping and simulated by archsim. A named mapping only schedules
its own library cascade; `mapping: auto` then picks the library's default mapping for the
cascade's number of passes over M (DEFAULT_MAPPING) when that mapping's cascade is the one asked.

What is shared between points (the parsed architecture documents and architectures, parsed
cascades, pass counts, the named mappings with their cascade and its symbolic cost) is cached
once per worker process. A point that cannot be mapped
(MappingError, ScheduleError, an architecture the parser rejects, ...) is a row with status
"infeasible" and the reason in `error`; any other exception is status "error" with its type.

Row fields (units): latency_s (seconds), energy_j (joules), area_mm2 (mm^2), dram_bytes (bytes),
cycles (clock cycles), util (unit -> busy fraction of the run, 0..1), bound (the unit, or "dram",
with the largest busy time: busy cycles, or DRAM bytes / bytes per cycle), mapping (the mapping
used), status ("ok", "infeasible", "error"), error (the reason, or None).
"""
from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from typing import Any

import einsum_cascade as ec
from archsim.config import Architecture
from archsim.energy import area_um2
from archsim.errors import ArchError, ScheduleError
from archsim.result import Result, configuration_of, run
from archsim.yamlio import YamlFileError, load_yaml_text
from einsum_cascade.errors import CascadeError
from mappings.work import MappingError
from mappings.workload import Workload, WorkloadError
from studies.sweep_spec import apply_arch

# the library's default named mapping per number of passes over the sequence rank M
DEFAULT_MAPPING = {1: "fusemax", 3: "flat"}
NAMED_SIZES = ("M", "P", "E", "F")  # the ranks a named (self-attention) mapping takes
INFEASIBLE = (MappingError, ScheduleError, ArchError, WorkloadError, CascadeError, YamlFileError)

_TEXTS: dict[str, tuple[str, str]] = {}  # sha -> (path, text) of the files of the sweep, per worker
_COSTS: dict[int, tuple[ec.Cascade, ec.CascadeCost]] = {}  # id -> (cascade, its cost), per worker
_ORIGINAL_COST = [ec.cost]  # einsum_cascade.cost while _shared_costs is not active
_PATCH_LOCK = threading.Lock()
_ACTIVE = 0  # evaluations running inside _shared_costs


class PointInfeasible(Exception):
    """A point no available mapping can evaluate (the message says why)."""


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


@functools.lru_cache(maxsize=64)
def _passes_over_m(sha: str) -> int | None:
    c = _cascade(sha)
    return ec.passes(c, "M").passes if "M" in c.ranks else None


@functools.lru_cache(maxsize=64)
def _is_library_cascade(sha: str, stem: str) -> bool:
    return ec.library_path(stem).read_text(encoding="utf-8") == _TEXTS[sha][1]


@functools.lru_cache(maxsize=16)
def _named_mapping(name: str):
    """The named mapping, its library cascade parsed once per worker (not once per schedule)."""
    from mappings import get_mapping
    mapping = get_mapping(name)
    cascade = ec.load_library(mapping.cascade_name)
    mapping.cascade = lambda: cascade
    return mapping


def _cached_cost(cascade: ec.Cascade) -> ec.CascadeCost:
    hit = _COSTS.get(id(cascade))
    if hit is None or hit[0] is not cascade:
        hit = _COSTS[id(cascade)] = (cascade, _ORIGINAL_COST[0](cascade))
    return hit[1]


@contextlib.contextmanager
def _shared_costs() -> Iterator[None]:
    """While points are evaluated, `einsum_cascade.cost` of a cascade object already costed in
    this worker is looked up, not derived again (the sympy simplification is most of a named
    mapping's time). The only cascades costed here are the named mappings' pinned ones, so the
    memo stays small; the original function is back once no evaluation is running (thread-safe)."""
    global _ACTIVE
    with _PATCH_LOCK:
        if _ACTIVE == 0:
            _ORIGINAL_COST[0] = ec.cost
            ec.cost = _cached_cost
        _ACTIVE += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                ec.cost = _ORIGINAL_COST[0]


def _named(point: dict, arch: Architecture) -> Result:
    """Today's named mappings (see the module docstring)."""
    from mappings import MAPPINGS
    sha, label = point["cascade"]["sha"], point["cascade"]["label"]
    name = point["mapping"]
    if name == "auto":
        n = _passes_over_m(sha)
        name = DEFAULT_MAPPING.get(n)
        if name is None:
            raise PointInfeasible(f"mapping auto: no named mapping for a cascade with {n} passes over M "
                                  "(the generic mapper, mappings.simulate, is not available)")
    elif name not in MAPPINGS:
        raise PointInfeasible(f"mapping file {name}: needs the generic mapper (mappings.simulate), "
                              "which is not available")
    mapping = _named_mapping(name)
    if not _is_library_cascade(sha, mapping.cascade_name):
        raise PointInfeasible(f"mapping {name} schedules only the library cascade {mapping.cascade_name}, "
                              f"not {label} (the generic mapper, mappings.simulate, is not available)")
    sizes = point["sizes"]
    missing = [r for r in NAMED_SIZES if r not in sizes]
    extra = [r for r in sizes if r not in NAMED_SIZES]
    if missing or extra:
        raise PointInfeasible(f"mapping {name} takes exactly the sizes {', '.join(NAMED_SIZES)}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; it chooses {', '.join(extra)} itself" if extra else ""))
    if sizes["M"] != sizes["P"]:
        raise PointInfeasible(f"mapping {name} models self-attention: needs M = P, got M = {sizes['M']}, "
                              f"P = {sizes['P']}")
    E, F, heads = sizes["E"], sizes["F"], point["heads"]
    # D and S (model width, FFN width) only size the layer's GEMMs, which a sweep point does not run
    w = Workload(model="sweep", B=point["batch"], D=heads * E, E=E, F=F, H=heads, S=4 * heads * E,
                 seq_len=sizes["M"])
    with _shared_costs():
        return run(mapping.schedule(w, arch), arch)


def evaluate(point: dict, arch: Architecture) -> Result:
    """The simulated Result of one point: mappings.simulate if it exists, else a named mapping."""
    try:
        from mappings import simulate
    except ImportError:
        return _named(point, arch)
    return simulate(_cascade(point["cascade"]["sha"]), arch, point["sizes"], mapping=point["mapping"],
                    objective=point["objective"], batch=point["batch"], heads=point["heads"])


def _row(status: str, error: str | None, arch: Architecture | None = None, r: Result | None = None) -> dict:
    row: dict[str, Any] = {"status": status, "error": error, "mapping": None, "latency_s": None,
                           "energy_j": None, "area_mm2": None, "dram_bytes": None, "cycles": None,
                           "util": {}, "bound": None}
    if arch is not None:
        row["area_mm2"] = sum(area_um2(arch).values()) / 1e6
    if r is not None:
        busy = {u: r.busy_cycles.get(u, 0.0) for u in sorted(arch.units)}
        busy["dram"] = r.dram_bytes / arch.dram_bytes_per_cycle
        row.update(mapping=configuration_of(r.name), latency_s=r.seconds, energy_j=r.joules,
                   dram_bytes=r.dram_bytes, cycles=r.cycles, util={u: r.busy(u) for u in sorted(arch.units)},
                   bound=max(busy, key=lambda u: (busy[u], u)))
    return row


def install_context(context: dict[str, tuple[str, str]]) -> None:
    """Make the files of a sweep (sha -> (path, text)) known to this worker process."""
    _TEXTS.update(context)


def simulate_point(point: dict, context: dict[str, tuple[str, str]] | None = None) -> dict:
    """Evaluate one point (see studies.sweep_spec: arch, params, overrides, cascade, sizes, ...);
    `context` maps the sha of each file of the sweep to (path, text), unless install_context did.
    Returns the row (see the module docstring)."""
    if context:
        _TEXTS.update(context)
    arch = None
    try:
        arch = _architecture(point["arch"]["sha"], json.dumps(point["params"], sort_keys=True),
                             json.dumps(point["overrides"], sort_keys=True))
        return _row("ok", None, arch, evaluate(point, arch))
    except (PointInfeasible, *INFEASIBLE) as err:
        return _row("infeasible", str(err), arch)
    except Exception as err:  # noqa: BLE001 - a bug in one point must not stop a 10^5-point sweep
        return _row("error", f"{type(err).__name__}: {err}", arch)
