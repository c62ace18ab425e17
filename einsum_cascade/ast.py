"""Expression trees of the right-hand side of an Einsum.

Index expressions and `where` conditions are sympy expressions of rank variables and sizes; value
expressions are these small immutable nodes, walked by the evaluator, the pass analysis and the
cost counters.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

FUNCTIONS_1 = frozenset(
    "exp log sqrt rsqrt recip abs square relu gelu sigmoid softplus tanh elu erf".split()
)
FUNCTIONS_2 = frozenset({"max", "min"})
REDUCTIONS = frozenset({"sum", "max", "min", "prod"})


def var_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a rank variable (a non-negative integer coordinate)."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


def size_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a rank size or param (a positive number)."""
    return sympy.Symbol(name, positive=True)


@dataclass(frozen=True)
class Node:
    """Base of every expression node; `line` and `col` locate it in the source."""


@dataclass(frozen=True)
class Number(Node):
    value: float


@dataclass(frozen=True)
class Size(Node):
    """A rank size (`E`, `M1`) or a param (`W`) used as a value."""

    name: str


@dataclass(frozen=True)
class Var(Node):
    """A rank variable used as a value (its integer coordinate)."""

    name: str


@dataclass(frozen=True)
class Access(Node):
    tensor: str
    indices: tuple  # tuple[sympy.Expr, ...]
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # one of + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple  # tuple[Node, ...]


@dataclass(frozen=True)
class Reduce(Node):
    op: str  # sum max min prod
    vars: tuple  # tuple[str, ...]
    body: Node


@dataclass(frozen=True)
class Comparison:
    """One comparison of a `where` conjunction: left op right, both affine sympy expressions."""

    left: sympy.Expr
    op: str
    right: sympy.Expr


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return tuple(node.args)
    if isinstance(node, Reduce):
        return (node.body,)
    return ()


def walk(node: Node):
    """Every node of the tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def index_vars(index: sympy.Expr, variables: set[str] | frozenset[str]) -> set[str]:
    """Rank variables occurring in one index expression."""
    return {str(s) for s in index.free_symbols} & set(variables)


def value_vars(node: Node, variables: set[str] | frozenset[str]) -> set[str]:
    """Rank variables a value expression depends on (explicitly reduced ones excluded)."""
    if isinstance(node, Access):
        out: set[str] = set()
        for index in node.indices:
            out |= index_vars(index, variables)
        return out
    if isinstance(node, Var):
        return {node.name}
    if isinstance(node, Reduce):
        return value_vars(node.body, variables) - set(node.vars)
    out = set()
    for child in children(node):
        out |= value_vars(child, variables)
    return out
