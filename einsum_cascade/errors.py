"""The project's error for bad cascade text or bad inputs to a cascade."""
from __future__ import annotations


class CascadeError(Exception):
    """An error located in a cascade file: `file:line:col: message` (line and column from 1)."""

    def __init__(self, message: str, file: str = "<string>", line: int = 0, col: int = 0):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{self.file}: {self.message}"
