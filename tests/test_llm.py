"""LLM inference workloads: model descriptions, phase operations, and the llm study.

Expectations are derived by hand in the tests (shapes, bytes, multiply-adds) or recomputed from the
model cards' figures; the study's numbers are checked equal to direct `simulate` calls."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

import einsum_cascade as ec
from archsim.config import CONFIG_DIR
from archsim.yamlio import load_yaml_file
from mappings.llm.model import ModelError, load_model, model_names, parameter_count
from mappings.llm.phases import experts_touched, kv_cache_bytes, phase_ops
from mappings.matrix_product import gemm_shape
from mappings.simulation import simulate

TINY = """
name: tiny
source: a model written for this test
params_stated: 1.0e+6
d_model: 256
vocab: 1000
attentions:
  gqa: {kind: dense, heads: 4, kv_heads: 2, head_dim: 64}
ffns:
  mlp: {kind: gated, hidden: 512}
layers:
  - {attention: gqa, ffn: mlp, repeat: 2}
"""


@pytest.fixture
def tiny(tmp_path: Path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return load_model(p)


@pytest.mark.parametrize("name", model_names())
def test_parameter_count_from_shapes_matches_the_model_card(name):
    m = load_model(name)
    assert abs(parameter_count(m) / m.params_stated - 1) < 0.01


def test_llama_3_8b_parameters_by_hand():
    # embeddings + LM head 2 x 128256 x 4096; per layer q,o 4096^2 each, k,v 4096 x 1024 each,
    # FFN 3 x 4096 x 14336, two norms of 4096; a final norm
    per_layer = 2 * 4096 ** 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert parameter_count(load_model("llama-3-8b")) == 2 * 128256 * 4096 + 32 * per_layer + 4096


def test_shipped_models_cover_the_issue():
    kinds = {a.kind for n in model_names() for a in load_model(n).attentions.values()}
    assert {"dense", "sliding_window", "mla", "gated_delta_rule"} <= kinds
    gemma = load_model("gemma-2-9b")
    assert [a for a, _ in gemma.layer_list()[:4]] == ["local", "global", "local", "global"]
    assert load_model("qwen3-next-80b-a3b").n_layers == 48 and load_model("deepseek-v3").n_layers == 61


def test_decode_step_operations_by_hand(tiny):
    ops = {op.name: op for op in phase_ops(tiny, "decode", 128, 2)}
    # q: 4 x 64 = 256 columns, k and v: 2 x 64 each -> 512 columns; T = batch = 2 tokens
    assert ops["qkv"].sizes == {"T": 2, "D": 256, "N": 512} and ops["qkv"].count == 2
    assert ops["o"].sizes == {"T": 2, "D": 256, "N": 256}
    assert ops["ffn_up"].sizes == {"T": 2, "D": 256, "N": 1024} and ops["ffn_down"].sizes == {"T": 2, "D": 512, "N": 256}
    att = ops["attention"]
    assert (att.cascade, att.sizes, att.batch, att.heads, att.kv_heads) == (
        "attention_1pass", {"P": 1, "M": 128, "E": 64, "F": 64}, 2, 4, 2)
    assert ops["lm_head"].sizes == {"T": 2, "D": 256, "N": 1000} and ops["lm_head"].count == 1
    # KV cache: 2 layers x 128 keys x 2 KV heads x (64 + 64) x 2 bytes x 2 sequences
    assert kv_cache_bytes(tiny, 128, 2) == 2 * 128 * 2 * 128 * 2 * 2
    # every weight but the embedding table is read once per step: 2 x (256x512 + 256x256 + 256x1024 + 512x256) + 256x1000
    weights = sum(op.count * op.sizes["D"] * op.sizes["N"] for op in ops.values() if op.cascade == "blocks/matmul")
    assert weights == 2 * (256 * 512 + 256 * 256 + 256 * 1024 + 512 * 256) + 256 * 1000


def test_prefill_layer_multiply_adds_by_hand(tiny):
    ops = phase_ops(tiny, "prefill", 64, 3)
    t = 3 * 64
    gemm_macs = sum(op.count * op.sizes["T"] * op.sizes["D"] * op.sizes["N"] for op in ops
                    if op.cascade == "blocks/matmul" and op.role != "lm_head")
    assert gemm_macs == 2 * t * (256 * 512 + 256 * 256 + 256 * 1024 + 512 * 256)
    att = next(op for op in ops if op.role == "attention")
    assert att.cascade == "attention_1pass_causal" and att.sizes["P"] == att.sizes["M"] == 64
    # causal QK over (p, m <= p): 64 x 65 / 2 points of 64 multiply-adds each, per head and sequence
    from einsum_cascade.numeric_cost import numeric_cost
    cost = numeric_cost(ec.load_library(att.cascade), {**att.sizes, "M0": 16, "M1": 4})
    assert cost.per_einsum["QK"]["multiply"] == 64 * 65 // 2 * 64


def test_mla_decodes_absorbed_as_multi_query_over_the_latent():
    m = load_model("deepseek-v3")
    att = next(op for op in phase_ops(m, "decode", 1024, 1) if op.role == "attention")
    assert att.cascade == "llm/mla_latent_decode" and att.gpu_form[0] == "llm/mla_latent_decode_2pass"
    assert att.sizes == {"P": 1, "M": 1024, "E": 64, "F": 512} and (att.heads, att.kv_heads) == (128, 1)
    assert kv_cache_bytes(m, 1024, 1) == 61 * 1024 * 576 * 2  # the latent cache in bf16 (weights fp8)


def test_sliding_window_decode_sees_the_window_only():
    m = load_model("mistral-7b")
    att = next(op for op in phase_ops(m, "decode", 32768, 1) if op.role == "attention")
    assert att.sizes["M"] == 4096


def test_experts_touched_limits():
    assert experts_touched(1, 256, 8) == pytest.approx(8)
    assert experts_touched(10 ** 6, 256, 8) == pytest.approx(256)
    # two tokens: 256 (1 - (1 - 8/256)^2) = 16 - 0.25
    assert experts_touched(2, 256, 8) == pytest.approx(15.75)


def test_matrix_product_is_recognised_by_structure():
    assert gemm_shape(ec.load_library("matmul")) is not None
    renamed = ec.parse("cascade g\nrank A, B, C\ninput X[a,c], Y[b,a]\noutput Z\nZ[b,c] = Y[b,a] * X[a,c]\n")
    s = gemm_shape(renamed)
    assert (s.rows, s.cols, s.reduction) == ("C", "B", "A")
    assert gemm_shape(ec.load_library("linear")) is None  # a bias: not a plain product
    assert gemm_shape(ec.load_library("attention_1pass")) is None


def test_decode_gemm_is_bound_by_reading_its_weights():
    # one token through a 4096 x 14336 bf16 matrix: weights 4096 * 14336 * 2 bytes over the DRAM bandwidth
    sheet = load_yaml_file(CONFIG_DIR / "fusemax-cloud.yaml")  # the datasheet figures
    r = simulate("blocks/matmul", "fusemax-cloud", {"T": 1, "D": 4096, "N": 14336})
    weight_s = 4096 * 14336 * 2 / sheet["dram"]["bandwidth_bytes_per_s"]
    assert weight_s <= r.latency_s <= 1.05 * weight_s and r.bounding_unit == "dram"
    # 4096 tokens: compute bound, 4096 x 4096 x 14336 MACs on 256 x 256 PEs at the clock
    r = simulate("blocks/matmul", "fusemax-cloud", {"T": 4096, "D": 4096, "N": 14336})
    array = sheet["units"]["array2d"]
    compute_s = 4096 * 4096 * 14336 / (array["rows"] * array["cols"]) / sheet["clock_hz"]
    assert compute_s <= r.latency_s <= 1.05 * compute_s and r.bounding_unit == "array2d"


def test_bad_model_files_name_the_file_and_field(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text(TINY.replace("ffn: mlp, repeat: 2", "ffn: nope, repeat: 2"))
    with pytest.raises(ModelError, match=r"bad\.yaml: .*layers\[0\]\.ffn: unknown ffn 'nope'"):
        load_model(p)
    p.write_text(TINY.replace("kv_heads: 2", "kv_heads: 3"))
    with pytest.raises(ModelError, match=r"bad\.yaml: attentions\.gqa.*kv_heads 3 does not divide heads 4"):
        load_model(p)
    with pytest.raises(ModelError, match="unknown model 'llama-9'"):
        load_model("llama-9")


def test_study_rows_are_sums_of_simulate_calls(tmp_path: Path, tiny):
    from studies.llm_study import run_study, write_outputs
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    rows, fusion = run_study(tmp_path / "out", models=[str(path)], contexts=[256], batches=[2],
                             targets=["fusemax-cloud"])
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    decode = next(r for r in rows if r["phase"] == "decode")
    direct = sum(op.count * simulate(op.cascade, "fusemax-cloud", op.sizes, batch=op.batch, heads=op.heads,
                                     kv_heads=op.kv_heads).latency_s for op in phase_ops(tiny, "decode", 256, 2))
    assert decode["latency_s"] == pytest.approx(direct, rel=1e-12)
    assert {f["phase"] for f in fusion} == {"prefill", "decode"}
    # a rerun reads every operation from the journal (nothing appended)
    lines = (tmp_path / "out" / "points.jsonl").read_text().splitlines()
    again, _ = run_study(tmp_path / "out", models=[str(path)], contexts=[256], batches=[2], targets=["fusemax-cloud"])
    assert again == rows and (tmp_path / "out" / "points.jsonl").read_text().splitlines() == lines
    write_outputs(tmp_path / "out", rows, fusion)
    assert "| tiny |" in (tmp_path / "out" / "report.md").read_text()


def test_gemm_with_a_long_reduction_is_split_to_fit_the_buffer():
    # fusemax-cloud: (256 + 256) x K x 2 bytes of operand strips; K = 18432 needs 18.9 MB > 16 MiB: 2 chunks,
    # each 9216 deep; the second chunk reads the 8 x 7168 partial sums back
    sheet = load_yaml_file(CONFIG_DIR / "fusemax-cloud.yaml")
    r = simulate("blocks/matmul", "fusemax-cloud", {"T": 8, "D": 18432, "N": 7168})
    assert any("2 chunks" in n for n in r.notes)
    compulsory = (8 * 18432 + 18432 * 7168 + 8 * 7168) * 2
    assert compulsory <= r.dram_bytes <= compulsory + 2 * 8 * 7168 * 2
    assert r.latency_s >= compulsory / sheet["dram"]["bandwidth_bytes_per_s"]


def _sheet(path):
    return load_yaml_file(path)


def test_gpu_gemm_time_by_hand():
    # H100 SXM: a one-token GEMM reads its 4096 x 14336 bf16 weights: bytes / (HBM bandwidth x 0.85) + 5 us
    # (the assumed memory efficiency and launch cost of mappings/gpu_gemm.py); 8192^3 is tensor bound:
    # 2 x 8192^3 FLOP at 0.75 x the wgmma bf16 rate (SMs x per-SM rate x clock)
    from archsim.gpu.specs import GPU_DIR
    h100 = _sheet(GPU_DIR / "h100-sxm.yaml")
    r = simulate("blocks/matmul", "h100-sxm", {"T": 1, "D": 4096, "N": 14336})
    bytes_ = (4096 + 4096 * 14336 + 14336) * 2
    assert r.latency_s == pytest.approx(bytes_ / (h100["hbm_bytes_per_s"] * 0.85) + 5e-6, rel=1e-9)
    peak = h100["sms"] * h100["tensor_flops_per_clock_per_sm"]["wgmma"]["bf16"] * h100["clock_hz"]
    r = simulate("blocks/matmul", "h100-sxm", {"T": 8192, "D": 8192, "N": 8192})
    # 64 x 64 tiles of 128 x 128 outputs in waves of one tile per SM: ceil(4096 / SMs) waves
    tile_s = 2 * 128 * 128 * 8192 / (0.75 * peak / h100["sms"])
    assert r.latency_s == pytest.approx(math.ceil(4096 / h100["sms"]) * tile_s + 5e-6, rel=1e-9)
    assert r.bounding_unit == "compute"


@pytest.mark.parametrize("target", ["fusemax-cloud", "h100-sxm"])
def test_decode_step_is_not_faster_than_its_bytes(tmp_path: Path, tiny, target):
    # a decode step reads every weight but the embedding table and the whole KV cache at least once
    from archsim.gpu.specs import GPU_DIR
    bandwidth = (_sheet(CONFIG_DIR / "fusemax-cloud.yaml")["dram"]["bandwidth_bytes_per_s"] if target == "fusemax-cloud"
                 else _sheet(GPU_DIR / "h100-sxm.yaml")["hbm_bytes_per_s"])
    weights = (2 * (256 * 512 + 256 * 256 + 256 * 1024 + 512 * 256) + 256 * 1000) * 2
    kv = 2 * 4096 * 2 * 128 * 2 * 8  # layers x context x KV heads x (E + F) x bytes x batch
    step = sum(op.count * simulate(op.cascade, target, op.sizes, batch=op.batch, heads=op.heads,
                                   kv_heads=op.kv_heads).latency_s for op in phase_ops(tiny, "decode", 4096, 8))
    assert step >= (weights + kv) / bandwidth


def test_gqa_decode_reads_each_kv_head_once():
    # 32 query heads on 8 KV heads at 4K keys, head dim 128: K and V are 8 x 4096 x 256 x 2 bytes
    r = simulate("attention_1pass", "fusemax-cloud", {"P": 1, "M": 4096, "E": 128, "F": 128}, heads=32, kv_heads=8)
    kv = 8 * 4096 * 256 * 2
    assert kv <= r.dram_bytes <= kv * 1.01


def test_one_pass_sliding_window_equals_masked_softmax():
    import numpy as np
    rng = np.random.default_rng(3)
    e, n, w = 8, 512, 100
    q, k, v = rng.standard_normal((e, n)), rng.standard_normal((e, n)), rng.standard_normal((e, n))
    out = ec.load_library("attention_sliding_window_1pass").evaluate({"Q": q, "K": k, "V": v}, {"W": w})["AV"]
    m, p = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    s = np.where((p - w < m) & (m <= p), k.T @ q, -np.inf)
    a = np.exp(s - s.max(axis=0)) / np.exp(s - s.max(axis=0)).sum(axis=0)
    assert np.allclose(out, v @ a, rtol=1e-10, atol=1e-12)
