"""The project's error for bad cascade text or bad inputs to a cascade, and the base of every
bad-input error (`InputError`, defined in the top-level cascadesim_errors module)."""
from __future__ import annotations

from cascadesim_errors import InputError

__all__ = ["CascadeError", "InputError"]


class CascadeError(InputError):
    """An error located in a cascade file: `file:line:col: message` (line and column from 1)."""

    def __init__(self, message: str, file: str = "<string>", line: int = 0, col: int = 0):
        super().__init__(message, file=file, line=line, col=col)
