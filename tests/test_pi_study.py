"""The private-inference study end to end (small), and the temperature-scaled attention variant."""
from __future__ import annotations

import json

import pytest

from mappings.targets.private_inference.profiles import load_profile
from mappings.targets.private_inference.decoder import DecoderConfig, model_cost
from studies.cli import main
from studies.private_inference import PAPER_T512


def test_temperature_attention_costs_what_softmax_costs_when_the_temperature_is_a_weight():
    # TS[m,p] = T[p] * QK[m,p] with T a plaintext weight is a product with a public value: free.
    # So the entropy-guided (temperature-scaled) decoder costs exactly the softmax one.
    spu = load_profile("spu-cheetah")
    base = DecoderConfig(layers=2, context=32, variant="SM+ScFuFFN")
    temp = DecoderConfig(layers=2, context=32, variant="SM+ScFuFFN", attention="attention_temperature")
    assert model_cost(temp, spu).comm_bytes == pytest.approx(model_cost(base, spu).comm_bytes)


def test_study_writes_report_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "pi"
    assert main(["study", "private-inference", "--out", str(out), "--contexts", "128"]) == 0
    results = json.loads((out / "results.json").read_text())
    # Part 1: the paper-fit profile (fitted on the T = 128 rows only) predicts the paper's T = 512
    # rows (Entropy-Guided paper, L = 12, T = 512 table) within 10%, and the report shows them.
    held_out = {r["variant"]: r["model_comm_gb"] for r in results["paper_fit"] if r["context"] == 512}
    assert held_out == pytest.approx({v: gb for v, (gb, _) in PAPER_T512.items()}, rel=0.10)
    # Part 4: every attention cascade at T = 128, with LAN and WAN latencies.
    names = {r["cascade"] for r in results["attention"]}
    assert {"attention_3pass", "attention_2pass", "attention_1pass", "sigmoid_attention",
            "softplus_attention", "linear_attention", "relu_attention"} == names
    assert all(set(r["latency_s_per_query"]) == {"lan", "wan100"} for r in results["attention"])
    assert (out / "comm_by_class.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "## 4." in report and "best for private inference" in report
