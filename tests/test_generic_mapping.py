"""The generic scheduler and mapping specs: masks with global positions, hand-derived latencies,
bad specs, the mapper, and `cascadesim simulate`."""
import json

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from archsim.config import CONFIG_DIR, parse_architecture
from mappings import MappingError, load_spec, parse_spec
from mappings.masks import key_intervals, pair_counts, tile_classes
from mappings.simulation import simulate
from studies.cli import main

BERT64K = {"M": 65536, "E": 64, "F": 64}


# -- masks ---------------------------------------------------------------------------------------
def _window_cascade(lo_off: int, hi_off: int) -> ec.Cascade:
    return ec.parse(f"""cascade w
rank E, M, P
input Q[e,p], K[e,m]
output QK
QK[m,p] = Q[e,p] * K[e,m] where p - {lo_off} < m and m <= p + {hi_off}
""")


@settings(max_examples=40, deadline=None)
@given(g_exp=st.integers(0, 3), t_exp=st.integers(0, 3), groups=st.integers(1, 4), tiles=st.integers(1, 4),
       lo_off=st.integers(1, 40), hi_off=st.integers(-10, 10))
def test_masked_points_per_tile_equal_brute_force(g_exp, t_exp, groups, tiles, lo_off, hi_off):
    G, T = 2 ** g_exp, 2 ** t_exp
    P, N = G * groups, T * tiles
    c = _window_cascade(lo_off, hi_off)
    e = c.einsum("QK")
    lo, hi = key_intervals(c, e.where, ("m",), "p", {}, P, N, "test")
    counts = pair_counts(lo, hi, G, T, N)
    p, m = np.meshgrid(np.arange(P), np.arange(N), indexing="ij")
    visible = (p - lo_off < m) & (m <= p + hi_off)
    brute = visible.reshape(groups, G, tiles, T).sum(axis=(1, 3))
    assert (counts == brute).all()
    cls = tile_classes([counts], G, T)
    assert cls.points == visible.sum()
    assert cls.full == (brute == G * T).sum() and cls.empty == (brute == 0).sum()


def test_causal_mask_uses_global_positions():
    # 1-pass causal at 64K with FuseMax's mapping (two query groups of 32768 rows): the 2D work
    # is about half the non-causal one (the bug counted p local to a group: 25%)
    a = simulate("attention_1pass", "fusemax-cloud", BERT64K, mapping="fusemax")
    b = simulate("attention_1pass_causal", "fusemax-cloud", BERT64K, mapping="fusemax")
    n = 65536
    causal_points = n * (n + 1) // 2  # query p sees keys 0..p
    assert b.result.action_counts["QK"]["array2d.mac"] == 64 * causal_points
    assert a.result.action_counts["QK"]["array2d.mac"] == 64 * n * n


def test_causal_mapping_hand_derived_unmasked_updates_on_every_tile():
    """fusemax-causal at 64K: 1024-row query groups, 256-key tiles. Group g (rows 1024g..1024g+1023)
    sees key tiles 0..4g+3: 4g+4 active tiles, sum over 64 groups = 8320 of 16384 pairs; the 2D
    Einsums (masked) skip the other 8064. The running max and the rescaling (RM, PRM, SPD, SPNV,
    RD, RNV) have no mask in the cascade, so they run on all 16384 pairs (issue 19: a mask skips only
    the Einsums it is on; before, they were skipped too and causal came out 2x faster). The 1D array
    bounds it: per tile 1024 rows x (RM 1 + PRM 7 + SPD 1 + SPNV 64 + RD 1 + RNV 64) / 256 PEs =
    552 cycles, and AV divides 1024 x 64 / 256 = 256 cycles per group:
    16384 x 552 + 64 x 256 = 9,060,352 cycles a head, as long as the non-causal cascade (1D-bound too)."""
    b = simulate("attention_1pass_causal", "fusemax-cloud", BERT64K, mapping="fusemax-causal", heads=12)
    assert b.cycles / 12 == pytest.approx(16384 * 552 + 64 * 256, rel=0.002)
    assert "8064 full, 256 partial, 8064 skipped" in b.notes[-1]
    a = simulate("attention_1pass", "fusemax-cloud", BERT64K, mapping="fusemax", heads=12)
    assert 0.95 <= a.latency_s / b.latency_s <= 1.05


def test_sliding_window_hand_derived():
    """window-tiles, W = 1024 at 16K (64 groups of 256 rows, 64 tiles of 256 keys). Group g >= 4
    sees tiles g-4 (partial), g-3..g-1 (full), g (partial, the diagonal); groups 0..3 see tiles
    0..g, the last partial: 186 full, 124 partial pairs. Visible scores a head:
    sum_p min(p + 1, W) = N W - W (W - 1) / 2. The 1D array does 4 ops per visible score (GM max,
    SN exp, SD add, A divide) on 256 PEs; the 2D work (QK, AV: 128 MACs a score on 65536 PEs) hides
    under it except at most one 256 x 256 x 64 tile (64 cycles) at each end of a group."""
    N, W = 16384, 1024
    r = simulate("attention_sliding_window", "flat-cloud", {"M": N, "E": 64, "F": 64, "W": W},
                 mapping="window-tiles", heads=2)
    scores = N * W - W * (W - 1) // 2
    assert r.result.action_counts["A"]["array1d.divide"] == 2 * scores
    assert "186 full, 124 partial, 3786 skipped" in r.notes[-1]
    one_d = 4 * scores / 256
    assert one_d <= r.cycles / 2 <= one_d + 64 * 2 * 64


def test_mask_on_other_variables_cannot_be_honoured():
    c = ec.parse("""cascade odd
rank E, M, P
input Q[e,p], K[e,m]
output QK
QK[m,p] = Q[e,p] * K[e,m] where 2 * m <= p
""")
    with pytest.raises(MappingError, match="key coefficient 2 is not"):
        simulate(c, "flat-cloud", {"M": 1024, "E": 64}, mapping="window-tiles")


# -- bad specs -----------------------------------------------------------------------------------
def _spec_file(tmp_path, **changes):
    data = yaml.safe_load(load_spec("fusemax").to_yaml())
    data.update(changes)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("changes, field, message", [
    ({"binding": {"NOPE": "array2d"}}, "binding.NOPE", "not an Einsum"),
    ({"binding": {"QK": "array3d"}}, "binding.QK", "unknown unit 'array3d'"),
    ({"tile": 300}, "tile", "does not divide"),
    ({"query_group": 1 << 20}, "query_group", "does not divide"),
    ({"spill": {"QK": 0.5}}, "spill.QK", "not live across passes"),
    ({"tile": "big"}, "tile", "expected a positive integer"),
    ({"pipelin": "tiles"}, "pipelin", "Extra inputs"),
])
def test_bad_spec_names_file_and_field(tmp_path, capsys, changes, field, message):
    p = _spec_file(tmp_path, **changes)
    rc = main(["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--size", "M=4K", "E=64", "F=64",
               "--mapping", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{p}: {field}:" in err and message in err and "Traceback" not in err


def test_operator_missing_on_bound_unit(tmp_path, capsys):
    p = _spec_file(tmp_path)  # LM (max) on FLAT's 2D array, which only has MACs
    rc = main(["simulate", "attention_1pass", "--arch", "flat-cloud", "--size", "M=4K", "E=64", "F=64",
               "--mapping", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{p}: binding.LM:" in err and "'max'" in err


def test_group_that_does_not_fit_the_buffer(tmp_path, capsys):
    p = _spec_file(tmp_path, query_group=65536)  # Q and the running state of 64K rows: 17 MB > 16 MiB
    rc = main(["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--size", "M=64K", "E=64", "F=64",
               "--mapping", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{p}: query_group:" in err and "more than the 16777216 B buffer" in err


def test_spec_yaml_round_trip(tmp_path):
    for name in ("fusemax", "flat", "unfused", "window-tiles"):
        spec = load_spec(name)
        again = parse_spec(yaml.safe_load(spec.to_yaml()), "x")
        assert again.model_dump() == spec.model_dump()


# -- the mapper ----------------------------------------------------------------------------------
def test_auto_no_slower_than_fusemax_and_flat():
    sz = {"M": 4096, "E": 64, "F": 64}
    for casc, arch, ref in (("attention_1pass", "fusemax-cloud", "fusemax"), ("attention_3pass", "flat-cloud", "flat")):
        fixed = simulate(casc, arch, sz, mapping=ref, heads=12)
        auto = simulate(casc, arch, sz, heads=12)
        assert auto.latency_s <= fixed.latency_s * 1.01
        assert auto.candidates_evaluated > 10


def test_save_mapping_loads_back(tmp_path, capsys):
    out = tmp_path / "m.yaml"
    args = ["simulate", "attention_3pass", "--arch", "flat-cloud", "--size", "M=4K", "E=64", "F=64", "--json"]
    assert main(args + ["--save-mapping", str(out)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args + ["--mapping", str(out)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["latency_s"] == pytest.approx(first["latency_s"], rel=1e-12)
    for k in ("latency_s", "cycles", "energy_j", "energy_by_component", "dram_bytes", "util", "passes", "mapping",
              "candidates_evaluated"):
        assert k in first
    assert first["passes"] == 3 and second["candidates_evaluated"] == 1
    assert first["bound"] == first["bounding_unit"] in first["util"]  # `bound` on every target


def test_other_targets_have_null_fields(capsys):
    assert main(["simulate", "attention_3pass", "--arch", "h200", "--size", "M=4K", "E=64", "F=64", "--json"]) == 0
    gpu = json.loads(capsys.readouterr().out)
    assert gpu["target"] == "gpu" and gpu["energy_j"] is None and gpu["cycles"] is None
    # the GPU target runs the cascade's fused (one-pass) form as a flash-style kernel of the GPU
    assert gpu["kernel"] == "flash3" and gpu["bound"] == gpu["bounding_unit"] and gpu["latency_s"] > 0
    assert main(["simulate", "attention_3pass", "--arch", "spu-cheetah", "--network", "wan100", "--size", "M=256",
                 "E=64", "F=64", "--json"]) == 0
    pi = json.loads(capsys.readouterr().out)
    assert pi["target"] == "private-inference" and pi["comm_bytes"] > 0 and pi["dram_bytes"] is None
    assert pi["bound"] in ("compute", "bandwidth", "rounds")


# -- properties ----------------------------------------------------------------------------------
def _arch(dram_scale: float = 1.0, rows: int = 256):
    data = yaml.safe_load((CONFIG_DIR / "flat-cloud.yaml").read_text())
    data["dram"]["bandwidth_bytes_per_s"] *= dram_scale
    data["units"]["array2d"]["rows"] = rows
    data["units"]["array2d"]["cols"] = rows
    return parse_architecture(data, "test.yaml")


@settings(max_examples=12, deadline=None)
@given(casc=st.sampled_from(["attention_3pass", "attention_1pass", "attention_2pass_causal", "attention_sliding_window"]),
       n_exp=st.integers(9, 12), spec=st.sampled_from(["window-tiles", "unfused", "cascade"]),
       dram=st.sampled_from([0.05, 0.25, 1.0]))
def test_latency_bounds_and_monotonicity(casc, n_exp, spec, dram):
    c = ec.load_library(casc)
    s = load_spec(spec)
    if c.ranks["M"].parts and s.fusion == "none" or spec == "cascade" and not c.ranks["M"].parts:
        return
    sizes = {"M": 2 ** n_exp, "E": 64, "F": 64, "W": 300}
    sizes = {k: v for k, v in sizes.items() if k in c.size_names + c.params}
    arch = _arch(dram)
    r = simulate(c, arch, sizes, mapping=s, heads=2)
    busy = max(r.result.busy_cycles.values())
    assert r.cycles >= busy * (1 - 1e-9)
    assert r.cycles >= r.dram_bytes / arch.dram_bytes_per_cycle * (1 - 1e-9)
    faster = simulate(c, _arch(dram * 2), sizes, mapping=s, heads=2)
    assert faster.cycles <= r.cycles * (1 + 1e-6)
    if spec != "cascade":  # more PEs (rows x cols of the 2D array) never slow it down
        bigger = simulate(c, _arch(dram, rows=512), sizes, mapping=s, heads=2)
        assert bigger.cycles <= r.cycles * (1 + 1e-6)


@pytest.mark.parametrize("casc, spec, sizes", [
    ("attention_1pass_causal", "fusemax-causal", {"M": 4096, "E": 64, "F": 64}),
    ("attention_sliding_window", "window-tiles", {"M": 2048, "E": 64, "F": 64, "W": 300}),
    ("attention_3pass", "unfused", {"M": 1024, "E": 64, "F": 64}),
])
def test_steady_equals_exact(casc, spec, sizes):
    s = simulate(casc, spec and load_spec(spec).arch, sizes, mapping=spec, heads=3)
    e = simulate(casc, load_spec(spec).arch, sizes, mapping=spec, heads=3, mode="exact")
    assert s.cycles == pytest.approx(e.cycles, rel=0.01)


def test_docs_worked_example_is_the_spec_file_and_runs():
    from pathlib import Path
    root = Path(__file__).parents[1]
    doc = (root / "docs" / "mapping.md").read_text()
    assert (root / "mappings" / "specs" / "fusemax-causal.yaml").read_text() in doc
    block = doc.split("```python\n")[-1].split("```")[0]
    exec(compile(block, "docs/mapping.md", "exec"), {})


def test_linear_attention_hand_derived():
    """linear-tiles on flat-cloud, N = 4096, E = F = 64 (1D: 256 PEs, elu 3 cycles; 2D: 65536 PEs).
    1D per head: FQ = elu(Q) + 1: 4 E P / 256 = 4096 (before pass 1); FK = elu(K) + 1: 4 E N / 256
    = 4096; the running state S += FK V: E F N MACs / 256 = 65536; Z += FK: E N / 256 = 1024;
    AV = NUM / DEN: F P / 256 = 1024: 75,776 cycles. The 2D array's NUM (E F P / 65536 = 256) and
    DEN (E P / 65536 = 4) wait for the states and AV waits for them: 260 cycles the 1D array idles.
    The recurrence is a loop-carried dependency, so the states are never computed out of order."""
    r = simulate("linear_attention_causal", "flat-cloud", {"M": 4096, "E": 64, "F": 64}, mapping="linear-tiles",
                 heads=4)
    one_d = 4096 + 4096 + 65536 + 1024 + 1024
    assert r.result.busy_cycles["array1d"] == 4 * one_d
    assert r.result.busy_cycles["array2d"] == 4 * 260
    assert one_d + 260 <= r.cycles / 4 <= (one_d + 260) * 1.01


@st.composite
def random_cascades(draw):
    """Small random cascades over keys M and queries P: a score QK, then a few elementwise steps and
    reductions over the keys (each reduction read back by a later step forces another pass), then AV."""
    masked = draw(st.booleans())
    where = " where m <= p" if masked else ""
    lines = ["cascade r", "rank E, F, M, P", "input Q[e,p], K[e,m], V[f,m]", "output AV",
             f"S0[m,p] = Q[e,p] * K[e,m]{where}"]
    scores, rows = ["S0"], []
    for i in range(1, draw(st.integers(1, 4)) + 1):
        kind = draw(st.sampled_from(["max", "sum", "exp", "mul", "div"] if rows else ["max", "sum", "mul"]))
        s = draw(st.sampled_from(scores))
        if kind in ("max", "sum"):
            lines.append(f"G{i}[p] = {kind}(m: {s}[m,p]){where}")
            rows.append(f"G{i}")
        elif kind == "mul":
            lines.append(f"S{i}[m,p] = {s}[m,p] * {draw(st.sampled_from(scores))}[m,p]{where}")
            scores.append(f"S{i}")
        else:
            g = draw(st.sampled_from(rows))
            expr = f"exp({s}[m,p] - {g}[p])" if kind == "exp" else f"{s}[m,p] / {g}[p]"
            lines.append(f"S{i}[m,p] = {expr}{where}")
            scores.append(f"S{i}")
    lines.append(f"AV[f,p] = {scores[-1]}[m,p] * V[f,m]{where}")
    return ec.parse("\n".join(lines) + "\n")


@settings(max_examples=15, deadline=None)
@given(c=random_cascades(), n_exp=st.integers(8, 10), tile=st.sampled_from([64, 256, "whole"]),
       group=st.sampled_from([64, 256, "all"]), pipeline=st.sampled_from(["tiles", "none"]),
       dram=st.sampled_from([0.1, 1.0]))
def test_random_cascades_bounds_monotonicity_and_steady(c, n_exp, tile, group, pipeline, dram):
    spec = parse_spec({"name": "r", "binding_rules": [{"einsums": "sum_of_products", "unit": "array2d"},
                                                      {"einsums": "rest", "unit": "array1d"}],
                       "tile": tile, "query_group": group, "pipeline": pipeline}, "random.yaml")
    sizes = {"M": 2 ** n_exp, "E": 16, "F": 16}
    arch = _arch(dram)
    try:
        r = simulate(c, arch, sizes, mapping=spec, heads=2)
    except MappingError:
        return  # e.g. live tensors of this group size do not fit: an error, never a silent miscount
    assert r.cycles >= max(r.result.busy_cycles.values()) * (1 - 1e-9)
    assert r.cycles >= r.dram_bytes / arch.dram_bytes_per_cycle * (1 - 1e-9)
    assert simulate(c, _arch(dram * 4), sizes, mapping=spec, heads=2).cycles <= r.cycles * (1 + 1e-6)
    assert simulate(c, _arch(dram, rows=512), sizes, mapping=spec, heads=2).cycles <= r.cycles * (1 + 1e-6)
    exact = simulate(c, arch, sizes, mapping=spec, heads=2, mode="exact")
    assert r.cycles == pytest.approx(exact.cycles, rel=0.01)
    # the work matches the cascade's own counts (global positions, whatever the tiling and masks)
    total = ec.cost(c).at(sizes | {"P": sizes["M"]}).total
    for op in ("exp", "divide"):
        done = sum(a.get(f"array1d.{op}", 0) for a in r.result.action_counts.values())
        assert done == pytest.approx(2 * total.get(op, 0), rel=1e-9), op


def test_mapper_objectives_and_architectures_are_distinct():
    sz = {"M": 4096, "E": 64, "F": 64}
    fast = simulate("attention_3pass", _arch(1.0), sz, heads=4)
    slow = simulate("attention_3pass", _arch(0.02), sz, heads=4)  # same name, 50x less DRAM bandwidth
    assert slow.latency_s > fast.latency_s
    frugal = simulate("attention_3pass", "flat-cloud", sz, heads=4, objective="energy")
    quick = simulate("attention_3pass", "flat-cloud", sz, heads=4, objective="latency")
    # energy is exact before simulation (action counts), so the energy objective finds the least energy
    assert frugal.energy_j <= quick.energy_j * (1 + 1e-9)
    assert simulate("attention_3pass", "flat-cloud", sz, heads=4, objective="edp").objective == "edp"


def test_gpu_target_reads_an_online_softmax_over_other_queries_as_attention():
    # attention_1pass with its queries on a rank named W (an observation window, as SnapKV's vote):
    # its running max and sums are recurrences over M1 with no P index, which the GPU target took
    # for a linear state recurrence (a chunked linear-attention kernel, 12x too fast); a running max
    # marks an online softmax, priced as attention
    from mappings.targets.gpu import structure
    text = ec.library_path("attention_1pass").read_text()
    body = text[text.index("cascade "):].replace("rank E, F, P", "rank E, F, W").replace(",p]", ",w]")
    c = ec.parse(body.replace("[e,p]", "[e,w]").replace("[f,p]", "[f,w]"), "<window>")
    assert "W" in c.ranks and "P" not in c.ranks
    s = structure(c, {"M": 4096, "M0": 64, "M1": 64, "W": 4096, "E": 64, "F": 64})
    assert s.family == "attention"
