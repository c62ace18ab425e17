"""Operation counts and tensor sizes at given sizes, without symbolic simplification.

`cost(cascade).at(sizes)` builds and simplifies the symbolic counts first (tens to hundreds of
milliseconds of sympy per cascade) and then throws them away. The simulation path needs only
the numbers: `numeric_cost(cascade, sizes)` gives the same `CascadeCost` of integers by walking
each Einsum with the exact point counter `einsum_cascade.points.numeric_points` (the traversal
`cost.einsum_ops` is shared, so both count the same terms). The tensor-size formulas are
lambdified once per cascade content, and the counts at one set of sizes are memoised per process
(the mapper and the studies ask for the same point many times). Tests check numeric == symbolic
for every library cascade at several sizes.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import pickle
import threading
import weakref

import sympy

from einsum_cascade.ast import size_symbol
from einsum_cascade.cost import CascadeCost, _only_known, _op_order, _sum_ops, _symbolic_elements, einsum_ops
from einsum_cascade.ir import Cascade
from einsum_cascade.points import numeric_points

_MAX_MEMO = 4096  # count sets kept per compiled cascade


class CompiledCost:
    """A cascade's tensor-size formulas compiled once, and its counts memoised per sizes."""

    def __init__(self, cascade: Cascade):
        self.cascade = cascade
        self.size_names = sorted(set(cascade.size_names) | set(cascade.params))
        size_syms = [size_symbol(n) for n in self.size_names]
        self._tensor_names = list(cascade.inputs) + cascade.defined
        self._elements = sympy.lambdify(size_syms, [_symbolic_elements(cascade, n) for n in self._tensor_names],
                                        modules="math")
        self._memo: dict[tuple, tuple[dict, dict, dict]] = {}
        self._lock = threading.Lock()

    def for_cascade(self, cascade: Cascade) -> "CompiledCost":
        """The same compiled formulas and memo attached to `cascade` (an equal cascade)."""
        twin = copy.copy(self)
        twin.cascade = cascade
        return twin

    def at(self, sizes: dict[str, float]) -> CascadeCost:
        """Integer counts per Einsum and in total, and tensor sizes, at `sizes` (partitions
        completed from the whole; unknown names ignored), as `cost(cascade).at(sizes)`."""
        c = self.cascade
        bound = c.bind_sizes({}, _only_known(c, sizes)) if sizes else {}
        key = tuple(sorted(bound.items()))
        with self._lock:
            hit = self._memo.get(key)
        if hit is None:
            points = numeric_points(c, bound)
            per = {}
            for e in c.einsums:
                if not e.is_initial:
                    ops = einsum_ops(e, points)
                    per[e.name] = {k: int(ops[k]) for k in sorted(ops, key=_op_order)}
            values = tuple(_exact(bound[n]) if n in bound else size_symbol(n) for n in self.size_names)
            tensor_sizes = {n: int(x) for n, x in zip(self._tensor_names, self._elements(*values))}
            hit = (per, _sum_ops(per.values()), tensor_sizes)
            with self._lock:
                if len(self._memo) >= _MAX_MEMO:
                    self._memo.clear()
                self._memo[key] = hit
        per, total, tensor_sizes = hit
        return CascadeCost(c, {n: dict(ops) for n, ops in per.items()}, dict(total), dict(tensor_sizes))


def _exact(x: float) -> float | int:
    """An integral size as an int, so that lambdified products stay exact."""
    return int(x) if float(x).is_integer() else float(x)


_LOCK = threading.Lock()
_BY_OBJECT: dict[int, tuple[weakref.ref, CompiledCost]] = {}
_BY_CONTENT: dict[bytes, CompiledCost] = {}
_MAX_CONTENT = 256


def _forget(key: int, table: dict, _ref) -> None:
    table.pop(key, None)


def compiled_cost(cascade: Cascade) -> CompiledCost:
    """The CompiledCost of `cascade`, built once per cascade content in this process (equal
    cascades, e.g. copies from the per-process load cache, share one)."""
    key = id(cascade)
    with _LOCK:
        hit = _BY_OBJECT.get(key)
        if hit is not None and hit[0]() is cascade:
            return hit[1]
    try:
        content = hashlib.sha256(pickle.dumps(cascade)).digest()
    except (pickle.PicklingError, TypeError, AttributeError):
        content = None
    with _LOCK:
        compiled = _BY_CONTENT.get(content) if content is not None else None
    if compiled is None:
        compiled = CompiledCost(cascade)
    else:
        compiled = compiled.for_cascade(cascade)
    with _LOCK:
        if content is not None:
            if len(_BY_CONTENT) >= _MAX_CONTENT:
                _BY_CONTENT.clear()
            _BY_CONTENT[content] = compiled
        _BY_OBJECT[key] = (weakref.ref(cascade, functools.partial(_forget, key, _BY_OBJECT)), compiled)
    return compiled


def numeric_cost(cascade: Cascade, sizes: dict[str, float]) -> CascadeCost:
    """Integer operation counts (per Einsum, total) and tensor sizes of `cascade` at `sizes`:
    the same numbers as `cost(cascade).at(sizes)`, without building symbolic expressions."""
    return compiled_cost(cascade).at(sizes)


__all__ = ["CompiledCost", "compiled_cost", "numeric_cost"]
