"""Per-process cache of values loaded from files (architectures, data tables, parsed YAML).

A study loads the same few files for each of its points; `cached_load(path, load)` runs `load()`
once per (file, key) and returns a deep copy of the value on every call, so a caller that
mutates what it got cannot corrupt the cache. An entry is reused only while the file's
modification time (nanoseconds) and size are unchanged, so an edited file is read again.
Errors are not cached: a failing load raises on every call.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 256


class _Key:
    """The lru_cache argument of one load: hashed and compared by `key` only, carrying `load`."""
    __slots__ = ("key", "load")

    def __init__(self, key: tuple, load: Callable[[], Any]):
        self.key, self.load = key, load

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.key == other.key


@functools.lru_cache(maxsize=MAX_ENTRIES)
def _loaded(key: _Key) -> Any:
    return key.load()  # an exception is not cached: a failing load raises on every call


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


def cached_load(path: str | Path, load: Callable[[], T], key: Hashable = None, copy_value: bool = True) -> T:
    """`load()` (which reads `path`), computed once per process for each (path, key) while the file
    is unchanged; returns a deep copy unless `copy_value` is False (for immutable values)."""
    p = Path(path)
    stamp = _stamp(p)
    if stamp is None:  # missing or unreadable: let `load` raise its own error
        return load()
    try:
        cache_key = (str(p.resolve()), stamp, getattr(load, "__qualname__", repr(load)), key)
        hash(cache_key)
    except (OSError, RuntimeError, TypeError):
        return load()
    value = _loaded(_Key(cache_key, load))
    return copy.deepcopy(value) if copy_value else value


def clear() -> None:
    """Forget every cached value."""
    _loaded.cache_clear()


__all__ = ["cached_load", "clear"]
