"""The cascade printer: printing then parsing gives back the same cascade (whole library)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import sympy

import einsum_cascade as ec
from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Comparison, Not, Number, Reduce,
                                Size, Unary, Var)
from einsum_cascade.catalog import LIBRARY_DIR
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
        c.name, {n: r.parts for n, r in c.ranks.items()}, c.params, c.defaults,
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


# -- property test: random trees of every construct print and parse back -----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from einsum_cascade.ast import FUNCTIONS_1, KTH_REDUCTIONS, REDUCTIONS, var_symbol  # noqa: E402

_M, _P, _W = var_symbol("m"), var_symbol("p"), sympy.Symbol("W", positive=True)
_OPS = ["<", "<=", ">", ">=", "==", "!="]


def _trees(leaves):
    """Value trees over `leaves`: arithmetic, functions, select, comparisons, and/or/not."""
    def extend(children):
        return st.one_of(
            st.builds(Unary, st.just("-"), children),
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/"]), children, children),
            st.builds(lambda f, a: Call(f, (a,)), st.sampled_from(sorted(FUNCTIONS_1)), children),
            st.builds(lambda f, a, b: Call(f, (a, b)), st.sampled_from(["max", "min", "pow"]), children, children),
            st.builds(lambda c, a, b: Call("select", (c, a, b)), children, children, children),
            st.builds(Compare, st.sampled_from(_OPS), children, children),
            st.builds(lambda op, xs: BoolOp(op, tuple(xs)), st.sampled_from(["and", "or"]),
                      st.lists(children, min_size=2, max_size=3)),
            st.builds(Not, children),
        )
    return st.recursive(leaves, extend, max_leaves=8)


def _flat(cond):
    """A condition as the parser builds it: nested and/or of the same operator merged."""
    if isinstance(cond, BoolOp):
        args = []
        for a in (_flat(x) for x in cond.args):
            args.extend(a.args if isinstance(a, BoolOp) and a.op == cond.op else [a])
        return BoolOp(cond.op, tuple(args))
    if isinstance(cond, Not):
        return Not(_flat(cond.arg))
    return cond


_P_LEAVES = st.one_of(st.builds(Number, st.sampled_from([0.0, 1.0, 2.5, 1e-3, math.inf])),
                      st.just(Size("W")), st.just(Var("p")), st.just(Access("A", ())),
                      st.just(Access("X", (sympy.Integer(0), _P))))
_M_LEAVES = st.one_of(_P_LEAVES, st.just(Var("m")), st.just(Access("X", (_M, _P))),
                      st.just(Access("X", (_P, _M + 1))))
_CONDITION_LEAVES = st.one_of(
    st.just(Comparison(_M, "<=", _P)), st.just(Comparison(_P - _W, "<", _M)),
    st.builds(lambda op, other: Compare(op, Access("X", (_M, _P)), other), st.sampled_from(_OPS), _P_LEAVES))
_CONDITIONS = st.recursive(_CONDITION_LEAVES, lambda c: st.one_of(
    st.builds(lambda op, xs: BoolOp(op, tuple(xs)), st.sampled_from(["and", "or"]),
              st.lists(c, min_size=2, max_size=3)),
    st.builds(Not, c)), max_leaves=4).map(_flat)


@st.composite
def _reductions(draw):
    op = draw(st.sampled_from(sorted(REDUCTIONS | KTH_REDUCTIONS)))
    cond = draw(st.none() | _CONDITIONS)
    where = () if cond is None else (cond.args if isinstance(cond, BoolOp) and cond.op == "and" else (cond,))
    k = draw(_trees(_P_LEAVES)) if op in KTH_REDUCTIONS else None
    return Reduce(op, ("m",), draw(_trees(_M_LEAVES)), tuple(where), k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees(st.one_of(_P_LEAVES, _reductions())))
def test_random_trees_of_every_construct_print_and_parse_back(tree):
    head = "cascade t\nrank M, P\nparam W\ninput X[m,p], A\noutput O\n"
    text = head + f"O[p] = {format_expr(tree)}\n"
    parsed = ec.parse(text, "random.cascade")
    assert shape(parsed.einsums[0].expr) == shape(tree), text
