"""Energy accounting: "correct" vs "artifact" (the FuseMax artifact's two bookkeeping errors,
docs/references/reference-fusemax.md section 3), checked against hand-derived action counts."""
import dataclasses

import pytest

from archsim.config import load_architecture
from archsim.energy import energy_breakdown
from archsim.result import reprice, run
from mappings import get_mapping
from mappings.workload import make_workload

BERT1K = make_workload("BERT", 1024)
HEADS = 64 * 12  # B * H
SCORES = HEADS * 1024 * 1024  # B * H * P * M
PJ = 1e-12


@pytest.fixture(scope="module")
def runs():
    out = {}
    for config in ("fusemax", "cascade", "flat"):
        m = get_mapping(config)
        a = load_architecture(m.default_arch)
        r = run(m.schedule(BERT1K, a), a)
        out[config] = (a, r, reprice(r, a, "artifact"))
    return out


def test_fusemax_register_files_of_one_pe_by_hand(runs):
    a, correct, artifact = runs["fusemax"]
    rf2, rf1 = a.units["array2d"].register_file, a.units["array1d"].register_file
    # 2D, per score: QK and SLNV are E = 64 MACs each (3 reads + 1 write), LM a max and SLD an add
    # (2 + 1), SLN's exp 6 MACs + 1 add (20 + 7): 408 reads and 137 writes
    rf2d = SCORES * (408 * rf2.read_pj + 137 * rf2.write_pj) * PJ
    # 1D, per query row of a head and M1 tile (4 tiles): RM max, PRM exp (20 + 7), SPD multiply,
    # SPNV F multiplies, RD add, RNV F adds; then F divides per row (AV): 4 * 282 + 128 reads,
    # 4 * 138 + 64 writes
    rf1d = HEADS * 1024 * (1256 * rf1.read_pj + 616 * rf1.write_pj) * PJ
    assert correct.energy_by_component["array2d.rf"] == pytest.approx(rf2d, rel=1e-9)
    assert correct.energy_by_component["array1d.rf"] == pytest.approx(rf1d, rel=1e-9)
    # the artifact counted one PE: the ratio between the modes is each array's PE count
    assert artifact.energy_by_component["array2d.rf"] == pytest.approx(rf2d / 65536, rel=1e-9)
    assert artifact.energy_by_component["array1d.rf"] == pytest.approx(rf1d / 256, rel=1e-9)
    # nothing else changes (FuseMax has no exp unit energy to lose)
    for k, v in correct.energy_by_component.items():
        if not k.endswith(".rf"):
            assert artifact.energy_by_component[k] == pytest.approx(v, rel=1e-12), k
    assert correct.joules - artifact.joules == pytest.approx(
        (rf2d + rf1d) - (rf2d / 65536 + rf1d / 256), rel=1e-9)


def test_cascade_loses_exactly_its_exp_energy(runs):
    a, correct, artifact = runs["cascade"]
    # the 1-pass cascade on FLAT's 1D exp units: SLN one exp per score, PRM one per query row and M1 tile
    exps = SCORES + HEADS * 1024 * 4
    lost = exps * 94.6475 * PJ
    assert correct.energy_by_component["array1d"] - artifact.energy_by_component["array1d"] == \
        pytest.approx(lost, rel=1e-9)
    assert artifact.energy_by_component["array2d"] == pytest.approx(correct.energy_by_component["array2d"], rel=1e-12)
    for unit in ("array2d", "array1d"):
        pes = a.units[unit].pes
        assert artifact.energy_by_component[f"{unit}.rf"] == \
            pytest.approx(correct.energy_by_component[f"{unit}.rf"] / pes, rel=1e-9)
    for k in ("buffer", "dram"):
        assert artifact.energy_by_component[k] == pytest.approx(correct.energy_by_component[k], rel=1e-12)


def test_flat_keeps_its_exp_energy(runs):
    a, correct, artifact = runs["flat"]
    # only the "cascade" configuration lost its exp: FLAT's 1D compute energy is the same in both modes
    assert artifact.energy_by_component["array1d"] == pytest.approx(correct.energy_by_component["array1d"], rel=1e-12)
    # and the cascade's actions priced as another configuration keep their exp too
    _, cascade, _ = runs["cascade"]
    as_flat = reprice(cascade, a, "artifact", configuration="flat")
    assert as_flat.energy_by_component["array1d"] == pytest.approx(cascade.energy_by_component["array1d"], rel=1e-12)


def test_accounting_never_changes_latency_or_traffic(runs):
    m = get_mapping("cascade")
    a = load_architecture(m.default_arch)
    direct = run(m.schedule(BERT1K, a), a, accounting="artifact")
    _, correct, artifact = runs["cascade"]
    assert direct.joules == pytest.approx(artifact.joules, rel=1e-12)
    same = ("cycles", "seconds", "dram_bytes", "busy_cycles", "busy_by_einsum", "peak_buffer_bytes", "action_counts")
    for f in same:
        assert getattr(direct, f) == getattr(correct, f), f
    assert {f.name for f in dataclasses.fields(correct)} - set(same) == \
        {"name", "notes", "joules", "energy_by_component", "energy_by_einsum", "accounting"}
    # repricing back gives the correct energies again
    assert reprice(artifact, a, "correct").energy_by_component == pytest.approx(correct.energy_by_component, rel=1e-12)


def test_unknown_accounting_is_an_error():
    a = load_architecture("flat-cloud")
    with pytest.raises(ValueError, match="accounting.*'approximate'"):
        energy_breakdown(a, [("QK", {"array2d.mac": 1.0}, 1)], accounting="approximate")
