"""Cascade text from the IR: the inverse of the parser.

`print_cascade(c)` writes declarations and Einsums in statement order; parsing the text gives
back the same cascade (names, ranks, params, inputs, outputs, and every Einsum's left-hand side,
expression tree, `where` clause and reductions' `where`). Every construct of the language is
printed: arithmetic, functions (`select`, `pow`...), comparisons and `and`/`or`/`not` as values,
reductions with their own `where` and `kth`'s k, scalars (`A[]`), and `where` conditions (affine
`Comparison`s, data-dependent `Compare`s, `BoolOp`, `Not`).

Expressions are printed with the fewest parentheses that keep the parser's tree. Precedence,
lowest first: `or`, `and`, `not`, comparisons, `+ -`, `* /`, unary minus, primaries.

The parser copies each conjunct of an Einsum's `where` that names a reduction's variables into
that reduction's `Reduce.where` (after the reduction's own conditions) while `Einsum.where` keeps
the conjuncts as written. The printer writes `Einsum.where` as written and, at each reduction,
only its own conditions (the copied suffix removed, found by replaying the parser's placement), so
no condition is printed twice. Where the suffix is not the copied one (an IR built by hand), the
whole `Reduce.where` is printed: a conjunct printed twice is the same cascade (`c and c` is `c`).
"""
from __future__ import annotations

import math

import sympy

from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Comparison, Not, Number, Reduce,
                                Size, Unary, Var, children, value_vars)
from einsum_cascade.ir import Cascade, Einsum

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_OR, _AND, _NOT, _COMPARE = -3, -2, -1, 0
_UNARY = 3
_ATOM = 4


def _format_rational(value: sympy.Rational) -> str:
    if value.q == 1:
        return str(value.p)
    return repr(float(value))


def format_index(expr: sympy.Expr) -> str:
    """An index or condition expression (affine sympy) as cascade text: integer coefficients as
    sympy writes them, other coefficients as decimals (the language has no `/` in indices)."""
    expr = sympy.sympify(expr)
    if not any(isinstance(a, sympy.Rational) and a.q != 1 for a in expr.atoms(sympy.Rational)):
        return sympy.sstr(expr)
    terms = []
    for term, coeff in sorted(sympy.expand(expr).as_coefficients_dict().items(), key=lambda t: str(t[0])):
        number = _format_rational(sympy.Rational(coeff)) if coeff.is_Rational else str(coeff)
        if term == 1:
            terms.append(number)
        else:
            terms.append(f"{number}*{sympy.sstr(term)}")
    return " + ".join(terms).replace("+ -", "- ") if terms else "0"


def format_number(value: float) -> str:
    """A non-negative number as cascade text (`inf`, `3`, `0.5`, `1e-300`)."""
    if math.isinf(value):
        return "inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def _default_text(value: float) -> str:
    """A `size` default as cascade text (a param's may be negative)."""
    return "-" + format_number(-value) if value < 0 else format_number(value)


def _precedence(node) -> int:
    if isinstance(node, Binary):
        return _PRECEDENCE[node.op]
    if isinstance(node, Unary):
        return _UNARY
    if isinstance(node, Number) and (node.value < 0 or math.copysign(1.0, node.value) < 0):
        return _UNARY
    if isinstance(node, BoolOp):
        return _OR if node.op == "or" else _AND
    if isinstance(node, Not):
        return _NOT
    if isinstance(node, (Compare, Comparison)):
        return _COMPARE
    return _ATOM


def _wrap(node, text: str, below: int) -> str:
    """`text` in parentheses when `node` binds less tightly than `below` allows."""
    return f"({text})" if _precedence(node) < below else text


def format_expr(node, own: dict | None = None) -> str:
    """A value expression (or condition) as cascade text that parses back to the same tree.
    `own[id(reduce)]`: the conditions to print in that reduction's `where` (default: all)."""
    if isinstance(node, Number):
        if node.value < 0 or math.copysign(1.0, node.value) < 0:
            return "-" + format_number(-node.value)
        return format_number(node.value)
    if isinstance(node, (Size, Var)):
        return node.name
    if isinstance(node, Access):
        return f"{node.tensor}[{', '.join(format_index(i) for i in node.indices)}]"
    if isinstance(node, Comparison):
        return f"{format_index(node.left)} {node.op} {format_index(node.right)}"
    if isinstance(node, Unary):
        # `- -x` and `-(a*b)` need parentheses to keep the tree; an atom does not.
        return "-" + _wrap(node.operand, format_expr(node.operand, own), _ATOM)
    if isinstance(node, Binary):
        prec = _PRECEDENCE[node.op]
        left = _wrap(node.left, format_expr(node.left, own), prec)
        right = _wrap(node.right, format_expr(node.right, own), prec + 1)
        return f"{left} {node.op} {right}"
    if isinstance(node, Compare):
        # comparisons do not chain: a comparison (or lower) operand needs parentheses
        left = _wrap(node.left, format_expr(node.left, own), _COMPARE + 1)
        right = _wrap(node.right, format_expr(node.right, own), _COMPARE + 1)
        return f"{left} {node.op} {right}"
    if isinstance(node, BoolOp):
        # the parser builds `a and b and c` flat: a nested and/or operand needs parentheses
        prec = _precedence(node)
        return f" {node.op} ".join(_wrap(a, format_expr(a, own), prec + 1) for a in node.args)
    if isinstance(node, Not):
        return "not " + _wrap(node.arg, format_expr(node.arg, own), _NOT)
    if isinstance(node, Call):
        return f"{node.func}({', '.join(format_expr(a, own) for a in node.args)})"
    if isinstance(node, Reduce):
        head = ", ".join(node.vars)
        if node.k is not None:  # k is read as an arithmetic expression
            head = f"{_wrap(node.k, format_expr(node.k, own), _COMPARE + 1)}, {head}"
        text = f"{node.op}({head}: {format_expr(node.body, own)}"
        where = node.where if own is None else own.get(id(node), node.where)
        if where:
            text += f" where {format_where(where, own)}"
        return text + ")"
    raise TypeError(f"cannot print {node!r}")


def format_where(where: tuple, own: dict | None = None) -> str:
    """A conjunction (tuple) of conditions as the text of a `where`."""
    return " and ".join(_wrap(c, format_expr(c, own), _AND + 1) for c in where)


def own_conditions(e: Einsum, variables) -> dict:
    """For each reduction of `e` (by id), its own `where`: `Reduce.where` without the conjuncts
    the parser copied from `e.where` (replaying its placement: the innermost reduction whose
    variables bind the conjunct and in whose scope all its variables are)."""
    variables = set(variables)
    space_where = tuple(getattr(e, "space_where", ()) or ())
    pending = tuple(c for c in e.where if c not in space_where)
    own: dict = {}
    stack = [(e.expr, pending, frozenset(e.output_vars | e.implicit_vars))]
    while stack:
        node, todo, scope = stack.pop()
        if isinstance(node, Reduce):
            inner = scope | set(node.vars)
            mine = tuple(c for c in todo
                         if value_vars(c, variables) & set(node.vars) and value_vars(c, variables) <= inner)
            rest = tuple(c for c in todo if c not in mine)
            if mine and node.where[len(node.where) - len(mine):] == mine:
                own[id(node)] = node.where[:len(node.where) - len(mine)]
            stack.append((node.body, rest, frozenset(inner)))
            if node.k is not None:
                stack.append((node.k, (), frozenset(scope)))
            for cond in node.where:
                stack.append((cond, (), frozenset(inner)))
            continue
        stack.extend((child, todo, scope) for child in children(node))
    return own


def format_einsum(e: Einsum, variables=None) -> str:
    """One statement `NAME[lhs] = expr [where ...]` (a scalar is written `NAME[] = ...`)."""
    own = own_conditions(e, variables) if variables is not None and e.where else None
    text = f"{e.name}[{', '.join(format_index(i) for i in e.lhs)}] = {format_expr(e.expr, own)}"
    if e.where:
        text += f" where {format_where(e.where)}"
    return text


def format_declarations(c: Cascade) -> list[str]:
    """The `cascade`, `rank`, `param`, `size`, `input` and `output` statements of a cascade."""
    lines = [f"cascade {c.name}"]
    plain = [r.name for r in c.ranks.values() if not r.parts]
    if plain:
        lines.append("rank " + ", ".join(plain))
    for r in c.ranks.values():
        if r.parts:
            lines.append(f"rank {r.name} = {' * '.join(r.parts)}")
    if c.params:
        lines.append("param " + ", ".join(c.params))
    defaults = getattr(c, "defaults", None) or {}
    if defaults:
        lines.append("size " + ", ".join(f"{name} = {_default_text(v)}" for name, v in defaults.items()))
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
        lines.append(format_einsum(e, c.variables))
    return "\n".join(lines) + "\n"
