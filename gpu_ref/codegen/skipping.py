"""Block skipping: which tiles a kernel may leave out, proved from the cascade.

A tile of keys x rows is skipped at run time when every `where` condition of the loop is false
on all of it (interval bounds of the affine conditions over the tile's box, `tile_bounds`). That
is sound only if such a tile changes nothing: `skip_is_identity` evaluates the loop's Einsums
symbolically with every masked point absent (a reduction over nothing is its identity) and
checks with sympy that each running value comes out equal to its value before the tile, each
running reduction's contribution is its identity and no stored tensor has a present point.
"""
from __future__ import annotations

import sympy

from einsum_cascade.ast import Access, Binary, BoolOp, Call, Compare, Comparison, Not, Number, Reduce, Size, Unary, Var
from einsum_cascade.ir import Einsum

_ABSENT = object()
NEVER = "(m1 < 0)"  # a scalar condition false in every tile
_IDENTITY = {"sum": sympy.Integer(0), "max": -sympy.oo, "min": sympy.oo, "prod": sympy.Integer(1)}
_SYMPY = {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs,
          "max": sympy.Max, "min": sympy.Min}


class _Symbolic:
    """The loop of one kernel with every masked point absent."""

    def __init__(self, cascade, tile_var: str | None, loop_names: set[str], masked_reads: set[str]):
        self.c, self.tile_var = cascade, tile_var
        self.loop_names, self.masked_reads = loop_names, masked_reads
        self.values: dict[str, object] = {}
        self.count = 0

    def opaque(self) -> sympy.Symbol:
        self.count += 1
        return sympy.Symbol(f"_u{self.count}", real=True)

    def access(self, node: Access):
        name = node.tensor
        if name in self.masked_reads:
            return _ABSENT
        if name not in self.loop_names:
            return sympy.Symbol(name, real=True)
        slot = self.c.iterative_slot.get(name)
        if slot is not None:
            step = node.indices[slot]
            if step == sympy.Symbol(self.tile_var, integer=True, nonnegative=True):
                return sympy.Symbol(f"{name}_prev", real=True)
        return self.values.get(name, self.opaque())

    def value(self, node):
        if isinstance(node, Number):
            v = node.value
            return sympy.oo if v == float("inf") else -sympy.oo if v == -float("inf") else sympy.Float(v)
        if isinstance(node, (Size, Var)):
            return sympy.Symbol(node.name, real=True)
        if isinstance(node, Access):
            return self.access(node)
        if isinstance(node, Unary):
            x = self.value(node.operand)
            return _ABSENT if x is _ABSENT else -x
        if isinstance(node, Binary):
            a, b = self.value(node.left), self.value(node.right)
            if a is _ABSENT or b is _ABSENT:
                return _ABSENT
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[node.op]
        if isinstance(node, Call):
            args = [self.value(a) for a in node.args]
            if any(a is _ABSENT for a in args):
                return _ABSENT
            func = _SYMPY.get(node.func) or sympy.Function(node.func)
            return func(*args)
        if isinstance(node, (Compare, BoolOp, Not)):
            parts = [self.value(a) for a in _operands(node)]
            return _ABSENT if any(p is _ABSENT for p in parts) else self.opaque()
        if isinstance(node, Reduce):
            return self.reduce(node.op, node.body, node.where)
        return self.opaque()

    def reduce(self, op: str, body, where):
        if where:
            return _IDENTITY.get(op, self.opaque())
        x = self.value(body)
        if x is _ABSENT:
            return _IDENTITY.get(op, self.opaque())
        return self.opaque()

    def einsum(self, e: Einsum):
        where = tuple(e.space_where)
        implicit = set(e.implicit_vars)
        inner = bool(where) and any(condition_vars(c) & implicit for c in where)
        if implicit:
            value = self.reduce("sum", e.expr, where if inner else ())
        else:
            value = self.value(e.expr)
        return _ABSENT if where and not inner else value


def skip_is_identity(cascade, tile_var: str | None, loop: list[Einsum], reductions: list,
                     stored: set[str], masked_reads: set[str]) -> tuple[bool, str]:
    """(True, "") when a tile whose every loop condition fails leaves the kernel's state as it
    was; else (False, why). `reductions`: (op, body, where) of the running reductions over keys;
    `masked_reads`: global tensors read in the loop only where a condition holds."""
    sym = _Symbolic(cascade, tile_var, {e.name for e in loop}, masked_reads)
    for e in loop:
        sym.values[e.name] = sym.einsum(e)
    for e in loop:
        value = sym.values[e.name]
        if e.iterative_var is not None:
            prev = sympy.Symbol(f"{e.name}_prev", real=True)
            if value is _ABSENT or sympy.simplify(value - prev) != 0:
                return False, f"{e.name} changes in a tile where every condition fails"
        elif e.name in stored and value is not _ABSENT:
            return False, f"{e.name} is stored and present in a tile where every condition fails"
    for op, body, where in reductions:
        value = sym.reduce(op, body, where)
        if value is _ABSENT or sympy.simplify(value - _IDENTITY[op]) != 0:
            return False, "a running reduction gains a term in a tile where every condition fails"
    return True, ""


def _operands(node) -> tuple:
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, BoolOp):
        return tuple(node.args)
    return (node.arg,)


def condition_vars(cond) -> set[str]:
    """The variables an affine condition (comparisons under and / or / not) reads."""
    if isinstance(cond, Comparison):
        return cond.variables
    if isinstance(cond, BoolOp):
        return set().union(*(condition_vars(a) for a in cond.args))
    if isinstance(cond, Not):
        return condition_vars(cond.arg)
    return set()


def _term(coeff, bound: str, scalar) -> str:
    """` + bound`, ` - bound` or ` + c * bound`."""
    if coeff == 1:
        return f" + {bound}"
    if coeff == -1:
        return f" - {bound}"
    return f" + {scalar(coeff)} * {bound}"


def tile_bounds(cond, lo: dict, hi: dict, scalar) -> tuple[str, str] | None:
    """(all true, all false) of a condition over the box lo[v] <= v <= hi[v] of its variables,
    as Triton scalar code; None when a bound cannot be written (a non-affine condition).
    `scalar(expr)` writes a sympy expression of sizes and params as code."""
    if isinstance(cond, Comparison):
        diff = sympy.expand(cond.left - cond.right)
        low, high = [], []
        rest = diff
        for sym in sorted(diff.free_symbols, key=str):
            name = str(sym)
            if name not in lo:
                continue
            coeff = diff.coeff(sym)
            if coeff.free_symbols & {s for s in diff.free_symbols if str(s) in lo} or not coeff.is_Number:
                return None
            rest = rest - coeff * sym
            low.append(_term(coeff, lo[name] if coeff > 0 else hi[name], scalar))
            high.append(_term(coeff, hi[name] if coeff > 0 else lo[name], scalar))
        rest = sympy.expand(rest)
        if any(str(s) in lo for s in rest.free_symbols):
            return None
        base = [] if rest == 0 else [f" + ({scalar(rest)})"]
        dmin = "".join(low + base).removeprefix(" + ")
        dmax = "".join(high + base).removeprefix(" + ")
        op = cond.op
        table = {"<": (f"({dmax} < 0)", f"({dmin} >= 0)"), "<=": (f"({dmax} <= 0)", f"({dmin} > 0)"),
                 ">": (f"({dmin} > 0)", f"({dmax} <= 0)"), ">=": (f"({dmin} >= 0)", f"({dmax} < 0)"),
                 "==": (f"(({dmin} == 0) & ({dmax} == 0))", f"(({dmin} > 0) | ({dmax} < 0))"),
                 "!=": (f"(({dmin} > 0) | ({dmax} < 0))", f"(({dmin} == 0) & ({dmax} == 0))")}
        return table[op]
    if isinstance(cond, BoolOp):
        parts = [tile_bounds(a, lo, hi, scalar) for a in cond.args]
        known = [p for p in parts if p is not None]
        exact = len(known) == len(parts)
        if cond.op == "and":  # all true: every part; none: any part none (sound, not exact)
            all_true = " & ".join(p[0] for p in known) if exact else NEVER
            none = " | ".join(p[1] for p in known) if known else NEVER
        else:  # or: all true: any part all true (sound); none: every part none
            all_true = " | ".join(p[0] for p in known) if known else NEVER
            none = " & ".join(p[1] for p in known) if exact else NEVER
        return f"({all_true})", f"({none})"
    if isinstance(cond, Not):
        inner = tile_bounds(cond.arg, lo, hi, scalar)
        return None if inner is None else (inner[1], inner[0])
    return None
