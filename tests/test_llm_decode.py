"""Issue 25's decode work: the linear-recurrent decode step, MLA's latent read once, element types
on every target, and the check against published decode rows.

Expected bytes and operations are derived by hand in each test; the published rows are those of
archsim/gpu/data/gpu-published-variants.json."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archsim.config import CONFIG_DIR
from archsim.yamlio import load_yaml_file
from mappings.llm.model import ModelError, load_model
from mappings.llm.phases import cascade_source, phase_ops
from mappings.simulation import load_cascade
from studies.llm_study import accelerator_at, simulate_op

TINY = """
name: tiny
source: a model written for this test
params_stated: 1.0e+6
d_model: 256
vocab: 1000
dtype: DTYPE
attentions:
  gqa: {kind: dense, heads: 4, kv_heads: 2, head_dim: 64}
ffns:
  mlp: {kind: gated, hidden: 512}
layers:
  - {attention: gqa, ffn: mlp, repeat: 2}
"""

HYBRID = """
name: tiny-hybrid
source: a model written for this test
params_stated: 1.0e+6
d_model: 256
vocab: 1000
attentions:
  gdn: {kind: gated_delta_rule, key_heads: 2, value_heads: 4, key_head_dim: 64, value_head_dim: 32, conv_kernel: 4}
ffns:
  mlp: {kind: gated, hidden: 512}
layers:
  - {attention: gdn, ffn: mlp, repeat: 3}
"""


def _model(tmp_path: Path, text: str, name: str = "m.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return load_model(p)


def _gdn_step(tmp_path: Path, batch: int = 2):
    m = _model(tmp_path, HYBRID)
    return next(op for op in phase_ops(m, "decode", 1024, batch) if op.role == "attention")


def test_gated_delta_rule_decode_step_equals_numpy():
    # S' = a (S - b k (k^T S)) + b k v^T and o = S'^T q, written out with numpy
    rng = np.random.default_rng(7)
    e, f = 16, 8
    s, q, k, v = rng.standard_normal((e, f)), rng.standard_normal(e), rng.standard_normal(e), rng.standard_normal(f)
    a, b = 0.9, 0.3
    c = load_cascade(cascade_source("llm/gated_delta_rule_decode"))
    out = c.evaluate({"S": s, "Q": q, "K": k, "V": v, "A": np.float64(a), "B": np.float64(b)}, {})
    sn = a * (s - b * np.outer(k, k @ s)) + b * np.outer(k, v)
    assert np.allclose(out["SN"], sn, atol=1e-12) and np.allclose(out["O"], sn.T @ q, atol=1e-12)


def test_gated_delta_rule_decode_operations_by_hand():
    # per value head, M = 64 key rows x F = 32 value columns: KS = S^T k (M F multiplies), the update
    # a (S - b k KS) + b k v (5 multiplies per state element), O = S'^T q (M F multiplies)
    from einsum_cascade.numeric_cost import numeric_cost
    c = load_cascade(cascade_source("llm/gated_delta_rule_decode"))
    cost = numeric_cost(c, {"M": 64, "F": 32}).per_einsum
    assert cost["KS"]["multiply"] == 64 * 32 and cost["O"]["multiply"] == 64 * 32
    assert cost["SN"]["multiply"] == 5 * 64 * 32


def test_gated_delta_rule_decode_bytes_on_an_accelerator(tmp_path: Path):
    # every (batch, value head) reads its 64 x 32 bf16 state and writes it back once, and moves q, k
    # (64 each), v, o (32 each) and the two gates: 2 x 64 x 32 + 2 x 64 + 2 x 32 + 2 elements of 2 bytes
    op = _gdn_step(tmp_path, batch=2)
    assert op.sizes == {"M": 64, "F": 32} and (op.batch, op.heads) == (2, 4)
    per_pair = (2 * 64 * 32 + 2 * 64 + 2 * 32 + 2) * 2
    sheet = load_yaml_file(CONFIG_DIR / "fusemax-cloud.yaml")
    for target in ("fusemax-cloud", "flat-cloud"):
        r = simulate_op(op, target)
        assert r["status"] == "ok" and r["dram_bytes"] == 2 * 4 * per_pair
        assert r["latency_s"] >= r["dram_bytes"] / sheet["dram"]["bandwidth_bytes_per_s"]


def test_gated_delta_rule_decode_bytes_on_a_gpu(tmp_path: Path):
    # the GPU model's recurrent decode-step kernel with a bf16 state: per (batch, value head) the
    # 64 x 32 state read and written, v and o (32 each); q and k (64 each) once per key head
    from archsim.gpu.specs import GPU_DIR
    op = _gdn_step(tmp_path, batch=2)
    r = simulate_op(op, "h100-sxm")
    expected = 2 * (4 * (2 * 64 * 32 + 2 * 32) + 2 * 2 * 64) * 2
    assert r["status"] == "ok" and r["dram_bytes"] == expected
    assert r["latency_s"] >= expected / load_yaml_file(GPU_DIR / "h100-sxm.yaml")["hbm_bytes_per_s"]


def test_gated_delta_rule_decode_under_private_inference(tmp_path: Path):
    r = simulate_op(_gdn_step(tmp_path, batch=1), "spu-cheetah")
    assert r["status"] == "ok" and 0 < r["latency_s"] < float("inf")


def test_hybrid_decode_simulates_on_every_target(tmp_path: Path):
    from studies.llm_study import run_study
    p = tmp_path / "hybrid.yaml"
    p.write_text(HYBRID)
    rows, _ = run_study(tmp_path / "out", models=[str(p)], contexts=[1024], batches=[2],
                        targets=["fusemax-cloud", "h100-sxm"])
    decode = [r for r in rows if r["phase"] == "decode"]
    assert len(decode) == 2 and all(r["status"] == "ok" for r in decode)


def test_mla_decode_reads_the_latent_once(tmp_path: Path):
    # DeepSeek-V3 at 2K keys, batch 2: the latent (512) and RoPE key (64) of every key once, each of the
    # 128 heads' latent query (512 + 64) and latent output (512), bf16
    m = load_model("deepseek-v3")
    op = next(op for op in phase_ops(m, "decode", 2048, 2) if op.role == "attention")
    r = simulate_op(op, "fusemax-cloud")
    expected = (2 * 2048 * 576 + 2 * 128 * 576 + 2 * 128 * 512) * 2
    assert r["status"] == "ok" and r["dram_bytes"] == expected
    # the GPU form has K and V as one tensor: the GPU target picks an MLA kernel (its traffic is the
    # kernel profile's: at least the latent once)
    from mappings.simulation import simulate
    cascade, sizes, kv, _ = op.gpu_form
    g = simulate(cascade_source(cascade), "h100-sxm", dict(sizes), batch=2, heads=128, kv_heads=kv)
    assert "mla" in g.kernel and g.dram_bytes >= 2 * 2048 * 576 * 2


def test_model_element_types(tmp_path: Path):
    m = _model(tmp_path, TINY.replace("DTYPE", "{weights: fp8, activations: fp8, kv_cache: bf16}"))
    assert (m.weight_bytes, m.kv_bytes) == (1, 2)
    ops = phase_ops(m, "decode", 1024, 1)
    assert {op.dtype for op in ops if op.role == "attention"} == {"bf16"}
    assert {op.dtype for op in ops if op.role != "attention"} == {"fp8"}
    assert _model(tmp_path, TINY.replace("DTYPE", "fp8")).dtypes.kv_cache == "fp8"
    with pytest.raises(ModelError, match=r"m\.yaml: dtype.*activations: fp8 differs in width from the weights' bf16"):
        _model(tmp_path, TINY.replace("DTYPE", "{weights: bf16, activations: fp8}"))


def test_accelerator_at_changes_the_element_width_only():
    a, b = accelerator_at("fusemax-cloud", "bf16"), accelerator_at("fusemax-cloud", "fp8")
    assert (a.word_bytes, b.word_bytes, b.name) == (2, 1, "fusemax-cloud-fp8")
    assert (a.units, a.buffer, a.dram, a.clock_hz) == (b.units, b.buffer, b.dram, b.clock_hz)


@pytest.mark.parametrize("target", ["fusemax-cloud", "h100-sxm"])
def test_fp8_decode_reads_half_the_weight_bytes(tmp_path: Path, target):
    # one decode token of the tiny model: every matrix product reads its weights (and the token's
    # activations) once, so in fp8 its bytes are exactly half of bf16's; the KV cache stays bf16
    fp8 = _model(tmp_path, TINY.replace("DTYPE", "{weights: fp8, activations: fp8, kv_cache: bf16}"), "a.yaml")
    bf16 = _model(tmp_path, TINY.replace("DTYPE", "bf16"), "b.yaml")
    weights = (256 * (256 + 2 * 128) + 256 * 256 + 256 * 1024 + 512 * 256) * 2 + 256 * 1000  # elements, 2 layers
    totals = {}
    for name, m in (("fp8", fp8), ("bf16", bf16)):
        ops = phase_ops(m, "decode", 1024, 1)
        totals[name] = {role: sum(op.count * simulate_op(op, target)["dram_bytes"] for op in ops
                                  if (op.role == "attention") == (role == "attention"))
                        for role in ("attention", "matrices")}
    assert totals["fp8"]["matrices"] == pytest.approx(totals["bf16"]["matrices"] / 2, rel=1e-12)
    assert totals["bf16"]["matrices"] >= weights * 2
    assert totals["fp8"]["attention"] == totals["bf16"]["attention"]


def test_decode_check_rows(tmp_path: Path):
    # the published rows of Llama-3-70B's decode shape (64 query / 8 KV heads, head dim 128) on an H200,
    # predicted through the study's path; the error is (predicted - published) / published
    from mappings.gpu_observations import load_variants
    from studies.llm_decode_check import decode_check, mape, report_lines
    obs = [o for o in load_variants()[0] if o.gpu == "h200"]
    rows = decode_check(["llama-3-70b", "llama-3-8b"], obs, held_out=False)
    assert rows and all((r["heads"], r["kv_heads"], r["head_dim"]) == (64, 8, 128) for r in rows)
    one = rows[0]
    m = load_model("llama-3-70b")
    op = next(op for op in phase_ops(m, "decode", one["context"], one["batch"]) if op.role == "attention")
    direct = simulate_op(op, "h200", kernel=one["kernel"])["latency_s"]
    assert one["predicted_s"] == direct
    assert one["error_pct"] == pytest.approx(100 * (direct - one["published_s"]) / one["published_s"])
    assert mape(rows) == pytest.approx(np.mean([abs(r["error_pct"]) for r in rows]))
    text = "\n".join(report_lines(rows, ["Llama-3-70B", "Llama-3-8B"]))
    assert "| Llama-3-70B |" in text and "decode row has the attention shape of: Llama-3-8B" in text
