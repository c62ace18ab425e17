"""Symbolic operation counts and tensor sizes (sympy expressions of the rank sizes).

Convention (the FuseMax paper's accounting): an operator is counted once per point of the
iteration space where it is evaluated; a reduction applies its operator once per point of its
body (a sum of M terms counts M adds), so an implicitly summed product is one multiply and one
add (a MAC) per point. Unary minus, numbers and reads are free; a subexpression that depends on
no iteration variable of its Einsum is counted once. `where` conditions shrink the space they
restrict (exact counts: `einsum_cascade.points`); data-dependent ones count as an upper bound.
See docs/cascade-language.md, "Counting operations".
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

import sympy

from einsum_cascade.ast import (
    Binary,
    BoolOp,
    Call,
    Compare,
    Not,
    Reduce,
    children,
    size_symbol,
    value_vars,
    var_symbol,
    walk,
)
from einsum_cascade.ir import Cascade, Einsum
from einsum_cascade.points import PointsFn, close_sum, numeric_points, symbolic_points
from einsum_cascade.sizes import affine_max

OPERATORS = ("multiply", "add", "max", "min", "exp", "divide")
_BINARY_OP = {"+": "add", "-": "add", "*": "multiply", "/": "divide"}
_REDUCE_OP = {"sum": "add", "max": "max", "min": "min", "prod": "multiply", "kth": "kth",
              "kth_smallest": "kth"}


def _operator(node) -> str | None:
    """The operator a node applies once per point, or None (free: leaves, unary minus)."""
    if isinstance(node, Binary):
        return _BINARY_OP[node.op]
    if isinstance(node, Call):
        return node.func
    if isinstance(node, Compare):
        return "compare"
    if isinstance(node, (BoolOp, Not)):
        return "logic"
    return None


def _count(node, domain: frozenset, where: tuple, points: PointsFn, out: dict,
           variables: frozenset) -> None:
    """Add the operators of `node`, evaluated over `domain` under `where`, to `out`.

    A subexpression that depends on no iteration variable (`log(G)`, `1 - A` of a scalar A) is
    computed once, outside the loops: its operators count one point."""
    stack = [(node, domain, where)]
    while stack:
        current, dom, cond = stack.pop()
        if not isinstance(current, Reduce) and dom and not value_vars(current, variables) \
                and any(_operator(n) for n in walk(current)):
            stack.append((current, frozenset(), ()))
            continue
        op = _operator(current)
        if op is not None:
            out[op] = out.get(op, 0) + points(dom, cond)
        if isinstance(current, Reduce):
            inner = dom | frozenset(current.vars)
            inner_where = cond + tuple(current.where)
            key = _REDUCE_OP[current.op]
            out[key] = out.get(key, 0) + points(inner, inner_where)
            stack.append((current.body, inner, inner_where))
            if current.k is not None:
                stack.append((current.k, dom, cond))
            for c in current.where:
                _data_conditions(c, inner_where, points, out, variables, stack)
            continue
        for child in children(current):
            stack.append((child, dom, cond))


def _data_conditions(cond, where: tuple, points: PointsFn, out: dict, variables: frozenset,
                     stack: list) -> None:
    """Queue each data-dependent comparison of `cond`, evaluated once per point of its own
    variables (under the conditions of `where` on those variables)."""
    for leaf in walk(cond):
        if isinstance(leaf, Compare):
            own = frozenset(value_vars(leaf, variables))
            stack.append((leaf, own, tuple(c for c in where if value_vars(c, variables) <= own)))


def einsum_ops(e: Einsum, points: PointsFn) -> dict:
    """Operator counts of one Einsum, with `points(vars, where)` counting iteration points."""
    out: dict = {}
    space = frozenset(e.space_vars)
    variables = frozenset(e.output_vars | e.reduced_vars)
    where = tuple(e.space_where)
    if e.implicit_vars:
        out["add"] = points(space, where)
    _count(e.expr, space, where, points, out, variables)
    stack: list = []
    for c in where:
        _data_conditions(c, where, points, out, variables, stack)
    for leaf, dom, cond in stack:
        _count(leaf, dom, cond, points, out, variables)
    return out


# -- the cascade's cost ------------------------------------------------------------------------
def _partition_subs(cascade: Cascade) -> dict:
    """M1 -> M / M0 for each partitioned rank, so counts read in terms of the whole rank."""
    subs = {}
    for rank in cascade.ranks.values():
        if rank.parts:
            rest = sympy.Mul(*[size_symbol(p) for p in rank.parts[1:]])
            subs[size_symbol(rank.parts[0])] = size_symbol(rank.name) / rest
    return subs


_SIMPLIFY_MAX_OPS = 80  # larger counts (many inclusion-exclusion terms) are left as they are
_SIMPLIFY_MAX_MINMAX = 4  # so are counts with more Max/Min terms (sympy.simplify takes seconds on
# them: 5-7 s for each count of attention_sinks, whose 6 Max/Min it shortens by a tenth)


def simplify_count(expr):
    """A count simplified with sympy.simplify where that is quick (cached); large counts (many
    Max/Min terms, Sums of Piecewise) are returned as they are."""
    return _simplify(expr)


@functools.lru_cache(maxsize=4096)
def _simplify(expr):
    """sympy.simplify, except for counts holding a Sum of a Piecewise (simplify can mangle those
    into a Piecewise with free summation variables)."""
    if not isinstance(expr, sympy.Basic):
        return expr
    if any(s.function.has(sympy.Piecewise) for s in expr.atoms(sympy.Sum)):
        return expr
    minmax = sum(1 for _ in sympy.preorder_traversal(expr) if isinstance(_, (sympy.Max, sympy.Min)))
    if sympy.count_ops(expr) > _SIMPLIFY_MAX_OPS or minmax > _SIMPLIFY_MAX_MINMAX:
        return expr  # sympy.simplify takes minutes on such counts
    return sympy.simplify(expr)


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
    total: dict = {}
    for ops in per_einsum:
        for k, v in ops.items():
            total[k] = total.get(k, 0) + v
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
    for name in list(cascade.inputs) + cascade.defined:
        sizes[name] = _simplify(_symbolic_elements(cascade, name).subs(subs))
    return CascadeCost(cascade, per, total, sizes)


def _symbolic_elements(cascade: Cascade, name: str) -> sympy.Expr:
    if name in cascade.inputs:
        return sympy.Mul(*[size_symbol(cascade.var_rank[v]) for v in cascade.inputs[name].indices])
    extents = []
    for d in range(cascade.arity[name]):
        candidates = []
        for e in cascade.einsums:
            if e.name != name:
                continue
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
    return int(numeric_points(cascade, bound)(frozenset(e.space_vars), e.space_where))


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
        return close_sum(s, {k: v for k, v in judge.items()})

    return sympy.sympify(expr).replace(lambda e: isinstance(e, sympy.Sum), simplify_sum)


__all__ = ["CascadeCost", "OPERATORS", "closed_form", "simplify_count", "cost", "domain_points", "einsum_ops", "affine_max"]
