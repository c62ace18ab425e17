"""A small, safe arithmetic evaluator for the sweep spec's `derive` fields (no eval of user text).

`parse_expr(text)` parses with Python's `ast` and accepts only numbers, names, + - * / // % **,
unary minus and plus, parentheses and calls of min, max, round; `evaluate(tree, names)` computes it.
Exponents are bounded (|exponent| <= 64) and every result must be a finite number, so no
expression can run long or overflow.
"""
from __future__ import annotations

import ast
import math
import operator

MAX_TEXT = 500
MAX_EXPONENT = 64
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS = {"min": min, "max": max, "round": round}


class ExprError(ValueError):
    """An expression that is not the arithmetic this evaluator accepts, or has no finite value."""


def parse_expr(text: str) -> ast.Expression:
    """The checked syntax tree of `text` (ExprError naming what is not allowed)."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"expected an arithmetic expression (text), got {text!r}")
    if len(text) > MAX_TEXT:
        raise ExprError(f"expression longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExprError(f"not an arithmetic expression: {err.msg} in {text!r}") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load, *_BINARY, *_UNARY)):
            continue
        if isinstance(node, (ast.BinOp, ast.UnaryOp)) and type(getattr(node, "op")) in {**_BINARY, **_UNARY}:
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS \
                and not node.keywords and node.args:
            continue
        raise ExprError(f"{ast.unparse(node) if hasattr(ast, 'unparse') else type(node).__name__!s}: only "
                        "numbers, names, + - * / // % **, parentheses and min, max, round are allowed")
    return tree


def names_of(tree: ast.Expression) -> set[str]:
    """The variable names an expression reads (not the function names)."""
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls}


def evaluate(tree: ast.Expression, values: dict[str, float]) -> float | int:
    """The value of a parsed expression with `values` for its names (ExprError if not finite)."""
    def ev(node: ast.AST):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ExprError(f"unknown name {node.id!r} (known: {', '.join(sorted(values))})")
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ExprError(f"exponent {right} is larger than {MAX_EXPONENT}")
            try:
                out = _BINARY[type(node.op)](left, right)
            except (ZeroDivisionError, OverflowError) as err:
                raise ExprError(f"{ast.unparse(node)}: {err}") from None
            if isinstance(out, int) and out.bit_length() > 1024:
                raise ExprError(f"{ast.unparse(node)}: larger than any float")
            return out
        if isinstance(node, ast.Call):
            return _CALLS[node.func.id](*(ev(a) for a in node.args))
        raise ExprError(f"unexpected {type(node).__name__}")

    result = ev(tree)
    if isinstance(result, complex) or isinstance(result, bool) or not math.isfinite(result):
        raise ExprError(f"{ast.unparse(tree)} has no finite value ({result!r})")
    return result
