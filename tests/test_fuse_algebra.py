"""The algebra of the rules: a value expression through sympy and back (and through the
printer) keeps its value, for random expressions (hypothesis), checked by evaluating both."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from einsum_cascade.fuse.algebra import Atoms, expand, to_ast, to_sympy
from einsum_cascade.printer import format_expr

LEAVES = ["X[m,p]", "Y[m,p]", "G[p]", "2", "0.5", "M"]


def expressions():
    leaf = st.sampled_from(LEAVES)

    def extend(inner):
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        divide = inner.map(lambda a: f"({a} / (1 + square({a})))")
        funcs = st.tuples(st.sampled_from(["exp(0.1 * ", "softplus(", "tanh(", "square(",
                                           "sqrt(1 + square(", "-("]), inner).map(
            lambda t: f"{t[0]}{t[1]}{')' * t[0].count('(')}")
        return binary | divide | funcs

    return st.recursive(leaf, extend, max_leaves=8)


HEAD = "rank M, P\ninput X[m,p], Y[m,p], G[p]\noutput Z\n"


@settings(max_examples=30, deadline=None)
@given(expressions(), st.booleans())
def test_through_sympy_and_back_keeps_the_value(text, expanded):
    original = ec.parse(HEAD + f"Z[m,p] = {text}\n")
    atoms = Atoms()
    sym = to_sympy(original.einsum("Z").expr, atoms)
    if expanded:
        sym = expand(sym)
    again = ec.parse(HEAD + f"Z[m,p] = {format_expr(to_ast(sym, atoms, set(original.variables)))}\n")
    rng = np.random.default_rng(0)
    inputs = {"X": rng.standard_normal((4, 3)), "Y": rng.standard_normal((4, 3)),
              "G": rng.standard_normal(3)}
    want = original.evaluate(inputs)["Z"]
    got = again.evaluate(inputs)["Z"]
    scale = max(1.0, float(np.max(np.abs(want))))
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale)
