"""Exact point counts of iteration spaces under Boolean conditions on affine comparisons.

A condition is a conjunction (tuple) of conditions: affine `Comparison`s combined with `and`,
`or`, `not`, and data-dependent `Compare` leaves. Data-dependent leaves are counted as an
**upper bound**: each is taken to be possibly true (Kleene's three-valued logic: a point counts
unless the affine comparisons alone rule it out), so `where QK[m,p] >= T[p]` counts every point
the affine part admits.

Numbers at bound sizes are exact: the constrained variables but one are enumerated (vectorised,
in chunks) and the last one is counted by intervals between the breakpoints of its comparisons.
Symbolic counts are sympy expressions with no free iteration variable: conjunctions give
`Sum(Max(0, upper - lower + 1), ...)` over the outer variables (closed where the sum provably
closes), `or`/`!=` go by inclusion-exclusion, and anything larger is an explicit
`Sum(Piecewise((1, cond), (0, True)), ...)`. Symbolic counts take the sizes and params that occur
in conditions to be integers; numeric counts are exact for any bound values.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
import sympy

from einsum_cascade.ast import (
    NEGATED_OP,
    BoolOp,
    Comparison,
    Not,
    size_symbol,
    value_vars,
    var_symbol,
)
from einsum_cascade.errors import CascadeError

MAX_ENUMERATED_POINTS = 200_000_000  # outer points enumerated by a numeric count
_CHUNK_ELEMENTS = 4_000_000  # array elements per chunk of a numeric count
_MAX_DNF_TERMS = 3  # inclusion-exclusion over at most this many terms (2^3 - 1 = 7 conjunctions);
# beyond, the count is an explicit Sum over the constrained variables (its size linear in the clauses)

PointsFn = Callable[[frozenset, tuple], object]
TRUE, FALSE = ("true",), ("false",)


# -- normal form --------------------------------------------------------------------------------
def normal_form(cond, negate: bool = False) -> tuple:
    """Negation normal form: ("and", [...]), ("or", [...]), ("lit", Comparison), TRUE or FALSE.
    Data-dependent leaves become TRUE (possibly true: the upper bound)."""
    if isinstance(cond, Comparison):
        return ("lit", Comparison(cond.left, NEGATED_OP[cond.op], cond.right) if negate else cond)
    if isinstance(cond, Not):
        return normal_form(cond.arg, not negate)
    if isinstance(cond, BoolOp):
        op = cond.op if not negate else {"and": "or", "or": "and"}[cond.op]
        return _combine(op, [normal_form(a, negate) for a in cond.args])
    return TRUE  # a data-dependent comparison


def _combine(op: str, parts: list) -> tuple:
    absorbing, neutral = (FALSE, TRUE) if op == "and" else (TRUE, FALSE)
    flat = []
    for p in parts:
        if p == absorbing:
            return absorbing
        if p == neutral:
            continue
        flat.extend(p[1] if p[0] == op else [p])
    if not flat:
        return neutral
    return flat[0] if len(flat) == 1 else (op, flat)


def conjunction_form(conds: tuple) -> tuple:
    """The normal form of a conjunction of conditions."""
    return _combine("and", [normal_form(c) for c in conds])


def literals(tree: tuple) -> list[Comparison]:
    if tree[0] == "lit":
        return [tree[1]]
    if tree[0] in ("and", "or"):
        return [lit for part in tree[1] for lit in literals(part)]
    return []


def _dnf(tree: tuple, limit: int) -> list[list[Comparison]] | None:
    """Terms (conjunctions of literals) of the disjunctive normal form, or None beyond `limit`."""
    if tree == TRUE:
        return [[]]
    if tree == FALSE:
        return []
    if tree[0] == "lit":
        return [[tree[1]]]
    parts = [_dnf(p, limit) for p in tree[1]]
    if any(p is None for p in parts):
        return None
    if tree[0] == "or":
        terms = [t for p in parts for t in p]
    else:
        terms = [[]]
        for p in parts:
            terms = [a + b for a in terms for b in p]
            if len(terms) > limit:
                return None
    return terms if len(terms) <= limit else None


def _sympy_condition(tree: tuple):
    if tree == TRUE:
        return sympy.true
    if tree == FALSE:
        return sympy.false
    if tree[0] == "lit":
        c = tree[1]
        return _RELATION[c.op](c.left, c.right)
    parts = [_sympy_condition(p) for p in tree[1]]
    return sympy.And(*parts) if tree[0] == "and" else sympy.Or(*parts)


_RELATION = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge,
             "==": sympy.Eq, "!=": sympy.Ne}


def _variables(cond, cascade) -> set[str]:
    return value_vars(cond, cascade.variables)


def applicable(vars_: frozenset, where: tuple, cascade) -> tuple:
    """The conditions of `where` whose variables all lie in `vars_` (dropping one only enlarges
    the count: the result stays an upper bound)."""
    return tuple(c for c in where if _variables(c, cascade) <= vars_)


# -- numeric counts -----------------------------------------------------------------------------
def numeric_points(cascade, sizes: dict[str, float]) -> PointsFn:
    """`points(vars, where)`: the exact number of points (an int) for bound sizes."""
    subs = {size_symbol(n): v for n, v in sizes.items()}
    extent = {v: int(sizes[r]) for v, r in cascade.var_rank.items()}
    affine_cache: dict = {}

    def affine(c: Comparison) -> tuple[dict[str, float], float]:
        if c not in affine_cache:
            diff = sympy.expand((c.left - c.right).subs(subs))
            coeffs = {}
            for v in cascade.variables:
                k = diff.coeff(var_symbol(v))
                if k != 0:
                    coeffs[v] = float(k)
            constant = diff.subs({var_symbol(v): 0 for v in coeffs})
            if constant.free_symbols:
                raise CascadeError(f"condition {c.left} {c.op} {c.right}: unbound "
                                   f"{sorted(map(str, constant.free_symbols))}", cascade.file)
            affine_cache[c] = (coeffs, float(constant))
        return affine_cache[c]

    def points(vars_: frozenset, where: tuple) -> int:
        tree = conjunction_form(applicable(vars_, where, cascade))
        lits = literals(tree)
        constrained = sorted({v for lit in lits for v in affine(lit)[0]} & set(vars_))
        dense = math.prod(extent[v] for v in vars_ if v not in constrained)
        if tree == FALSE:
            return 0
        if not lits:
            return dense
        if not constrained:
            return dense * int(bool(_evaluate(tree, affine, {})))
        inner = max(constrained, key=lambda v: (extent[v], v))
        outer = [v for v in constrained if v != inner]
        n_outer = math.prod(extent[v] for v in outer)
        if n_outer > MAX_ENUMERATED_POINTS:
            raise CascadeError(f"iteration space over {outer} too large to count exactly "
                               f"({n_outer:.3g} points)", cascade.file)
        roots = [lit for lit in lits if inner in affine(lit)[0]]
        per_row = 5 * len(roots) + 2
        chunk = max(1, _CHUNK_ELEMENTS // per_row)
        total = 0
        n_inner = extent[inner]
        for start in range(0, n_outer, chunk):
            flat = np.arange(start, min(start + chunk, n_outer))
            coords = np.unravel_index(flat, tuple(extent[v] for v in outer)) if outer else ()
            env = {v: c.astype(float)[:, None] for v, c in zip(outer, coords)}
            rows = len(flat)
            breaks = [np.zeros((rows, 1)), np.full((rows, 1), float(n_inner))]
            for lit in roots:
                coeffs, constant = affine(lit)
                rest = constant + sum(k * env[v] for v, k in coeffs.items() if v != inner)
                x = np.broadcast_to(-rest / coeffs[inner], (rows, 1))
                low = np.floor(x)
                breaks += [low - 1, low, low + 1, np.ceil(x), np.ceil(x) + 1]
            cuts = np.sort(np.clip(np.concatenate(breaks, axis=1), 0, n_inner), axis=1)
            starts, lengths = cuts[:, :-1], np.diff(cuts, axis=1)
            truth = _evaluate(tree, affine, {**env, inner: starts})
            total += int(np.sum(np.where(np.broadcast_to(truth, lengths.shape), lengths, 0.0)))
        return dense * total

    return points


def _evaluate(tree: tuple, affine, env: dict):
    """Truth of a normal-form tree at the points of `env` (numpy broadcasting)."""
    if tree == TRUE:
        return np.asarray(True)
    if tree == FALSE:
        return np.asarray(False)
    if tree[0] == "lit":
        coeffs, constant = affine(tree[1])
        value = constant + sum(k * env[v] for v, k in coeffs.items())
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                "==": np.equal, "!=": np.not_equal}[tree[1].op](value, 0.0)
    parts = [_evaluate(p, affine, env) for p in tree[1]]
    out = parts[0]
    for p in parts[1:]:
        out = (out & p) if tree[0] == "and" else (out | p)
    return out


# -- symbolic counts ----------------------------------------------------------------------------
def symbolic_points(cascade) -> PointsFn:
    """`points(vars, where)`: the number of points as a sympy expression of the sizes."""

    def size(v: str) -> sympy.Symbol:
        return size_symbol(cascade.var_rank[v])

    memo: dict = {}  # Einsums of one cascade share masks: count each (space, mask) once

    def points(vars_: frozenset, where: tuple) -> sympy.Expr:
        key = (frozenset(vars_), tuple(where))
        if key not in memo:
            memo[key] = _symbolic_count(vars_, where)
        return memo[key]

    def _symbolic_count(vars_: frozenset, where: tuple) -> sympy.Expr:
        tree = conjunction_form(applicable(vars_, where, cascade))
        names = {str(s) for lit in literals(tree) for s in (lit.left - lit.right).free_symbols}
        constrained = sorted(names & set(vars_))
        dense = sympy.Mul(*[size(v) for v in sorted(vars_) if v not in constrained])
        if tree == FALSE:
            return sympy.Integer(0)
        if tree == TRUE:
            return dense
        terms = _dnf(tree, _MAX_DNF_TERMS)
        total = sympy.Integer(0)
        try:
            if terms is None:
                raise _NoBounds
            for k in range(1, len(terms) + 1):
                for subset in itertools.combinations(terms, k):
                    lits = list(dict.fromkeys(lit for term in subset for lit in term))
                    total += (-1) ** (k + 1) * _conjunction(lits, constrained, size)
        except _NoBounds:
            limits = [(var_symbol(v), 0, size(v) - 1) for v in constrained]
            body = sympy.Piecewise((1, _sympy_condition(tree)), (0, True))
            return dense * (sympy.Sum(body, *limits) if limits else body)
        return dense * total

    return points


class _NoBounds(Exception):
    """A coefficient of unknown sign: the count falls back to an explicit Sum."""


def _integer_valued(x: sympy.Expr) -> bool:
    """Whether `x` is an integer when every symbol in it is one."""
    ints = {s: sympy.Symbol(f"_{s}", integer=True) for s in x.free_symbols}
    return bool(x.xreplace(ints).is_integer)


def _conjunction(lits: list[Comparison], vars_: list[str], size) -> sympy.Expr:
    """Points of the box of `vars_` where every literal holds."""
    for i, lit in enumerate(lits):
        if lit.op == "!=":  # C and a != b  =  C  -  (C and a == b)
            rest = lits[:i] + lits[i + 1:]
            equal = Comparison(lit.left, "==", lit.right)
            return _conjunction(rest, vars_, size) - _conjunction(rest + [equal], vars_, size)
    involved = {v: [lit for lit in lits if var_symbol(v) in (lit.left - lit.right).free_symbols]
                for v in vars_}
    used = [v for v in vars_ if involved[v]]
    dense = sympy.Mul(*[size(v) for v in vars_ if not involved[v]])
    constant = [lit for lit in lits if not any(var_symbol(v) in (lit.left - lit.right).free_symbols
                                               for v in vars_)]
    if not used:
        cond = sympy.And(*[_RELATION[c.op](c.left, c.right) for c in constant])
        return dense * (sympy.Piecewise((1, cond), (0, True)) if constant else 1)
    inner = max(used, key=lambda v: (len(involved[v]), v))
    sym = var_symbol(inner)
    lowers, uppers = [sympy.Integer(0)], [size(inner) - 1]
    for lit in involved[inner]:
        diff = sympy.expand(lit.left - lit.right)  # diff OP 0
        coeff = diff.coeff(sym)
        if coeff.is_positive is None and coeff.is_negative is None:
            raise _NoBounds
        x = sympy.expand(-(diff - coeff * sym) / coeff)  # inner OP' x
        op = lit.op if coeff.is_positive else {"<": ">", "<=": ">=", ">": "<", ">=": "<=",
                                                 "==": "=="}[lit.op]
        exact = _integer_valued(x)
        floor = x if exact else sympy.floor(x)
        ceil = x if exact else sympy.ceiling(x)
        if op in ("<", "<=", "=="):
            uppers.append(ceil - 1 if op == "<" else floor)
        if op in (">", ">=", "=="):
            lowers.append(floor + 1 if op == ">" else ceil)
    width = sympy.Min(*uppers) - sympy.Max(*lowers) + 1
    count = width if _nonnegative(width) else sympy.Max(0, width)
    rest = [lit for lit in lits if lit not in involved[inner]]
    outer = [v for v in vars_ if v != inner]
    summed = [v for v in outer if var_symbol(v) in count.free_symbols
              or any(var_symbol(v) in (lit.left - lit.right).free_symbols for lit in rest)]
    dense = sympy.Mul(*[size(v) for v in outer if v not in summed])
    if rest:
        cond = sympy.And(*[_RELATION[c.op](c.left, c.right) for c in rest])
        count = sympy.Piecewise((count, cond), (0, True))
    if not summed:
        return dense * count
    limits = [(var_symbol(v), 0, size(v) - 1) for v in summed]
    return dense * close_sum(sympy.Sum(count, *limits))


@functools.lru_cache(maxsize=4096)
def _nonnegative(x: sympy.Expr) -> bool:
    """Whether `x` is provably >= 0 for every positive integer size and non-negative variable
    (cached: the inclusion-exclusion of a mask asks the same widths again)."""
    judge = {sym: (1 + sympy.Symbol(f"{sym.name}_minus_1", integer=True, nonnegative=True)
                   if sym.is_positive else sympy.Symbol(f"{sym.name}_v", integer=True, nonnegative=True))
             for sym in x.free_symbols}
    return x.subs(judge, simultaneous=True).is_nonnegative is True


def close_sum(s: sympy.Sum, judge: dict | None = None) -> sympy.Expr:
    """`Sum(Max(0, a), limits)` with `a` affine as the closed form of `Sum(a)` when `a` is
    non-negative at every corner of the limits' box (an affine function takes its minimum at a
    corner), every size a positive integer; anything else is returned unchanged."""
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
    if judge is None:
        judge = {sym: 1 + sympy.Symbol(f"{sym.name}_minus_1", integer=True, nonnegative=True)
                 for sym in s.free_symbols}
    for corner in itertools.product(*[(lo, hi) for _, lo, hi in limits]):
        value = inner.subs(dict(zip(variables, corner))).subs(judge, simultaneous=True)
        if sympy.expand(value).is_nonnegative is not True:
            return s
    return sympy.factor(sympy.Sum(inner, *limits).doit())
