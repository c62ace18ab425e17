"""fusemax-vs-flat with a process pool: every output file byte-identical to the serial run, and resume."""
import json
from pathlib import Path

import pytest

from studies.cli import main
from studies.fusemax_vs_flat import CONFIGS, run_study

OUTPUTS = ["results.csv", "results.json", "report.md", "points.jsonl", "speedup.png", "energy.png",
           "util_2d.png", "util_1d.png", "energy_breakdown.png", "util_2d_by_einsum.png"]
ARGS = ["--models", "BERT", "--lengths", "1K", "4K"]


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("w1")
    assert main(["study", "fusemax-vs-flat", *ARGS, "--workers", "1", "--out", str(out)]) == 0
    return _files(out)


def test_two_workers_byte_identical(serial, tmp_path):
    assert main(["study", "fusemax-vs-flat", *ARGS, "--workers", "2", "--out", str(tmp_path)]) == 0
    pooled = _files(tmp_path)
    assert pooled.keys() == serial.keys()
    for name in OUTPUTS:
        assert pooled[name] == serial[name], name
    # the journal: 1 model x 2 lengths x (5 configurations + 2 GEMM architectures), in the serial order
    lines = [json.loads(x)["row"] for x in serial["points.jsonl"].decode().splitlines()]
    archs = sorted({p["config"] for p in lines if p["kind"] == "gemm"})
    assert [(p["kind"], p["seq_len"], p["config"]) for p in lines] == \
        [("attention", n, c) for n in ("1K", "4K") for c in CONFIGS] + [("gemm", n, a) for n in ("1K", "4K") for a in archs]


def test_resume_with_workers_recomputes_only_missing(serial, tmp_path, monkeypatch):
    """A journal cut after its first three points: a pooled run simulates only the others."""
    lines = serial["points.jsonl"].decode().splitlines(keepends=True)
    (tmp_path / "points.jsonl").write_text("".join(lines[:3]))
    import studies.fusemax_vs_flat as fvf
    asked = []
    real = fvf._simulate_all

    def spy(keys, workers):
        asked.extend(keys)
        return real(keys, workers)
    monkeypatch.setattr(fvf, "_simulate_all", spy)
    run_study(tmp_path, ["BERT"], ["1K", "4K"], progress=False, workers=2)
    cached = {(p["kind"], p["model"], p["seq_len"], p["config"]) for p in (json.loads(x)["row"] for x in lines[:3])}
    assert len(asked) == len(lines) - 3 and not cached & set(asked)
    assert _files(tmp_path) == serial


def test_workers_must_be_positive(tmp_path, capsys):
    assert main(["study", "fusemax-vs-flat", *ARGS, "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "--workers" in capsys.readouterr().err
