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
import pickle
import threading

import sympy

from einsum_cascade.ast import size_symbol
from einsum_cascade.cost import CascadeCost, _only_known, _op_order, _sum_ops, _symbolic_elements, einsum_ops
from einsum_cascade.ir import Cascade
from einsum_cascade.memo import per_object
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


MAX_CONTENTS = 256  # cascades of distinct content whose compiled costs are kept


@functools.lru_cache(maxsize=MAX_CONTENTS)
def _compiled_by_content(content: bytes) -> CompiledCost:
    """The CompiledCost of the cascade pickled as `content` (equal cascades share one)."""
    return CompiledCost(pickle.loads(content))


def _compile(cascade: Cascade) -> CompiledCost:
    try:
        content = pickle.dumps(cascade)
    except (pickle.PicklingError, TypeError, AttributeError):
        return CompiledCost(cascade)
    return _compiled_by_content(content).for_cascade(cascade)


def compiled_cost(cascade: Cascade) -> CompiledCost:
    """The CompiledCost of `cascade`, built once per cascade content in this process (equal
    cascades, e.g. copies from the per-process load cache, share one)."""
    return per_object(cascade, lambda: _compile(cascade), "compiled_cost")


def numeric_cost(cascade: Cascade, sizes: dict[str, float]) -> CascadeCost:
    """Integer operation counts (per Einsum, total) and tensor sizes of `cascade` at `sizes`:
    the same numbers as `cost(cascade).at(sizes)`, without building symbolic expressions."""
    return compiled_cost(cascade).at(sizes)


__all__ = ["CompiledCost", "compiled_cost", "numeric_cost"]
