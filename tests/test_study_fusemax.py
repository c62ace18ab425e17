"""The fusemax-vs-flat study: the 24-point means against the paper (reference-fusemax.md section 6)."""
import csv
import json

import pytest

from studies.cli import main
from studies.fusemax_vs_flat import run_study, summarize


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("fvf")
    return out, run_study(out, progress=False)


def test_means_match_paper(study):
    s = summarize(study[1])
    assert s["fusemax_speedup"] == pytest.approx(6.72, rel=0.03)
    assert abs(s["energy_ratio"] - 0.787) <= 0.04
    assert s["e2e_speedup"] == pytest.approx(5.30, rel=0.03)
    assert s["unfused_speedup"] == pytest.approx(0.668, rel=0.05)
    assert s["cascade_speedup"] == pytest.approx(0.907, rel=0.05)
    assert s["arch_speedup"] == pytest.approx(2.18, rel=0.05)


def test_utilisation(study):
    pts = {(p["model"], p["seq_len"], p["config"]): p for p in study[1] if p["kind"] == "attention"}
    assert pts[("BERT", "1K", "fusemax")]["util_2d"] == pytest.approx(0.89, abs=0.01)
    assert pts[("BERT", "1M", "fusemax")]["util_2d"] == pytest.approx(0.99, abs=0.01)
    for n in ["1K", "4K", "16K", "64K", "256K", "1M"]:
        assert pts[("BERT", n, "fusemax")]["util_1d"] >= 0.99
    for n in ["1K", "4K", "16K", "64K"]:  # paper: 12.5% (E=64), 25% (E=128); here within 4% (E=64) and 11% (E=128): DRAM and staging-buffer contention the paper ignores
        assert pts[("BERT", n, "flat")]["util_2d"] == pytest.approx(0.125, rel=0.04)
        assert pts[("XLM", n, "flat")]["util_2d"] == pytest.approx(0.25, rel=0.11)


def test_outputs_and_resume(study):
    out, points = study
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 * 6 * 5 * 2
    assert {"kind", "model", "seq_len", "config", "latency_s", "energy_j", "dram_bytes", "util_2d", "util_1d"} <= set(rows[0])
    assert json.loads((out / "results.json").read_text())["summary"]
    assert (out / "speedup.png").stat().st_size > 0 and "paper" in (out / "report.md").read_text()
    before = (out / "points.jsonl").read_text()
    run_study(out, progress=False)  # resumes: nothing new simulated
    assert (out / "points.jsonl").read_text() == before


def test_cli_bad_length(capsys):
    assert main(["study", "fusemax-vs-flat", "--lengths", "12Q", "--out", "/tmp/unused-fvf"]) == 2
    assert "12Q" in capsys.readouterr().err
