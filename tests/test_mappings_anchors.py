"""Mappings against the paper's BERT 1K anchors (docs/references/reference-fusemax.md section 6) and their errors."""
from pathlib import Path

import pytest

from archsim.config import load_architecture
from archsim.result import run
from mappings import get_mapping
from mappings import SpecMapping, load_spec
from mappings.work import MappingError
from mappings.workload import Workload, WorkloadError, format_length, load_models, make_workload, parse_length

BERT1K = make_workload("BERT", 1024)


def _run(config, w=BERT1K):
    m = get_mapping(config)
    a = load_architecture(m.default_arch)
    return run(m.schedule(w, a), a)


def test_fusemax_bert_1k_anchor():
    r = _run("fusemax")
    assert r.cycles == pytest.approx(1_892_352, rel=1e-3)  # paper: 1,892,352 cycles (2.01314 ms)
    assert r.seconds == pytest.approx(2.01314e-3, rel=1e-3)
    assert r.dram_bytes == pytest.approx(402_653_184, rel=1e-3)
    # hand derivation: 2D 2192 of 2464 cycles per head busy (89%), 1D always busy
    assert r.busy("array2d") == pytest.approx(2192 / 2464, rel=5e-3)
    assert r.busy("array1d") == pytest.approx(1.0, abs=5e-3)


def test_flat_bert_1k_anchor():
    r = _run("flat")
    assert r.cycles == pytest.approx(12_582_912, rel=1e-3)  # paper: 12,582,912 cycles (13.386 ms)
    assert r.dram_bytes == pytest.approx(1_308_622_848, rel=1e-3)
    assert r.busy("array2d") == pytest.approx(0.125, rel=5e-3)  # 2*E*M*P/65536 / (4*M*P/256)


def test_flat_spilled_scores_overlap_compute():
    # BERT 4K: FLAT spills 1/129 of the scores (docs/references/reference-fusemax.md section 4); the spilled part is
    # re-read while the on-chip part is processed, so FLAT stays 1D-bound as the paper's full-overlap
    # accounting has it: 768 heads x 4 * M * P / 256 cycles (max, exp, sum, divide per score)
    r = _run("flat", make_workload("BERT", 4096))
    assert r.cycles == pytest.approx(768 * 4 * 4096 * 4096 / 256, rel=1e-3)
    assert r.busy("array2d") == pytest.approx(0.125, rel=1e-3)


def test_energy_counts_every_register_file():
    r = _run("fusemax")
    a = load_architecture("fusemax-cloud")
    # QK and SLNV are MACs on the 2D array: 2 * E * M * P per head, 3 reads + 1 write each
    macs = 768 * 2 * 64 * 1024 * 1024
    rf2d = r.energy_by_component["array2d.rf"]
    assert rf2d > macs * (3 * a.units["array2d"].register_file.read_pj + a.units["array2d"].register_file.write_pj) * 1e-12
    assert r.energy_by_component["dram"] == pytest.approx(402_653_184 * 31.2e-12, rel=1e-9)


def test_unbindable_einsum_is_an_error():
    bad = SpecMapping(load_spec("fusemax"))  # LM needs max, FLAT's 2D has only MACs
    with pytest.raises(MappingError, match="LM.*max"):
        bad.schedule(BERT1K, load_architecture("flat-cloud"))


def test_new_mapping_example_from_docs():
    src = Path(__file__).parents[1] / "mappings" / "example_exp_on_1d.py"
    doc = (Path(__file__).parents[1] / "docs" / "archsim.md").read_text()
    assert src.read_text().split('\n\nif __name__')[0] in doc  # the README example is this file
    from mappings.example_exp_on_1d import exp_on_1d
    a = load_architecture("fusemax-cloud")
    r = run(exp_on_1d().schedule(BERT1K, a), a)
    # hand derivation per head: 1D adds SLN's 7 cycles per score (138*4*1024/256 + 7*1024*1024/256 + 256),
    # and each of the 4 tiles now waits on the 2D: SLD (4), then SLNV (256 - RD's 4), then next LM (4)
    assert r.cycles / 768 == pytest.approx(2208 + 7 * 4096 + 256 + 4 * (4 + 252 + 4), rel=1e-3)


def test_unknown_mapping_is_a_mapping_error():
    with pytest.raises(MappingError, match="unknown mapping 'nope'"):
        get_mapping("nope")


def test_subtractions_and_adds_of_one_einsum_are_both_counted():
    from mappings.work import fuse_operators
    # 5 adds + 3 subtractions = 8 adds, 2 of them fused with the 2 multiplies into MACs
    assert fuse_operators({"add": 5.0, "subtract": 3.0, "multiply": 2.0}, False) == {"add": 6.0, "mac": 2.0}
    assert fuse_operators({"subtract": 3.0, "add": 5.0, "exp": 4.0}, True) == {"add": 4.0, "exp": 4.0}


def test_unfused_covers_every_query_row_at_any_length():
    # 1000 = 8 x 125: chunks of rows must divide it, else rows are silently dropped.
    # QK and AV: (E + F) MACs per score, 1000 x 1000 scores per head
    w = Workload("odd", B=1, D=256, E=64, F=64, H=2, S=1024, seq_len=1000)
    m = get_mapping("unfused")
    a = load_architecture(m.default_arch)
    r = run(m.schedule(w, a), a)
    assert r.action_counts["QK"]["array2d.mac"] + r.action_counts["AV"]["array2d.mac"] == 2 * 1000 * 1000 * 128
    # per head, 2-byte words: Q, K, V read and AV written once; the scores written by QK, read by the
    # softmax, written by it and read by AV
    assert r.dram_bytes == pytest.approx(2 * 2 * (4 * 1000 * 64 + 4 * 1000 * 1000), rel=1e-12)


def test_one_pass_query_groups_must_cover_the_sequence():
    import yaml
    from archsim.config import CONFIG_DIR, parse_architecture
    data = yaml.safe_load((CONFIG_DIR / "fusemax-cloud.yaml").read_text())
    data["units"]["array2d"]["rows"] = 128  # M0 = 128 keys, query blocks of 256 rows
    a = parse_architecture(data, "x.yaml")
    w = Workload("odd", B=1, D=256, E=64, F=64, H=1, S=1024, seq_len=384)  # 3 x 128, not a multiple of 256
    with pytest.raises(MappingError, match="384 is not a multiple of the 256-row query block"):
        get_mapping("fusemax").schedule(w, a)


def test_bad_lengths_and_model_files_name_the_value(tmp_path):
    for text in ("12Q", "²", "0K", ""):
        with pytest.raises(WorkloadError, match="bad sequence length"):
            parse_length(text)
    assert parse_length(" 64k ") == 65536 and format_length(65536) == "64K"
    bad = tmp_path / "models.yaml"
    for body, field in (("BERT: [64, 768]\n", "BERT"), ("BERT: {B: true, D: 1, E: 1, F: 1, H: 1, S: 1}\n", "BERT.B"),
                        ("BERT: {B: [\n", "invalid YAML")):
        bad.write_text(body)
        with pytest.raises(WorkloadError, match=f"{bad}(:[0-9]+:[0-9]+)?: {field}"):
            load_models(bad)
