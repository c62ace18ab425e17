"""The GPU cross-validation study: metrics on hand-made data, and the study end to end on a
clearly synthetic measurement file made in the test's tmp dir (never a committed result)."""
import json
import math

import numpy as np
import pytest

from archsim.gpu_model import load_gpu
from mappings.gpu_mapping import AttentionShape, predict_kernel_time_s
from studies import gpu_crossval as cv
from studies.cli import main as cli_main


def test_error_summary_by_hand():
    s = cv.error_summary(np.array([110.0, 90.0, 100.0, 150.0]), np.array([100.0] * 4))
    # signed errors 10, -10, 0, 50 (%); sorted |e| 0, 10, 10, 50; p90 at rank 2.7: 10 + 0.7 * 40.
    assert s == pytest.approx({"mape": 17.5, "median_ape": 10.0, "p90_ape": 38.0, "max_ape": 50.0,
                               "bias_pct": 12.5})


def test_spearman_by_hand():
    # ranks of b: 1, 2, 4, 3; sum d^2 = 2; rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert cv.spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 40, 30])) == pytest.approx(0.8)
    assert cv.ranks(np.array([1.0, 2.0, 2.0, 3.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert cv.spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)


def test_crossover_by_hand():
    # log time ratio +ln 2 at 2048 and -ln 2 at 4096: crossing midway in log2 N, at 2^11.5.
    assert cv.crossover_length([2048, 4096], [2.0, 1.0], [1.0, 2.0]) == pytest.approx(2 ** 11.5)
    assert cv.crossover_length([1024, 2048], [1.0, 1.0], [2.0, 3.0]) is None
    assert "below 1024" in cv.crossover_note([1024, 2048], [1.0, 1.0], [2.0, 3.0])
    assert "above 2048" in cv.crossover_note([1024, 2048], [3.0, 3.0], [2.0, 2.0])


def test_ratio_errors_and_fastest_kernel_by_hand():
    rows = [{"shape": "s1", "kernel": "a", "measured_s": 2.0, "predicted_s": 3.0},
            {"shape": "s1", "kernel": "b", "measured_s": 1.0, "predicted_s": 1.0},
            {"shape": "s2", "kernel": "a", "measured_s": 1.0, "predicted_s": 2.0},
            {"shape": "s2", "kernel": "b", "measured_s": 2.0, "predicted_s": 1.0}]
    ratios = cv.speedup_ratio_errors(rows)
    assert [(r["pair"], r["measured"], r["predicted"]) for r in ratios] == [("a/b", 2.0, 3.0), ("a/b", 0.5, 2.0)]
    assert ratios[0]["error_pct"] == pytest.approx(50.0) and ratios[1]["error_pct"] == pytest.approx(300.0)
    fastest = cv.fastest_agreement(rows)
    assert [(f["measured"], f["predicted"], f["agree"]) for f in fastest] == [("b", "b", True), ("a", "b", False)]


def test_split_keeps_calibration_lengths_apart():
    recs = [cv.Measurement("attention_1pass", 1, 1, n, 64, False, "bfloat16", 1.0) for n in (1024, 2048, 4096)]
    cal, ev = cv.split(recs, (2048,))
    assert [r.seq_len for r in cal] == [2048] and [r.seq_len for r in ev] == [1024, 4096]
    cal, ev = cv.split(recs, (8192,))  # none measured: every other length from the second
    assert [r.seq_len for r in cal] == [2048]


def test_no_measurements_says_so_and_invents_nothing(tmp_path):
    result = cv.run_study(tmp_path / "out", [])
    assert result["status"] == "no measurements" and result["mape"] is None and result["n_shapes"] == 0
    saved = json.loads((tmp_path / "out" / "crossval.json").read_text())
    assert saved["spearman"] is None and saved["gpu"] is None
    assert "No GPU measurements" in (tmp_path / "out" / "report.md").read_text()


def test_bad_measurement_file_names_the_field(tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": cv.BENCH_SCHEMA, "records": [{"kernel": "attention_1pass"}]}))
    code = cli_main(["study", "gpu-crossval", "--measurements", str(path), "--out", str(tmp_path / "o")])
    assert code == 2 and "records[0]: missing field 'batch'" in capsys.readouterr().err


def test_study_end_to_end_on_synthetic_measurements(tmp_path):
    """Times made by the model itself with known parameters (clearly labelled synthetic): the
    calibration on 2K must recover them, so the evaluation error on 1K and 4K is near zero."""
    truth = load_gpu("h200").with_params(tensor_efficiency=0.5, overlap=0.25, memory_efficiency=0.8,
                                         launch_overhead_s=8e-6, step_latency_s=0.5e-6)
    records = []
    for n in (1024, 2048, 4096):
        for causal in (False, True):
            kernels = ["attention_3pass", "attention_2pass", "attention_1pass"] + (["linear_attention_causal"] * causal)
            for k in kernels:
                t = predict_kernel_time_s(truth, k, AttentionShape(1, 4, n, 64, causal))
                records.append({"kernel": k, "batch": 1, "heads": 4, "seq_len": n, "head_dim": 64,
                                "causal": causal, "dtype": "bfloat16", "median_ms": t * 1e3})
    records.append({**records[0], "kernel": "torch_sdpa_flash"})  # baseline: not mapped, ignored
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps({"schema": cv.BENCH_SCHEMA, "gpu": "SYNTHETIC (model-generated, test only)",
                                "records": records}))
    result = cv.run_study(tmp_path / "out", [path], calibration_lens=(2048,))
    truth_params = {"tensor_efficiency": 0.5, "overlap": 0.25, "memory_efficiency": 0.8,
                    "launch_overhead_s": 8e-6, "step_latency_s": 0.5e-6}
    assert result["calibrated"] == pytest.approx(truth_params, rel=0.15)
    assert result["mape"] < 1.0 and result["spearman"] > 0.99
    assert result["n_shapes"] == 4 and result["evaluation_seq_lens"] == [1024, 4096]
    assert result["fastest_agreement"] == 1.0 and result["speedup_ratio_max_ape"] < 2.0
    saved = json.loads((tmp_path / "out" / "crossval.json").read_text())
    for key in ("mape", "spearman", "n_shapes", "gpu"):
        assert key in saved
    assert saved["gpu"].startswith("SYNTHETIC")
    crossover = saved["crossovers"][0]
    assert crossover["measured"] == crossover["predicted"] or (
        crossover["measured"] is None and crossover["measured_note"] == crossover["predicted_note"])
    assert "MAPE" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "predicted_vs_measured.png").stat().st_size > 0
    assert not math.isnan(result["bias_pct"])


@pytest.mark.parametrize("change, message", [
    ({"causal": "false"}, "records[0].causal must be true or false, got 'false'"),  # was read as True
    ({"dtype": "float8"}, "records[0].dtype must be one of"),                        # was priced as 2 bytes
    ({"seq_len": "4096"}, "records[0].seq_len must be a positive integer"),
    ({"tiles": {"BLOCK_M": 128}}, "records[0].tiles.BLOCK_N must be a positive integer, got None"),
])
def test_bad_measurement_fields_are_errors_not_silent_or_tracebacks(tmp_path, capsys, change, message):
    good = {"kernel": "attention_1pass", "batch": 1, "heads": 4, "seq_len": 1024, "head_dim": 64,
            "causal": False, "dtype": "bfloat16", "median_ms": 1.0}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": cv.BENCH_SCHEMA, "records": [{**good, **change}]}))
    code = cli_main(["study", "gpu-crossval", "--measurements", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
