"""`where` conditions for the rewrite rules: their variables, substitution, a canonical key.

A condition is an affine `Comparison`, a data-dependent `Compare` (it reads tensors), or a
`BoolOp` / `Not` of conditions (language v2). The rules move conditions between Einsums (a
reduction's mask goes with the sums made from it, a tile's index replaces m); these helpers do
that for every kind of condition, so no rule needs to know which kind it holds.
"""
from __future__ import annotations

import sympy

from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Comparison, Not, Number, Reduce,
                                Size, Unary, Var, value_vars, walk)


def condition_vars(cond, variables) -> set[str]:
    """Rank variables a condition names (affine sides, indices of the reads, variables read as values)."""
    return value_vars(cond, set(variables))


def reads(cond) -> list[Access]:
    """The tensor reads of a condition (none for an affine comparison)."""
    if isinstance(cond, Comparison):
        return []
    return [n for n in walk(cond) if isinstance(n, Access)]


def subs_condition(cond, mapping: dict):
    """`cond` with rank-variable symbols replaced (`mapping`: sympy symbol -> affine expression).
    A variable read as a value may only be renamed to another variable (else a Refusal)."""
    if isinstance(cond, Comparison):
        return Comparison(sympy.sympify(cond.left).subs(mapping, simultaneous=True), cond.op,
                          sympy.sympify(cond.right).subs(mapping, simultaneous=True))
    return _subs_node(cond, mapping)


def _subs_node(node, mapping: dict):
    if isinstance(node, Comparison):
        return subs_condition(node, mapping)
    if isinstance(node, Access):
        return Access(node.tensor, tuple(sympy.sympify(i).subs(mapping, simultaneous=True)
                                         for i in node.indices), node.line, node.col)
    if isinstance(node, Var):
        for key, value in mapping.items():
            if str(key) == node.name:
                if isinstance(value, sympy.Symbol):
                    return Var(value.name)
                from einsum_cascade.fuse.refusals import Refusal
                raise Refusal(f"the variable {node.name} is read as a value in a condition: its "
                              "tiled form m1*M0 + m0 is not written there")
        return node
    if isinstance(node, Unary):
        return Unary(node.op, _subs_node(node.operand, mapping))
    if isinstance(node, Binary):
        return Binary(node.op, _subs_node(node.left, mapping), _subs_node(node.right, mapping))
    if isinstance(node, Compare):
        return Compare(node.op, _subs_node(node.left, mapping), _subs_node(node.right, mapping))
    if isinstance(node, Call):
        return Call(node.func, tuple(_subs_node(a, mapping) for a in node.args))
    if isinstance(node, BoolOp):
        return BoolOp(node.op, tuple(_subs_node(a, mapping) for a in node.args))
    if isinstance(node, Not):
        return Not(_subs_node(node.arg, mapping))
    if isinstance(node, Reduce):
        bound = {str(v) for v in node.vars}
        inner = {k: v for k, v in mapping.items() if str(k) not in bound}
        return Reduce(node.op, node.vars, _subs_node(node.body, inner),
                      tuple(_subs_node(w, inner) for w in node.where),
                      None if node.k is None else _subs_node(node.k, mapping))
    if isinstance(node, (Number, Size)):
        return node
    from einsum_cascade.fuse.algebra import RuleError
    raise RuleError(f"fuse: a condition holds a {type(node).__name__} node, which the substitution "
                    f"does not accept: {node!r}")


def canon(cond) -> str:
    """A key equal for conditions that are the same up to the order of `and`/`or` operands and the
    writing of affine sides (`m <= p` and `m - p <= 0`)."""
    if isinstance(cond, Comparison):
        return f"{sympy.srepr(sympy.expand(cond.left - cond.right))} {cond.op} 0"
    if isinstance(cond, BoolOp):
        return f"{cond.op}(" + ", ".join(sorted(canon(a) for a in cond.args)) + ")"
    if isinstance(cond, Not):
        return f"not({canon(cond.arg)})"
    from einsum_cascade.printer import format_expr
    return format_expr(cond)
