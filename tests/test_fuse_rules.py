"""Each rewrite rule of `einsum_cascade.fuse` on a minimal cascade, against the structure derived
by hand (written below as the Einsums the rule must produce), every refusal with its reason, and
a property test on random compositions of the supported patterns."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from einsum_cascade.ast import size_symbol
from einsum_cascade.fuse import fuse
from einsum_cascade.fuse.certify import relative_error, undefined_points
from einsum_cascade.fuse.moments import variance_error

HEAD = "rank M, P\ninput X[m,p], V[m,p]\n"


def einsum_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if ln and not ln.startswith(("#", "cascade", "rank", "input", "output", "param", "size"))]


def fused(body: str):
    return fuse(ec.parse(HEAD + body))


# The running maximum of X over tiles of M0 keys and its correction (online softmax), derived by
# hand from the FuseMax 1-pass cascade with QK replaced by X.
RUNNING_MAX = [
    "LM[m1, p] = max(m0: X[M0*m1 + m0, p])",
    "RM[0, p] = -inf",
    "RM[m1 + 1, p] = max(RM[m1, p], LM[m1, p])",
    "PRM[m1, p] = exp(RM[m1, p] - RM[m1 + 1, p])",
    "SLN[m1, m0, p] = exp(X[M0*m1 + m0, p] - RM[m1 + 1, p])",
]


def test_deferred_normalisation_moves_the_division_after_the_pass():
    r = fused("output Y\nS[p] = sum(m: X[m,p])\nY[p] = sum(m: X[m,p] / S[p] * V[m,p])\n")
    assert (r.passes_before, r.passes_after, r.rules) == (2, 1, ["deferred normalisation"])
    assert einsum_lines(r.text) == ["S[p] = sum(m: X[m, p])",
                                    "Y_S[p] = sum(m: X[m, p] * V[m, p])",
                                    "Y[p] = Y_S[p] / S[p]"]


def test_running_extremum_gives_the_online_softmax():
    r = fused("output S\nG[p] = max(m: X[m,p])\nS[p] = sum(m: exp(X[m,p] - G[p]))\n")
    assert (r.passes_before, r.passes_after, r.rules) == (2, 1, ["running extremum"])
    assert einsum_lines(r.text) == RUNNING_MAX + [
        "S_L[m1, p] = sum(m0: SLN[m1, m0, p])",
        "S_R[0, p] = 0",
        "S_R[m1 + 1, p] = S_R[m1, p] * PRM[m1, p] + S_L[m1, p]",
        "S[p] = S_R[M1, p]",  # exp(RM_M1 - G) = 1: G is the running max after the last tile
    ]
    assert r.identified == ["G[p] = RM at its last index"]


def test_a_minimum_is_the_running_maximum_of_the_negated_exponent():
    r = fused("output S\nG[p] = min(m: X[m,p])\nS[p] = sum(m: exp(G[p] - X[m,p]))\n")
    lines = einsum_lines(r.text)
    assert lines[0] == "X2[m, p] = -X[m, p]"
    assert lines[-1] == "S[p] = S_R[M1, p]"
    assert r.passes_after == 1


def test_multiplicative_correction_when_the_global_is_not_the_running_maximum():
    r = fused("output S\nG[p] = max(m: X[m,p]) + 1\nS[p] = sum(m: exp(X[m,p] - G[p]) * V[m,p])\n")
    assert "multiplicative correction" in r.rules and r.passes_after == 1
    lines = einsum_lines(r.text)
    assert "S_L[m1, p] = sum(m0: SLN[m1, m0, p] * V[M0*m1 + m0, p])" in lines
    # the correction exp(RM_M1 - G), once per query, applied to the finished sum
    assert lines[-2:] == ["CF[p] = exp(RM[M1, p] - G[p])", "S[p] = S_R[M1, p] * CF[p]"]
    P = size_symbol("P")
    assert r.correction_ops()["CF"] == {"add": P, "exp": P}  # one subtract and one exp per query


def test_a_power_of_a_global_multiplies_the_finished_sum():
    r = fused("output Y\nS[p] = sum(m: X[m,p] * X[m,p])\n"
              "Y[p] = sum(m: square(X[m,p] / sqrt(S[p])) * V[m,p])\n")
    assert r.passes_after == 1
    # (x / sqrt(S))^2 = x^2 / S: the sum of V x^2, divided by S after the pass
    assert einsum_lines(r.text)[-2:] == ["Y_S[p] = sum(m: V[m, p] * (X[m, p] * X[m, p]))",
                                         "Y[p] = Y_S[p] / S[p]"]


def test_moments_through_running_sums_of_powers():
    r = fused("output VAR\nMU[p] = sum(m: X[m,p]) / M\nVAR[p] = sum(m: square(X[m,p] - MU[p])) / M\n")
    assert "moments (running sums of powers)" in r.rules and r.passes_after == 1
    # sum (x - mu)^2 = sum x^2 - 2 mu sum x + M mu^2, and sum x = M mu (MU's own sum, reused)
    assert einsum_lines(r.text) == ["MU[p] = sum(m: X[m, p]) / M",
                                    "VAR_S[p] = sum(m: X[m, p] * X[m, p])",
                                    "VAR[p] = (VAR_S[p] - M * (MU[p] * MU[p])) / M"]


def test_masked_reduction_starts_the_running_max_at_a_finite_floor():
    r = fuse(ec.parse(HEAD.replace("rank M, P", "rank M, P\nparam W") + "output S\n"
                      "G[p] = max(m: X[m,p]) where p - W < m and m <= p\n"
                      "S[p] = sum(m: exp(X[m,p] - G[p])) where p - W < m and m <= p\n"))
    assert r.status == "reduced" and "RM[0, p] = -1e+300" in einsum_lines(r.text)


REFUSALS = {
    "S[p] = sum(m: softplus(X[m,p] - G[p]))": "softplus is a nonlinearity of the global G[p]",
    "S[p] = sum(m: relu(X[m,p] - G[p]))": "relu is a nonlinearity of the global G[p]",
    "S[p] = sum(m: sqrt(X[m,p] + G[p]))": "a non-integer power of a sum",
    "S[p] = sum(m: log(X[m,p] + G[p]))": "the logarithm of a sum",
    "S[p] = sum(m: exp(X[m,p] * G[p]))": "exp(a*b) is not a product",
    "S[p] = max(m: X[m,p] / G[p])": "an extremum or product of an expression of a global",
    "S[p] = sum(m: max(X[m,p], G[p]))": "max is a nonlinearity of the global G[p]",
}


@pytest.mark.parametrize("line", sorted(REFUSALS))
def test_refusals_name_the_reason(line):
    r = fused(f"output S\nG[p] = sum(m: X[m,p])\n{line}\n")
    assert r.status == "refused" and r.cascade is None and r.passes_after == 2
    assert REFUSALS[line] in r.reasons["S"]


def test_a_streamed_output_that_needs_a_global_is_refused():
    r = fused("output A\nG[p] = sum(m: X[m,p])\nA[m,p] = X[m,p] / G[p]\n")
    assert r.status == "refused"
    assert "cannot be produced before that global is complete" in r.reasons["A"]


def test_a_rewrite_that_fails_the_numerical_check_is_not_returned():
    # sum (x - mu)^2 by running sums of powers loses digits when the mean dwarfs the spread:
    # rtol far below that loss must make fuse refuse rather than return the rewrite
    r = fuse(ec.parse(HEAD + "output VAR\nMU[p] = sum(m: X[m,p] + 1000) / M\n"
                      "VAR[p] = sum(m: square(X[m,p] + 1000 - MU[p])) / M\n"), rtol=1e-15)
    assert r.status == "refused" and "certification" in r.reasons
    assert r.cascade is None and r.text is None and r.check_error > 1e-15


def test_variance_error_of_running_sums_of_powers_grows_with_mean_over_spread():
    # the predicted error eps * (mu / sigma)^2 bounds the measured one within a factor of 100
    eps = np.finfo(float).eps
    for ratio in (0.0, 10.0, 1e3, 1e5):
        err = variance_error(ratio, 1.0)
        assert err <= 100 * eps * (1 + ratio**2) * 4096 ** 0.5
    assert variance_error(1e5, 1.0) > 1e-9 > variance_error(0.0, 1.0)


def test_relative_error_treats_nan_patterns():
    a = np.array([1.0, np.nan])
    assert relative_error(a, a) == 0.0
    # the rewrite NaN where the original is not: a mismatch
    assert relative_error(a, np.array([1.0, 2.0])) == float("inf")
    # the original NaN (undefined: 0 * log 0) where the rewrite is finite: left out and counted
    assert relative_error(np.array([1.0, 2.0]), a) == 0.0
    assert undefined_points(np.array([1.0, 2.0]), a) == 1


# -- property test: random compositions of the supported patterns -----------------------------

def _stage(i: int, kind: str, masked: str, inner: bool = False) -> tuple[list[str], str]:
    """Einsums of one weighting stage over the scores S and the name of its weights. With
    `inner`, the reductions carry the mask in their own `where` (`sum(m: X where c)`, language v2)
    rather than the Einsum's: the same cascade."""
    w = f" where {masked}" if masked else ""

    def red(op: str, body: str) -> str:
        if inner and masked:
            return f"{op}(m: {body} where {masked})"
        return f"{op}(m: {body})"

    rw = "" if inner else w  # the Einsum's where of a reduction statement
    if kind == "softmax":
        return [f"G{i}[p] = {red('max', 'S[m,p]')}{rw}", f"N{i}[m,p] = exp(S[m,p] - G{i}[p]){w}",
                f"D{i}[p] = {red('sum', f'N{i}[m,p]')}{rw}", f"A{i}[m,p] = N{i}[m,p] / D{i}[p]{w}"], f"A{i}"
    if kind == "scaled_softmax":  # a temperature: max of 2S is not the max of S
        return [f"G{i}[p] = {red('max', 'S[m,p]')}{rw}", f"N{i}[m,p] = exp(0.5 * (S[m,p] - G{i}[p])){w}",
                f"D{i}[p] = {red('sum', f'N{i}[m,p]')}{rw}", f"A{i}[m,p] = N{i}[m,p] / D{i}[p]{w}"], f"A{i}"
    if kind == "softplus":
        return [f"N{i}[m,p] = softplus(S[m,p]){w}", f"D{i}[p] = {red('sum', f'N{i}[m,p]')}{rw}",
                f"A{i}[m,p] = N{i}[m,p] / D{i}[p]{w}"], f"A{i}"
    # centred squares: (S - mean)^2 normalised by their sum (a variance)
    return [f"U{i}[p] = {red('sum', 'S[m,p]')}{rw}", f"C{i}[m,p] = S[m,p] - U{i}[p] / P{w}",
            f"D{i}[p] = {red('sum', f'C{i}[m,p] * C{i}[m,p]')}{rw}",
            f"A{i}[m,p] = C{i}[m,p] * C{i}[m,p] / D{i}[p]{w}"], f"A{i}"


@st.composite
def compositions(draw):
    # causal, and language v2's Boolean masks: sinks plus a window, a negation
    masked = draw(st.sampled_from(["", "m <= p", "m <= p and (m < 2 or p - 3 < m)", "not (m > p)"]))
    inner = draw(st.booleans())
    kinds = draw(st.lists(st.sampled_from(["softmax", "scaled_softmax", "softplus", "moments"]),
                          min_size=1, max_size=3))
    reweight = draw(st.booleans())
    w = f" where {masked}" if masked else ""
    lines = ["rank E, F, M, P", "input Q[e,p], K[e,m], V[f,m]", "output AV",
             f"S[m,p] = Q[e,p] * K[e,m]{w}"]
    weights = []
    for i, kind in enumerate(kinds):
        body, name = _stage(i, kind, masked, inner)
        lines += body
        weights.append(name)
    coeffs = draw(st.lists(st.sampled_from(["1", "0.5", "-0.25", "2"]), min_size=len(weights),
                           max_size=len(weights)))
    mix = " + ".join(f"{c} * {a}[m,p]" for c, a in zip(coeffs, weights))
    lines.append(f"B[m,p] = {mix}{w}")
    if reweight:  # the mixed weights squared and normalised again (a power of a global)
        lines += [f"R[p] = sum(m: B[m,p] * B[m,p]){w}", f"B2[m,p] = B[m,p] * B[m,p] / R[p]{w}"]
        lines.append(f"AV[f,p] = B2[m,p] * V[f,m]{w}")
    else:
        lines.append(f"AV[f,p] = B[m,p] * V[f,m]{w}")
    return "\n".join(lines) + "\n"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compositions(), st.integers(0, 2**31 - 1))
def test_fused_compositions_have_no_more_passes_and_equal_outputs(text, seed):
    original = ec.parse(text)
    result = fuse(original)
    assert result.status == "reduced", result.reasons
    assert result.passes_after <= result.passes_before
    assert result.passes_after == 1  # every pattern here decomposes
    # an evaluation of our own, at sizes and inputs the certification did not use
    rng = np.random.default_rng(seed)
    n = 10
    inputs = {"Q": 3 * rng.standard_normal((4, n)), "K": 3 * rng.standard_normal((4, n)),
              "V": rng.standard_normal((3, n))}
    want = original.evaluate(inputs)["AV"]
    tile = {"M0": 5} if "M0" in result.cascade.size_names else {}
    got = result.cascade.evaluate(inputs, tile)["AV"]
    assert relative_error(got, want) <= 1e-9


def test_welford_is_the_more_accurate_method_for_a_large_mean():
    from einsum_cascade.fuse.moments import welford_variance_error

    for ratio in (1e3, 1e4, 1e5):
        assert welford_variance_error(ratio, 1.0) < variance_error(ratio, 1.0)
