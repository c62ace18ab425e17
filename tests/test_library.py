"""The library of attention cascades: stated pass counts and outputs against direct numpy formulas.

Every expectation is computed independently of the cascades: pass counts are the ones derived by
hand in each file's `# passes:` comment, outputs come from tests/references.py (fp64).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import einsum_cascade as ec
try:  # tests/ as a package, or tests/ itself on sys.path (pytest's default without __init__.py)
    from tests import references as ref
except ImportError:
    import references as ref

REQUIRED = {
    "attention_3pass", "attention_2pass", "attention_1pass", "attention_flash1",
    "attention_3pass_causal", "attention_2pass_causal", "attention_1pass_causal",
    "attention_sliding_window", "sigmoid_attention", "softplus_attention",
    "softplus_attention_deferred", "linear_attention", "linear_attention_causal",
    "lightning_attention", "based_attention", "agent_attention", "attention_temperature",
    # cascade language v2 (issue 11)
    "topk_attention", "differential_attention", "attention_sinks", "cosformer",
    "gated_linear_attention", "selective_scan", "stick_breaking_attention", "flow_attention",
    # issue 21's kernel families, by these names; issue 19's variants (tests/test_variants.py)
    "gated_delta_rule", "retention", "mamba2_ssd", "mla_decode", "block_sparse_attention",
    "squared_relu_attention", "alibi_attention", "softpick_attention_causal", "pattention", "hedgehog_attention",
    "mqa_attention", "gqa_decode", "gqa_causal_prefill", "selective_attention", "landmark_attention",
    "chunked_attention", "neighborhood_attention_2d_tokens", "minference_vertical_slash_dynamic",
}
FUSEMAX_EINSUMS = ["BK", "BV", "QK", "LM", "RM", "PRM", "SPD", "SPNV",
                   "SLN", "SLD", "SLNV", "RD", "RNV", "AV"]
E, F = 6, 5
REL = 1e-9


def qkv(m: int, p: int, seed: int) -> dict[str, np.ndarray]:
    """Random fp64 Q[e,p], K[e,m], V[f,m]; scores spread over several units so the max matters."""
    rng = np.random.default_rng(seed)
    return {"Q": 1.5 * rng.standard_normal((E, p)),
            "K": 1.5 * rng.standard_normal((E, m)),
            "V": rng.standard_normal((F, m))}


def evaluate(stem: str, inputs: dict[str, np.ndarray], sizes: dict | None = None) -> np.ndarray:
    """The output AV[f,p] of a library cascade."""
    return ec.load_library(stem).evaluate(inputs, sizes or {})["AV"]


def tile_sizes(stem: str, m0: int) -> dict[str, int]:
    """{"M0": m0} for a cascade that tiles M into M1 x M0, else {}."""
    return {"M0": m0} if ec.load_library(stem).ranks["M"].parts else {}


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float = REL) -> None:
    """max |actual - expected| <= rel * max |expected| (norm-wise relative error)."""
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    error = np.max(np.abs(actual - expected))
    assert error <= rel * np.max(np.abs(expected)), f"max abs error {error:.3e}"


def stated_passes(stem: str) -> dict[str, int]:
    """The `# passes: M=1 P=1` comment of a library file as {"M": 1, "P": 1}."""
    text = ec.library_path(stem).read_text()
    lines = [ln for ln in text.splitlines() if re.match(r"#\s*passes:", ln)]
    assert len(lines) == 1, f"{stem}: needs exactly one '# passes:' comment line"
    items = lines[0].split(":", 1)[1].split()
    assert items, f"{stem}: empty '# passes:' comment"
    counts = {}
    for item in items:
        match = re.fullmatch(r"([A-Z][A-Z0-9]*)=(\d+)", item)
        assert match, f"{stem}: bad item {item!r} in '# passes:' (want RANK=N)"
        counts[match[1]] = int(match[2])
    assert "M" in counts, f"{stem}: '# passes:' must state M"
    return counts


# -- the library as a whole ---------------------------------------------------------------------

def test_library_holds_every_required_cascade():
    assert REQUIRED <= set(ec.library_names())


@pytest.mark.parametrize("stem", ec.library_names())
def test_file_states_source_and_name(stem):
    text = ec.library_path(stem).read_text()
    assert re.search(r"^#\s*source:\s*\S", text, re.MULTILINE), f"{stem}: no '# source:' line"
    assert ec.load_library(stem).name == stem


@pytest.mark.parametrize("stem", ec.library_names())
def test_pass_count_matches_the_stated_derivation(stem):
    cascade = ec.load_library(stem)
    for rank, count in stated_passes(stem).items():
        assert ec.passes(cascade, rank).passes == count, f"{stem}: passes over {rank}"


def test_fusemax_cascade_uses_the_paper_einsum_names():
    names = [e.name for e in ec.load_library("attention_1pass").einsums if not e.is_initial]
    assert names == FUSEMAX_EINSUMS


# -- softmax attention -------------------------------------------------------------------------

NON_CAUSAL = ["attention_3pass", "attention_2pass", "attention_1pass", "attention_flash1"]
CAUSAL = ["attention_3pass_causal", "attention_2pass_causal", "attention_1pass_causal"]


@pytest.mark.parametrize("stem", NON_CAUSAL)
@pytest.mark.parametrize("m, p, m0", [(24, 16, 4), (16, 24, 8)])
def test_softmax_variants_equal_numpy_softmax(stem, m, p, m0):
    inputs = qkv(m, p, seed=m + p + m0)
    expected = ref.softmax_attention(**_lower(inputs))
    assert_close(evaluate(stem, inputs, tile_sizes(stem, m0)), expected)


@pytest.mark.parametrize("stem", CAUSAL)
@pytest.mark.parametrize("n, m0", [(20, 4), (24, 8)])
def test_causal_variants_equal_masked_numpy_softmax(stem, n, m0):
    inputs = qkv(n, n, seed=n + m0)
    expected = ref.softmax_attention(**_lower(inputs), mask=ref.causal_mask(n, n))
    assert_close(evaluate(stem, inputs, tile_sizes(stem, m0)), expected)


@pytest.mark.parametrize("group, n_keys, n_queries", [
    (NON_CAUSAL[:3], 24, 16),
    (CAUSAL, 20, 20),
])
def test_three_two_and_one_pass_agree(group, n_keys, n_queries):
    inputs = qkv(n_keys, n_queries, seed=7)
    outputs = [evaluate(stem, inputs, tile_sizes(stem, 4)) for stem in group]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("window", [1, 3, 20])
def test_sliding_window_equals_windowed_numpy_softmax(window):
    n = 20
    inputs = qkv(n, n, seed=window)
    expected = ref.softmax_attention(**_lower(inputs), mask=ref.window_mask(n, n, window))
    assert_close(evaluate("attention_sliding_window", inputs, {"W": window}), expected)


def test_temperature_scales_scores_per_query():
    inputs = qkv(24, 16, seed=3)
    temperature = np.random.default_rng(4).uniform(0.2, 3.0, size=16)
    expected = ref.softmax_attention(**_lower(inputs), temperature=temperature)
    assert_close(evaluate("attention_temperature", {**inputs, "T": temperature}), expected)


# -- other attention functions -----------------------------------------------------------------

@pytest.mark.parametrize("bias", [0.0, -np.log(24.0)])
def test_sigmoid_attention(bias):
    inputs = qkv(24, 16, seed=11)
    expected = ref.sigmoid_attention(**_lower(inputs), bias=bias)
    assert_close(evaluate("sigmoid_attention", inputs, {"B": bias}), expected)


def test_relu_attention():
    inputs = qkv(24, 16, seed=13)
    assert_close(evaluate("relu_attention", inputs), ref.relu_attention(**_lower(inputs)))


@pytest.mark.parametrize("stem", ["softplus_attention", "softplus_attention_deferred"])
def test_softplus_attention(stem):
    inputs = qkv(24, 16, seed=12)
    assert_close(evaluate(stem, inputs), ref.softplus_attention(**_lower(inputs)))


def test_linear_attention():
    inputs = qkv(24, 16, seed=13)
    assert_close(evaluate("linear_attention", inputs), ref.linear_attention(**_lower(inputs)))


def test_linear_attention_causal():
    n = 20
    inputs = qkv(n, n, seed=14)
    expected = ref.linear_attention(**_lower(inputs), mask=ref.causal_mask(n, n))
    assert_close(evaluate("linear_attention_causal", inputs), expected)


@pytest.mark.parametrize("decay, n, block", [(1.0, 16, 4), (0.9, 16, 4), (0.8, 24, 8)])
def test_lightning_attention(decay, n, block):
    inputs = qkv(n, n, seed=15)
    expected = ref.decayed_causal_linear_attention(**_lower(inputs), decay=decay)
    sizes = {"M0": block, "P0": block, "G": decay}
    assert_close(evaluate("lightning_attention", inputs, sizes), expected)


@pytest.mark.parametrize("window", [1, 4])
def test_based_attention_sums_linear_and_window_softmax(window):
    n = 20
    inputs = qkv(n, n, seed=16)
    low = _lower(inputs)
    expected = (ref.linear_attention(**low, mask=ref.causal_mask(n, n))
                + ref.softmax_attention(**low, mask=ref.window_mask(n, n, window)))
    assert_close(evaluate("based_attention", inputs, {"W": window}), expected)


def test_agent_attention():
    inputs = qkv(24, 16, seed=17)
    agents = 1.5 * np.random.default_rng(18).standard_normal((E, 5))
    expected = ref.agent_attention(**_lower(inputs), a=agents)
    assert_close(evaluate("agent_attention", {**inputs, "A": agents}), expected)


# -- cascade language v2 entries ----------------------------------------------------------------

@pytest.mark.parametrize("top", [1, 3, 24])
def test_topk_attention(top):
    inputs = qkv(24, 16, seed=21)
    expected = ref.topk_attention(**_lower(inputs), top=top)
    assert_close(evaluate("topk_attention", inputs, {"KK": top}), expected)
    if top == 24:  # keeping every key is plain softmax attention
        assert_close(evaluate("topk_attention", inputs, {"KK": top}), ref.softmax_attention(**_lower(inputs)))


def test_differential_attention():
    first, second = qkv(24, 16, seed=22), qkv(24, 16, seed=23)
    inputs = {"Q1": first["Q"], "K1": first["K"], "Q2": second["Q"], "K2": second["K"], "V": first["V"]}
    expected = ref.differential_attention(first["Q"], first["K"], second["Q"], second["K"], first["V"], 0.8)
    assert_close(evaluate("differential_attention", inputs, {"LAM": 0.8}), expected)


@pytest.mark.parametrize("sinks, window", [(1, 3), (4, 2), (2, 20)])
def test_attention_sinks(sinks, window):
    n = 20
    inputs = qkv(n, n, seed=24 + sinks)
    expected = ref.softmax_attention(**_lower(inputs), mask=ref.sinks_mask(n, n, sinks, window))
    assert_close(evaluate("attention_sinks", inputs, {"S": sinks, "W": window}), expected)


def test_attention_sinks_counts_only_visible_scores():
    # by hand: M = P = 64, S = 4, W = 8: rows p < 12 see p + 1 keys (78 in all), the 52 others
    # see S + W = 12: 78 + 52 * 12 = 702 scores, each one multiply per e
    at = ec.cost(ec.load_library("attention_sinks")).at({"E": 2, "F": 3, "M": 64, "P": 64, "S": 4, "W": 8})
    assert at.per_einsum["QK"]["multiply"] == 2 * 702
    assert at.per_einsum["SN"]["exp"] == 702
    assert at.per_einsum["SNV"]["multiply"] == 3 * 702
    mask = ref.sinks_mask(64, 64, 4, 8)
    assert int(mask.sum()) == 702


def test_cosformer():
    inputs = qkv(24, 16, seed=25)
    assert_close(evaluate("cosformer", inputs), ref.cosformer_attention(**_lower(inputs)))
    inputs["Q"][:, 3] = -1.0  # a query with no positive feature: weights 0, output 0 (not nan)
    out = evaluate("cosformer", inputs)
    assert np.all(out[:, 3] == 0.0)
    assert_close(out, ref.cosformer_attention(**_lower(inputs)))


def test_gated_linear_attention():
    n = 16
    inputs = qkv(n, n, seed=26)
    gates = np.random.default_rng(27).uniform(0.5, 1.0, size=(E, n))
    expected = ref.gated_linear_attention(**_lower(inputs), a=gates)
    assert_close(evaluate("gated_linear_attention", {**inputs, "A": gates}), expected)
    # RetNet: one decay gamma for every feature and step equals lightning's decayed attention
    expected = ref.decayed_causal_linear_attention(**_lower(inputs), decay=0.9)
    assert_close(evaluate("gated_linear_attention", {**inputs, "A": np.full((E, n), 0.9)}), expected)


def test_selective_scan():
    rng = np.random.default_rng(28)
    n, d, t = 4, 3, 10
    arrays = {"X": rng.standard_normal((d, t)), "DT": rng.uniform(0.01, 0.5, (d, t)),
              "A": -rng.uniform(0.5, 2.0, (n, d)), "B": rng.standard_normal((n, t)),
              "C": rng.standard_normal((n, t)), "DS": rng.standard_normal(d)}
    expected = ref.selective_scan(*(arrays[k] for k in ("X", "DT", "A", "B", "C", "DS")))
    out = ec.load_library("selective_scan").evaluate(arrays)["Y"]
    assert_close(out, expected)


def test_stick_breaking_attention():
    n = 16
    inputs = qkv(n, n, seed=29)
    assert_close(evaluate("stick_breaking_attention", inputs), ref.stick_breaking_attention(**_lower(inputs)))


def test_flow_attention():
    inputs = qkv(24, 16, seed=30)
    assert_close(evaluate("flow_attention", inputs), ref.flow_attention(**_lower(inputs)))


# Per-Einsum passes of the new entries, derived by hand from the rules (docs/cascade-language.md):
# an Einsum iterating over the rank runs in max(1, streamed inputs' pass, 1 + global inputs'
# completion); one that does not iterate runs in no pass.
HAND_PASSES = {
    ("topk_attention", "M"): {"QK": 1, "T": 1, "GM": 1, "SN": 2, "SD": 2, "SNV": 2, "AV": None},
    ("differential_attention", "M"): {"QK1": 1, "QK2": 1, "GM1": 1, "GM2": 1, "SN1": 2, "SN2": 2,
                                      "SD1": 2, "SD2": 2, "SNV1": 2, "SNV2": 2, "AV": None},
    ("attention_sinks", "M"): {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "SNV": 2, "AV": None},
    ("cosformer", "M"): {"RQ": None, "RK": 1, "QC": None, "QS": None, "KC": 1, "KS": 1, "KCV": 1,
                         "KSV": 1, "KCS": 1, "KSS": 1, "NUM": None, "DEN": None, "AV": None},
    ("gated_linear_attention", "M"): {"KV": 1, "S": 1, "AV": None},
    ("gated_linear_attention", "P"): {"KV": None, "S": None, "AV": 1},
    ("selective_scan", "N"): {"DA": 1, "DBX": 1, "H": 1, "CH": 1, "Y": None},
    ("stick_breaking_attention", "M"): {"QK": 1, "LB": 1, "L1": 1, "LR": 1, "C": 1, "SB": 1,
                                        "W": 1, "AV": 1},
    ("flow_attention", "M"): {"PQ": None, "PK": 1, "SK": 1, "SQ": None, "I": None, "O": 1,
                              "SKO": 1, "SQI": None, "IH": None, "OH": 2, "GO": 2, "EO": 3,
                              "SO": 3, "KV": 3, "AV": None},
    ("flow_attention", "P"): {"PQ": 1, "PK": None, "SK": None, "SQ": 1, "I": 1, "O": None,
                              "SKO": None, "SQI": 1, "IH": 2, "OH": None, "GO": None, "EO": None,
                              "SO": None, "KV": None, "AV": 2},
}


@pytest.mark.parametrize("stem, rank", sorted(HAND_PASSES))
def test_new_entries_pass_per_einsum_by_hand(stem, rank):
    report = ec.passes(ec.load_library(stem), rank)
    assert {e.name: e.pass_ for e in report.einsums} == HAND_PASSES[stem, rank]


def test_flow_attention_live_tensors_by_hand():
    # over P: PQ and I stream in pass 1 and are read by AV in pass 2
    assert ec.passes(ec.load_library("flow_attention"), "P").live_across_passes == ["PQ", "I"]


def _lower(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{"Q": q, "K": k, "V": v} -> keyword arguments q, k, v of the reference functions."""
    return {"q": inputs["Q"], "k": inputs["K"], "v": inputs["V"]}
