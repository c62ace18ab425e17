"""The command line: analyze, eval, report; errors are one line and exit 2."""
from __future__ import annotations

import json
import subprocess
import sys

import einsum_cascade as ec
from studies.cli import main


def test_analyze_json_matches_the_documented_shape(capsys):
    path = str(ec.library_path("attention_3pass"))
    assert main(["analyze", path, "--rank", "M", "--json", "--size", "M=4096", "P=4096", "E=64", "F=64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cascade"] == "attention_3pass" and out["rank"] == "M" and out["passes"] == 3
    assert out["live_across_passes"] == ["QK", "SN"]
    assert {"name": "GM", "pass": 1, "kind": "global"} in out["einsums"]
    assert out["cost"]["at_sizes"]["total"]["exp"] == 4096 * 4096


def test_analyze_every_rank_in_text(capsys):
    assert main(["analyze", str(ec.library_path("attention_3pass"))]) == 0
    text = capsys.readouterr().out
    for rank, count in (("E", 1), ("F", 1), ("M", 3), ("P", 1)):
        assert f"passes over {rank}: {count}" in text
    assert "pass 2 is forced by QK -> GM -> SN" in text


def test_eval_check_against_equal_and_different_cascades(capsys):
    three, one = str(ec.library_path("attention_3pass")), str(ec.library_path("attention_1pass"))
    sizes = ["--size", "M=64", "P=32", "E=8", "F=8", "M0=16"]
    assert main(["eval", three, *sizes, "--check-against", one]) == 0
    assert "ok" in capsys.readouterr().out
    causal = str(ec.library_path("attention_1pass_causal"))
    assert main(["eval", three, "--size", "M=32", "P=32", "E=8", "F=8", "M0=8", "--check-against", causal]) == 1
    assert "ABOVE TOLERANCE" in capsys.readouterr().out


def test_eval_is_deterministic_per_seed(capsys):
    args = ["eval", str(ec.library_path("attention_2pass")), "--size", "M=16", "P=8", "E=4", "F=4"]
    main(args + ["--seed", "3"])
    first = capsys.readouterr().out
    main(args + ["--seed", "3"])
    assert capsys.readouterr().out == first
    main(args + ["--seed", "4"])
    assert capsys.readouterr().out != first


def test_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.cascade"
    bad.write_text("rank M\ninput X[m]\noutput Y\nY[m] = nope(X[m])\n")
    cases = [
        (["analyze", str(bad)], f"{bad}:4:8: unknown function 'nope'"),
        (["analyze", str(tmp_path / "missing.cascade")], "no such cascade file"),
        (["analyze", "no_such_cascade"], "neither a file nor a library cascade"),
        (["eval", str(ec.library_path("attention_3pass")), "--size", "M=abc"], "--size: expected NAME=NUMBER"),
        (["eval", str(ec.library_path("attention_3pass")), "--size", "M=8", "P=8", "E=2"], "size 'F' is not bound"),
        (["analyze", str(ec.library_path("attention_3pass")), "--rank", "Z"], "--rank Z"),
    ]
    for argv, message in cases:
        proc = subprocess.run([sys.executable, "-m", "studies.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_taxonomy_report(tmp_path):
    from studies.taxonomy import write_report

    path = write_report(tmp_path, latency=False)  # the latency section: tests/test_fuse_library.py
    text = path.read_text()
    for stem in ec.library_names():
        assert f"| {stem} |" in text
    assert "| attention_3pass | 3 | QK, SN |" in text
    # FuseMax's 1-pass at M = 4096: 2*64*4096 MACs per query for QK and SLNV, one exp per score
    # plus one per tile (PRM): 4096 + 16.
    row = next(line for line in text.splitlines() if line.startswith("| attention_1pass |"))
    assert "exp: 4,112" in row


def test_commands_accept_library_names(capsys):
    assert main(["analyze", "attention_2pass", "--rank", "M", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passes"] == 2
