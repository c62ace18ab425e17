"""The area of a sweep's design point, responding to every field a sweep varies (mm^2).

An architecture file gives areas at ONE design: functional units and a register file per PE
(um^2), and the buffer's area at its capacity. A sweep varies fields around that design (its
base: the file with its default template parameters and no overrides), so:

- PE arrays: rows x cols PEs, each the sum of its functional units' areas (`area_um2` of the
  file, per hardware unit) and its register file: from the file, as archsim.energy.area_um2;
- register file: the base per-PE area scaled linearly with `depth` (assumption: area
  proportional to words held), unless the point sets the register file's area itself;
- buffer: the base area scaled linearly with `capacity_bytes` (assumption: the base design's
  SRAM density in bytes per um^2, as CACTI-style estimates are near linear in capacity at a
  fixed bank organisation), unless the point sets `buffer.area_um2` itself (then as given);
- not modelled (no area): the clock, DRAM bandwidth and energy per byte, energies per action,
  the buffer's width and banks. `AREA_NOTES` says this in the report.
"""
from __future__ import annotations

from archsim.config import Architecture
from archsim.energy import area_um2

AREA_NOTES = (
    "Area model (studies/sweep/area.py): PE arrays are rows x cols x (functional units + register "
    "file), with the architecture file's per-unit areas; the register file's area scales with its depth "
    "and the buffer's with its capacity, linearly from the base design's density (assumption), unless a "
    "point sets that area itself; the clock, DRAM, energies, buffer width and banks add no area (not "
    "modelled).")


def point_area_um2(arch: Architecture, base: Architecture) -> dict[str, float]:
    """Area by component (um^2) of `arch`, a variant of the base design `base` (module docstring)."""
    out = area_um2(arch)
    for name, unit in arch.units.items():
        ref = base.units.get(name)
        rf = unit.register_file
        if ref is None or rf.area_um2 != ref.register_file.area_um2 or rf.depth == ref.register_file.depth:
            continue
        scaled_rf = ref.register_file.area_um2 * rf.depth / ref.register_file.depth
        out[name] += unit.pes * (scaled_rf - rf.area_um2)
    b, ref_b = arch.buffer, base.buffer
    if b.area_um2 == ref_b.area_um2 and b.capacity_bytes != ref_b.capacity_bytes:
        out["buffer"] = ref_b.area_um2 * b.capacity_bytes / ref_b.capacity_bytes
    return out


def point_area_mm2(arch: Architecture, base: Architecture) -> float:
    """Total area of `arch` (mm^2) under `point_area_um2`."""
    return sum(point_area_um2(arch, base).values()) / 1e6
