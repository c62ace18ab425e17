"""Operation counts and tensor sizes at given sizes, without symbolic simplification.

`cost(cascade).at(sizes)` builds and simplifies the symbolic counts first (tens to hundreds of
milliseconds of sympy per cascade) and then throws them away. The simulation path needs only
the numbers: `numeric_cost(cascade, sizes)` gives the same `CascadeCost` of integers from the
raw count terms, compiled once per cascade object (per process) into plain functions of the
sizes: each term is a dense product of extents or, under a `where`, a count over the
constrained variables whose bounds are affine forms with lambdified coefficients.

The counting rules are those of `einsum_cascade.cost` (the traversal `cost.einsum_ops` is
reused, so both count the same terms); tests check numeric == symbolic for every library
cascade at several sizes.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
import pickle
import threading
import weakref
from collections import Counter
from collections.abc import Callable

import numpy as np
import sympy

from einsum_cascade.ast import size_symbol, var_symbol
from einsum_cascade.cost import (
    _MAX_ENUMERATED_POINTS,
    CascadeCost,
    _bounds,
    _constrained,
    _only_known,
    _op_order,
    _sum_ops,
    _symbolic_elements,
    einsum_ops,
)
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade

_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}


class _Terms(Counter):
    """A formal sum of point-count terms (term key -> multiplicity), added like a number."""

    def __add__(self, other):
        if isinstance(other, int) and other == 0:
            return _Terms(self)
        out = _Terms(self)
        out.update(other)
        return out

    __radd__ = __add__


class _Affine:
    """An affine form in some rank variables whose coefficients are functions of the sizes."""

    def __init__(self, expr: sympy.Expr, outer: list[str], size_syms: list[sympy.Symbol]):
        expr = sympy.expand(sympy.sympify(expr))
        syms = [var_symbol(v) for v in outer]
        constant = expr.subs({s: 0 for s in syms})
        coeffs = [expr.coeff(s) for s in syms]
        self.outer = outer
        self._fn = sympy.lambdify(size_syms, [constant, *coeffs], modules="math")

    def __call__(self, sizes: tuple, env: dict[str, np.ndarray]) -> np.ndarray:
        constant, *coeffs = self._fn(*sizes)
        result = np.asarray(float(constant), dtype=float)
        for v, c in zip(self.outer, coeffs):
            c = float(c)
            if c:
                result = result + c * env[v]
        return result


def _compile_term(cascade: Cascade, vars_: frozenset, where: tuple,
                  size_syms: list[sympy.Symbol]) -> Callable[[dict[str, int], tuple], int]:
    """A function (extents by variable, size values) -> points of the iteration space `vars_`
    under `where` (the rules of cost.numeric_points)."""
    cmps, constrained = _constrained(vars_, where, cascade)
    dense_vars = tuple(v for v in vars_ if v not in constrained)
    if not cmps:
        return lambda extent, sizes: math.prod(extent[v] for v in dense_vars)
    ordered = sorted(constrained)
    inner = ordered[-1]
    bounds = _bounds(inner, cmps, cascade)
    enumerate_all = bounds is None or any(var_symbol(inner) not in (c.left - c.right).free_symbols
                                          for c in cmps)
    outer = ordered if enumerate_all else ordered[:-1]
    if enumerate_all:
        tests = [(_COMPARE[c.op], _Affine(c.left - c.right, outer, size_syms)) for c in cmps]
    else:
        lowers = [_Affine(x, outer, size_syms) for x in bounds[0]]
        uppers = [_Affine(x, outer, size_syms) for x in bounds[1]]

    def points(extent: dict[str, int], sizes: tuple) -> int:
        dense = math.prod(extent[v] for v in dense_vars)
        if math.prod(extent[v] for v in outer) > _MAX_ENUMERATED_POINTS:
            raise CascadeError(f"iteration space over {outer} too large to count", cascade.file)
        grids = np.meshgrid(*[np.arange(extent[v]) for v in outer], indexing="ij", sparse=True)
        env = dict(zip(outer, grids))
        full = tuple(extent[v] for v in outer)
        if enumerate_all:
            ok = np.asarray(True)
            for compare, form in tests:
                ok = ok & compare(form(sizes, env), 0)
            return dense * int(np.broadcast_to(ok, full).sum())
        lower = functools.reduce(np.maximum, [f(sizes, env) for f in lowers], np.asarray(0.0))
        upper = functools.reduce(np.minimum, [f(sizes, env) for f in uppers],
                                 np.asarray(extent[inner] - 1.0))
        counts = np.maximum(0.0, np.floor(upper) - np.ceil(lower) + 1)
        return dense * int(np.broadcast_to(counts, full).sum())

    return points


class CompiledCost:
    """The raw count terms of a cascade, ready to be evaluated at sizes (see module docstring)."""

    def __init__(self, cascade: Cascade):
        self.cascade = cascade
        self.size_names = sorted(set(cascade.size_names) | set(cascade.params))
        size_syms = [size_symbol(n) for n in self.size_names]
        recorded: dict[str, dict[str, _Terms]] = {}
        keys: dict[tuple, None] = {}

        def record(vars_: frozenset, where: tuple) -> _Terms:
            keys.setdefault((vars_, where))
            return _Terms({(vars_, where): 1})

        for e in cascade.einsums:
            if not e.is_initial:
                recorded[e.name] = einsum_ops(e, record)
        self.per_einsum = {name: {op: dict(terms) for op, terms in sorted(ops.items(), key=lambda kv: _op_order(kv[0]))}
                           for name, ops in recorded.items()}
        self.terms = {key: _compile_term(cascade, key[0], key[1], size_syms) for key in keys}
        names = list(cascade.inputs) + cascade.defined
        self._elements = sympy.lambdify(size_syms, [_symbolic_elements(cascade, n) for n in names],
                                        modules="math")
        self._tensor_names = names

    def for_cascade(self, cascade: Cascade) -> "CompiledCost":
        """The same compiled terms attached to `cascade` (an equal cascade)."""
        twin = copy.copy(self)
        twin.cascade = cascade
        return twin

    def at(self, sizes: dict[str, float]) -> CascadeCost:
        """Integer counts per Einsum and in total, and tensor sizes, at `sizes` (partitions
        completed from the whole; unknown names ignored), as `cost(cascade).at(sizes)`."""
        c = self.cascade
        bound = c.bind_sizes({}, _only_known(c, sizes)) if sizes else {}
        values = tuple(_exact(bound[n]) if n in bound else size_symbol(n) for n in self.size_names)
        extent = {v: int(bound[r]) for v, r in c.var_rank.items()} if bound else {}
        counted = {key: fn(extent, values) for key, fn in self.terms.items()}
        per = {name: {op: int(sum(counted[k] * m for k, m in terms.items())) for op, terms in ops.items()}
               for name, ops in self.per_einsum.items()}
        elements = self._elements(*values)
        tensor_sizes = {n: int(x) for n, x in zip(self._tensor_names, elements)}
        return CascadeCost(c, per, _sum_ops(per.values()), tensor_sizes)


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
