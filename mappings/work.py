"""Work of each Einsum: operator counts at bound sizes, and their cost on a PE array.

Counts use `einsum_cascade.cost` when the package provides it; otherwise the same counting
convention (the FuseMax paper's, see docs/einsum_cascade-api.md) is applied here on the
Einsum's expression tree: every operator once per point of the iteration space where it is
evaluated, a reduction once per point of its body, an implicit sum one add per point.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Mapping

import einsum_cascade as ec
from einsum_cascade import ast

from archsim.config import PEArray

BINARY_OPS = {"+": "add", "-": "add", "*": "multiply", "/": "divide"}
REDUCE_OPS = {"sum": "add", "max": "max", "min": "min", "prod": "multiply"}


class MappingError(ValueError):
    """An infeasible mapping: names the mapping, the Einsum and what does not fit."""


def _points(cascade, variables, sizes: Mapping[str, float]) -> float:
    return math.prod(float(sizes[cascade.var_rank[v]]) for v in variables)


def _count(cascade, node, variables: frozenset, sizes, out: Counter) -> None:
    if isinstance(node, (ast.Number, ast.Size, ast.Var, ast.Access)):
        return
    if isinstance(node, ast.Unary):
        _count(cascade, node.operand, variables, sizes, out)
    elif isinstance(node, ast.Binary):
        _count(cascade, node.left, variables, sizes, out)
        _count(cascade, node.right, variables, sizes, out)
        out[BINARY_OPS[node.op]] += _points(cascade, variables, sizes)
    elif isinstance(node, ast.Call):
        for arg in node.args:
            _count(cascade, arg, variables, sizes, out)
        out[node.func] += _points(cascade, variables, sizes)
    elif isinstance(node, ast.Reduce):
        inner = variables | frozenset(node.vars)
        _count(cascade, node.body, inner, sizes, out)
        out[REDUCE_OPS[node.op]] += _points(cascade, inner, sizes)
    else:
        raise MappingError(f"cannot count operators of {type(node).__name__}")


def einsum_ops(cascade, sizes: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Operator counts of each main Einsum of `cascade` at `sizes` (all ranks and params bound)."""
    if hasattr(ec, "cost"):
        at = ec.cost(cascade).at(dict(sizes))
        per = at.per_einsum if hasattr(at, "per_einsum") else at["per_einsum"]
        return {name: {op: float(n) for op, n in ops.items() if float(n)} for name, ops in per.items()}
    out = {}
    for e in cascade.einsums:
        if e.is_initial:
            continue
        counts: Counter = Counter()
        space = frozenset(e.space_vars)
        _count(cascade, e.expr, space, sizes, counts)
        if e.implicit_vars:
            counts["add"] += _points(cascade, space, sizes)
        out[e.name] = {op: n for op, n in counts.items() if n}
    return out


def fuse_operators(ops: Mapping[str, float], fold_shift_into_exp: bool) -> dict[str, float]:
    """Group primitive counts into the operators a PE evaluates.

    A multiply and an add at the same point form a MAC; with `fold_shift_into_exp` the
    subtraction of exp's argument (one add per exp) is folded into the exp, as the paper counts.
    """
    ops = {("add" if k == "subtract" else k): v for k, v in ops.items()}
    out = dict(ops)
    mac = min(out.get("multiply", 0.0), out.get("add", 0.0))
    if mac:
        out["mac"] = mac
        out["multiply"] -= mac
        out["add"] -= mac
    if fold_shift_into_exp and out.get("exp") and out.get("add"):
        out["add"] -= min(out["add"], out["exp"])
    return {k: v for k, v in out.items() if v}


def cost_on_unit(unit: PEArray, ops: Mapping[str, float], where: str) -> tuple[float, dict[str, float]]:
    """(cycles, actions) of operator counts on all PEs of `unit`: sum(count x cycles) / PEs.

    Raises MappingError naming `where` when the unit lacks an operator.
    """
    cycles = 0.0
    actions: Counter = Counter()
    for op, n in ops.items():
        if op not in unit.operators:
            raise MappingError(f"{where}: needs operator {op!r}, which unit {unit.name!r} does not have "
                               f"(it has {', '.join(sorted(unit.operators))})")
        spec = unit.operators[op]
        cycles += n * spec.cycles
        for a, k in spec.actions.items():
            actions[f"{unit.name}.{a}"] += n * k
    return cycles / unit.pes, dict(actions)
