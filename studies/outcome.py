"""The outcome of one study point: its value, or the reason the model gives no number.

`INFEASIBLE` are the errors that mean a point cannot be modelled as asked (no mapping fits, the
schedule does not fit the buffers, a workload, cascade or architecture the point cannot take);
`attempt(fn, ...)` returns `(fn(...), None)`, or `(None, reason)` for one of them or for an
`InvariantViolation` (a simulator defect the certificate caught: the reason starts "not
certified: "). Any other exception is a bug and propagates.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from archsim.errors import ArchError, ScheduleError
from archsim.yamlio import YamlFileError
from einsum_cascade.errors import CascadeError
from mappings.certify import InvariantViolation
from mappings.work import MappingError
from mappings.workload import WorkloadError

INFEASIBLE = (MappingError, ScheduleError, ArchError, WorkloadError, CascadeError, YamlFileError)

T = TypeVar("T")


def attempt(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T | None, str | None]:
    """(fn(*args, **kwargs), None), or (None, the reason) when the point has no number."""
    try:
        return fn(*args, **kwargs), None
    except INFEASIBLE as err:
        return None, str(err)
    except InvariantViolation as err:
        return None, f"not certified: {err}"
