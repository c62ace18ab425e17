"""The multi-pass cascades added for `cascadesim fuse`, against independent numpy formulas, and
`fuse` on the library: pass counts, certification, and operation counts against the library's
hand-written 1-pass cascades."""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec
from einsum_cascade.fuse import counts_at, fuse

try:
    from tests import references as ref
except ImportError:
    import references as ref

E, F, N = 6, 5, 9
REL = 1e-9


def assert_close(actual, expected, rel=REL):
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    assert np.max(np.abs(actual - expected)) <= rel * np.max(np.abs(expected))


@pytest.fixture
def qkv():
    rng = np.random.default_rng(7)
    return {"Q": 2 * rng.standard_normal((E, N)), "K": 2 * rng.standard_normal((E, N)),
            "V": rng.standard_normal((F, N))}


def run(stem, inputs, sizes=None, output="AV"):
    return ec.load_library(stem).evaluate(inputs, sizes or {})[output]


# -- the new cascades against numpy -----------------------------------------------------------

def test_diff_attention(qkv):
    rng = np.random.default_rng(8)
    extra = {"Q2": 2 * rng.standard_normal((E, N)), "K2": 2 * rng.standard_normal((E, N))}
    got = run("diff_attention_3pass", {**qkv, **extra}, {"L": 0.8})
    want = ref.differential_attention(qkv["Q"], qkv["K"], extra["Q2"], extra["K2"], qkv["V"], 0.8)
    assert_close(got, want)


def test_softmax_one(qkv):
    for scale in (1.0, 0.05, 20.0):  # sink dominant, comparable, negligible
        inputs = dict(qkv, Q=scale * qkv["Q"])
        assert_close(run("softmax_one_3pass", inputs),
                     ref.softmax_one_attention(inputs["Q"], qkv["K"], qkv["V"]))


def test_attention_entropy(qkv):
    got = run("attention_entropy", {"Q": qkv["Q"], "K": qkv["K"]}, output="H")
    assert_close(got, ref.attention_entropy(qkv["Q"], qkv["K"]))


def test_lse_output(qkv):
    c = ec.load_library("lse_output")
    out = c.evaluate(qkv)
    assert_close(out["LSE"], ref.attention_lse(qkv["Q"], qkv["K"]))
    assert_close(out["AV"], ref.softmax_attention(qkv["Q"], qkv["K"], qkv["V"]))


def test_seq_layernorm(qkv):
    got = run("seq_layernorm", {"V": qkv["V"]}, output="Y")
    assert_close(got, ref.sequence_layernorm(qkv["V"]))


def test_softplus_reweighted(qkv):
    assert_close(run("softplus_reweighted", qkv),
                 ref.softplus_reweighted_attention(qkv["Q"], qkv["K"], qkv["V"]))


def test_threshold_attention(qkv):
    assert_close(run("threshold_attention_refused", qkv, {"W": 3.0}),
                 ref.threshold_attention(qkv["Q"], qkv["K"], qkv["V"], 3.0))


def test_softplus_centred(qkv):
    assert_close(run("softplus_centred_refused", qkv),
                 ref.softplus_centred_attention(qkv["Q"], qkv["K"], qkv["V"]))


# -- fuse on the library ----------------------------------------------------------------------

# stem -> passes after fusion (hand-derived: every reduction decomposes, except the streamed
# output Y of seq_layernorm, which needs the variance: 2)
FUSED = {
    "attention_3pass": 1, "attention_2pass": 1, "attention_3pass_causal": 1,
    "attention_2pass_causal": 1, "attention_temperature": 1, "softplus_attention": 1,
    "attention_sliding_window": 1, "agent_attention": 1, "diff_attention_3pass": 1,
    "softmax_one_3pass": 1, "attention_entropy": 1, "lse_output": 1, "softplus_reweighted": 1,
    "seq_layernorm": 2,
}
REFUSED = {
    "threshold_attention_refused": "relu is a nonlinearity of the global GM",
    "softplus_centred_refused": "softplus is a nonlinearity of the global MU",
}


@pytest.mark.parametrize("stem", sorted(FUSED))
def test_fuse_reduces_and_certifies(stem):
    c = ec.load_library(stem)
    result = fuse(c)
    assert result.status == "reduced", result.reasons
    assert result.passes_before == ec.passes(c, "M").passes
    assert result.passes_after == FUSED[stem] == ec.passes(result.cascade, "M").passes
    assert result.check_error is not None and result.check_error <= REL
    # the written text is the certified cascade
    assert ec.passes(ec.parse(result.text), "M").passes == FUSED[stem]


@pytest.mark.parametrize("stem", sorted(REFUSED))
def test_fuse_fuses_what_it_can_and_says_why_not_the_rest(stem):
    # partial fusion (hand derivation): SD = sum(m: f(QK - G)) with f = relu or softplus needs
    # the global G inside f, so it stays in pass 2; AV = sum(m: SP/SD * V) defers the division
    # (sum(m: SP*V) / SD), so its sum streams in pass 2 with SD's: 3 -> 2 passes.
    result = fuse(ec.load_library(stem))
    assert result.status == "reduced" and (result.passes_before, result.passes_after) == (3, 2)
    assert result.check_error is not None and result.check_error <= REL
    assert any(REFUSED[stem] in why for why in result.reasons.values()), result.reasons
    assert REFUSED[stem] in result.why_left[2]


@pytest.mark.parametrize("stem", [s for s in ec.library_names() if ec.passes(ec.load_library(s), "M").passes <= 1])
def test_one_pass_cascades_are_already_minimal(stem):
    result = fuse(ec.load_library(stem))
    assert result.status == "minimal" and result.passes_after == result.passes_before


SIZES = [{"E": 64, "F": 64, "M": 4096, "P": 4096, "M0": 256},
         {"E": 3, "F": 7, "M": 60, "P": 60, "M0": 5},
         {"E": 128, "F": 32, "M": 1024, "P": 2048, "M0": 64}]


@pytest.mark.parametrize("written,hand", [("attention_3pass", "attention_1pass"),
                                          ("attention_2pass", "attention_1pass"),
                                          ("attention_3pass_causal", "attention_1pass_causal"),
                                          ("attention_2pass_causal", "attention_1pass_causal")])
def test_fused_softmax_has_the_operation_counts_of_the_hand_written_one_pass(written, hand):
    fused = fuse(ec.load_library(written)).cascade
    one = ec.load_library(hand)
    for sizes in SIZES:
        if "causal" in written and sizes["P"] != sizes["M"]:
            continue
        assert counts_at(fused, sizes) == ec.cost(one).at(sizes).total


def test_fused_softplus_has_the_operation_counts_of_the_deferred_library_cascade():
    fused = fuse(ec.load_library("softplus_attention")).cascade
    hand = ec.load_library("softplus_attention_deferred")
    for sizes in SIZES:
        sizes = {k: v for k, v in sizes.items() if k != "M0"}
        assert counts_at(fused, sizes) == ec.cost(hand).at(sizes).total


def test_fused_temperature_and_window_differ_from_one_pass_only_by_their_own_work():
    # temperature: attention_1pass plus the M*P multiplies of T[p] * QK (as written);
    # window: attention_1pass_causal's counts with the window's points instead of the causal ones.
    sizes = {"E": 16, "F": 8, "M": 64, "P": 64, "M0": 8}
    temp = counts_at(fuse(ec.load_library("attention_temperature")).cascade, sizes)
    one = ec.cost(ec.load_library("attention_1pass")).at(sizes).total
    assert {k: temp[k] - one.get(k, 0) for k in temp} == {
        "multiply": 64 * 64, "add": 0, "max": 0, "exp": 0, "divide": 0}
    window = fuse(ec.load_library("attention_sliding_window")).cascade
    w = counts_at(window, dict(sizes, W=64))   # a window as long as the sequence = causal
    causal = ec.cost(ec.load_library("attention_1pass_causal")).at(sizes).total
    assert w == causal


def test_taxonomy_fusion_columns():
    from studies.taxonomy import fusion_columns

    three = fusion_columns(ec.load_library("attention_3pass"))
    # per query at M = 4096, M0 = 256, F = 64 (hand count): one correction exp per tile,
    # M/M0 = 16; the division deferred from M scores to F outputs: 64 - 4096 = -4032
    assert three["fewest"] == 1
    assert "exp +16" in three["overhead"] and "divide -4,032" in three["overhead"]
    assert fusion_columns(ec.load_library("attention_1pass")) == {"fewest": 1, "overhead": "already minimal"}
    refused = fusion_columns(ec.load_library("topk_attention"))
    assert refused["fewest"] == 2 and refused["overhead"].startswith("refused: the mask QK[m, p] >= T[p]")
    partial = fusion_columns(ec.load_library("threshold_attention_refused"))
    assert partial["fewest"] == 2 and partial["overhead"].startswith("deferred normalisation")


def test_latency_rows_use_the_given_simulator():
    from studies.taxonomy import fusion_latency_rows

    # a stand-in simulator: latency proportional to the passes (not a model of any hardware)
    rows = fusion_latency_rows(lambda c: float(ec.passes(c, "M").passes), ["attention_3pass", "attention_1pass"])
    assert rows == [{"stem": "attention_3pass", "passes_before": 3, "passes_after": 1,
                     "latency_before_s": 3.0, "reason_before": None,
                     "latency_after_s": 1.0, "reason_after": None, "speedup": 3.0}]


def test_latency_rows_show_the_reason_of_a_cascade_that_cannot_be_mapped():
    from mappings.work import MappingError
    from studies.taxonomy import fusion_latency_rows, render_latency

    def simulate(c):  # a stand-in: only the fused (1-pass) cascades map
        if ec.passes(c, "M").passes > 1:
            raise MappingError(f"{c.name}: stand-in refusal")
        return 0.002

    rows = fusion_latency_rows(simulate, ["attention_3pass", "softplus_attention"])
    assert [r["reason_before"] for r in rows] == ["attention_3pass: stand-in refusal",
                                                  "softplus_attention: stand-in refusal"]
    assert all(r["latency_after_s"] == 0.002 and r["speedup"] is None for r in rows)
    text = render_latency(rows)
    assert "| attention_3pass | 3 -> 1 | not mapped: attention_3pass: stand-in refusal | 2 | - |" in text
    assert "2 cascades are reduced by `fuse`; 0 of them are mapped both as written and fused, 2 are not" in text


def test_render_latency_sentences_come_from_the_rows():
    from studies.taxonomy import render_latency

    rows = [{"stem": s, "passes_before": 3, "passes_after": 1, "latency_before_s": b, "reason_before": None,
             "latency_after_s": a, "reason_after": None, "speedup": b / a}
            for s, b, a in (("x", 0.006, 0.002), ("y", 0.001, 0.002), ("z", 0.004, 0.002))]
    text = render_latency(rows)
    # speedups 3, 0.5, 2: median 2; y takes 1 / 0.5 - 1 = 100% more time
    assert "Fusion is faster for 2 of the 3; speedups range from 0.50x (y) to 3.00x (x), median 2.00x." in text
    assert "Slower after fusion: y (100.0% more time)." in text
    assert "| x | 3 -> 1 | 6 | 2 | 3.00x |" in text


def test_default_latency_simulator_on_fusemax_cloud_at_64k():
    from studies.taxonomy import fusion_latency_rows

    rows = {r["stem"]: r for r in fusion_latency_rows(stems=["attention_3pass", "seq_layernorm"])}
    # 3 passes at 64K tokens: the P x M live tensors of the written cascade cannot stay on chip,
    # the fused 1-pass cascade keeps only per-query state, so it must be faster
    three = rows["attention_3pass"]
    assert three["speedup"] > 1 and three["reason_before"] is None
    # the layer norm's rsqrt is composed on fusemax-cloud's PEs (issue 19's operator set): a number
    ln = rows["seq_layernorm"]
    assert ln["latency_before_s"] > 0 and ln["reason_before"] is None


def test_latency_rows_give_the_reason_where_the_simulator_refuses():
    from mappings.work import MappingError
    from studies.taxonomy import fusion_latency_rows

    def refuse(cascade):
        raise MappingError(f"auto mapping: no unit of fusemax-cloud has every operator Einsum Y of {cascade.name} needs")
    ln = fusion_latency_rows(simulate=refuse, stems=["seq_layernorm"])[0]
    assert ln["latency_before_s"] is None and "no unit of fusemax-cloud has every operator" in ln["reason_before"]
