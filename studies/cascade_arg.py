"""The FILE argument of the commands: a `.cascade` path or the stem of a library cascade."""
from __future__ import annotations

from pathlib import Path

import einsum_cascade as ec
from studies.errors import UsageError


def load_cascade(arg: str) -> ec.Cascade:
    """Parse `arg` as a file if it is one (or ends in .cascade), else as a library stem."""
    path = Path(arg)
    if path.suffix == ".cascade" or path.exists():
        return ec.load(path)
    if arg in ec.library_names():
        return ec.load_library(arg)
    raise UsageError(f"FILE: '{arg}' is neither a file nor a library cascade "
                     f"(library: {', '.join(ec.library_names())})")
