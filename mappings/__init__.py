"""Mappings: turn (cascade, sizes, architecture) into a Schedule for archsim.

A mapping is data: a `MappingSpec` (mappings/spec.py) loaded from YAML (mappings/specs/: unfused,
flat, cascade, arch, fusemax, ...) and turned into a Schedule by the generic scheduler
(mappings/scheduler.py). `simulate` is the one-call API; `mapping="auto"` searches (mappings/mapper.py).
"""
from __future__ import annotations

from mappings.base import Mapping, SpecMapping
from mappings.spec import MappingSpec, SpecError, load_spec, parse_spec, spec_names
from mappings.work import MappingError
from mappings.simulation import SimulationResult, simulate

# the FuseMax paper's five configurations (spec files in mappings/specs/)
MAPPINGS = ("unfused", "flat", "cascade", "arch", "fusemax")


def get_mapping(name: str) -> Mapping:
    """The Mapping of spec `name` (a file of mappings/specs/ or a YAML path).

    Raises MappingError (which the CLI reports without a traceback) for an unknown name.
    """
    return SpecMapping(load_spec(name))


def query_rows_per_group(cascade, spec: MappingSpec, arch, sizes: dict[str, float]) -> int:
    """Rows of the query rank in one group of mapping `spec` of `cascade` on `arch` at `sizes`: the
    queries whose running state stays in the buffer while K and V stream once from DRAM (the spec's
    `query_group`, or with `auto` the largest that fits); 1 where the spec does not tile queries."""
    from mappings.scheduler import context, query_group_rows
    return query_group_rows(context(cascade, spec, arch, sizes))


__all__ = ["Mapping", "MappingSpec", "SpecMapping", "SpecError", "MappingError", "MAPPINGS", "get_mapping",
           "load_spec", "parse_spec", "spec_names", "simulate", "SimulationResult", "query_rows_per_group"]
