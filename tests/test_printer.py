"""The cascade printer: printing then parsing gives back the same cascade (whole library)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import sympy

import einsum_cascade as ec
from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Comparison, Not, Number, Reduce,
                                Size, Unary, Var)
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
        return ("reduce", node.op, node.vars, shape(node.body), tuple(shape(w) for w in node.where),
                None if node.k is None else shape(node.k))
    if isinstance(node, Compare):
        return ("compare", node.op, shape(node.left), shape(node.right))
    if isinstance(node, Comparison):
        return ("affine", sympy.expand(node.left), node.op, sympy.expand(node.right))
    if isinstance(node, BoolOp):
        return (node.op, tuple(shape(a) for a in node.args))
    if isinstance(node, Not):
        return ("not", shape(node.arg))
    raise TypeError(node)


def summary(c: ec.Cascade):
    return (
        c.name, {n: r.parts for n, r in c.ranks.items()}, c.params,
        {n: d.indices for n, d in c.inputs.items()}, c.outputs,
        [(e.name, e.is_initial, tuple(sympy.expand(i) for i in e.lhs), shape(e.expr),
          tuple(shape(w) for w in e.where), tuple(shape(w) for w in e.space_where))
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


EVERY_CONSTRUCT = """
cascade every_construct
rank E, M, P
rank N = N1 * N0
param KK, S, W
input Q[e,p], K[e,m], A[], X[n1,n0]
output O, Z, R
QK[m,p] = Q[e,p] * K[e,m] where m <= p and (m < S or p - W < m) and not (m == 3)
T[p] = kth(KK + 1, m: QK[m,p] where m != p) - kth_smallest(2, m: QK[m,p])
Z = sum(m, p: select(QK[m,p] > 0 and not (QK[m,p] >= T[p] or m < p), pow(QK[m,p], 2), -cos(A[])))
B[m,p] = (QK[m,p] > T[p]) * ((m < p) + (m >= p)) - (sign(QK[m,p]) == -1) + sin(m * 0.5)
O[p] = sum(m: B[m,p] where m < S) + max(m: QK[m,p] where p - W < m and m <= p) where m <= p and QK[m,p] >= T[p] and p < 7
R = sum(n1, n0: X[n1,n0] * (A - Z)) - prod(n1: max(n0: X[n1,n0] where n0 < n1) where 2*n1 + 1 < N1)
"""


def test_every_construct_prints_and_parses_back():
    """Constructs of language v2 the library may not use: comparisons, and/or/not as values,
    select, pow/cos/sin/sign, scalars, kth with an expression k, per-reduction `where` combined
    with an Einsum `where` naming the reduction's variable, partitioned ranks."""
    original = ec.parse(EVERY_CONSTRUCT, "every.cascade")
    text = print_cascade(original)
    again = ec.parse(text, "printed.cascade")
    assert summary(again) == summary(original)
    assert summary(ec.parse(print_cascade(again), "twice.cascade")) == summary(original)


def test_copied_conditions_are_printed_once():
    """The parser copies `where m <= p` into the reduction's own `where`; printing writes it
    once, at the Einsum, and the reduction keeps only its own `m < S`."""
    c = ec.parse(EVERY_CONSTRUCT, "every.cascade")
    o = next(e for e in c.einsums if e.name == "O")
    reductions = [n for n in (o.expr.left, o.expr.right)]
    assert len(reductions[0].where) == 3  # own m < S, copied m <= p and QK >= T
    line = next(l for l in print_cascade(c).splitlines() if l.startswith("O[p]"))
    assert line.count("m <= p") == 2  # once in max's own where, once at the Einsum
    assert line.count("m < S") == 1
    assert line.count("QK[m, p] >= T[p]") == 1
    assert line.startswith("O[p] = sum(m: B[m, p] where m < S) + max(m: QK[m, p] where -W + p < m and m <= p)")
