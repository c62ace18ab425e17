"""The attention library: the `.cascade` files shipped in `einsum_cascade/library/`."""
from __future__ import annotations

from pathlib import Path

from einsum_cascade.ir import Cascade
from einsum_cascade.parser import load

LIBRARY_DIR = Path(__file__).parent / "library"


def library_names() -> list[str]:
    """Stems of every attention cascade of the library, sorted."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.cascade"))


def library_path(stem: str) -> Path:
    """Path of a library cascade by stem; KeyError lists the known stems."""
    path = LIBRARY_DIR / f"{stem}.cascade"
    if not path.is_file():
        raise KeyError(f"no library cascade {stem!r}; known: {', '.join(library_names())}")
    return path


def load_library(stem: str) -> Cascade:
    """Parse a library cascade by stem."""
    return load(library_path(stem))
