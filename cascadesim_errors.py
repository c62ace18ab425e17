"""The one base class of bad-input errors, importable by every package without importing any.

Every error that reports bad input (a cascade file, an architecture or mapping description, a
sweep spec, a command-line value) derives from `InputError`; the command line prints any of them as
one line, `cascadesim: error: FILE:LINE:COL: FIELD: message`, with exit status 2, never a traceback.
This module sits at the top level, below the packages, because no package is below all the others:
`archsim` and `einsum_cascade` import nothing of each other (tests/test_layering.py), and both
raise input errors. In `einsum_cascade` it would make the simulator depend on the language (and
close a cycle through the fusion certificate's call of `mappings`); importing `einsum_cascade`
also loads sympy (about 0.5 s), which `archsim` and the command line's parser avoid
(tests/test_cli_lazy.py). `einsum_cascade.errors` re-exports it.
"""
from __future__ import annotations

import copyreg


class InputError(Exception):
    """Bad input, located where known: `file`, `line` and `col` (from 1; 0 = unknown), `field`."""

    def __init__(self, message: str, *, file: str | None = None, line: int = 0, col: int = 0,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file, self.line, self.col, self.field = file, line, col, field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}:{self.col}: " if self.line else f"{self.file}: "
        if self.field:
            where += f"{self.field}: "
        return where + self.message

    def __reduce__(self):
        """Pickled (for worker processes) whatever a subclass's constructor takes: rebuilt from
        its args and attributes, without calling the constructor again."""
        return copyreg.__newobj__, (type(self), *self.args), self.__dict__
