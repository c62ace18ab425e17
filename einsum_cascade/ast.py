"""Expression trees of the right-hand side of an Einsum and of its `where` conditions.

Index expressions and affine `where` comparisons are sympy expressions of rank variables and
sizes; value expressions are small immutable nodes, walked by the evaluator, the pass analysis
and the cost counters. A condition is a tree of `BoolOp` / `Not` over leaves that are either
affine `Comparison`s (they shape the iteration space and are counted exactly) or data-dependent
`Compare` nodes (value comparisons, e.g. `QK[m,p] >= T[p]`). The parser bounds the depth of every
tree (`MAX_DEPTH`), so the recursive walks here cannot overflow the Python stack.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

FUNCTIONS_1 = frozenset(
    "exp log sqrt rsqrt recip abs square relu gelu sigmoid softplus tanh elu erf cos sin sign".split()
)
FUNCTIONS_2 = frozenset({"max", "min", "pow"})
FUNCTIONS_3 = frozenset({"select"})
REDUCTIONS = frozenset({"sum", "max", "min", "prod"})
KTH_REDUCTIONS = frozenset({"kth", "kth_smallest"})
COMPARISON_OPS = ("<", "<=", ">", ">=", "==", "!=")
NEGATED_OP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
MAX_DEPTH = 64  # deepest expression or condition tree the parser accepts (levels of nesting)


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
class _Named(Node):
    """A node that is a name (nodes of different classes never compare equal)."""

    name: str


@dataclass(frozen=True)
class Size(_Named):
    """A rank size (`E`, `M1`) or a param (`W`) used as a value."""


@dataclass(frozen=True)
class Var(_Named):
    """A rank variable used as a value (its integer coordinate)."""


@dataclass(frozen=True)
class Access(Node):
    """A read `T[i, j]` (indices: sympy expressions); a scalar (rank-0) tensor has no indices."""

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
    """A function: one argument (`exp`...), two (`max min pow`) or three (`select(c, a, b)`)."""

    func: str
    args: tuple  # tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    """A comparison of values, 1.0 where true and 0.0 where false; in a `where`, a
    data-dependent condition (e.g. `QK[m,p] >= T[p]`)."""

    op: str  # one of COMPARISON_OPS
    left: Node
    right: Node


@dataclass(frozen=True)
class BoolOp(Node):
    """`a and b`, `a or b` (n-ary): in a value, 1.0 / 0.0 on the truth (non-zero) of its operands."""

    op: str  # "and" or "or"
    args: tuple  # tuple[condition, ...]


@dataclass(frozen=True)
class Not(Node):
    """`not a`."""

    arg: object  # a condition or a value


@dataclass(frozen=True)
class Reduce(Node):
    """`op(vars: body [where cond])`; `kth`/`kth_smallest` also carry their rank `k` (a value).

    `where` is a conjunction (tuple) of conditions restricting the points of this reduction: its
    own `where` plus the conjuncts of the Einsum's `where` that name its variables."""

    op: str  # sum max min prod kth kth_smallest
    vars: tuple  # tuple[str, ...]
    body: Node
    where: tuple = ()
    k: Node | None = None


@dataclass(frozen=True)
class Comparison:
    """An affine comparison: left op right, both affine sympy expressions of rank variables,
    sizes and params."""

    left: sympy.Expr
    op: str
    right: sympy.Expr

    @property
    def variables(self) -> set[str]:
        """Names of the free symbols (rank variables and sizes) of the comparison."""
        return {str(s) for s in (self.left - self.right).free_symbols}


def children(node) -> tuple:
    """The direct sub-expressions of a node or condition (reduction and comparison conditions
    included; the sympy leaves of an affine `Comparison` are not nodes)."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, (Binary, Compare)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return tuple(node.args)
    if isinstance(node, BoolOp):
        return tuple(node.args)
    if isinstance(node, Not):
        return (node.arg,)
    if isinstance(node, Reduce):
        extra = (node.k,) if node.k is not None else ()
        return (node.body, *node.where, *extra)
    return ()


def walk(node):
    """Every node of the tree, parents before children (iterative: no recursion limit)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def index_vars(index: sympy.Expr, variables: set[str] | frozenset[str]) -> set[str]:
    """Rank variables occurring in one index expression."""
    return {str(s) for s in index.free_symbols} & set(variables)


def value_vars(node, variables: set[str] | frozenset[str], conditions: bool = True) -> set[str]:
    """Rank variables a value expression or condition depends on (explicitly reduced ones
    excluded; with `conditions=False`, those named only by reductions' `where` too)."""
    if isinstance(node, Access):
        out: set[str] = set()
        for index in node.indices:
            out |= index_vars(index, variables)
        return out
    if isinstance(node, Var):
        return {node.name}
    if isinstance(node, Comparison):
        return node.variables & set(variables)
    if isinstance(node, Reduce):
        inner = value_vars(node.body, variables, conditions)
        if conditions:
            for cond in node.where:
                inner |= value_vars(cond, variables)
        if node.k is not None:
            inner |= value_vars(node.k, variables, conditions)
        return inner - set(node.vars)
    out = set()
    for child in children(node):
        out |= value_vars(child, variables, conditions)
    return out


def is_data_dependent(cond) -> bool:
    """True when a condition reads tensor values (a `Compare` leaf anywhere in it)."""
    if isinstance(cond, Comparison):
        return False
    return any(isinstance(n, (Compare, Access)) for n in walk(cond))
