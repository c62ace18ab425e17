"""Mappings: turn (cascade, workload, architecture) into a Schedule for archsim.

MAPPINGS maps a configuration name to a factory of Mapping objects (see mappings.base).
"""
from __future__ import annotations

from mappings.base import Mapping
from mappings.onepass import arch_only, cascade_on_flat, fusemax
from mappings.threepass import FlatMapping, UnfusedMapping
from mappings.work import MappingError

MAPPINGS = {
    "unfused": UnfusedMapping,
    "flat": FlatMapping,
    "cascade": cascade_on_flat,
    "arch": arch_only,
    "fusemax": fusemax,
}


def get_mapping(name: str) -> Mapping:
    """A new Mapping for configuration `name` (unfused, flat, cascade, arch, fusemax).

    Raises MappingError (which the CLI reports without a traceback) for an unknown name.
    """
    if name not in MAPPINGS:
        raise MappingError(f"unknown mapping {name!r} (known: {', '.join(MAPPINGS)})")
    return MAPPINGS[name]()
