"""The evaluator's fast paths (strided stores, adopted temporaries, in-place ufuncs, operand
order of contractions) against direct numpy formulas, and inputs never modified."""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec


def test_temporaries_are_not_shared_between_tensors():
    """X is stored from a temporary; Y = exp(X) must not overwrite X, nor Z = X + 1 change Y."""
    c = ec.parse("rank M, P\ninput A[m,p]\noutput X, Y, Z\n"
                 "X[m,p] = A[m,p] - 1\nY[m,p] = exp(X[m,p])\nZ[m,p] = X[m,p] + Y[m,p]\n")
    a = np.random.default_rng(1).standard_normal((5, 4))
    before = a.copy()
    out = c.evaluate({"A": a})
    assert np.array_equal(a, before)
    assert np.allclose(out["X"], a - 1)
    assert np.allclose(out["Y"], np.exp(a - 1))
    assert np.allclose(out["Z"], (a - 1) + np.exp(a - 1))


def test_strided_and_constant_left_hand_sides():
    c = ec.parse("rank M, P\ninput A[m,p]\noutput B, C\nB[2*m+1, p] = A[m,p] * 3\nC[p, 1] = sum(m: A[m,p])\n")
    a = np.random.default_rng(2).standard_normal((4, 3))
    out = c.evaluate({"A": a})
    expected_b = np.zeros((8, 3))
    expected_b[1::2] = 3 * a
    assert np.allclose(out["B"], expected_b)
    expected_c = np.zeros((3, 2))
    expected_c[:, 1] = a.sum(0)
    assert np.allclose(out["C"], expected_c)


@pytest.mark.parametrize("text,formula", [
    ("O[m,p] = A[e,p] * B[e,m]", lambda a, b: b.T @ a),          # product laid out as the output
    ("O[p,m] = A[e,p] * B[e,m]", lambda a, b: a.T @ b),
    ("O[m] = A[e,p] * B[e,m]", lambda a, b: (b.T @ a).sum(1)),
    ("O[p,e] = A[e,p] * B[e,m]", lambda a, b: (a * b.sum(1)[:, None]).T),  # batch axis e
])
def test_contractions_in_every_layout(text, formula):
    c = ec.parse(f"rank E, M, P\ninput A[e,p], B[e,m]\noutput O\n{text}\n")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    a0, b0 = a.copy(), b.copy()
    out = c.evaluate({"A": a, "B": b})["O"]
    assert np.allclose(out, formula(a, b))
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_library_evaluation_leaves_inputs_unchanged():
    rng = np.random.default_rng(4)
    inputs = {"Q": rng.standard_normal((4, 8)), "K": rng.standard_normal((4, 8)), "V": rng.standard_normal((3, 8))}
    before = {k: v.copy() for k, v in inputs.items()}
    for stem in ("attention_1pass", "attention_3pass", "attention_1pass_causal"):
        cascade = ec.load_library(stem)
        cascade.evaluate(inputs, {"M0": 4} if cascade.ranks["M"].parts else {})
        assert all(np.array_equal(inputs[k], before[k]) for k in inputs)


@pytest.mark.parametrize("lhs,subscripts", [("O[f,b,p]", "bkp,fbk->fbp"), ("O[b,f,p]", "bkp,fbk->bfp"),
                                            ("O[p,b,f]", "bkp,fbk->pbf")])
def test_batched_contraction_written_in_the_stored_layout(lhs, subscripts):
    """A batched product (shared, kept variable b) stored in several axis orders."""
    c = ec.parse(f"rank B, F, K, P\ninput X[b,k,p], Y[f,b,k]\noutput O\n{lhs} = X[b,k,p] * Y[f,b,k]\n")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 4, 6)), rng.standard_normal((2, 3, 4))
    assert np.allclose(c.evaluate({"X": x, "Y": y})["O"], np.einsum(subscripts, x, y))
