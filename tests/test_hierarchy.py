"""Architectures as memory hierarchies (archsim/hierarchy.py): today's files convert with every
number they have, the shipped hierarchy files validate, and bad files fail naming file and field."""
import dataclasses

import pytest

from archsim.config import load_architecture
from archsim.errors import ArchError
from archsim.hierarchy import (from_architecture, hierarchy_names, load_hierarchy, parse_hierarchy,
                               to_architecture)
from archsim.yamlio import load_yaml_file
from archsim.hierarchy import HIERARCHY_DIR


@pytest.mark.parametrize("name", ["fusemax-cloud", "flat-cloud"])
def test_conversion_keeps_every_number(name):
    """The converted hierarchy has the architecture's figures (written out here from the YAML files and
    docs/references/reference-fusemax.md), and converts back to an equal Architecture."""
    arch = load_architecture(name)
    h = from_architecture(arch)
    dram, buf = h.levels
    assert [lv.name for lv in h.levels] == ["DRAM", "buffer"]
    assert dram.capacity_bytes is None and dram.parent is None and buf.parent == "DRAM"
    assert dram.read_bytes_per_cycle * 940e6 == 400 * 2**30  # 400 GiB/s at 940 MHz
    assert dram.read_pj == dram.write_pj == 31.2 and dram.width_bits == 8
    expected = {"fusemax-cloud": (16 * 2**20, 13600, 12650, 47e6), "flat-cloud": (32 * 2**20, 25970, 24170, 94e6)}
    cap, rd, wr, area = expected[name]
    assert (buf.capacity_bytes, buf.read_pj, buf.write_pj, buf.area_um2) == (cap, rd, wr, area)
    assert (buf.width_bits, buf.banks) == (4096, 32)
    assert set(buf.compute) == {"array2d", "array1d"} and h.units == arch.units
    assert h.units["array2d"].rows == h.units["array2d"].cols == 256 and h.units["array1d"].cols == 256
    assert h.register_file_bytes("array2d") == 4 * 2 * 256 * 256  # depth 4, 2-byte words, 65,536 PEs
    assert (h.clock_hz, h.word_bytes, h.action_pj, h.area_um2) == (arch.clock_hz, arch.word_bytes, arch.action_pj,
                                                                   arch.area_um2)
    assert to_architecture(h) == arch


@pytest.mark.parametrize("name", ["fusemax-cloud", "flat-cloud"])
def test_shipped_two_level_file_equals_the_conversion(name):
    """archsim/configs/hierarchy/NAME.yaml writes the conversion out: same levels, units and tables."""
    written = load_hierarchy(HIERARCHY_DIR / f"{name}.yaml")
    converted = from_architecture(load_architecture(name))
    strip = lambda lv: dataclasses.replace(lv, source=None)  # noqa: E731  (the prose differs)
    assert [strip(lv) for lv in written.levels] == [strip(lv) for lv in converted.levels]
    assert (written.units, written.action_pj, written.area_um2) == (converted.units, converted.action_pj,
                                                                    converted.area_um2)
    assert to_architecture(dataclasses.replace(written, source=converted.source)) == load_architecture(name)


def test_every_shipped_file_validates():
    assert {"fusemax-cloud", "flat-cloud", "fusemax-local-buffers", "fusemax-4core"} <= set(hierarchy_names())
    for name in hierarchy_names():
        h = load_hierarchy(name)
        assert h.levels[0].kind == "dram"
        assert all(lv.source for lv in h.levels), name  # every level says where its numbers come from


def test_local_buffer_per_array():
    h = load_hierarchy("fusemax-local-buffers")
    assert [lv.name for lv in h.path("local2d")] == ["DRAM", "buffer", "local2d"]
    assert h.level_of("array2d").name == "local2d" and h.level_of("array1d").name == "local1d"
    assert h.level("local2d").parent == h.level("local1d").parent == "buffer"
    assert h.level("local2d").may_hold("Q", "input") and not h.level("local2d").may_hold("AV", "output")
    with pytest.raises(ArchError, match="levels"):
        to_architecture(h)  # the simulator reads DRAM + one buffer only


def test_four_cores_sharing_dram():
    h = load_hierarchy("fusemax-4core")
    core = h.level("core_buffer")
    assert core.fanout.count == 4 and h.instances("core_buffer") == 4 and h.instances("DRAM") == 1
    assert core.fanout.link_bytes_per_cycle == h.levels[0].read_bytes_per_cycle
    assert sum(h.units[u].pes for u in core.compute) * h.instances("core_buffer") == 4 * (256 * 256 + 256)


def _doc():
    return load_yaml_file(HIERARCHY_DIR / "fusemax-local-buffers.yaml", "hierarchy file")


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["levels"][2].update(capacity_bytes=-1), "levels.2.capacity_bytes"),
    (lambda d: d["levels"][2].pop("capacity_bytes"), "levels.2.capacity_bytes"),
    (lambda d: d["levels"][2].update(parent="nowhere"), "levels.2.parent"),
    (lambda d: d["levels"][2].update(compute=["array9"]), "levels.2.compute.0"),
    (lambda d: d["levels"][3].update(compute=["array2d"]), "levels.3.compute.0"),
    (lambda d: d["levels"][1].update(kind="dram"), "levels.1.kind"),
    (lambda d: d["levels"][2].update(capacity_bytes=2**30), "levels.2.capacity_bytes"),
    (lambda d: d["levels"][2].update(speed=3), "levels.2.speed"),
    (lambda d: d["levels"][1].update(fanout={"count": 0, "link_bytes_per_cycle": 1.0}), "levels.1.fanout.count"),
    (lambda d: d.update(units_from="no-such-arch"), "units_from"),
    (lambda d: d["levels"][2].update(holds=["in put"]), "levels.2.holds.0"),
])
def test_bad_files_name_the_field(edit, field):
    d = _doc()
    edit(d)
    with pytest.raises(ArchError) as err:
        parse_hierarchy(d, "lb.yaml")
    assert err.value.file == "lb.yaml" and err.value.field == field, str(err.value)


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("format: memory-hierarchy\nlevels: [\n")
    with pytest.raises(ArchError) as err:
        load_hierarchy(p)
    assert str(p) in str(err.value) and "line" in err.value.field
