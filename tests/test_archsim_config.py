"""Architecture YAML: loading and validation errors naming file and field."""
import pytest
import yaml

from archsim.config import load_architecture, parse_architecture
from archsim.energy import area_um2
from archsim.errors import ArchError


def _fusemax_data():
    from archsim.config import CONFIG_DIR
    return yaml.safe_load((CONFIG_DIR / "fusemax-cloud.yaml").read_text())


def test_reference_configs_load():
    flat, fm = load_architecture("flat-cloud"), load_architecture("fusemax-cloud")
    assert flat.units["array2d"].pes == 65536 and fm.units["array1d"].pes == 256
    assert flat.buffer.capacity_bytes == 32 * 2**20 and fm.buffer.capacity_bytes == 16 * 2**20
    # reference: 400 * 2^30 B/s at 940 MHz
    assert fm.dram_bytes_per_cycle == pytest.approx(400 * 2**30 / 940e6)
    assert fm.units["array1d"].operators["exp"].cycles == 7 and flat.units["array1d"].operators["exp"].cycles == 1


def test_template_parameters():
    a = load_architecture("fusemax-template", {"d": 32})
    assert a.units["array2d"].rows == 32 and a.units["array1d"].cols == 32
    with pytest.raises(ArchError, match="template_params"):
        load_architecture("fusemax-template", {"nope": 1})


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["units"]["array2d"].pop("rows"), "units.array2d.rows"),
    (lambda d: d["units"]["array1d"].__setitem__("cols", -4), "units.array1d.cols"),
    (lambda d: d["buffer"].__setitem__("capacity_bytes", 0), "buffer.capacity_bytes"),
    (lambda d: d["units"]["array2d"]["operators"]["max"]["actions"].__setitem__("warp", 1),
     "units.array2d.operators.max.actions.warp"),
    (lambda d: d["units"]["array2d"]["operators"]["max"]["actions"].__setitem__("exp", 1),
     "units.array2d.operators.max.actions.exp"),
    (lambda d: d["units"]["array2d"]["hardware"].append("tensorcore"), "units.array2d.hardware"),
    (lambda d: d.pop("dram"), "dram"),
    (lambda d: d.__setitem__("extra", [1, 2]), "extra"),
    (lambda d: d.__setitem__("template_params", ["d"]), "template_params"),
])
def test_validation_names_field(edit, field):
    data = _fusemax_data()
    edit(data)
    with pytest.raises(ArchError) as err:
        parse_architecture(data, "x.yaml")
    assert str(err.value).startswith(f"x.yaml: {field}:")


def test_area_counts_every_pe():
    a = load_architecture("fusemax-cloud")
    # 2D PE: MAC 1545 + max 49.29 + register file 16800 (reference table), times 65536 PEs
    assert area_um2(a)["array2d"] == pytest.approx(65536 * (1545 + 49.29 + 16800))


def test_unreadable_file_names_the_file(tmp_path):
    with pytest.raises(ArchError, match=f"^{tmp_path}: <file>: is a directory"):
        load_architecture(tmp_path)  # a folder


def test_null_optional_sections_are_empty():
    data = _fusemax_data()
    data["extra"], data["template_params"] = None, None
    assert parse_architecture(data, "x.yaml").extra == {}


def test_template_defaults_are_fusemax_cloud():
    # fusemax-template.yaml states that its defaults give fusemax-cloud: the two files must not drift apart
    import dataclasses
    template, cloud = load_architecture("fusemax-template"), load_architecture("fusemax-cloud")
    same = ("clock_hz", "word_bytes", "units", "buffer", "dram", "action_pj", "area_um2", "extra")
    assert {f.name for f in dataclasses.fields(cloud)} - set(same) == {"name", "source"}
    for f in same:
        assert getattr(template, f) == getattr(cloud, f), f
