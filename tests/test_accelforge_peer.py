"""The AccelForge validation without AccelForge (benchmarks/peers/accelforge_check.py).

CI has no AccelForge (it needs Python >= 3.12 and its own venv). These tests re-check the stored
comparison: the numbers AccelForge produced (benchmarks/peers/accelforge_results.json) against
archsim simulated now, within the stated tolerances; those numbers against hand derivations (so the
stored file means what the comparison assumes); and the stored AccelForge YAML files: they parse, use
the project's energy table, and make the project mappings' choices.
"""
from __future__ import annotations

import ast
import operator
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))

import accelforge_check as ac  # noqa: E402

from archsim.config import load_architecture  # noqa: E402
from archsim.yamlio import YamlFileError  # noqa: E402

ARCH = load_architecture("fusemax-cloud")
STORED = ac.load_results()
WB = 2  # bytes per word
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def arith(value) -> float:
    """A number, or the value of a +-*/ expression of numbers written as text (no eval)."""
    if isinstance(value, (int, float)):
        return float(value)

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not arithmetic: {value!r}")
    return ev(ast.parse(str(value), mode="eval").body)


def nodes_of(tree) -> list[dict]:
    """Every tagged node of a parsed AccelForge mapping or arch, depth first."""
    out = []
    for n in tree.get("nodes", []):
        out.append(n)
        out += nodes_of(n)
    return out


def af_nodes(name: str) -> dict:
    arch = ac.load_accelforge_yaml(ac.ARCH_YAML)["arch"]
    return {n["name"]: n for n in nodes_of(arch) if "name" in n}


# ---------------------------------------------------------------- the stored comparison

def test_stored_results_come_from_the_pinned_accelforge():
    assert STORED["meta"]["accelforge_version"] == ac.ACCELFORGE_VERSION
    assert STORED["meta"]["date"][:2] == "20"
    assert {p.name for p in ac.POINTS} <= set(STORED["points"])


def test_stored_accelforge_results_agree_with_archsim_within_tolerance():
    rows, _ = ac.check_all(STORED, ARCH)
    failed = [(r["point"], r["quantity"], r["accelforge"], r["project"]) for r in rows if r["status"] == "FAIL"]
    assert not failed
    # every point is compared on DRAM bytes, buffer, compute and cycles
    for p in ac.POINTS:
        quantities = {r["quantity"] for r in rows if r["point"] == p.name and r["tolerance"] is not None}
        assert {"DRAM bytes", "buffer pJ", "array2d compute pJ", "cycles"} <= quantities
    # the two explanations in use close exactly what they name
    for r in rows:
        if r["status"] == "explained" and r["quantity"] == "DRAM bytes":
            assert r["adjusted"] == r["project"]


def test_the_check_fails_when_archsim_disagrees():
    """A copy of the stored results with AccelForge's fused-1k DRAM traffic one byte off, or its cycles
    20% off, must fail the comparison (the check is not vacuous)."""
    import copy
    p = next(p for p in ac.POINTS if p.name == "fused-1k")
    proj = ac.project_point(p, ARCH)
    bad = copy.deepcopy(STORED["points"][p.name]["evaluate"])
    bad["einsums"]["AV"]["actions"]["DRAM.write"] += 1
    assert any(r["status"] == "FAIL" and r["quantity"] == "DRAM bytes" for r in ac.compare(p, bad, proj, ARCH))
    bad = copy.deepcopy(STORED["points"][p.name]["evaluate"])
    bad["latency"] *= 1.2
    assert any(r["status"] == "FAIL" and r["quantity"] == "cycles" for r in ac.compare(p, bad, proj, ARCH))


@pytest.mark.parametrize("point", ac.POINTS, ids=lambda p: p.name)
def test_stored_accelforge_numbers_match_hand_derivation(point):
    """DRAM bytes and MAC counts of the stored AccelForge results, derived by hand (N tokens, E = F = 64,
    2-byte words, 256 x 256 tiles):
    - QK GEMM: Q and K read once (2 N E), QK written once (N^2);
    - AV GEMM: A read once (N^2), V read once, AV written once (2 N F);
    - unfused: QK stage Q, K in and QK out (2 N E + N^2); the softmax reads QK twice in AccelForge (GM
      and SN each load it) and writes A (3 N^2); AV stage A and V in, AV out (N^2 + 2 N F);
    - fused: Q and K re-read once per 256-wide tile of the other (N/256 each), V once per 256 query
      rows (N/256), AV written once (N F); no score traffic.
    MACs: N^2 E per GEMM. 1D points: N^2 per softmax Einsum."""
    af = STORED["points"][point.name]["evaluate"]
    n = point.tokens
    words = {"qk": 2 * n * 64 + n * n, "av": n * n + 2 * n * 64,
             "unfused": (2 * n * 64 + n * n) + 3 * n * n + (n * n + 2 * n * 64),
             "fused": 3 * (n // 256) * n * 64 + n * 64}[point.kind]
    assert ac.af_totals(af)["dram_bytes"] == words * WB
    macs = sum(d["actions"].get("MAC2D.compute", 0.0) for d in af["einsums"].values())
    assert macs == (1 if point.kind in ("qk", "av") else 2) * n * n * 64
    if point.kind in ("unfused", "fused"):
        for einsum, comp in (("GM", "Max1D"), ("SN", "Exp1D"), ("SD", "Add1D"), ("A", "Div1D")):
            assert af["einsums"][einsum]["actions"][f"{comp}.compute"] == n * n


def test_duplicate_loads_counts_a_tensor_read_by_two_einsums():
    af = {"einsums": {"GM": {"tensor_actions": {"DRAM.QK.read": 10.0, "GlobalBuffer.QK.read": 3.0}},
                      "SN": {"tensor_actions": {"DRAM.QK.read": 10.0, "DRAM.GM.read": 0.0}},
                      "AV": {"tensor_actions": {"DRAM.A.read": 7.0}}}}
    assert ac.duplicate_loads(af) == 10.0


def test_gemm_edge_overcount_is_the_unused_array_width():
    # AV at 1K: 4 folds of 256 query rows x 64 columns, K = 1024: (256 + 256) - (256 + 64) words per step
    assert ac.gemm_edge_overcount_words(ac.Point("av", 1024), ARCH) == 4 * 1024 * 192
    assert ac.gemm_edge_overcount_words(ac.Point("qk", 1024), ARCH) == 0.0


# ---------------------------------------------------------------- the stored YAML files

def test_stored_accelforge_yaml_files_parse():
    files = sorted(ac.AF_DIR.glob("*.yaml"))
    assert len(files) == 1 + 6 + 8  # arch, workloads, mappings
    for f in files:
        data = ac.load_accelforge_yaml(f)
        assert isinstance(data, dict) and set(data) & {"arch", "workload", "mapping"}, f.name


def test_bad_accelforge_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("mapping:\n  nodes:\n  - !Storage {tensors: [Q, component: DRAM}\n")
    with pytest.raises(YamlFileError, match=r"m\.yaml:3:\d+"):
        ac.load_accelforge_yaml(bad)


def test_accelforge_arch_uses_the_project_energy_table():
    n = af_nodes("arch")
    act = {name: {a["name"]: a for a in node.get("actions", [])} for name, node in n.items()}
    pj = ARCH.action_pj
    assert arith(act["MAC2D"]["compute"]["energy"]) == pytest.approx(pj["mac"])
    assert arith(act["Max1D"]["compute"]["energy"]) == pytest.approx(pj["max"])
    assert arith(act["Add1D"]["compute"]["energy"]) == pytest.approx(pj["add"])
    assert arith(act["Div1D"]["compute"]["energy"]) == pytest.approx(pj["divide"])
    exp = ARCH.units["array1d"].operators["exp"]
    assert arith(act["Exp1D"]["compute"]["energy"]) == pytest.approx(
        sum(k * pj[a] for a, k in exp.actions.items() if a in pj))
    assert arith(act["Exp1D"]["compute"]["throughput"]) == pytest.approx(1 / exp.cycles)
    assert arith(act["DRAM"]["read"]["energy"]) == pytest.approx(ARCH.dram.pj_per_byte)
    assert n["DRAM"]["bits_per_action"] == 8
    assert arith(act["DRAM"]["read"]["throughput"]) == pytest.approx(ARCH.dram_bytes_per_cycle)
    assert arith(act["GlobalBuffer"]["read"]["energy"]) == pytest.approx(ARCH.buffer.read_pj)
    assert arith(act["GlobalBuffer"]["write"]["energy"]) == pytest.approx(ARCH.buffer.write_pj)
    assert n["GlobalBuffer"]["bits_per_action"] == ARCH.buffer_width_words * 16
    assert arith(n["GlobalBuffer"]["size"]) == ARCH.buffer.capacity_bytes * 8
    for unit, rf, container in (("array2d", "RF2D", "Array2D"), ("array1d", "RF1D", "Array1D")):
        u = ARCH.units[unit]
        assert arith(act[rf]["read"]["energy"]) == pytest.approx(u.register_file.read_pj)
        assert arith(act[rf]["write"]["energy"]) == pytest.approx(u.register_file.write_pj)
        fanout = 1
        for s in n[container]["spatial"]:
            fanout *= s["fanout"]
        assert fanout == u.pes


@pytest.mark.parametrize("point", ac.POINTS, ids=lambda p: p.name)
def test_stored_mappings_are_consistent_with_workload_and_arch(point):
    """Each Einsum of the workload is computed exactly once, on the unit the project binds it to; every
    node names a component of the arch and a tensor or rank variable of the workload."""
    import einsum_cascade as ec
    from mappings import load_spec
    from mappings.scheduler import resolve_binding
    FLAT_BINDING = resolve_binding(ec.load_library("attention_3pass"), load_spec("flat"), ARCH)
    workload = ac.load_accelforge_yaml(point.workload)["workload"]
    einsums = {e["einsum"].split("[")[0]: e["einsum"] for e in workload["einsums"]}
    tensors = {t for text in einsums.values() for t in _tensors(text)}
    comps = af_nodes("arch")
    nodes = nodes_of(ac.load_accelforge_yaml(point.mapping)["mapping"])
    computes = [n for n in nodes if n["!"] == "Compute"]
    assert sorted(c["einsum"] for c in computes) == sorted(einsums)
    unit_of = {"MAC2D": "array2d", "Max1D": "array1d", "Exp1D": "array1d", "Add1D": "array1d", "Div1D": "array1d"}
    for c in computes:
        assert unit_of[c["component"]] == FLAT_BINDING[c["einsum"]]
    for node in nodes:
        if "component" in node:
            assert node["component"] in comps
        assert set(node.get("tensors", [])) <= tensors
        if "rank_variable" in node:
            assert node["rank_variable"] in {"e", "f", "m", "p"}


def _tensors(einsum_text: str) -> list[str]:
    import re
    return re.findall(r"(\w+)\[", einsum_text)


@pytest.mark.parametrize("tokens", [1024, 4096])
def test_stored_mappings_tile_like_the_project_mappings(tokens):
    """The unfused mapping's chunk of query rows is the `unfused` spec's; the fused mapping's granule is
    FLAT's spec at that granule (fused_dataflow); the GEMM folds are 256 x 256 tiles, as mappings.gemm's."""
    from mappings import get_mapping
    k = tokens // 1024

    def outer_p(name):
        nodes = nodes_of(ac.load_accelforge_yaml(ac.AF_DIR / f"mapping_{name}_{k}k.yaml")["mapping"])
        return next(n["tile_shape"] for n in nodes if n["!"] == "Temporal" and n["rank_variable"] == "p")

    sched = get_mapping("unfused").schedule(ac.one_head(tokens), ARCH)
    assert outer_p("unfused") == tokens // sched.segments[0].iterations
    assert outer_p("fused") == ac.fused_dataflow(tokens).spec.query_group
    fused = ac.project_schedule(ac.Point("fused", tokens), ARCH)
    assert fused.blocks == tokens // outer_p("fused")
    assert outer_p("qk") == outer_p("av") == ARCH.units["array2d"].cols


# ---------------------------------------------------------------- the project's side of the mapper comparison

def test_project_best_is_the_best_of_todays_mappings(monkeypatch):
    import mappings
    from archsim.result import run
    monkeypatch.delattr(mappings, "simulate", raising=False)
    point = ac.Point("fused", 1024)
    best = ac.project_best(point, ARCH)
    runs = {}
    for name, make in ac.project_candidates(point, ARCH).items():
        try:
            runs[name] = run(make(), ARCH)
        except ValueError:
            continue
    assert "unfused" in runs and len(runs) >= 2
    assert best["best_latency"]["cycles"] == min(r.cycles for r in runs.values())
    assert best["best_energy"]["energy_pj"] == pytest.approx(min(r.joules for r in runs.values()) * 1e12)


def test_project_best_switches_to_the_auto_mapper_when_it_exists(monkeypatch):
    """Once issue 9's mappings.simulate exists, project_best calls it with mapping="auto" per objective."""
    import types
    import mappings
    calls = []

    def fake_simulate(cascade, arch, sizes, mapping, objective):
        calls.append((cascade.name, sizes["M"], mapping, objective))
        return types.SimpleNamespace(cycles=100.0 if objective == "latency" else 200.0,
                                     energy_j=2e-6 if objective == "latency" else 1e-6,
                                     mapping={"name": "auto"}, candidates_evaluated=3)

    monkeypatch.setattr(mappings, "simulate", fake_simulate, raising=False)
    best = ac.project_best(ac.Point("qk", 4096), ARCH)
    assert calls == [("qk", 4096, "auto", "latency"), ("qk", 4096, "auto", "energy")]
    assert best["best_latency"]["cycles"] == 100.0 and best["best_energy"]["energy_pj"] == pytest.approx(1e6)
    assert "auto" in best["source"]
