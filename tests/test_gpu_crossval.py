"""Cross-validation of the GPU model: folds disjoint by source, metrics by hand, every published
row accounted for, disputed rows never fitted; the GPU target on cascades (roofline, GQA, families)."""
import json
import math

import numpy as np
import pytest

from mappings.gpu_calibration import Predictor, calibrate
from mappings.gpu_observations import PUBLISHED, VARIANTS, load_all
from studies.gpu_crossval import error_summary, folds, held_out_predictions, spearman


@pytest.fixture(scope="module")
def rows():
    return load_all(bench=[])


def test_every_published_row_is_predicted_or_skipped_with_a_reason(rows):
    observations, skipped = rows
    total = len(json.loads(PUBLISHED.read_text())) + len(json.loads(VARIANTS.read_text()))
    assert len(observations) + len(skipped) == total == 1332
    assert all(s.reason for s in skipped)
    assert {o.group for o in observations} == {"dense", "decode", "sliding-window", "linear", "ssm"}
    assert any(o.disputed for o in observations)


def test_expanded_gqa_inputs_are_read_per_query_head_and_mqa_rows_are_not(rows):
    """xformers' decoding table: flash.FwOp's Hkv=2 rows take expanded 5-D K/V (the row's note), its
    MQA rows do not; triton_splitK reads grouped K/V natively. Counted from the data file itself."""
    data = json.loads(VARIANTS.read_text())
    by_row = {o.row: o for o in rows[0]}
    seen = set()
    for r in data:
        if "xformers commit d3656d5d" in r["source"] and r["family"] == "decode":
            o = by_row[f"variants[{r['id']}]"]
            expanded = "flash.FwOp" in r["kernel"] and 1 < r["kv_heads"] < r["heads"]
            assert o.shape.hkv == (r["heads"] if expanded else r["kv_heads"]), r["kernel"]
            seen.add((o.kernel, expanded))
    assert {("flash-decoding", True), ("flash-decoding", False), ("triton-splitk", False)} <= seen


def test_folds_are_disjoint_by_source_and_cover_every_row(rows):
    observations, _ = rows
    for key in ("source", "gpu"):
        seen = []
        for value, held, train in folds(observations, key):
            assert held and all(getattr(r, key) == value for r in held)
            assert not any(getattr(r, key) == value for r in train)
            assert {r.row for r in held}.isdisjoint({r.row for r in train})
            assert len(held) + len(train) == len(observations)
            seen += [r.row for r in held]
        assert sorted(seen) == sorted(r.row for r in observations)


def test_a_fold_fits_only_its_training_rows_and_never_disputed_ones(rows):
    observations, _ = rows
    subset = [r for r in observations if r.kernel in ("flash2", "xformers", "triton-tutorial")]
    predictor = Predictor()
    full = calibrate(predictor, subset)
    for value, held, train in folds(subset, "source")[:2]:
        cal = calibrate(predictor, train, reuse=full, refit={r.kernel for r in held})
        for kernel, summary in cal.summaries.items():
            assert summary["rows"] == sum(1 for r in train if r.kernel == kernel and not r.disputed)
    disputed = [r for r in observations if r.disputed]
    cal = calibrate(predictor, disputed)
    assert cal.profiles == {}


def test_held_out_predictions_are_of_rows_not_fitted(rows):
    observations, _ = rows
    subset = [r for r in observations if r.kernel in ("flash2", "xformers")]
    predictor = Predictor()
    preds = held_out_predictions(predictor, subset, calibrate(predictor, subset), "source")
    assert sorted(p["row"] for p in preds) == sorted(r.row for r in subset)
    assert all(p["fold"] == p["source"] for p in preds)
    assert all(math.isfinite(p["predicted_s"]) and p["predicted_s"] > 0 for p in preds)


def test_error_metrics_by_hand():
    s = error_summary(np.array([110.0, 90.0, 150.0, 100.0]), np.array([100.0, 100.0, 100.0, 100.0]))
    assert s["mape"] == pytest.approx((10 + 10 + 50 + 0) / 4)
    assert s["median_ape"] == pytest.approx(10.0)
    assert s["max_ape"] == pytest.approx(50.0)
    assert s["bias_pct"] == pytest.approx((10 - 10 + 50 + 0) / 4)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None


# -- the GPU target on cascades -----------------------------------------------------------------
def _sim(name, arch, sizes, **kw):
    from mappings.simulation import simulate
    return simulate(name, arch, sizes, **kw)


@pytest.mark.parametrize("name,sizes,kernel_family", [
    ("attention_1pass", {"P": 2048, "M": 2048, "E": 64, "F": 64}, "softmax"),
    ("attention_3pass_causal", {"P": 2048, "M": 2048, "E": 64, "F": 64}, "softmax"),
    ("attention_sliding_window", {"P": 4096, "M": 4096, "E": 64, "F": 64, "W": 256}, "softmax"),
    ("attention_1pass", {"P": 1, "M": 8192, "E": 128, "F": 128}, "split-kv"),
    ("gated_linear_attention", {"P": 2048, "M": 2048, "E": 64, "F": 64}, "chunked-linear"),
    ("linear_attention_causal", {"P": 2048, "M": 2048, "E": 64, "F": 64}, "chunked-linear"),
])
def test_any_cascade_runs_as_a_kernel_of_its_family_at_or_above_the_roofline(name, sizes, kernel_family):
    from archsim.gpu.profiles import load_profile
    from archsim.gpu.specs import load_gpu
    r = _sim(name, "h100-sxm", sizes, batch=2, heads=8, kv_heads=2)
    assert r.target == "gpu" and r.kernel and r.bound
    assert load_profile(r.kernel).family == kernel_family
    g = load_gpu("h100-sxm")
    assert math.isfinite(r.latency_s) and r.latency_s >= r.dram_bytes / g.hbm_bytes_per_s
    d = r.to_dict()
    assert d["bound"] == r.bound and d["kernel"] == r.kernel


def test_the_mask_of_the_cascade_cuts_the_time():
    dense = _sim("attention_3pass", "h100-sxm", {"P": 8192, "M": 8192, "E": 64, "F": 64}, heads=8)
    causal = _sim("attention_3pass_causal", "h100-sxm", {"P": 8192, "M": 8192, "E": 64, "F": 64}, heads=8)
    window = _sim("attention_sliding_window", "h100-sxm", {"P": 8192, "M": 8192, "E": 64, "F": 64, "W": 512}, heads=8)
    assert window.latency_s < causal.latency_s < dense.latency_s
    # a causal mask keeps (N + 1) / 2N of the scores: never faster than half the dense time
    assert causal.latency_s >= dense.latency_s * (8192 + 1) / (2 * 8192) * (1 - 1e-9)


def test_decode_with_gqa_reads_k_and_v_once_per_kv_head():
    mha = _sim("attention_1pass", "h200", {"P": 1, "M": 32768, "E": 128, "F": 128}, batch=16, heads=32)
    gqa = _sim("attention_1pass", "h200", {"P": 1, "M": 32768, "E": 128, "F": 128}, batch=16, heads=32, kv_heads=8)
    assert mha.bound == gqa.bound == "memory"
    assert mha.dram_bytes - gqa.dram_bytes == pytest.approx(16 * 24 * 32768 * 256 * 2, rel=1e-3)


def test_bad_gpu_options_are_one_line_errors():
    from mappings.work import MappingError
    with pytest.raises(MappingError, match="--kv-heads 3: must divide --heads 8"):
        _sim("attention_1pass", "h200", {"P": 128, "M": 128, "E": 64, "F": 64}, heads=8, kv_heads=3)
    with pytest.raises(MappingError, match="runs on hopper GPUs only"):
        _sim("attention_1pass", "a100", {"P": 128, "M": 128, "E": 64, "F": 64}, kernel="flash3")


GATED_DELTA = """cascade small_gated_delta
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m], A[m], B[m]
output AV
S[e,f,0]   = 0
SK[f,m]    = S[e,f,m] * K[e,m]
U[f,m]     = B[m] * (V[f,m] - A[m] * SK[f,m])
S[e,f,m+1] = A[m] * S[e,f,m] + K[e,m] * U[f,m]
AV[f,p]    = Q[e,p] * S[e,f,p+1]
"""
SSD = """cascade small_ssd
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m], DT[m]
output AV
H[e,f,0]   = 0
DA[m]      = exp(DT[m])
H[e,f,m+1] = DA[m] * H[e,f,m] + DT[m] * K[e,m] * V[f,m]
AV[f,p]    = Q[e,p] * H[e,f,p+1]
"""
LATENT_DECODE = """cascade small_latent_decode
rank C, R, H, M, P
input QL[c,h,p], QR[r,h,p], CKV[c,m], KR[r,m]
output OL
S1[m,h,p]  = QL[c,h,p] * CKV[c,m]
S2[m,h,p]  = QR[r,h,p] * KR[r,m]
QK[m,h,p]  = S1[m,h,p] + S2[m,h,p]
GM[h,p]    = max(m: QK[m,h,p])
SN[m,h,p]  = exp(QK[m,h,p] - GM[h,p])
SD[h,p]    = sum(m: SN[m,h,p])
NV[c,h,p]  = SN[m,h,p] * CKV[c,m]
OL[c,h,p]  = NV[c,h,p] / SD[h,p]
"""
GROUPED_DECODE = """cascade small_grouped_decode
rank E, F, G, H, M, P
input Q[e,h,g,p], K[e,g,m], V[f,g,m]
output AV
QK[m,h,g,p]  = Q[e,h,g,p] * K[e,g,m]
GM[h,g,p]    = max(m: QK[m,h,g,p])
SN[m,h,g,p]  = exp(QK[m,h,g,p] - GM[h,g,p])
SD[h,g,p]    = sum(m: SN[m,h,g,p])
SNV[f,h,g,p] = SN[m,h,g,p] * V[f,g,m]
AV[f,h,g,p]  = SNV[f,h,g,p] / SD[h,g,p]
"""


@pytest.mark.parametrize("text,sizes,arch,kernel", [
    (GATED_DELTA, {"P": 4096, "M": 4096, "E": 128, "F": 128}, "h100-sxm", "fla-chunk-gdn"),
    (GATED_DELTA, {"P": 1, "M": 4096, "E": 128, "F": 128}, "b200", "flashinfer-gdn-decode"),
    (SSD, {"P": 4096, "M": 4096, "E": 128, "F": 64}, "h100-sxm", "mamba2-ssd-triton"),
    (LATENT_DECODE, {"P": 1, "M": 8192, "C": 512, "R": 64, "H": 128}, "b200", "trtllm-gen-mla"),
    (GROUPED_DECODE, {"P": 1, "M": 32768, "E": 128, "F": 128, "G": 8, "H": 4}, "h200", "fa3-decode"),
])
def test_the_kernel_family_is_read_from_the_cascade_structure(text, sizes, arch, kernel):
    import einsum_cascade as ec
    r = _sim(ec.parse(text), arch, sizes, batch=4)
    assert r.kernel == kernel and math.isfinite(r.latency_s) and r.latency_s > 0


def test_heads_inside_a_cascade_are_kv_heads_as_gqa_says():
    """gqa_decode's G = 8 KV groups of H = 4 query heads reads K/V as attention_1pass with 32 heads
    and 8 KV heads: the same bytes and time."""
    import einsum_cascade as ec
    grouped = _sim(ec.parse(GROUPED_DECODE), "h200", {"P": 1, "M": 32768, "E": 128, "F": 128, "G": 8, "H": 4},
                   batch=16)
    flat = _sim("attention_1pass", "h200", {"P": 1, "M": 32768, "E": 128, "F": 128}, batch=16, heads=32, kv_heads=8)
    assert grouped.dram_bytes == pytest.approx(flat.dram_bytes, rel=1e-6)
    assert grouped.latency_s == pytest.approx(flat.latency_s, rel=0.02)
