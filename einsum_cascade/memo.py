"""A cache of one value per live object, for objects that are not hashable (a Cascade): the
companion of `functools.lru_cache`, which the value-keyed caches use.

`per_object(obj, make)` keeps `make()` while `obj` lives and forgets it when `obj` is collected,
so an id reused by a later object never finds a stale entry, and nothing is dropped while in use.
"""
from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_LOCK = threading.Lock()
_BY_OBJECT: dict[tuple[Hashable, int], tuple[weakref.ref, Any]] = {}


def per_object(obj: object, make: Callable[[], T], name: Hashable = None) -> T:
    """The value `make()` for the live object `obj` (computed once per object and `name`)."""
    key = (name, id(obj))
    with _LOCK:
        hit = _BY_OBJECT.get(key)
        if hit is not None and hit[0]() is obj:
            return hit[1]
    value = make()
    with _LOCK:
        _BY_OBJECT[key] = (weakref.ref(obj, functools.partial(_forget, _BY_OBJECT, key)), value)
    return value


def _forget(table: dict, key: tuple, ref: weakref.ref) -> None:
    """Drop the entry of a collected object (not a newer one that reuses its id)."""
    entry = table.get(key)
    if entry is not None and entry[0] is ref:
        table.pop(key, None)
