"""The mapping API: (cascade, workload, architecture) -> Schedule.

`Mapping` is the interface the studies use (`name`, `default_arch`, `cascade()`, `schedule()`);
`SpecMapping` implements it for any `MappingSpec` through the generic scheduler, so a paper's
configuration is a YAML file, not a class.
"""
from __future__ import annotations

import abc

import einsum_cascade as ec

from archsim.config import Architecture
from archsim.schedule import Schedule
from mappings.spec import MappingSpec
from mappings.work import MappingError
from mappings.workload import Workload


class Mapping(abc.ABC):
    """A mapping: `name`, `cascade_name`, `default_arch`, and `schedule(workload, arch)`."""
    name = "mapping"
    cascade_name = ""
    default_arch = ""
    description = ""

    def cascade(self) -> ec.Cascade:
        """The library cascade this mapping schedules."""
        return ec.load_library(self.cascade_name)

    @abc.abstractmethod
    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        """The tile operations of `workload` on `arch`, for archsim's engine."""


class SpecMapping(Mapping):
    """A MappingSpec applied to its cascade (or `cascade`) for a model's attention layer."""

    def __init__(self, spec: MappingSpec, cascade: ec.Cascade | None = None):
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.default_arch = spec.arch or ""
        self.cascade_name = spec.cascade or ""
        self._cascade = cascade

    def cascade(self) -> ec.Cascade:
        if self._cascade is not None:
            return self._cascade
        if not self.cascade_name:
            raise MappingError(f"{self.spec.source}: cascade: the spec names no cascade")
        return ec.load_library(self.cascade_name)

    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        from mappings.scheduler import build_schedule
        N = workload.seq_len
        sizes = {"E": workload.E, "F": workload.F, "M": N, "P": N}
        return build_schedule(self.cascade(), self.spec, arch, sizes, outer_blocks=workload.heads,
                              label=f"{self.name}:{workload.model}:{N}")
