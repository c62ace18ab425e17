"""Cascade language v2: data-dependent selection, per-reduction masks, Boolean conditions,
scalars, new functions, constants, unbounded passes, name clashes, deep nesting, BOM, transposed
reads. Expectations come from numpy, brute-force enumeration or hand derivations written here."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from einsum_cascade.points import numeric_points, symbolic_points

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(11)


# -- Boolean combinations of affine conditions: exact counts against brute force ----------------

@st.composite
def affine_conditions(draw, depth: int = 0):
    """(cascade text of a condition, python function of (m, p, q, S) giving its truth)."""
    kind = draw(st.sampled_from(["leaf", "leaf", "and", "or", "not"] if depth < 3 else ["leaf"]))
    if kind == "leaf":
        a, b, c = (draw(st.integers(-2, 2)) for _ in range(3))
        d = draw(st.integers(-1, 1))
        k = draw(st.integers(-3, 6))
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        text = f"{a}*m + {b}*p + {c}*q + {d}*S {op} {k}"
        ops = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__,
               "==": int.__eq__, "!=": int.__ne__}

        def leaf(m, p, q, s, a=a, b=b, c=c, d=d, k=k, op=op):
            return ops[op](a * m + b * p + c * q + d * s, k)
        return text, leaf
    if kind == "not":
        text, f = draw(affine_conditions(depth + 1))
        return f"not ({text})", lambda *x: not f(*x)
    (t1, f1), (t2, f2) = draw(affine_conditions(depth + 1)), draw(affine_conditions(depth + 1))
    if kind == "and":
        return f"({t1}) and ({t2})", lambda *x: f1(*x) and f2(*x)
    return f"({t1}) or ({t2})", lambda *x: f1(*x) or f2(*x)


@st.composite
def conditions_with_data(draw, depth: int = 0):
    """(text, truth(m, p, q, S, data)) where `data` is the truth of the data-dependent leaf."""
    kind = draw(st.sampled_from(["affine", "data", "and", "or", "not"] if depth < 3 else ["affine", "data"]))
    if kind == "affine":
        text, f = draw(affine_conditions(3))
        return text, lambda m, p, q, s, d: f(m, p, q, s)
    if kind == "data":
        return "A[m,p,q] > 0", lambda m, p, q, s, d: d
    if kind == "not":
        text, f = draw(conditions_with_data(depth + 1))
        return f"not ({text})", lambda *x: not f(*x)
    (t1, f1), (t2, f2) = draw(conditions_with_data(depth + 1)), draw(conditions_with_data(depth + 1))
    if kind == "and":
        return f"({t1}) and ({t2})", lambda *x: f1(*x) and f2(*x)
    return f"({t1}) or ({t2})", lambda *x: f1(*x) or f2(*x)


@settings(max_examples=30, deadline=None)
@given(conditions_with_data(), st.fixed_dictionaries({
    "M": st.integers(1, 5), "P": st.integers(1, 5), "Q": st.integers(1, 3), "S": st.integers(1, 3)}),
    st.integers(0, 2**32 - 1))
def test_data_dependent_conditions_count_an_upper_bound(cond, sizes, seed):
    text, truth = cond
    c = ec.parse(f"rank M, P, Q\nparam S\ninput A[m,p,q]\noutput X\nX[m,p,q] = A[m,p,q] where {text}\n")
    counted = ec.domain_points(c, c.einsum("X"), sizes)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((sizes["M"], sizes["P"], sizes["Q"]))
    points = list(itertools.product(range(sizes["M"]), range(sizes["P"]), range(sizes["Q"])))
    # never below the points present for any data: all true, all false, and random data
    for data in (lambda *_: True, lambda *_: False, lambda m, p, q: a[m, p, q] > 0):
        assert counted >= sum(bool(truth(m, p, q, sizes["S"], data(m, p, q))) for m, p, q in points)
    # and exact where the data cannot matter: the points some data value admits
    possible = sum(bool(truth(m, p, q, sizes["S"], True) or truth(m, p, q, sizes["S"], False))
                   for m, p, q in points)
    assert counted >= possible
    # the evaluation is exactly the random-data points
    out = c.evaluate({"A": a}, {"S": sizes["S"]})["X"]
    present = np.array([[[truth(m, p, q, sizes["S"], a[m, p, q] > 0) for q in range(sizes["Q"])]
                         for p in range(sizes["P"])] for m in range(sizes["M"])], dtype=bool)
    np.testing.assert_array_equal(out, np.where(present, a, 0.0))


def brute_force(f, sizes) -> int:
    return sum(bool(f(m, p, q, sizes["S"])) for m, p, q in itertools.product(
        range(sizes["M"]), range(sizes["P"]), range(sizes["Q"])))


@settings(max_examples=40, deadline=None)
@given(affine_conditions(), st.fixed_dictionaries({
    "M": st.integers(1, 6), "P": st.integers(1, 6), "Q": st.integers(1, 4), "S": st.integers(1, 4)}))
def test_point_counts_of_boolean_conditions_equal_brute_force(cond, sizes):
    text, truth = cond
    c = ec.parse(f"rank M, P, Q\nparam S\ninput A[m,p,q]\noutput X\nX[m,p,q] = A[m,p,q] where {text}\n")
    e = c.einsum("X")
    expected = brute_force(truth, sizes)
    assert ec.domain_points(c, e, sizes) == expected
    symbolic = symbolic_points(c)(frozenset(e.space_vars), e.space_where)
    assert not ({str(s) for s in symbolic.free_symbols} & {"m", "p", "q"}), symbolic
    value = symbolic.subs({sympy.Symbol(k, positive=True): v for k, v in sizes.items()}).doit()
    assert int(value) == expected, symbolic


def test_numeric_counts_are_exact_at_large_sizes():
    # causal and sliding window at 1M: M (M + 1) / 2 and W*M - W (W - 1) / 2, by hand
    c = ec.load_library("attention_sliding_window")
    qk = c.einsum("QK")
    n, w = 1 << 20, 4096
    sizes = {"E": 1, "F": 1, "M": n, "P": n, "W": w}
    assert ec.domain_points(c, qk, sizes) == w * n - w * (w - 1) // 2
    c = ec.load_library("attention_3pass_causal")
    assert ec.domain_points(c, c.einsum("QK"), {"E": 1, "F": 1, "M": n, "P": n}) == n * (n + 1) // 2


def test_regression_two_conditions_print_no_free_variables():
    # issue 11: `where m < S and m <= p` printed Piecewise((E*M*P, ...)) with free m, p
    c = ec.parse("rank E, M, P\nparam S\ninput Q[e,p], K[e,m]\noutput QK\n"
                 "QK[m,p] = Q[e,p]*K[e,m] where m < S and m <= p\n")
    count = ec.cost(c).per_einsum["QK"]["multiply"]
    assert {str(s) for s in count.free_symbols} <= {"E", "M", "P", "S"}
    assert not count.has(sympy.Piecewise)
    # by hand at E=3, M=10, P=7, S=4: rows p = 0..6 see min(p + 1, 4) keys: 1+2+3+4+4+4+4 = 22
    assert ec.cost(c).at({"E": 3, "M": 10, "P": 7, "S": 4}).per_einsum["QK"]["multiply"] == 3 * 22
    sizes = {sympy.Symbol(k, positive=True): v for k, v in {"E": 3, "M": 10, "P": 7, "S": 4}.items()}
    assert count.subs(sizes).doit() == 3 * 22


def test_closed_form_where_sympy_closes_it():
    c = ec.parse("rank E, M, P\nparam S\ninput Q[e,p], K[e,m]\noutput QK\n"
                 "QK[m,p] = Q[e,p]*K[e,m] where m < S\n")
    count = ec.cost(c).per_einsum["QK"]["multiply"]
    assert not count.has(sympy.Sum)  # E*P*min(M, S), a closed form
    M, S = sympy.Symbol("M", positive=True), sympy.Symbol("S", positive=True)
    for m, s in [(10, 4), (3, 8)]:
        assert count.subs({M: m, S: s, sympy.Symbol("E", positive=True): 2,
                           sympy.Symbol("P", positive=True): 5}) == 2 * 5 * min(m, s)


# -- per-reduction masks ------------------------------------------------------------------------

SINKS_PLUS_WINDOW = """rank M, P
param S, W
input X[m,p]
output O
O[p] = sum(m: X[m,p] where m < S) + max(m: X[m,p] where p - W < m and m <= p or m == 0)
"""


def test_per_reduction_masks_evaluate_and_count_separately():
    c = ec.parse(SINKS_PLUS_WINDOW)
    n, s, w = 12, 2, 3
    x = RNG.normal(size=(n, n))
    m, p = np.arange(n)[:, None], np.arange(n)[None, :]
    sink = m < s
    window = ((p - w < m) & (m <= p)) | (m == 0)
    expected = np.where(sink, x, 0).sum(0) + np.where(window, x, -np.inf).max(0)
    np.testing.assert_allclose(c.evaluate({"X": x}, {"S": s, "W": w})["O"], expected, rtol=1e-12)
    ops = ec.cost(c).at({"M": n, "P": n, "S": s, "W": w}).per_einsum["O"]
    # adds: the sum's S*P points plus the one add joining the reductions per p
    assert ops["add"] == s * n + n
    assert ops["max"] == int(np.broadcast_to(window, (n, n)).sum())


def test_union_is_not_counted_for_two_masked_reductions():
    # issue 11: sinks plus a window at M = P = 4096 counted the union (134M); the masks admit
    # S*P + (W*P - W(W-1)/2) points. By hand with S = 4, W = 1024, P = 4096 (self-attention).
    c = ec.parse(SINKS_PLUS_WINDOW.replace("or m == 0", "or m < 0"))
    n, s, w = 4096, 4, 1024
    ops = ec.cost(c).at({"M": n, "P": n, "S": s, "W": w}).per_einsum["O"]
    assert ops["add"] == s * n + n
    assert ops["max"] == w * n - w * (w - 1) // 2


# -- data-dependent selection -------------------------------------------------------------------

SELECTION = """rank E, M, P
param KK
input Q[e,p], K[e,m], A
output T, B, X, S, SEL, PW, SC, LG
QK[m,p] = Q[e,p]*K[e,m]
T[p] = kth(KK, m: QK[m,p])
B[m,p] = QK[m,p] >= T[p]
X[p] = sum(m: QK[m,p] where m < 3 or m == 5)
S = sum(m, p: QK[m,p]) * (1 - A)
SEL[m,p] = select(QK[m,p] > 0 and not (m == p), QK[m,p], -1)
PW[m,p] = pow(abs(QK[m,p]), 1.5) + cos(QK[m,p]) * sin(A) + sign(QK[m,p])
SC[p] = kth_smallest(2, m: QK[m,p]) where QK[m,p] >= T[p]
LG[p] = T[p] * log(M)
"""


def test_new_constructs_match_numpy():
    c = ec.parse(SELECTION)
    q, k, a = RNG.normal(size=(3, 5)), RNG.normal(size=(3, 7)), 0.3
    out = c.evaluate({"Q": q, "K": k, "A": a}, {"KK": 3})
    qk = k.T @ q
    t = -np.sort(-qk, axis=0)[2]
    m, p = np.arange(7)[:, None], np.arange(5)[None, :]
    np.testing.assert_allclose(out["T"], t)
    np.testing.assert_array_equal(out["B"], (qk >= t).astype(float))
    np.testing.assert_allclose(out["X"], np.where((m < 3) | (m == 5), qk, 0).sum(0))
    np.testing.assert_allclose(out["S"], qk.sum() * (1 - a))
    assert out["S"].shape == ()
    np.testing.assert_allclose(out["SEL"], np.where((qk > 0) & (m != p), qk, -1))
    np.testing.assert_allclose(out["PW"], np.abs(qk) ** 1.5 + np.cos(qk) * np.sin(a) + np.sign(qk))
    np.testing.assert_allclose(out["SC"], np.sort(np.where(qk >= t, qk, np.inf), axis=0)[1])
    np.testing.assert_allclose(out["LG"], t * np.log(7))


def test_kth_with_fewer_points_than_k_and_bad_k():
    c = ec.parse("rank M, P\nparam KK\ninput X[m,p]\noutput T, U\n"
                 "T[p] = kth(KK, m: X[m,p] where m <= p)\nU[p] = kth_smallest(KK, m: X[m,p])\n")
    x = RNG.normal(size=(4, 4))
    out = c.evaluate({"X": x}, {"KK": 2})
    expected = [-np.inf] + [np.sort(x[:p + 1, p])[-2] for p in range(1, 4)]
    np.testing.assert_allclose(out["T"], expected)
    np.testing.assert_allclose(out["U"], np.sort(x, axis=0)[1])
    with pytest.raises(ec.CascadeError, match="k must be a positive integer, got 1.5"):
        c.evaluate({"X": x}, {"KK": 1.5})


def test_selection_costs_by_hand():
    c = ec.parse(SELECTION)
    ops = ec.cost(c).at({"E": 3, "M": 7, "P": 5, "KK": 3}).per_einsum
    assert ops["T"] == {"kth": 35}                       # one kth step per score
    assert ops["B"] == {"compare": 35}
    assert ops["X"] == {"add": 4 * 5}                    # m in {0, 1, 2, 5}
    assert ops["S"] == {"add": 35 + 1, "multiply": 1}    # (1 - A): one subtract, once
    assert ops["SEL"] == {"compare": 70, "logic": 70, "select": 35}
    assert ops["LG"] == {"multiply": 5, "log": 1}        # log(M) computed once
    # data-dependent mask: an upper bound (every point), plus one comparison per score
    assert ops["SC"] == {"kth": 35, "compare": 35}


# -- scalars, constants -------------------------------------------------------------------------

def test_scalars_input_and_computed_leave_no_dummy_rank():
    c = ec.parse("rank M, P\ninput X[m,p], A\noutput Y, Z\nZ = sum(m, p: X[m,p])\n"
                 "Y[m,p] = X[m,p] * (1 - A) / Z\n")
    assert c.inputs["A"].indices == () and c.tensors["Z"].arity == 0
    x = RNG.normal(size=(3, 4))
    out = c.evaluate({"X": x, "A": np.float64(0.25)})
    np.testing.assert_allclose(out["Y"], x * 0.75 / x.sum())
    report = ec.passes(c, "M")
    assert {e.name: (e.pass_, e.kind) for e in report.einsums} == {"Z": (1, "global"), "Y": (2, "streamed")}
    assert [r.rank for r in ec.all_passes(c)] == ["M", "P"]
    ops = ec.cost(c).at({"M": 3, "P": 4}).per_einsum["Y"]
    assert ops == {"multiply": 12, "add": 1, "divide": 12}
    # the bracketed spellings are the same scalars; a scalar k of a kth is an input of its pass
    c2 = ec.parse("rank M, P\ninput X[m,p], A[], KK\noutput Y\nZ[] = sum(m, p: X[m,p])\n"
                  "T[p] = kth(KK, m: X[m,p])\nY[m,p] = X[m,p] * (1 - A[]) / Z[] + T[p]\n")
    out = c2.evaluate({"X": x, "A": np.float64(0.25), "KK": np.float64(2)})["Y"]
    np.testing.assert_allclose(out, x * 0.75 / x.sum() + np.sort(x, axis=0)[-2][None, :])
    assert "KK" in {a.tensor for a in c2.einsum("T").reads}


# -- analyze never fails ------------------------------------------------------------------------

GATED_DELTA = """# Titans' linear memory as a gated delta rule: S[m+1] = G[m] S[m] - B[m] (S[m] k - v) k
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m], B[m], G[m]
output AV
S[e,f,0] = 0
PRED[f,m] = S[e,f,m] * K[e,m]
S[e,f,m+1] = G[m] * S[e,f,m] - B[m] * (PRED[f,m] - V[f,m]) * K[e,m]
AV[f,p] = Q[e,p] * S[e,f,p+1] where p < M
"""


def test_gated_delta_rule_evaluates_and_reports_unbounded_passes(tmp_path):
    c = ec.parse(GATED_DELTA)
    e_, f_, n = 3, 2, 6
    q, k, v = RNG.normal(size=(e_, n)), RNG.normal(size=(e_, n)), RNG.normal(size=(f_, n))
    b, g = RNG.uniform(0.1, 0.5, n), RNG.uniform(0.8, 1.0, n)
    state = np.zeros((e_, f_))
    expected = np.zeros((f_, n))
    for t in range(n):  # the delta rule, one token at a time
        pred = state.T @ k[:, t]
        state = g[t] * state - b[t] * np.outer(k[:, t], pred - v[:, t])
        expected[:, t] = state.T @ q[:, t]
    out = c.evaluate({"Q": q, "K": k, "V": v, "B": b, "G": g})["AV"]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # over E every step needs the full dot product S.k of the previous step: passes grow with M
    report = ec.passes(c, "E")
    assert report.passes is None and report.grows_with == "M"
    assert report.growth_chain == ["PRED", "S", "PRED"]
    assert ec.passes(c, "M").passes == 1
    path = tmp_path / "gated_delta.cascade"
    path.write_text(GATED_DELTA)
    run = subprocess.run([sys.executable, "-m", "studies.cli", "analyze", str(path), "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    ranks = {r["rank"]: r for r in json.loads(run.stdout)["ranks"]}
    assert ranks["E"]["passes"] is None
    assert ranks["E"]["unbounded"] == {"grows_with": "M", "chain": ["PRED", "S", "PRED"]}
    assert ranks["M"]["passes"] == 1 and ranks["M"]["unbounded"] is None
    text = subprocess.run([sys.executable, "-m", "studies.cli", "analyze", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert text.returncode == 0 and "passes over E: unbounded: grows with M" in text.stdout


# -- errors at line:column ----------------------------------------------------------------------

HEAD = "rank E, M, P\ninput Q[e,p], K[e,m]\noutput X\n"
ERRORS = [
    ("rank E, M\nparam K\ninput K[e,m]\noutput K\n", 3, 7, "input 'K' clashes with the param 'K' declared at 2:7"),
    ("rank E, M\ninput K[e,m]\nparam K\noutput K\n", 3, 7, "param 'K' clashes with the input 'K'"),
    (HEAD + "param W\nW[p] = Q[e,p]\nX[p] = W[p]\n", 5, 1, "tensor 'W' clashes with the param 'W'"),
    ("rank E, M\nparam E2\ninput m[e]\noutput m\n", 3, 7, "clashes with the rank variable 'm'"),
    (HEAD + "X[p] = Q[e,p] where Q[e,p]\n", 4, 21, "expected a comparison"),
    (HEAD + "X[p] = kth(2, Q[e,p])\n", 4, 15, "kth needs its variables"),
    (HEAD + "X[p] = 1 < Q[e,p] < 3\n", 4, 19, "do not chain"),
    (HEAD + "X[p] = sum(e: Q[e,p] where e < m)\n", 4, 8, "neither reduced nor on the left"),
    (HEAD + "X[m,p] = select(Q[e,p], K[e,m])\n", 4, 10, "select takes 3 argument(s), got 2"),
    (HEAD + "X[p] = K * Q[e,p]\n", 4, 8, "tensor 'K' needs its indices"),
]


@pytest.mark.parametrize("text,line,col,words", ERRORS)
def test_errors_at_line_and_column(text, line, col, words):
    with pytest.raises(ec.CascadeError) as info:
        ec.parse(text, "bad.cascade")
    err = info.value
    assert (err.line, err.col) == (line, col), str(err)
    assert words in err.message, err.message


PREFIX = "X[p] = "
NESTING = [  # (right-hand side, column of the token that goes past 64 levels)
    ("(" * 300 + "Q[e,p]" + ")" * 300, len(PREFIX) + 65),
    ("Q[e,p]" + " + 1" * 1000, len(PREFIX) + len("Q[e,p]") + 63 * 4 + 2),
    ("-" * 5000 + "Q[e,p]", len(PREFIX) + 65),
    ("exp(" * 3000 + "Q[e,p]" + ")" * 3000, len(PREFIX) + 64 * 4 + 1),
    ("not " * 3000 + "Q[e,p] > 0", len(PREFIX) + 64 * 4 + 1),
]


@pytest.mark.parametrize("rhs,col", NESTING)
def test_deep_nesting_is_a_clear_error(rhs, col):
    with pytest.raises(ec.CascadeError) as info:
        ec.parse(HEAD + PREFIX + rhs + "\n", "deep.cascade")
    assert (info.value.line, info.value.col) == (4, col), str(info.value)
    assert "nested too deeply" in info.value.message


def test_nesting_just_under_the_limit_parses_evaluates_and_costs():
    rhs = "Q[e,p]" + " + 1" * 62
    c = ec.parse("rank E, P\ninput Q[e,p]\noutput X\nX[e,p] = " + rhs + "\n")
    q = RNG.normal(size=(2, 3))
    np.testing.assert_allclose(c.evaluate({"Q": q})["X"], q + 62)
    assert ec.cost(c).at({"E": 2, "P": 3}).total == {"add": 62 * 6}
    ec.passes(c, "P")


def test_byte_order_mark_is_skipped(tmp_path):
    text = "\ufeff" + HEAD + "X[p] = Q[e,p]\n"
    assert ec.parse(text).einsum("X").implicit_vars == {"e"}
    path = tmp_path / "bom.cascade"
    path.write_bytes(text.encode("utf-8"))
    assert ec.load(path).name == "bom"


TRANSPOSED = """rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV
QK[m,p] = Q[e,p] * K[e,m]
AV[f,p] = QK[p,m] * V[f,m]
"""


def test_transposed_read_needs_equal_extents(tmp_path):
    c = ec.parse(TRANSPOSED, "t.cascade")
    assert [(t.access.line, t.access.col) for t in c.transposed_reads] == [(5, 11)]
    q, k, v = RNG.normal(size=(2, 5)), RNG.normal(size=(2, 4)), RNG.normal(size=(3, 4))
    with pytest.raises(ec.CascadeError) as info:
        c.evaluate({"Q": q, "K": k, "V": v})
    assert (info.value.file, info.value.line, info.value.col) == ("t.cascade", 5, 11)
    assert "read as QK[p, m]" in info.value.message
    with pytest.raises(ec.CascadeError):
        ec.cost(c).at({"E": 2, "F": 3, "M": 4, "P": 5})
    k = RNG.normal(size=(2, 5))
    v = RNG.normal(size=(3, 5))
    out = c.evaluate({"Q": q, "K": k, "V": v})["AV"]  # equal extents: allowed
    np.testing.assert_allclose(out, v @ (k.T @ q).T, rtol=1e-12)
    path = tmp_path / "t.cascade"
    path.write_text(TRANSPOSED)
    run = subprocess.run([sys.executable, "-m", "studies.cli", "analyze", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and f"note: {path}:5:11: QK[p, m] reads a tensor declared QK[m, p]" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "studies.cli", "analyze", str(path), "--size",
                          "E=2", "F=3", "M=4", "P=5"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and f"{path}:5:11:" in bad.stderr


def test_data_dependent_mask_on_a_contraction_and_its_upper_bound_count():
    c = ec.parse("rank E, F, M, P\nparam KK\ninput Q[e,p], K[e,m], V[f,m]\noutput AV, BV\n"
                 "QK[m,p] = Q[e,p] * K[e,m]\nT[p] = kth(KK, m: QK[m,p])\n"
                 "AV[f,p] = QK[m,p] * V[f,m] where QK[m,p] >= T[p] and m <= p\n"
                 "BV[f,p] = V[f,m] where not (QK[m,p] < T[p]) or m == 0\n")
    n = 9
    q, k, v = RNG.normal(size=(3, n)), RNG.normal(size=(3, n)), RNG.normal(size=(2, n))
    out = c.evaluate({"Q": q, "K": k, "V": v}, {"KK": 2})
    qk = k.T @ q
    t = -np.sort(-qk, axis=0)[1]
    m, p = np.arange(n)[:, None], np.arange(n)[None, :]
    np.testing.assert_allclose(out["AV"], v @ np.where((qk >= t) & (m <= p), qk, 0), rtol=1e-12)
    np.testing.assert_allclose(out["BV"], v @ ((qk >= t) | (m == 0)).astype(float), rtol=1e-12)
    ops = ec.cost(c).at({"E": 3, "F": 2, "M": n, "P": n, "KK": 2}).per_einsum
    # upper bound: the data-dependent comparison may be true, so AV counts the causal triangle
    # (n (n + 1) / 2 per f) and BV every point; one compare per (m, p) the affine part admits
    assert ops["AV"] == {"multiply": 2 * n * (n + 1) // 2, "add": 2 * n * (n + 1) // 2,
                         "compare": n * (n + 1) // 2}
    assert ops["BV"] == {"add": 2 * n * n, "compare": n * n}


def test_private_inference_rejects_new_constructs_with_a_clear_line():
    run = subprocess.run([sys.executable, "-m", "studies.cli", "pi", "cascade", "topk_attention", "--size",
                          "E=8", "F=8", "M=64", "P=64", "KK=4"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert "topk_attention.cascade:15:1: T: kth reduction has no secure-computation mapping" in run.stderr
    assert "Traceback" not in run.stderr
