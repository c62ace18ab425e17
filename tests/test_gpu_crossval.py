"""The GPU cross-validation: metrics by hand, the calibration/validation split, the study on the
published data set, and the study on a clearly synthetic benchmark file made in the test's tmp dir."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from archsim.gpu_specs import FITTED_FILE, load_fitted, load_profile
from archsim.yamlio import load_yaml_file
from mappings.gpu_mapping import AttentionShape
from mappings.gpu_predict import predict
from studies import gpu_crossval as cv
from studies.cli import main as cli_main
from studies.gpu_calibration import Predictor, calibrate, split
from studies.gpu_observations import BENCH_SCHEMA, PUBLISHED, Observation, load_published


def test_error_summary_by_hand():
    s = cv.error_summary(np.array([110.0, 90.0, 100.0, 150.0]), np.array([100.0] * 4))
    # signed errors 10, -10, 0, 50 (%); sorted |e| 0, 10, 10, 50; p90 at rank 2.7: 10 + 0.7 * 40.
    assert s == pytest.approx({"mape": 17.5, "median_ape": 10.0, "p90_ape": 38.0, "max_ape": 50.0,
                               "bias_pct": 12.5})


def test_spearman_by_hand():
    # ranks of b: 1, 2, 4, 3; sum d^2 = 2; rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert cv.spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 40, 30])) == pytest.approx(0.8)
    assert cv.spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert cv.spearman(np.array([1, 2]), np.array([1, 2])) is None        # too few rows to rank


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


def test_published_data_set_keeps_every_source_field():
    rows = load_yaml_file(PUBLISHED)
    assert len(rows) == 100
    for r in rows:
        assert {"source", "gpu", "dtype", "batch", "heads", "head_dim", "causal", "seq_len", "kernel", "value",
                "unit", "time_ms", "notes"} <= set(r)
    # a row as published (Lightning Attention repo, FlashAttention-2 at 32K on the A100): 161.154434 ms.
    obs = load_published()
    fa2 = [o for o in obs if o.kernel == "flash2" and o.gpu == "a100" and o.shape.seq_len == 32768]
    assert len(fa2) == 1 and fa2[0].time_s == pytest.approx(0.161154434)
    assert {o.gpu for o in obs} == {"a100", "h100-sxm", "b200"}
    assert {o.clock_hz for o in obs if o.gpu == "b200"} == {1.8e9}       # 'B200-850W@1800MHz'


def test_split_rule_by_hand():
    shape = AttentionShape(1, 1, 1, 64, False)
    rows = [Observation(f"r{n}", "s", "a100", None, "flash2", "bf16", replace(shape, seq_len=n), 1.0)
            for n in (512, 1024, 2048, 4096, 8192)]
    rows.append(Observation("other", "s", "a100", None, "xformers", "bf16", replace(shape, seq_len=1024), 1.0))
    cal, val = split(rows)
    # series sorted by length: 2nd and 4th calibrate; a series of one row is validation only.
    assert [r.row for r in cal] == ["r1024", "r4096"]
    assert [r.row for r in val] == ["r512", "r2048", "r8192", "other"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-crossval")
    return out, cv.run_study(out, bench_paths=[])


def test_split_is_disjoint_and_covers_every_row():
    rows = load_published()
    cal, val = split(rows)
    assert {r.row for r in cal}.isdisjoint({r.row for r in val}) and len(cal) + len(val) == len(rows)
    # every series of two or more lengths calibrates on some and validates on others
    for series in {r.series for r in rows}:
        lengths = {r.shape.seq_len for r in rows if r.series == series}
        if len(lengths) > 1:
            assert any(r.series == series for r in cal) and any(r.series == series for r in val)


def test_calibrate_evaluates_only_the_rows_it_is_given():
    rows = [r for r in load_published() if r.kernel == "xformers"]
    cal, val = split(rows)
    predictor = Predictor()
    _, fits = calibrate(predictor, cal)
    assert predictor.seen == {r.row for r in cal} and predictor.seen.isdisjoint({r.row for r in val})
    assert fits["xformers"]["rows"] == [r.row for r in cal]


def test_reported_validation_rows_were_not_used_in_fitting(study):
    _, res = study
    val = set(res["validation_rows"])
    assert val.isdisjoint(res["calibration_rows"])
    assert res["rows_evaluated_in_fit"] and val.isdisjoint(res["rows_evaluated_in_fit"])
    assert set(res["rows_evaluated_in_fit"]) <= set(res["calibration_rows"])
    assert all(val.isdisjoint(f["rows"]) for f in res["fits"].values())
    assert {r["row"] for r in res["records"] if r["set"] == "validation"} == val
    assert res["overall"]["n"] == len(val) > 0
    # the committed fitted parameters were fitted on calibration rows only, and are this fit
    committed = load_yaml_file(FITTED_FILE)
    for name, rows in committed["calibration_rows"].items():
        assert val.isdisjoint(rows) and rows == res["fits"][name]["rows"]
    fitted = load_fitted()
    for name, fit in res["fits"].items():
        for key, value in fit["parameters"].items():
            assert fitted[name][key] == pytest.approx(value, rel=1e-6), (name, key)


def test_study_writes_metrics_plot_and_misses(study):
    out, res = study
    report = (out / "report.md").read_text()
    saved = json.loads((out / "crossval.json").read_text())
    assert saved["overall"]["mape"] == pytest.approx(res["overall"]["mape"])
    assert set(saved["by_source"]) == {"Triton tutorial docs (A100)", "Lightning Attention repo (A100)",
                                       "tritonbench PR 2391 (H100)", "Triton tile-IR note (B200)"}
    for m in saved["by_source"].values():
        assert {"mape", "bias_pct", "spearman_time", "spearman_tflops"} <= set(m)
    # a sentence of the report is computed from the results
    assert f"MAPE {res['overall']['mape']:.1f} %" in report and "not drawn" in report
    assert len(res["largest_misses"]) == cv.LARGEST_MISSES
    assert all(m["bound"] in ("compute", "exp", "memory", "serial", "launch") for m in res["largest_misses"])
    errors = [abs(r["error_pct"]) for r in res["records"] if r["set"] == "validation"]
    assert abs(res["largest_misses"][0]["error_pct"]) == max(errors)
    assert (out / "predicted_vs_measured.png").stat().st_size > 0
    crossover = {c["linear"]: c for c in res["crossovers"]}
    assert set(crossover) == {"lightning2", "lightning2-decay"}
    # measured: Lightning-2 (decay) is slower than FA2 at 2K and faster at 4K (the published table).
    assert 2048 < crossover["lightning2-decay"]["measured"] < 4096


def test_study_bad_gpu_is_one_line_exit_2(tmp_path, capsys):
    code = cli_main(["study", "gpu-crossval", "--gpu", "a100x", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown GPU 'a100x'" in err and "Traceback" not in err
    path = tmp_path / "g.yaml"
    from archsim.gpu_specs import GPU_DIR
    path.write_text((GPU_DIR / "a100.yaml").read_text().replace("clock_hz: 1.41e+9", "clock_hz: .inf"))
    code = cli_main(["study", "gpu-crossval", "--gpu", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:7:11: non-finite number '.inf'" in err  # refused where it is written


def test_study_on_synthetic_benchmark_file(tmp_path):
    """Times made by the model itself with known parameters (clearly labelled synthetic): the fit on
    the calibration lengths recovers them, so the validation error is near zero."""
    truth = load_profile("attention_1pass", fitted=False)
    from archsim.gpu_specs import with_parameters
    truth = with_parameters(truth, {"mma_efficiency": {"hopper": 0.55}, "exp_overlap": 0.4, "prologue_steps": 3.0,
                                    "launch_s": 8e-6}, "test")
    records = []
    for n in (1024, 2048, 4096, 8192):
        for causal in (False, True):
            t = predict("h200", truth, AttentionShape(1, 8, n, 64, causal), "bf16").time_s
            records.append({"kernel": "attention_1pass", "batch": 1, "heads": 8, "seq_len": n, "head_dim": 64,
                            "causal": causal, "dtype": "bfloat16", "median_ms": t * 1e3})
    records.append({**records[0], "kernel": "torch_sdpa_flash"})  # baseline: no profile, ignored
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps({"schema": BENCH_SCHEMA, "gpu": "NVIDIA H200 (SYNTHETIC, model-generated)",
                                "records": records}))
    res = cv.run_study(tmp_path / "out", [path], published=None)
    assert res["n_rows"] == 8 and res["n_validation"] == 4
    assert res["overall"]["mape"] < 1.0
    # the fitted profile predicts an unmeasured shape as the truth does (MMA efficiency and exp overlap
    # trade off against each other, so the parameters themselves need not be recovered one by one)
    fitted = with_parameters(load_profile("attention_1pass", fitted=False),
                             res["fits"]["attention_1pass"]["parameters"], "test")
    far = AttentionShape(2, 8, 16384, 64, False)
    assert predict("h200", fitted, far).time_s == pytest.approx(predict("h200", truth, far).time_s, rel=0.02)
    assert not math.isnan(res["overall"]["bias_pct"])


@pytest.mark.parametrize("change, message", [
    ({"causal": "false"}, "records[0].causal must be true or false, got 'false'"),
    ({"dtype": "int8"}, "records[0].dtype must be one of"),
    ({"seq_len": "4096"}, "records[0].seq_len must be a positive integer"),
    ({"median_ms": float("inf")}, "records[0].median_ms: expected a"),
    ({"tiles": {"BLOCK_M": 128}}, "records[0].tiles.BLOCK_N must be a positive integer, got None"),
])
def test_bad_measurement_fields_are_errors_not_silent_or_tracebacks(tmp_path, capsys, change, message):
    good = {"kernel": "attention_1pass", "batch": 1, "heads": 4, "seq_len": 1024, "head_dim": 64,
            "causal": False, "dtype": "bfloat16", "median_ms": 1.0}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": BENCH_SCHEMA, "gpu": "NVIDIA H200", "records": [{**good, **change}]}))
    code = cli_main(["study", "gpu-crossval", "--measurements", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
