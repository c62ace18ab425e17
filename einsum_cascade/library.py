"""The attention library: the `.cascade` files shipped in `einsum_cascade/library/`, and the
building blocks of a transformer layer (layernorm, FFN, ...) in `library/blocks/`."""
from __future__ import annotations

from pathlib import Path

from einsum_cascade.ir import Cascade
from einsum_cascade.parser import load

LIBRARY_DIR = Path(__file__).parent / "library"
BLOCKS_DIR = LIBRARY_DIR / "blocks"


def library_names() -> list[str]:
    """Stems of every attention cascade of the library, sorted."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.cascade"))


def block_names() -> list[str]:
    """Stems of the building-block cascades (`library/blocks/`), sorted."""
    return sorted(p.stem for p in BLOCKS_DIR.glob("*.cascade"))


def library_path(stem: str) -> Path:
    """Path of a library cascade (or, failing that, a building block) by stem; KeyError lists the known stems."""
    for folder in (LIBRARY_DIR, BLOCKS_DIR):
        path = folder / f"{stem}.cascade"
        if path.is_file():
            return path
    raise KeyError(f"no library cascade {stem!r}; known: {', '.join(library_names())}; "
                   f"blocks: {', '.join(block_names())}")


def load_library(stem: str) -> Cascade:
    """Parse a library cascade (or a building block) by stem."""
    return load(library_path(stem))
