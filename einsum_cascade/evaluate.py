"""Reference evaluation of a cascade with numpy (float64).

Every value is a `Labeled` array: numpy data whose axes are named by rank variables, with an
optional presence mask (False = absent, per the `where` semantics). Elementwise operators
broadcast by name; a sum of products is contracted with batched matrix products; Python loops
run only over the steps of recurrences (iterative ranks).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np
import sympy

from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Comparison, Not, Node, Number, Reduce,
                                Size, Unary, Var, size_symbol, var_symbol)
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade, Einsum


@dataclass
class Labeled:
    """Data with one named axis per rank variable; `mask` broadcasts against `data`."""

    data: np.ndarray
    vars: tuple[str, ...]
    mask: np.ndarray | None = None


def _union(*var_lists: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for vs in var_lists:
        out.extend(v for v in vs if v not in out)
    return tuple(out)


def _expand(array: np.ndarray, have: tuple[str, ...], want: tuple[str, ...]) -> np.ndarray:
    """Transpose `array` (axes `have`) to the order of `want`, with length-1 axes for the rest."""
    if have == want:
        return array
    order = sorted(range(len(have)), key=lambda i: want.index(have[i]))
    array = np.transpose(array, order)
    shape = [1] * len(want)
    for axis, var in zip(range(len(have)), (have[i] for i in order)):
        shape[want.index(var)] = array.shape[axis]
    return array.reshape(shape)


def _broadcast(value: Labeled, want: tuple[str, ...], extents: dict[str, int]) -> Labeled:
    """`value` laid out over exactly `want`, every axis at full extent."""
    full = tuple(extents[v] for v in want)
    data = np.broadcast_to(_expand(value.data, value.vars, want), full)
    mask = None
    if value.mask is not None:
        mask = np.broadcast_to(_expand(value.mask, value.vars, want), full)
    return Labeled(data, want, mask)


_IDENTITY = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}
_REDUCER = {"sum": np.add, "max": np.maximum, "min": np.minimum, "prod": np.multiply}
_erf = np.vectorize(math.erf, otypes=[float])
_FUNCTIONS = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "recip": lambda x: 1.0 / x,
    "abs": np.abs,
    "square": np.square,
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "erf": _erf,
    "cos": np.cos,
    "sin": np.sin,
    "sign": np.sign,
    "max": np.maximum,
    "min": np.minimum,
    "pow": np.power,
}
_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}


class _Evaluator:
    """Holds the tensors computed so far and evaluates Einsums one at a time."""

    def __init__(self, cascade: Cascade, sizes: dict[str, float]):
        self.cascade = cascade
        self.sizes = sizes
        self.extents = {v: int(sizes[r]) for v, r in cascade.var_rank.items()}
        self.size_subs = {size_symbol(n): v for n, v in sizes.items()}
        self.tensors: dict[str, Labeled] = {}  # stored with vars = ("#0", "#1", ...)
        self.fixed: dict[str, int] = {}
        self.line = 0  # line of the Einsum being evaluated (for errors)
        self.want_order: tuple[str, ...] = ()  # layout of products (see _matmul_layout)
        self._affine_cache: dict[sympy.Expr, tuple[dict[str, float], float]] = {}

    # -- affine index expressions ------------------------------------------------------------
    def affine(self, expr: sympy.Expr) -> tuple[dict[str, float], float]:
        """Coefficient of each rank variable and the constant term, sizes substituted."""
        cached = self._affine_cache.get(expr)
        if cached is None:
            expanded = sympy.expand(expr.subs(self.size_subs))
            coeffs = {}
            constant = expanded
            for var in self.cascade.variables:
                sym = var_symbol(var)
                if sym in expanded.free_symbols:
                    coeffs[var] = float(expanded.coeff(sym))
                    constant = constant.subs(sym, 0)
            cached = (coeffs, float(constant))
            self._affine_cache[expr] = cached
        return cached

    def affine_value(self, expr: sympy.Expr) -> Labeled:
        """An affine expression evaluated over its free (not fixed) variables."""
        coeffs, constant = self.affine(expr)
        free = tuple(v for v in coeffs if v not in self.fixed)
        total = constant + sum(c * self.fixed[v] for v, c in coeffs.items() if v in self.fixed)
        data: np.ndarray = np.asarray(total, dtype=float)
        for var in free:
            axis = _expand(np.arange(self.extents[var], dtype=float), (var,), free)
            data = data + coeffs[var] * axis
        return Labeled(np.broadcast_to(data, tuple(self.extents[v] for v in free)), free)

    # -- value expressions -------------------------------------------------------------------
    def value(self, node: Node) -> Labeled:
        if isinstance(node, Number):
            return Labeled(np.asarray(node.value, dtype=float), ())
        if isinstance(node, Size):
            return Labeled(np.asarray(float(self.sizes[node.name])), ())
        if isinstance(node, Var):
            if node.name in self.fixed:
                return Labeled(np.asarray(float(self.fixed[node.name])), ())
            return Labeled(np.arange(self.extents[node.name], dtype=float), (node.name,))
        if isinstance(node, Access):
            return self.access(node)
        if isinstance(node, Unary):
            operand = self.value(node.operand)
            return Labeled(-operand.data, operand.vars, operand.mask)
        if isinstance(node, Binary):
            return self.elementwise(_BINARY[node.op], [self.value(node.left), self.value(node.right)])
        if isinstance(node, Call) and node.func == "select":
            return self.select(*[self.value(a) for a in node.args])
        if isinstance(node, Call):
            return self.elementwise(_FUNCTIONS[node.func], [self.value(a) for a in node.args])
        if isinstance(node, Compare):
            return self.elementwise(_COMPARE[node.op], [self.value(node.left), self.value(node.right)])
        if isinstance(node, BoolOp):
            logic = np.logical_and if node.op == "and" else np.logical_or
            func = lambda *xs: functools.reduce(logic, [x != 0 for x in xs])  # noqa: E731
            return self.elementwise(func, [self.value(a) for a in node.args])
        if isinstance(node, Not):
            return self.elementwise(lambda x: x == 0, [self.value(node.arg)])
        if isinstance(node, Reduce):
            return self.reduce(node.op, node.vars, node.body, None, node.where, node.k)
        raise TypeError(f"unknown node {node!r}")

    def select(self, cond: Labeled, a: Labeled, b: Labeled) -> Labeled:
        """`select(cond, a, b)`: a where cond is non-zero, else b; present where cond and the
        chosen operand are."""
        want = _union(cond.vars, a.vars, b.vars)
        c = _expand(cond.data, cond.vars, want) != 0
        data = np.where(c, _expand(a.data, a.vars, want), _expand(b.data, b.vars, want))
        mask = None
        if cond.mask is not None or a.mask is not None or b.mask is not None:
            ones = np.ones((), dtype=bool)
            pick = lambda x: ones if x.mask is None else _expand(x.mask, x.vars, want)  # noqa: E731
            mask = pick(cond) & np.where(c, pick(a), pick(b))
        return Labeled(np.asarray(data, dtype=float), want, mask)

    def elementwise(self, func, operands: list[Labeled]) -> Labeled:
        want = _union(*(o.vars for o in operands))
        arrays = [_expand(o.data, o.vars, want) for o in operands]
        with np.errstate(all="ignore"):
            scratch = _scratch(func, arrays)
            data = func(*arrays) if scratch is None else func(*arrays, out=scratch)
        mask = None
        for operand in operands:
            if operand.mask is not None:
                m = _expand(operand.mask, operand.vars, want)
                mask = m if mask is None else mask & m
        return Labeled(np.asarray(data, dtype=float), want, mask)

    def access(self, node: Access) -> Labeled:
        stored = self.tensors[node.tensor]
        plain = []
        for index in node.indices:
            coeffs, constant = self.affine(index)
            if constant == 0 and len(coeffs) == 1 and next(iter(coeffs.values())) == 1:
                plain.append(next(iter(coeffs)))
            else:
                plain.append(None)
        inside = all(self.fixed[v] < n for v, n in zip(plain, stored.data.shape) if v in self.fixed)
        if None not in plain and len(set(plain)) == len(plain) and inside:
            # Plain distinct variables: a view (the first `extent` entries of each free axis, e.g.
            # the M1 previous steps of an iterative tensor of M1 + 1), fixed ones picked by index.
            picks = tuple(self.fixed.get(v, slice(0, self.extents[v])) for v in plain)
            vars_ = tuple(v for v in plain if v not in self.fixed)
            data = np.asarray(stored.data[picks])
            mask = np.asarray(stored.mask[picks]) if stored.mask is not None else None
            if data.shape != tuple(self.extents[v] for v in vars_):
                return self._gather(node, stored)
            return Labeled(data, vars_, mask)
        return self._gather(node, stored)

    def _gather(self, node: Access, stored: Labeled) -> Labeled:
        """Fancy-indexed read; positions outside the tensor are absent."""
        indices = [self.affine_value(index) for index in node.indices]
        want = _union(*(i.vars for i in indices))
        full = tuple(self.extents[v] for v in want)
        valid = np.ones(full, dtype=bool)
        picks = []
        for d, index in enumerate(indices):
            raw = np.broadcast_to(_expand(index.data, index.vars, want), full)
            as_int = np.rint(raw).astype(np.int64)
            inside = (as_int >= 0) & (as_int < stored.data.shape[d]) & (as_int == raw)
            valid &= inside
            picks.append(np.where(inside, as_int, 0))
        data = stored.data[tuple(picks)]
        mask = valid
        if stored.mask is not None:
            mask = mask & np.broadcast_to(stored.mask, stored.data.shape)[tuple(picks)]
        return Labeled(data, want, None if mask.all() else mask)

    # -- reductions --------------------------------------------------------------------------
    def reduce(self, op: str, rvars: tuple[str, ...], body: Node, where: Labeled | None,
               conditions: tuple = (), k: Node | None = None) -> Labeled:
        """Reduce `body` over `rvars`, skipping absent points (and points where `where` or the
        reduction's own `conditions` are false). An all-absent reduction gives the operator's
        identity; `kth` / `kth_smallest` give -inf / +inf when fewer than k points are present."""
        inside = self.condition(conditions) if conditions else None
        if inside is not None:
            where = inside if where is None else self.combine(where, inside)
        if op == "sum":
            factors = _product_factors(body)
            if len(factors) > 1:
                return self.contract([self.value(f) for f in factors], rvars, where)
        value = self.value(body)
        if where is not None:
            want = _union(value.vars, where.vars)
            mask = _expand(where.data, where.vars, want)
            if value.mask is not None:
                mask = mask & _expand(value.mask, value.vars, want)
            full = tuple(self.extents[v] for v in want)
            value = Labeled(np.broadcast_to(_expand(value.data, value.vars, want), full), want, mask)
        if op in ("kth", "kth_smallest"):
            return self._kth(op, value, rvars, self.value(k))
        return self._fold(op, value, rvars)

    def _kth(self, op: str, value: Labeled, rvars: tuple[str, ...], k: Labeled) -> Labeled:
        """The k-th largest (`kth`) or smallest (`kth_smallest`) present value over `rvars`."""
        if k.mask is not None and not k.mask.all():
            raise CascadeError(f"{op}: k is absent at some points", self.cascade.file, self.line, 1)
        if not np.all((k.data == np.rint(k.data)) & (k.data >= 1)):
            bad = k.data[~((k.data == np.rint(k.data)) & (k.data >= 1))].flat[0]
            raise CascadeError(f"{op}: k must be a positive integer, got {bad:g}",
                               self.cascade.file, self.line, 1)
        live = tuple(v for v in rvars if v not in self.fixed)
        keep = tuple(v for v in _union(value.vars, k.vars) if v not in live)
        want = keep + live
        full = tuple(self.extents[v] for v in want)
        empty = -math.inf if op == "kth" else math.inf
        data = value.data if value.mask is None else np.where(value.mask, value.data, empty)
        data = np.broadcast_to(_expand(np.asarray(data), value.vars, want), full)
        data = data.reshape(full[:len(keep)] + (-1,))
        ordered = np.sort(data, axis=-1)
        if op == "kth":
            ordered = ordered[..., ::-1]
        count = ordered.shape[-1]
        index = np.broadcast_to(_expand(k.data, k.vars, keep), full[:len(keep)]).astype(np.int64) - 1
        picked = np.take_along_axis(ordered, np.minimum(index, count - 1)[..., None], axis=-1)[..., 0]
        picked = np.where(index < count, picked, empty)
        return Labeled(np.asarray(picked, dtype=float), keep)

    def _fold(self, op: str, value: Labeled, rvars: tuple[str, ...]) -> Labeled:
        data = value.data
        if value.mask is not None:
            data = np.where(value.mask, data, _IDENTITY[op])
        data = np.broadcast_to(data, tuple(self.extents[v] for v in value.vars))
        axes = tuple(i for i, v in enumerate(value.vars) if v in rvars)
        keep = tuple(v for v in value.vars if v not in rvars)
        if axes:
            data = _REDUCER[op].reduce(data, axis=axes)
        absent_axes = [v for v in rvars if v not in value.vars and v not in self.fixed]
        count = math.prod(self.extents[v] for v in absent_axes)
        if count > 1 and op == "sum":
            data = data * count
        elif count > 1 and op == "prod":
            data = data**count
        return Labeled(np.asarray(data, dtype=float), keep)

    def contract(self, factors: list[Labeled], rvars: tuple[str, ...], where: Labeled | None) -> Labeled:
        """Sum over `rvars` of the product of `factors` by pairwise batched matrix products."""
        arrays = []
        for f in factors:
            data = f.data if f.mask is None else np.where(f.mask, f.data, 0.0)
            arrays.append(Labeled(data, f.vars))
        if where is not None:
            arrays.append(Labeled(where.data.astype(float), where.vars))
        every = _union(*(a.vars for a in arrays))
        keep = tuple(v for v in every if v not in rvars)
        while len(arrays) > 1:
            a, b = arrays[0], arrays[1]
            needed = set(keep).union(*(x.vars for x in arrays[2:]))
            arrays = [self._pair(a, b, needed)] + arrays[2:]
        result = self._sum_out(arrays[0], [v for v in arrays[0].vars if v not in keep])
        count = math.prod(self.extents[v] for v in rvars if v not in every and v not in self.fixed)
        return Labeled(result.data * count if count > 1 else result.data, result.vars)

    def _pair(self, a: Labeled, b: Labeled, needed: set[str]) -> Labeled:
        """The product of a and b summed over the variables not `needed` afterwards."""
        a = self._sum_out(a, [v for v in a.vars if v not in b.vars and v not in needed])
        b = self._sum_out(b, [v for v in b.vars if v not in a.vars and v not in needed])
        shared = [v for v in a.vars if v in b.vars]
        ext = {v: n for x in (a, b) for v, n in zip(x.vars, x.data.shape)}
        size = lambda vs: math.prod(ext[v] for v in vs)  # noqa: E731
        batch, inner, x, y, x_free, y_free = _matmul_layout(a, b, shared, needed, self.want_order)
        xm = _expand(x.data, x.vars, batch + x_free + inner).reshape(size(batch), size(x_free), size(inner))
        ym = _expand(y.data, y.vars, batch + inner + y_free).reshape(size(batch), size(inner), size(y_free))
        order = batch + x_free + y_free
        stored = tuple(v for v in self.want_order if v in order)
        if batch and len(x_free) == len(y_free) == 1 and set(stored) == set(order) and stored != order \
                and size(batch) <= _MAX_LOOPED_BATCH:
            # a few large products written straight into the stored tensor's layout (no transposing copy)
            out = np.empty(tuple(ext[v] for v in stored))  # owned: a temporary
            view = out.transpose([stored.index(v) for v in order])
            for n, idx in enumerate(np.ndindex(*(ext[v] for v in batch))):
                np.matmul(xm[n], ym[n], out=view[idx])
            return Labeled(out, stored)
        out = np.empty(tuple(ext[v] for v in order))  # owned: a temporary
        np.matmul(xm, ym, out=out.reshape(size(batch), size(x_free), size(y_free)))
        return Labeled(out, order)

    @staticmethod
    def _sum_out(x: Labeled, vars_: list[str]) -> Labeled:
        if not vars_:
            return x
        axes = tuple(x.vars.index(v) for v in vars_)
        return Labeled(x.data.sum(axis=axes), tuple(v for v in x.vars if v not in vars_))

    # -- conditions --------------------------------------------------------------------------
    def condition(self, where: tuple) -> Labeled | None:
        """A conjunction of conditions as a boolean Labeled array over its free variables."""
        result: Labeled | None = None
        for cond in where:
            part = self.truth(cond)
            result = part if result is None else self.combine(result, part)
        return result

    def truth(self, cond) -> Labeled:
        """One condition as a boolean Labeled array; a data-dependent comparison is false where
        an operand is absent."""
        if isinstance(cond, Comparison):
            diff = self.affine_value(cond.left - cond.right)
            return Labeled(_COMPARE[cond.op](diff.data, 0.0), diff.vars)
        if isinstance(cond, BoolOp):
            parts = [self.truth(a) for a in cond.args]
            want = _union(*(p.vars for p in parts))
            logic = np.logical_and if cond.op == "and" else np.logical_or
            data = functools.reduce(logic, [_expand(p.data, p.vars, want) for p in parts])
            return Labeled(np.asarray(data), want)
        if isinstance(cond, Not):
            inner = self.truth(cond.arg)
            return Labeled(~inner.data, inner.vars)
        value = self.value(cond)  # a data-dependent Compare: 0/1 with the operands' mask
        data = value.data != 0
        if value.mask is not None:
            data = data & value.mask
        return Labeled(np.asarray(data), value.vars)

    @staticmethod
    def combine(a: Labeled, b: Labeled) -> Labeled:
        want = _union(a.vars, b.vars)
        return Labeled(_expand(a.data, a.vars, want) & _expand(b.data, b.vars, want), want)

    # -- Einsums -----------------------------------------------------------------------------
    def allocate(self, name: str) -> None:
        shape = self.cascade.tensor_shape(name, self.sizes)
        axes = tuple(f"#{d}" for d in range(len(shape)))
        self.tensors[name] = Labeled(np.zeros(shape), axes, None)

    def run(self, e: Einsum) -> None:
        """Evaluate one Einsum (at the fixed step, inside a recurrence) and store its result."""
        self.line = e.line
        self.want_order = tuple(v for v in _ordered_vars(e) if v not in self.fixed)  # layout of products
        where = self.condition(e.space_where) if e.space_where else None
        implicit = tuple(v for v in sorted(e.implicit_vars) if v not in self.fixed)
        inner_where = where if where is not None and set(where.vars) & set(implicit) else None
        outer_where = where if where is not None and inner_where is None else None
        if implicit:
            value = self.reduce("sum", implicit, e.expr, inner_where)
        elif inner_where is not None:
            value = self.reduce("sum", (), e.expr, inner_where)
        else:
            value = self.value(e.expr)
        if outer_where is not None:
            want = _union(value.vars, outer_where.vars)
            mask = _expand(outer_where.data, outer_where.vars, want)
            if value.mask is not None:
                mask = mask & _expand(value.mask, value.vars, want)
            value = Labeled(_expand(value.data, value.vars, want), want, mask)
        self.store(e, value)

    def store(self, e: Einsum, value: Labeled) -> None:
        stored = self.tensors[e.name]
        out_vars = tuple(v for v in _ordered_vars(e) if v not in self.fixed)
        extra = set(value.vars) - set(out_vars)
        if extra:
            raise CascadeError(f"{e.name}: right-hand side depends on {sorted(extra)} "
                               "which is neither on the left nor reduced", self.cascade.file, e.line, 1)
        strided = self._strided_target(e.lhs, out_vars, stored.data.shape)
        if strided is not None:  # a view of the stored tensor: no index arrays
            picks, order = strided
            if _is_temporary(value.data) and value.vars == order and value.mask is None \
                    and stored.mask is None and value.data.shape == stored.data.shape \
                    and all(p == slice(0, n, 1) for p, n in zip(picks, stored.data.shape)):
                stored.data = value.data  # the whole tensor, already laid out: adopt it
                return
            value = _broadcast(value, order, self.extents)
            stored.data[picks] = value.data
            if value.mask is not None or stored.mask is not None:
                if stored.mask is None:
                    stored.mask = np.ones(stored.data.shape, dtype=bool)
                stored.mask[picks] = True if value.mask is None else value.mask
            return
        value = _broadcast(value, out_vars, self.extents)
        indices = [self.affine_value(index) for index in e.lhs]
        full = tuple(self.extents[v] for v in out_vars)
        picks = tuple(np.rint(np.broadcast_to(_expand(i.data, i.vars, out_vars), full)).astype(np.int64)
                      for i in indices)
        stored.data[picks] = value.data
        if value.mask is not None or stored.mask is not None:
            if stored.mask is None:
                stored.mask = np.ones(stored.data.shape, dtype=bool)
            stored.mask[picks] = True if value.mask is None else value.mask

    def _strided_target(self, lhs: tuple, out_vars: tuple[str, ...], shape: tuple[int, ...]):
        """(basic index, variable order) writing the left-hand side as a strided view, when
        each index is a constant or one free variable times a positive integer plus a constant,
        each variable in one index, all inside `shape`; else None (a fancy-indexed write)."""
        picks: list = []
        order: list[str] = []
        for index, extent in zip(lhs, shape):
            coeffs, constant = self.affine(index)
            constant += sum(c * self.fixed[v] for v, c in coeffs.items() if v in self.fixed)
            free = [(v, c) for v, c in coeffs.items() if v not in self.fixed and c != 0]
            if not float(constant).is_integer():
                return None
            start = int(constant)
            if not free:
                if not 0 <= start < extent:
                    return None
                picks.append(start)
                continue
            if len(free) != 1:
                return None
            var, step = free[0]
            n = self.extents[var]
            if var in order or not float(step).is_integer() or step < 1 or start < 0 \
                    or start + int(step) * (n - 1) >= extent:
                return None
            picks.append(slice(start, start + int(step) * (n - 1) + 1, int(step)))
            order.append(var)
        if sorted(order) != sorted(out_vars):
            return None
        return tuple(picks), tuple(order)

    def run_recurrence(self, members: list[str]) -> None:
        """Evaluate a strongly connected group of Einsums step by step over its iterative rank."""
        cascade = self.cascade
        steps = {cascade.einsum(n).iterative_var for n in members} - {None}
        if len(steps) != 1:
            e = cascade.einsum(members[0])
            raise CascadeError(f"the recurrence through {', '.join(members)} must step exactly one "
                               f"variable, found {sorted(steps) or 'none'}", cascade.file, e.line, 1)
        var = steps.pop()
        for name in members:
            e = cascade.einsum(name)
            if var not in e.output_vars:
                raise CascadeError(f"{name} is part of the recurrence over {var} but is not indexed "
                                   f"by {var}", cascade.file, e.line, 1)
        inner = nx.DiGraph()
        inner.add_nodes_from(members)
        inner.add_edges_from((u, v) for u, v, d in cascade.graph.subgraph(members).edges(data="delayed")
                             if not d)
        order = list(nx.lexicographical_topological_sort(inner, key=lambda n: cascade.einsum(n).line))
        for name in order:
            self.allocate(name)
            initial = cascade.initial(name)
            if initial is not None:
                self.run(initial)
        for step in range(self.extents[var]):
            self.fixed = {var: step}
            for name in order:
                self.run(cascade.einsum(name))
        self.fixed = {}


_MAX_LOOPED_BATCH = 256  # batched products looped in Python (to write a strided output) at most


def _is_temporary(data: np.ndarray) -> bool:
    """True for an array computed by this evaluation and referenced by nothing else: it owns its
    memory (every read of a stored tensor or an input is a view with a base)."""
    return (isinstance(data, np.ndarray) and data.base is None and data.flags.owndata
            and data.flags.writeable and data.flags.c_contiguous and data.dtype == np.float64
            and data.ndim > 0)


def _scratch(func, arrays: list[np.ndarray]) -> np.ndarray | None:
    """An operand that a ufunc may overwrite with its result (a temporary of the result's shape)."""
    if not isinstance(func, np.ufunc) or func.nout != 1 or func.nin != len(arrays):
        return None
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    for a in arrays:
        if _is_temporary(a) and a.shape == shape:
            return a
    return None


def _copies(data: np.ndarray, have: tuple[str, ...], want: tuple[str, ...]) -> int:
    """Elements copied to lay `data` (axes `have`) out in the order `want` (0 for a view)."""
    view = _expand(data, have, tuple(v for v in want if v in have))
    return 0 if view.flags.c_contiguous else view.size


def _matmul_layout(a: Labeled, b: Labeled, shared: list[str], needed: set[str], want: tuple[str, ...]):
    """(batch, inner, x, y, x_free, y_free) for x[batch, x_free, inner] @ y[batch, inner, y_free]:
    the operand order and axis orders that copy the fewest elements, counting a product that is
    not in the order `want` (the stored tensor's) as copied once more when stored."""
    rank = {v: i for i, v in enumerate(want)}
    by_want = lambda vs: tuple(sorted(vs, key=lambda v: rank.get(v, len(rank))))  # noqa: E731
    best = None
    for x, y in ((a, b), (b, a)):
        for arrange in (tuple, by_want):
            batch = arrange(v for v in shared if v in needed)
            inner = tuple(v for v in shared if v not in needed)
            x_free = arrange(v for v in x.vars if v not in y.vars)
            y_free = arrange(v for v in y.vars if v not in x.vars)
            out = batch + x_free + y_free
            stored = tuple(v for v in want if v in out)
            cost = _copies(x.data, x.vars, batch + x_free + inner) + \
                _copies(y.data, y.vars, batch + inner + y_free)
            if stored != tuple(v for v in out if v in rank):
                extent = dict(zip(x.vars + y.vars, x.data.shape + y.data.shape))
                cost += math.prod(extent[v] for v in out)
            if best is None or cost < best[0]:
                best = (cost, (batch, inner, x, y, x_free, y_free))
    return best[1]


def _ordered_vars(e: Einsum) -> tuple[str, ...]:
    out: list[str] = []
    for index in e.lhs:
        for sym in sorted(index.free_symbols, key=str):
            if str(sym) in e.output_vars and str(sym) not in out:
                out.append(str(sym))
    return tuple(out)


def _product_factors(node: Node) -> list[Node]:
    if isinstance(node, Binary) and node.op == "*":
        return _product_factors(node.left) + _product_factors(node.right)
    return [node]


def evaluation_order(cascade: Cascade) -> list[list[str]]:
    """Groups of defined tensors in dependency order; a group of several (or one with a
    self-loop) is a recurrence evaluated step by step."""
    defined = cascade.defined
    graph = cascade.graph.subgraph(defined)
    condensed = nx.condensation(graph)
    line = {n: cascade.einsum(n).line for n in defined}
    key = lambda c: min(line[n] for n in condensed.nodes[c]["members"])  # noqa: E731
    groups = []
    for comp in nx.lexicographical_topological_sort(condensed, key=key):
        groups.append(sorted(condensed.nodes[comp]["members"], key=line.get))
    return groups


def evaluate(cascade: Cascade, inputs: dict[str, np.ndarray], sizes: dict[str, float],
             trace: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Evaluate `cascade` on `inputs`; returns each output (absent points read as 0).

    `trace(name, data)`, if given, sees each defined tensor once its group is computed (in
    evaluation order; absent points as 0), e.g. to find where non-finite values first appear."""
    for name, decl in cascade.inputs.items():
        if name not in inputs:
            raise CascadeError(f"missing input tensor {name!r}", cascade.file, decl.line, 1)
    bound = cascade.bind_sizes(inputs, sizes)
    ev = _Evaluator(cascade, bound)
    for name in cascade.inputs:
        data = np.asarray(inputs[name], dtype=float)
        ev.tensors[name] = Labeled(data, tuple(f"#{d}" for d in range(data.ndim)))
    for group in evaluation_order(cascade):
        recurrent = len(group) > 1 or cascade.graph.has_edge(group[0], group[0])
        if recurrent:
            ev.run_recurrence(group)
        else:
            name = group[0]
            ev.allocate(name)
            initial = cascade.initial(name)
            if initial is not None:
                ev.run(initial)
            ev.run(cascade.einsum(name))
        if trace is not None:
            for member in group:
                stored = ev.tensors[member]
                trace(member, stored.data if stored.mask is None else np.where(stored.mask, stored.data, 0.0))
    results = {}
    for name in cascade.outputs:
        stored = ev.tensors[name]
        data = stored.data if stored.mask is None else np.where(stored.mask, stored.data, 0.0)
        results[name] = np.array(data, dtype=float)
    return results
