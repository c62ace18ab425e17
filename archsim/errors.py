"""Errors of the simulator: bad architecture data and infeasible schedules."""
from __future__ import annotations


class ArchError(ValueError):
    """Bad architecture data: names the file and the field (`file: field: message`)."""

    def __init__(self, file: str, field: str, message: str):
        super().__init__(f"{file}: {field}: {message}")
        self.file, self.field, self.message = file, field, message


class ScheduleError(ValueError):
    """A schedule the engine cannot run (unknown unit, a tile larger than the buffer, a bad dependency)."""
