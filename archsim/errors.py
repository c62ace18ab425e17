"""Errors of the simulator: bad architecture data and infeasible schedules."""
from __future__ import annotations

from cascadesim_errors import InputError


class ArchError(InputError, ValueError):
    """Bad architecture data: names the file and the field (`file: field: message`)."""

    def __init__(self, file: str, field: str, message: str):
        super().__init__(message, file=file, field=field)


class ScheduleError(InputError, ValueError):
    """A schedule the engine cannot run (unknown unit, a tile larger than the buffer, a bad dependency)."""
