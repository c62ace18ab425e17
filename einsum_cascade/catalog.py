"""The attention library: the `.cascade` files shipped in `einsum_cascade/library/`, and the
building blocks of a transformer layer (layernorm, FFN, ...) in `library/blocks/`.

Parsed cascades are cached per process (`load_cached`): a file is parsed once while its
modification time and size are unchanged, and every call returns a fresh copy, so a caller
that changes its cascade cannot change anyone else's.
"""
from __future__ import annotations

import functools
import pickle
from pathlib import Path

from einsum_cascade.ir import Cascade
from einsum_cascade.parser import load

LIBRARY_DIR = Path(__file__).parent / "library"
BLOCKS_DIR = LIBRARY_DIR / "blocks"

MAX_PARSED = 256  # files whose parsed cascades are kept


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


def load_cached(path: str | Path) -> Cascade:
    """`parser.load(path)`, parsed once per process while the file is unchanged (a fresh copy
    on every call). Errors are not cached."""
    p = Path(path)
    try:
        st = p.stat()
        resolved = str(p.resolve())
    except (OSError, RuntimeError, ValueError):
        return load(p)  # let the parser report the file error
    data = _parsed(str(p), resolved, st.st_mtime_ns, st.st_size)
    return load(p) if data is None else pickle.loads(data)  # None: not picklable, parsed afresh


@functools.lru_cache(maxsize=MAX_PARSED)
def _parsed(path: str, resolved: str, mtime_ns: int, size: int) -> bytes | None:
    """The pickled parse of `path` (the file at `resolved` of that modification time and size)."""
    try:
        return pickle.dumps(load(Path(path)))
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def load_library(stem: str) -> Cascade:
    """Parse a library cascade (or a building block) by stem (cached per process, see `load_cached`)."""
    return load_cached(library_path(stem))
