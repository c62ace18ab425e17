"""The cascade printer: printing then parsing gives back the same cascade (whole library)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import sympy

import einsum_cascade as ec
from einsum_cascade.ast import Access, Binary, Call, Number, Reduce, Size, Unary, Var
from einsum_cascade.library import LIBRARY_DIR
from einsum_cascade.printer import format_expr, print_cascade

FILES = sorted(LIBRARY_DIR.glob("*.cascade")) + sorted((LIBRARY_DIR / "blocks").glob("*.cascade"))


def shape(node):
    """The tree without source positions, for comparison."""
    if isinstance(node, Access):
        return ("access", node.tensor, tuple(sympy.expand(i) for i in node.indices))
    if isinstance(node, Number):
        return ("number", node.value)
    if isinstance(node, (Size, Var)):
        return (type(node).__name__, node.name)
    if isinstance(node, Unary):
        return ("neg", shape(node.operand))
    if isinstance(node, Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, Call):
        return ("call", node.func, tuple(shape(a) for a in node.args))
    if isinstance(node, Reduce):
        return ("reduce", node.op, node.vars, shape(node.body))
    raise TypeError(node)


def summary(c: ec.Cascade):
    return (
        c.name, {n: r.parts for n, r in c.ranks.items()}, c.params,
        {n: d.indices for n, d in c.inputs.items()}, c.outputs,
        [(e.name, e.is_initial, tuple(sympy.expand(i) for i in e.lhs), shape(e.expr),
          tuple((sympy.expand(w.left), w.op, sympy.expand(w.right)) for w in e.where))
         for e in c.einsums],
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_print_then_parse_is_the_same_cascade(path: Path):
    original = ec.load(path)
    again = ec.parse(print_cascade(original), str(path))
    assert summary(again) == summary(original)


def test_parentheses_keep_the_tree():
    a, b, c = (Access(n, (sympy.Symbol("p"),)) for n in "ABC")
    cases = {
        Binary("-", a, Binary("-", b, c)): "A[p] - (B[p] - C[p])",
        Binary("/", a, Binary("*", b, c)): "A[p] / (B[p] * C[p])",
        Binary("*", Binary("+", a, b), c): "(A[p] + B[p]) * C[p]",
        Unary("-", Binary("*", a, b)): "-(A[p] * B[p])",
        Binary("-", a, Unary("-", Number(math.inf))): "A[p] - -inf",
        Reduce("max", ("m0",), Call("exp", (a,))): "max(m0: exp(A[p]))",
    }
    for node, text in cases.items():
        assert format_expr(node) == text


def test_comments_are_written_above_their_einsum():
    c = ec.load_library("attention_3pass")
    text = print_cascade(c, comments={1: ["rule: test"]}, header=["made by a test"])
    lines = text.splitlines()
    assert lines[0] == "# made by a test"
    at = lines.index("# rule: test")
    assert lines[at + 1].startswith("GM[p] = max(m: QK[m, p])")
