"""Pass analysis (the worked example of docs/cascade-language.md) and symbolic operation counts."""
from __future__ import annotations

import sympy

import einsum_cascade as ec

E, F, M, P, M0 = (sympy.Symbol(n, positive=True) for n in ("E", "F", "M", "P", "M0"))


def test_three_pass_example_of_the_language_doc():
    # cascade-language.md: "QK 1, GM 1 (global), SN 2, SD 2 (global), A 3, AV 3: three passes",
    # live across passes QK and SN.
    report = ec.passes(ec.load_library("attention_3pass"), "M")
    got = {e.name: (e.pass_, e.kind) for e in report.einsums}
    assert got == {"QK": (1, "streamed"), "GM": (1, "global"), "SN": (2, "streamed"),
                   "SD": (2, "global"), "A": (3, "streamed"), "AV": (3, "global")}
    assert report.passes == 3
    assert report.live_across_passes == ["QK", "SN"]
    assert report.chains == {2: ["QK", "GM", "SN"], 3: ["SN", "SD", "A"]}
    js = report.to_json()
    assert js["einsums"][0] == {"name": "QK", "pass": 1, "kind": "streamed"}


def test_fusemax_one_pass_and_final_read_is_global():
    c = ec.load_library("attention_1pass")
    report = ec.passes(c, "M")
    assert report.passes == 1 and report.live_across_passes == []
    av = next(e for e in report.einsums if e.name == "AV")
    assert av.pass_ is None and av.kind == "global"  # runs in no pass, complete after pass 1


def test_einsum_not_iterating_runs_in_no_pass_and_global_inputs_add_a_pass():
    c = ec.parse("rank M, P\ninput X[m,p], Y[p]\noutput Z\nS[p] = sum(m: X[m,p])\n"
                 "T[p] = S[p] * Y[p]\nZ[m,p] = X[m,p] * T[p]\n")
    report = ec.passes(c, "M")
    got = {e.name: e.pass_ for e in report.einsums}
    assert got == {"S": 1, "T": None, "Z": 2}
    assert report.passes == 2 and report.live_across_passes == []
    assert report.restreamed_inputs == ["X"]
    assert ec.passes(c, "P").passes == 1


def test_symbolic_counts_of_three_pass_attention_by_hand():
    cost = ec.cost(ec.load_library("attention_3pass"))
    # QK and AV: one MAC per point of E*M*P and F*M*P; GM one max, SN subtract + exp, SD add,
    # A divide per score.
    assert sympy.simplify(cost.per_einsum["QK"]["multiply"] - E * M * P) == 0
    assert sympy.simplify(cost.total["add"] - (E * M * P + F * M * P + 2 * M * P)) == 0
    assert sympy.simplify(cost.total["exp"] - M * P) == 0
    assert sympy.simplify(cost.total["divide"] - M * P) == 0
    assert sympy.simplify(cost.tensor_sizes["QK"] - M * P) == 0
    at = cost.at({"E": 64, "F": 64, "M": 4096, "P": 4096})
    assert at.total["multiply"] == 2 * 64 * 4096 * 4096


def test_fusemax_counts_in_terms_of_the_whole_rank():
    cost = ec.cost(ec.load_library("attention_1pass"))
    # Per (m1, p): RM one max; SPNV and RNV F multiplies / adds each, over M/M0 tiles.
    assert sympy.simplify(cost.per_einsum["RM"]["max"] - M * P / M0) == 0
    assert sympy.simplify(cost.per_einsum["SPNV"]["multiply"] - F * M * P / M0) == 0
    assert sympy.simplify(cost.per_einsum["AV"]["divide"] - F * P) == 0


def test_causal_domain_counts_the_triangle():
    c = ec.load_library("attention_3pass_causal")
    qk = c.einsum("QK")
    assert ec.domain_points(c, qk, {"E": 4, "F": 4, "M": 10, "P": 10}) == 4 * 10 * 11 // 2
    at = ec.cost(c).at({"E": 4, "F": 4, "M": 1024, "P": 1024})
    assert at.per_einsum["QK"]["multiply"] == 4 * 1024 * 1025 // 2


def test_sliding_window_domain_by_hand():
    c = ec.load_library("attention_sliding_window")
    qk = c.einsum("QK")
    # p - W < m <= p over M = P = 6, W = 2: rows p = 0 has 1 key, the others 2: 11 points.
    assert ec.domain_points(c, qk, {"E": 1, "F": 1, "M": 6, "P": 6, "W": 2}) == 11


def test_closed_form_of_causal_counts_by_hand():
    from einsum_cascade.cost import closed_form

    c = ec.load_library("attention_1pass_causal")
    total = ec.cost(c).total
    self_attention = {P: M}
    # visible scores of causal self-attention: M (M + 1) / 2; one exp per visible score plus one
    # PRM exp per query and tile (M / M0 tiles)
    exp = sympy.simplify(closed_form(total["exp"].subs(self_attention), c))
    assert sympy.simplify(exp - (M * (M + 1) / 2 + M * M / M0)) == 0
    # the closed form agrees with the numeric count at bound sizes
    at = ec.cost(c).at({"E": 4, "F": 4, "M": 96, "P": 96, "M0": 16})
    assert exp.subs({M: 96, M0: 16}) == at.total["exp"]
    # a count whose Max(0, ...) is not provably redundant (M and P unrelated) stays a Sum
    assert isinstance(closed_form(total["exp"], c), sympy.Expr) and closed_form(total["exp"], c).has(sympy.Sum)
