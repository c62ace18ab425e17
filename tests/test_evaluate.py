"""Reference evaluation: Einstein sums, explicit reductions, where/absent semantics, recurrences."""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec

RNG = np.random.default_rng(7)


def test_implicit_and_explicit_reductions_match_numpy():
    c = ec.parse(
        "rank E, M, P\ninput A[e,m], B[e,p]\noutput S, MX, MN, PR, T\n"
        "S[m,p] = A[e,m] * B[e,p]\nMX[p] = max(m: S[m,p])\nMN[m] = min(p: S[m,p])\n"
        "PR[p] = prod(e: B[e,p])\nT[p] = sum(m, e: A[e,m] * A[e,m] * B[e,p])\n"
    )
    a, b = RNG.normal(size=(3, 5)), RNG.normal(size=(3, 4))
    out = c.evaluate({"A": a, "B": b})
    s = np.einsum("em,ep->mp", a, b)
    np.testing.assert_allclose(out["S"], s, rtol=1e-12)
    np.testing.assert_allclose(out["MX"], s.max(0), rtol=1e-12)
    np.testing.assert_allclose(out["MN"], s.min(1), rtol=1e-12)
    np.testing.assert_allclose(out["PR"], b.prod(0), rtol=1e-12)
    np.testing.assert_allclose(out["T"], np.einsum("em,em,ep->p", a, a, b), rtol=1e-12)


def test_functions_match_their_definitions():
    funcs = "exp log sqrt rsqrt recip abs square relu gelu sigmoid softplus tanh elu erf".split()
    text = "rank N\ninput X[n]\noutput " + ", ".join(f.upper() for f in funcs) + "\n"
    text += "".join(f"{f.upper()}[n] = {f}(X[n])\n" for f in funcs)
    x = np.array([0.3, 1.7, 2.5, 0.01])
    y = np.array([-2.0, -0.5, 0.4, 3.0])
    import math
    erf = np.vectorize(math.erf)
    expect = {
        "EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "RSQRT": lambda v: v**-0.5,
        "RECIP": lambda v: 1 / v, "ABS": np.abs, "SQUARE": lambda v: v * v,
        "RELU": lambda v: np.where(v > 0, v, 0), "GELU": lambda v: v * 0.5 * (1 + erf(v / 2**0.5)),
        "SIGMOID": lambda v: 1 / (1 + np.exp(-v)), "SOFTPLUS": lambda v: np.log1p(np.exp(v)),
        "TANH": np.tanh, "ELU": lambda v: np.where(v > 0, v, np.exp(v) - 1), "ERF": erf,
    }
    c = ec.parse(text)
    for data in (x, y):
        out = c.evaluate({"X": data})
        for name, f in expect.items():
            with np.errstate(all="ignore"):
                ref = f(data)
            np.testing.assert_allclose(out[name], ref, rtol=1e-12, equal_nan=True, err_msg=name)


def test_where_makes_points_absent_and_outputs_read_zero():
    c = ec.parse(
        "rank M, P\ninput S[m,p]\noutput X, MX, SM\n"
        "X[m,p] = S[m,p] * 2 where m <= p\nMX[p] = max(m: X[m,p])\nSM[p] = S[m,p] where m > p\n"
    )
    s = RNG.normal(size=(4, 4))
    out = c.evaluate({"S": s})
    tri = np.arange(4)[:, None] <= np.arange(4)[None, :]
    np.testing.assert_array_equal(out["X"], np.where(tri, 2 * s, 0.0))
    np.testing.assert_allclose(out["MX"], np.where(tri, 2 * s, -np.inf).max(0))
    # implicit sum with a where on the reduced variable; p = 3 has no m > 3: the empty sum is 0
    np.testing.assert_allclose(out["SM"], np.where(~tri, s, 0).sum(0))
    assert out["SM"][3] == 0.0


def test_empty_max_is_minus_infinity_and_out_of_range_reads_are_absent():
    c = ec.parse(
        "rank M, P\ninput S[m,p]\noutput G, SH\nG[p] = max(m: S[m,p] where m < 0)\n"
        "SH[m,p] = S[m+1,p]\n".replace(" where m < 0)", ")\nH[p] = max(m: S[m,p])")
    )
    s = RNG.normal(size=(3, 2))
    out = c.evaluate({"S": s})
    np.testing.assert_array_equal(out["SH"][:2], s[1:])
    np.testing.assert_array_equal(out["SH"][2], 0.0)  # read beyond the extent: absent -> 0
    c2 = ec.parse("rank M, P\ninput S[m,p]\noutput G\nW[m,p] = S[m,p] where m > 5\nG[p] = max(m: W[m,p])\n")
    assert np.all(c2.evaluate({"S": s})["G"] == -np.inf)


def test_recurrence_prefix_sum_and_final_read():
    c = ec.parse(
        "rank M, P\ninput X[m,p]\noutput C, TOT\nC[0,p] = 0\nC[m+1,p] = C[m,p] + X[m,p]\n"
        "TOT[p] = C[M,p]\n"
    )
    x = RNG.normal(size=(6, 3))
    out = c.evaluate({"X": x})
    np.testing.assert_allclose(out["C"][1:], np.cumsum(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["TOT"], x.sum(0), rtol=1e-12)


def test_affine_left_hand_side_scatters():
    c = ec.parse("rank P = P1 * P0\ninput X[p1,p0]\noutput Y\nY[p1*P0 + p0] = X[p1,p0] + 1\n")
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(c.evaluate({"X": x})["Y"], x.reshape(-1) + 1)


def test_params_and_variables_as_values():
    c = ec.parse("rank M, P\nparam S\ninput X[m,p]\noutput Y\nY[m,p] = X[m,p] - S * (p - m)\n")
    x = RNG.normal(size=(3, 4))
    ref = x - 0.5 * (np.arange(4)[None, :] - np.arange(3)[:, None])
    np.testing.assert_allclose(c.evaluate({"X": x}, {"S": 0.5})["Y"], ref)


def test_size_errors_name_the_size():
    c = ec.parse("rank E, P\nrank M = M1 * M0\ninput K[e,m], Q[e,p]\noutput X\n"
                 "X[m1,m0,p] = K[e, m1*M0+m0] * Q[e,p]\n")
    k, q = RNG.normal(size=(2, 8)), RNG.normal(size=(2, 3))
    with pytest.raises(ec.CascadeError, match="sizes 'M0', 'M1' are not bound"):
        c.evaluate({"K": k, "Q": q})
    with pytest.raises(ec.CascadeError, match="not divisible"):
        c.evaluate({"K": k, "Q": q}, {"M0": 3})
    with pytest.raises(ec.CascadeError, match="missing input tensor 'Q'"):
        c.evaluate({"K": k}, {"M0": 4})
    with pytest.raises(ec.CascadeError, match="unknown size or param 'Z'"):
        c.evaluate({"K": k, "Q": q}, {"M0": 4, "Z": 1})
    out = c.evaluate({"K": k, "Q": q}, {"M0": 4})["X"]
    np.testing.assert_allclose(out, np.einsum("em,ep->mp", k, q).reshape(2, 4, 3))


def test_where_on_an_explicit_reduction_variable():
    # A project addition: `where` may constrain the variables of an explicit reduction.
    c = ec.parse("rank M, P\ninput S[m,p]\noutput G, T\nG[p] = max(m: S[m,p]) where m <= p\n"
                 "T[p] = sum(m: S[m,p] * S[m,p]) where m < p\n")
    s = RNG.normal(size=(5, 5))
    tri = np.arange(5)[:, None] <= np.arange(5)[None, :]
    out = c.evaluate({"S": s})
    np.testing.assert_allclose(out["G"], np.where(tri, s, -np.inf).max(0))
    strict = np.arange(5)[:, None] < np.arange(5)[None, :]
    np.testing.assert_allclose(out["T"], np.where(strict, s * s, 0).sum(0))
    cost = ec.cost(c).at({"M": 5, "P": 5})
    assert cost.per_einsum["G"]["max"] == 15 and cost.per_einsum["T"]["multiply"] == 10
