"""`cascadesim fuse`: output, files, exit statuses (0 reduced or minimal, 3 refused, 2 bad input)."""
from __future__ import annotations

import json

import numpy as np

import einsum_cascade as ec
from studies.cli import main

try:
    from tests import references as ref
except ImportError:
    import references as ref


def test_fuse_writes_a_certified_one_pass_cascade(tmp_path, capsys):
    out = tmp_path / "fused.cascade"
    assert main(["fuse", "attention_3pass", "--block", "256", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "passes over M: 3 as written -> 1 after fusion (reduced)" in text
    assert "chain broken: QK -> GM -> SN" in text and "chain broken: SN -> SD -> A" in text
    # overhead at the default sizes with M0 = 256: the correction exp(RM_prev - RM_new) once per
    # tile and query, M/M0 * P = 16 * 4096 = 65536 (hand count)
    assert "exp +65536" in text
    written = out.read_text()
    assert written.startswith("# certified:")
    assert "# rule: running extremum" in written
    fused = ec.load(out)
    assert ec.passes(fused, "M").passes == 1
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((4, 24)) for _ in range(3))
    got = fused.evaluate({"Q": 30 * q, "K": k, "V": v}, {"M0": 8})["AV"]
    want = ref.softmax_attention(30 * q, k, v)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def test_fuse_json(capsys):
    assert main(["fuse", "softplus_attention", "--json", "--size", "M=1024", "P=1024", "F=64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "reduced" and out["passes_before"] == 2 and out["passes_after"] == 1
    assert out["rules"] == ["deferred normalisation"]
    # the deferred division: F*P divides instead of M*P (hand count), the rest unchanged
    assert out["overhead_at"]["ops"] == {"divide": 64 * 1024 - 1024 * 1024}
    assert out["check_error"] <= 1e-9


def test_fuse_already_minimal(tmp_path, capsys):
    assert main(["fuse", "attention_1pass"]) == 0
    assert "already minimal" in capsys.readouterr().out


def test_fuse_refused_exits_3_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never.cascade"
    assert main(["fuse", "topk_attention", "-o", str(out)]) == 3
    text = capsys.readouterr().out
    assert "the k-th largest (kth) over m, an order statistic" in text
    assert not out.exists()


def test_fuse_partial_writes_what_it_fused_and_says_why_not_the_rest(tmp_path, capsys):
    out = tmp_path / "partial.cascade"
    assert main(["fuse", "threshold_attention_refused", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 as written -> 2 after fusion (reduced)" in text
    assert "pass 2 is still forced by QK -> GM -> SW (why: SD: relu(" in text
    assert ec.passes(ec.load(out), "M").passes == 2


def test_fuse_partial_names_the_chain_it_could_not_break(capsys):
    assert main(["fuse", "seq_layernorm"]) == 0
    text = capsys.readouterr().out
    assert "3 as written -> 2 after fusion" in text
    assert "pass 2 is still forced by V -> MU -> VC" in text
    assert "Y keeps m and needs a global" in text


def test_fuse_no_check_marks_the_result(tmp_path, capsys):
    out = tmp_path / "unchecked.cascade"
    assert main(["fuse", "attention_2pass", "--no-check", "-o", str(out)]) == 0
    assert "NOT certified" in capsys.readouterr().out
    assert out.read_text().startswith("# NOT certified")


def test_fuse_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.cascade"
    bad.write_text("rank M, P\ninput X[m,p]\noutput Y\nY[p] = sum(m: X[m,p] +)\n")
    assert main(["fuse", str(bad)]) == 2
    assert "bad.cascade:4:" in capsys.readouterr().err
    assert main(["fuse", "no_such_cascade"]) == 2
    assert main(["fuse", "attention_3pass", "--rank", "Z"]) == 2
    assert main(["fuse", "attention_3pass", "--block", "m0!"]) == 2
    assert main(["fuse", "attention_3pass", "--block", "P"]) == 2   # a rank name already taken
    err = capsys.readouterr().err
    assert "--rank Z" in err and "--block" in err and "'P' is taken" in err
