"""Cascade text from the IR: the inverse of the parser.

`print_cascade(c)` writes declarations and Einsums in statement order; parsing the text gives
back the same cascade (names, ranks, params, inputs, outputs, and every Einsum's left-hand side,
expression tree and `where` clause). Optional comments go above each Einsum. Expressions are
printed with the fewest parentheses that keep the parser's tree (left-associative `+ -` and
`* /`, unary minus binding tighter than both).
"""
from __future__ import annotations

import math

import sympy

from einsum_cascade.ast import Access, Binary, Call, Comparison, Node, Number, Reduce, Size, Unary, Var
from einsum_cascade.ir import Cascade, Einsum

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY = 3
_ATOM = 4


def format_index(expr: sympy.Expr) -> str:
    """An index or condition expression (affine sympy) as cascade text."""
    return sympy.sstr(sympy.sympify(expr))


def format_number(value: float) -> str:
    """A non-negative number as cascade text (`inf`, `3`, `0.5`, `1e-300`)."""
    if math.isinf(value):
        return "inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def _precedence(node: Node) -> int:
    if isinstance(node, Binary):
        return _PRECEDENCE[node.op]
    if isinstance(node, Unary):
        return _UNARY
    if isinstance(node, Number) and (node.value < 0 or math.copysign(1.0, node.value) < 0):
        return _UNARY
    return _ATOM


def format_expr(node: Node) -> str:
    """A value expression as cascade text that parses back to the same tree."""
    if isinstance(node, Number):
        if node.value < 0 or math.copysign(1.0, node.value) < 0:
            return "-" + format_number(-node.value)
        return format_number(node.value)
    if isinstance(node, (Size, Var)):
        return node.name
    if isinstance(node, Access):
        return f"{node.tensor}[{', '.join(format_index(i) for i in node.indices)}]"
    if isinstance(node, Unary):
        inner = format_expr(node.operand)
        # `- -x` and `-(a*b)` need parentheses to keep the tree; an atom does not.
        if _precedence(node.operand) < _ATOM:
            inner = f"({inner})"
        return "-" + inner
    if isinstance(node, Binary):
        prec = _PRECEDENCE[node.op]
        left = format_expr(node.left)
        if _precedence(node.left) < prec:
            left = f"({left})"
        right = format_expr(node.right)
        if _precedence(node.right) <= prec:
            right = f"({right})"
        return f"{left} {node.op} {right}"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(format_expr(a) for a in node.args)})"
    if isinstance(node, Reduce):
        return f"{node.op}({', '.join(node.vars)}: {format_expr(node.body)})"
    raise TypeError(f"cannot print {node!r}")


def format_where(where: tuple[Comparison, ...]) -> str:
    return " and ".join(f"{format_index(c.left)} {c.op} {format_index(c.right)}" for c in where)


def format_einsum(e: Einsum) -> str:
    """One statement `NAME[lhs] = expr [where ...]`."""
    text = f"{e.name}[{', '.join(format_index(i) for i in e.lhs)}] = {format_expr(e.expr)}"
    if e.where:
        text += f" where {format_where(e.where)}"
    return text


def format_declarations(c: Cascade) -> list[str]:
    """The `cascade`, `rank`, `param`, `input` and `output` statements of a cascade."""
    lines = [f"cascade {c.name}"]
    plain = [r.name for r in c.ranks.values() if not r.parts]
    if plain:
        lines.append("rank " + ", ".join(plain))
    for r in c.ranks.values():
        if r.parts:
            lines.append(f"rank {r.name} = {' * '.join(r.parts)}")
    if c.params:
        lines.append("param " + ", ".join(c.params))
    lines.append("input " + ", ".join(f"{d.name}[{','.join(d.indices)}]" for d in c.inputs.values()))
    lines.append("output " + ", ".join(c.outputs))
    return lines


def print_cascade(c: Cascade, comments: dict[int, list[str]] | None = None,
                  header: list[str] | None = None) -> str:
    """The cascade as text. `comments[i]` are lines written above Einsum number i (index into
    `c.einsums`); `header` lines go at the top. Both are written as `# ...` comments."""
    comments = comments or {}
    lines = [f"# {h}" if h else "#" for h in header or []]
    lines += format_declarations(c)
    for i, e in enumerate(c.einsums):
        lines += [f"# {text}" for text in comments.get(i, [])]
        lines.append(format_einsum(e))
    return "\n".join(lines) + "\n"
