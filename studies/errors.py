"""Errors the command line prints as one line (exit status 2), never as a traceback."""
from __future__ import annotations

from cascadesim_errors import InputError


class UsageError(InputError):
    """A bad command-line value or data file; the message names the option, file or field."""
