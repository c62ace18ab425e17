"""`cascadesim study cascades` on a small subset: outputs, resume, unmappable cascades with reasons."""
import csv
import json

from studies.cascades_study import run_study
from studies.cli import main


def test_small_study_outputs_and_resume(tmp_path, monkeypatch):
    """Every library cascade maps now (issue 19): a refusal is simulated for lightning_attention, to
    check that an unmapped point is reported with its reason."""
    import studies.cascades_study as study
    from mappings.work import MappingError
    real = study.simulate

    def refuse_lightning(c, *args, **kwargs):
        if c.name == "lightning_attention":
            raise MappingError("auto mapping: refused for the test")
        return real(c, *args, **kwargs)

    monkeypatch.setattr(study, "simulate", refuse_lightning)
    names = ["attention_1pass", "attention_2pass", "attention_3pass", "lightning_attention"]
    points = run_study(tmp_path, names, ["fusemax-cloud"], ["4K"], progress=False)
    assert len(points) == 4
    ok = {p["cascade"]: p for p in points if p["status"] == "ok"}
    assert set(ok) == {"attention_1pass", "attention_2pass", "attention_3pass"}
    # the pass analysis: the 3-pass cascade re-reads more than the 1-pass one (live tensors of P x M words)
    assert ok["attention_3pass"]["dram_bytes"] > ok["attention_1pass"]["dram_bytes"]
    assert ok["attention_1pass"]["passes"] == 1 and ok["attention_3pass"]["passes"] == 3
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok", "unmapped"}
    report = (tmp_path / "report.md").read_text()
    assert "## Cascades no mapping can honour" in report
    assert "- lightning_attention: auto mapping: refused for the test" in report
    # every latency in the table comes from the points
    for p in ok.values():
        assert f"{p['latency_s'] * 1e3:.4g}" in report
    before = (tmp_path / "points.jsonl").read_text()
    run_study(tmp_path, names, ["fusemax-cloud"], ["4K"], progress=False)
    assert (tmp_path / "points.jsonl").read_text() == before
    assert json.loads((tmp_path / "results.json").read_text())["points"][0]["cascade"] == "attention_1pass"


def test_unknown_cascade_is_a_usage_error(capsys):
    assert main(["study", "cascades", "--cascades", "nope", "--out", "/tmp/unused-cascades"]) == 2
    assert "nope" in capsys.readouterr().err
