"""Symbolic operation counts and tensor sizes (sympy expressions of the rank sizes).

Convention (the FuseMax paper's accounting): an operator is counted once per point of the
iteration space where it is evaluated; a reduction applies its operator once per point of its
body (a sum of M terms counts M adds), so an implicitly summed product is one multiply and one
add (a MAC) per point. Unary minus and constants are free. `where` conditions shrink the space.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy

from einsum_cascade.ast import (
    Binary,
    Call,
    Comparison,
    Node,
    Reduce,
    children,
    size_symbol,
    var_symbol,
)
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade, Einsum
from einsum_cascade.sizes import affine_max

OPERATORS = ("multiply", "add", "max", "min", "exp", "divide")
_BINARY_OP = {"+": "add", "-": "add", "*": "multiply", "/": "divide"}
_REDUCE_OP = {"sum": "add", "max": "max", "min": "min", "prod": "multiply"}
_MAX_ENUMERATED_POINTS = 200_000_000

PointsFn = Callable[[frozenset, tuple], object]


def _count(node: Node, domain: frozenset, where: tuple, points: PointsFn, out: dict) -> None:
    """Add the operators of `node`, evaluated over `domain`, to `out`."""
    op = None
    if isinstance(node, Binary):
        op = _BINARY_OP[node.op]
    elif isinstance(node, Call):
        op = node.func
    if op is not None:
        out[op] = out.get(op, 0) + points(domain, where)
    if isinstance(node, Reduce):
        inner = domain | frozenset(node.vars)
        key = _REDUCE_OP[node.op]
        out[key] = out.get(key, 0) + points(inner, where)
        _count(node.body, inner, where, points, out)
        return
    for child in children(node):
        _count(child, domain, where, points, out)


def einsum_ops(e: Einsum, points: PointsFn) -> dict:
    """Operator counts of one Einsum, with `points(vars, where)` counting iteration points."""
    out: dict = {}
    space = frozenset(e.space_vars)
    if e.implicit_vars:
        out["add"] = points(space, e.where)
    _count(e.expr, space, e.where, points, out)
    return out


# -- counting points ---------------------------------------------------------------------------
def _constrained(vars_: frozenset, where: tuple[Comparison, ...], cascade: Cascade):
    """Comparisons whose variables all lie in `vars_`, and the variables they constrain."""
    cmps = [c for c in where
            if ({str(s) for s in (c.left - c.right).free_symbols} & cascade.variables) <= vars_]
    constrained = set()
    for c in cmps:
        constrained |= {str(s) for s in (c.left - c.right).free_symbols} & cascade.variables
    return cmps, constrained


def _bounds(var: str, cmps, cascade: Cascade):
    """Integer bounds of `var` implied by comparisons with coefficient +-1, or None."""
    sym = var_symbol(var)
    lowers, uppers = [], []
    for c in cmps:
        diff = sympy.expand(c.left - c.right)  # diff OP 0
        coeff = diff.coeff(sym)
        if coeff == 0:
            continue
        if coeff not in (1, -1) or c.op in ("==", "!="):
            return None
        rest = -(diff - coeff * sym) / coeff  # var (op') rest
        op = c.op if coeff == 1 else {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[c.op]
        if op == "<":
            uppers.append(rest - 1)
        elif op == "<=":
            uppers.append(rest)
        elif op == ">":
            lowers.append(rest + 1)
        else:
            lowers.append(rest)
    return lowers, uppers


def symbolic_points(cascade: Cascade) -> PointsFn:
    """Points of an iteration space as a sympy expression (a Sum where `where` constrains it)."""

    def points(vars_: frozenset, where: tuple) -> sympy.Expr:
        cmps, constrained = _constrained(vars_, where, cascade)
        free = [v for v in vars_ if v not in constrained]
        dense = sympy.Mul(*[size_symbol(cascade.var_rank[v]) for v in sorted(free)])
        if not cmps:
            return dense
        ordered = sorted(constrained)
        inner = ordered[-1]
        size = lambda v: size_symbol(cascade.var_rank[v])  # noqa: E731
        bounds = _bounds(inner, cmps, cascade)
        others = [c for c in cmps if var_symbol(inner) not in (c.left - c.right).free_symbols]
        if bounds is not None and not others:
            lowers, uppers = bounds
            lower = sympy.Max(0, *lowers)
            upper = sympy.Min(size(inner) - 1, *uppers)
            body = sympy.Max(0, upper - lower + 1)
            limits = [(var_symbol(v), 0, size(v) - 1) for v in ordered[:-1]]
        else:
            conds = sympy.And(*[
                {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge,
                 "==": sympy.Eq, "!=": sympy.Ne}[c.op](c.left, c.right) for c in cmps])
            body = sympy.Piecewise((1, conds), (0, True))
            limits = [(var_symbol(v), 0, size(v) - 1) for v in ordered]
        return dense * (sympy.Sum(body, *limits) if limits else body)

    return points


def numeric_points(cascade: Cascade, sizes: dict[str, float]) -> PointsFn:
    """Points of an iteration space as an int for bound sizes (vectorised over the constrained
    variables but one, whose count comes from its bounds)."""
    subs = {size_symbol(n): v for n, v in sizes.items()}
    extent = {v: int(sizes[r]) for v, r in cascade.var_rank.items()}

    def points(vars_: frozenset, where: tuple) -> int:
        cmps, constrained = _constrained(vars_, where, cascade)
        dense = math.prod(extent[v] for v in vars_ if v not in constrained)
        if not cmps:
            return dense
        ordered = sorted(constrained)
        inner = ordered[-1]
        outer = ordered[:-1]
        bounds = _bounds(inner, cmps, cascade)
        if bounds is None or any(var_symbol(inner) not in (c.left - c.right).free_symbols for c in cmps):
            outer = ordered
        enumerated = math.prod(extent[v] for v in outer)
        if enumerated > _MAX_ENUMERATED_POINTS:
            raise CascadeError(f"iteration space over {outer} too large to count: {enumerated:.3g} rows to "
                               f"enumerate, the limit is {_MAX_ENUMERATED_POINTS:.3g}; use smaller sizes "
                               "(the symbolic counts of `analyze` without --size hold at any size)", cascade.file)
        grids = np.meshgrid(*[np.arange(extent[v]) for v in outer], indexing="ij", sparse=True)
        env = dict(zip(outer, grids))

        def value(expr):
            expr = sympy.expand(sympy.sympify(expr).subs(subs))
            total = float(expr.subs({var_symbol(v): 0 for v in outer}))
            result = np.asarray(total, dtype=float)
            for v in outer:
                coeff = float(expr.coeff(var_symbol(v)))
                if coeff:
                    result = result + coeff * env[v]
            return result

        if outer is ordered:
            ok = np.asarray(True)
            for c in cmps:
                ok = ok & {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                           "==": np.equal, "!=": np.not_equal}[c.op](value(c.left - c.right), 0)
            return dense * int(np.broadcast_to(ok, tuple(extent[v] for v in outer)).sum())
        lowers, uppers = bounds
        lower = functools.reduce(np.maximum, [value(x) for x in lowers], np.asarray(0.0))
        upper = functools.reduce(np.minimum, [value(x) for x in uppers], np.asarray(extent[inner] - 1.0))
        counts = np.maximum(0.0, np.floor(upper) - np.ceil(lower) + 1)
        full = tuple(extent[v] for v in outer)
        return dense * int(np.broadcast_to(counts, full).sum())

    return points


# -- the cascade's cost ------------------------------------------------------------------------
def _partition_subs(cascade: Cascade) -> dict:
    """M1 -> M / M0 for each partitioned rank, so counts read in terms of the whole rank."""
    subs = {}
    for rank in cascade.ranks.values():
        if rank.parts:
            rest = sympy.Mul(*[size_symbol(p) for p in rank.parts[1:]])
            subs[size_symbol(rank.parts[0])] = size_symbol(rank.name) / rest
    return subs


def _is_monomial(expr: sympy.Basic) -> bool:
    """A number, a symbol, or a product of numbers and integer powers of symbols: already canonical."""
    factors = expr.args if isinstance(expr, sympy.Mul) else (expr,)
    return all(f.is_Number or f.is_Symbol or (isinstance(f, sympy.Pow) and f.base.is_Symbol and f.exp.is_Integer)
               for f in factors)


@functools.lru_cache(maxsize=4096)
def _simplify_cached(expr: sympy.Basic) -> sympy.Basic:
    return expr if _is_monomial(expr) else sympy.simplify(expr)


def _simplify(expr):
    """sympy.simplify, skipped for monomials (which it returns unchanged) and cached: a cascade of
    thousands of Einsums repeats the same few counts."""
    return _simplify_cached(expr) if isinstance(expr, sympy.Basic) else expr


@dataclass
class CascadeCost:
    """Operation counts per Einsum and in total, and tensor sizes, as sympy expressions."""

    cascade: Cascade
    per_einsum: dict[str, dict[str, sympy.Expr]]
    total: dict[str, sympy.Expr]
    tensor_sizes: dict[str, sympy.Expr]

    def at(self, sizes: dict[str, float]) -> "CascadeCost":
        """The same counts as integers for bound sizes (partitions completed from the whole)."""
        bound = self.cascade.bind_sizes({}, _only_known(self.cascade, sizes)) if sizes else {}
        points = numeric_points(self.cascade, bound)
        per = {}
        for e in self.cascade.einsums:
            if e.is_initial:
                continue
            ops = einsum_ops(e, points)
            per[e.name] = {k: int(ops[k]) for k in sorted(ops, key=_op_order)}
        total = _sum_ops(per.values())
        subs = {size_symbol(n): v for n, v in bound.items()}
        sizes_out = {n: int(sympy.sympify(x).subs(_partition_subs(self.cascade)).subs(subs))
                     for n, x in self.tensor_sizes.items()}
        return CascadeCost(self.cascade, per, total, sizes_out)


def _only_known(cascade: Cascade, sizes: dict[str, float]) -> dict[str, float]:
    known = set(cascade.size_names) | set(cascade.params)
    return {k: v for k, v in sizes.items() if k in known}


def _sum_ops(per_einsum) -> dict:
    """Per-operator totals; sympy terms are added in one `Add` (linear, not one Add per Einsum)."""
    terms: dict = {}
    for ops in per_einsum:
        for k, v in ops.items():
            terms.setdefault(k, []).append(v)
    total = {k: sympy.Add(*vs) if any(isinstance(v, sympy.Basic) for v in vs) else sum(vs)
             for k, vs in terms.items()}
    return dict(sorted(total.items(), key=lambda kv: _op_order(kv[0])))


def _op_order(op: str) -> tuple[int, str]:
    return (OPERATORS.index(op) if op in OPERATORS else len(OPERATORS), op)


def cost(cascade: Cascade) -> CascadeCost:
    """Symbolic operation counts of every Einsum (initial values excluded) and tensor sizes."""
    points = symbolic_points(cascade)
    subs = _partition_subs(cascade)
    per = {}
    for e in cascade.einsums:
        if e.is_initial:
            continue
        ops = einsum_ops(e, points)
        per[e.name] = {k: _simplify(sympy.sympify(v).subs(subs))
                       for k, v in sorted(ops.items(), key=lambda kv: _op_order(kv[0]))}
    total = {k: _simplify(v) for k, v in _sum_ops(per.values()).items()}
    sizes = {}
    writers: dict[str, list[Einsum]] = {}
    for e in cascade.einsums:
        writers.setdefault(e.name, []).append(e)
    for name in list(cascade.inputs) + cascade.defined:
        sizes[name] = _simplify(_symbolic_elements(cascade, name, writers.get(name, [])).subs(subs))
    return CascadeCost(cascade, per, total, sizes)


def _symbolic_elements(cascade: Cascade, name: str, writers: list[Einsum]) -> sympy.Expr:
    """Elements of tensor `name`: declared extents for an input, else the largest index any of
    its `writers` (the Einsums that define it) writes, plus one."""
    if name in cascade.inputs:
        return sympy.Mul(*[size_symbol(cascade.var_rank[v]) for v in cascade.inputs[name].indices])
    extents = []
    for d in range(cascade.arity[name]):
        candidates = []
        for e in writers:
            index = sympy.expand(e.lhs[d])
            top = index
            for var in cascade.variables:
                sym = var_symbol(var)
                if sym in index.free_symbols:
                    top = top.subs(sym, size_symbol(cascade.var_rank[var]) - 1)
            candidates.append(sympy.expand(top + 1))
        extents.append(candidates[0] if len(candidates) == 1 else sympy.Max(*candidates))
    return sympy.Mul(*extents)


def domain_points(cascade: Cascade, e: Einsum, sizes: dict[str, float]) -> int:
    """Points of `e`'s iteration space (output and implicitly reduced variables; `where` honoured)."""
    bound = cascade.bind_sizes({}, _only_known(cascade, sizes))
    return int(numeric_points(cascade, bound)(frozenset(e.space_vars), e.where))


def closed_form(expr: sympy.Expr, cascade: Cascade | None = None) -> sympy.Expr:
    """`expr` with each point-count Sum evaluated where its Max(0, ...) is provably redundant.

    A count `Sum(Max(0, a), limits)` with `a` affine in the summation variables equals `Sum(a)`
    when `a` is non-negative at every corner of the limits' box (an affine function takes its
    minimum at a corner); that sum sympy closes. The corners are judged with every size a
    positive integer and, given `cascade`, each partitioned rank the product of its parts.
    Anything else is left as it is.
    """
    def at_least_one(name: str) -> sympy.Expr:  # a positive integer size as 1 + (k >= 0)
        return 1 + sympy.Symbol(f"{name}_minus_1", integer=True, nonnegative=True)

    judge = {sym: at_least_one(sym.name) for sym in sympy.sympify(expr).free_symbols}
    if cascade is not None:
        for rank in cascade.ranks.values():
            if rank.parts:
                judge[size_symbol(rank.name)] = sympy.Mul(*[at_least_one(p) for p in rank.parts])

    def simplify_sum(s: sympy.Sum) -> sympy.Expr:
        body = s.function
        if not (isinstance(body, sympy.Max) and len(body.args) == 2 and 0 in body.args):
            return s
        inner = next(a for a in body.args if a != 0)
        limits = list(s.limits)
        variables = [v for v, _, _ in limits]
        try:
            if sympy.Poly(inner, *variables).total_degree() > 1:
                return s
        except sympy.PolynomialError:
            return s
        for corner in itertools.product(*[(lo, hi) for _, lo, hi in limits]):
            value = inner.subs(dict(zip(variables, corner))).subs(judge, simultaneous=True)
            if sympy.expand(value).is_nonnegative is not True:
                return s
        return sympy.factor(sympy.Sum(inner, *limits).doit())

    return sympy.sympify(expr).replace(lambda e: isinstance(e, sympy.Sum), simplify_sum)


__all__ = ["CascadeCost", "OPERATORS", "closed_form", "cost", "domain_points", "einsum_ops", "affine_max"]
