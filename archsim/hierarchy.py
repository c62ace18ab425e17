"""Architectures as memory hierarchies: levels from DRAM inward, compute units attached to levels.

A hierarchy file (`format: memory-hierarchy`, archsim/configs/hierarchy/) lists memory `levels`,
the outermost first: exactly one DRAM level, then on-chip levels, each naming its `parent` (the
level it is filled from; default the level listed before it), so that sibling local buffers form
a tree. Per level: capacity in bytes (none for DRAM), access width in bits, banks, read and write
bandwidth in bytes per cycle (`shared_port`: reads and writes share the read figure), energy in pJ
per access of `width_bits`, area in um2, which operands it may hold (`holds`: the roles `input`,
`output`, `intermediate` or tensor names), the compute units attached to it (`compute`: PE
arrays, archsim's schema with their register files and depths), and an optional `fanout`: `count`
identical instances of the level, with everything inside it, per instance of its parent, each
linked to the parent at `link_bytes_per_cycle`. PE arrays are given in `units` (the schema of
archsim/config.py) or copied from an architecture file (`units_from: fusemax-cloud`, which also
supplies `action_pj` and `area_um2` where the file gives none). Each figure of a file carries its
source or is marked as an assumption in the file's comments or a level's `source` field.

`from_architecture` turns today's two-level architecture (archsim/config.py: PE arrays, one
buffer, DRAM) into a hierarchy with every number it has; `to_architecture` turns a DRAM + one
level hierarchy back (the simulator reads only those). Nothing here changes how the simulator
reads architectures. Errors name the file and the dotted field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from pydantic import Field, ValidationError

from archsim.config import (CONFIG_DIR, DRAM, Architecture, Buffer, Count, NonNeg, PEArray, Positive, _Model,
                            _schema_error, _UnitDoc, build_unit, load_architecture)
from archsim.errors import ArchError
from archsim.yamlio import YamlFileError, load_yaml_file

HIERARCHY_DIR = CONFIG_DIR / "hierarchy"
ROLES = ("input", "output", "intermediate")
FORMAT = "memory-hierarchy"


# -- the schema (pydantic v2) ---------------------------------------------------------------------
class _FanoutDoc(_Model):
    count: Count
    link_bytes_per_cycle: Positive


class _LevelDoc(_Model):
    name: str
    kind: Literal["dram", "sram"]
    parent: Optional[str] = None
    capacity_bytes: Optional[Count] = None
    width_bits: Count
    banks: Count = 1
    read_bytes_per_cycle: Positive
    write_bytes_per_cycle: Positive
    shared_port: bool = False
    read_pj: NonNeg
    write_pj: NonNeg
    area_um2: NonNeg = 0.0
    holds: list[str] = Field(default_factory=lambda: list(ROLES), min_length=1)
    compute: list[str] = Field(default_factory=list)
    fanout: Optional[_FanoutDoc] = None
    source: Optional[str] = None


class HierarchyDoc(_Model):
    """The schema of a hierarchy file (module docstring)."""
    format: Literal["memory-hierarchy"]
    name: str
    clock_hz: Positive
    word_bytes: Count
    units_from: Optional[str] = None
    action_pj: Optional[dict[str, NonNeg]] = None
    area_um2: Optional[dict[str, NonNeg]] = None
    units: Optional[dict[str, _UnitDoc]] = None
    levels: list[_LevelDoc] = Field(min_length=2)
    extra: Optional[dict[str, Any]] = None


# -- the objects -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fanout:
    """`count` instances per instance of the parent level, each linked to it at `link_bytes_per_cycle`."""
    count: int
    link_bytes_per_cycle: float


@dataclass(frozen=True)
class MemoryLevel:
    """One memory level: bytes, bits, bytes per cycle, pJ per access of `width_bits`, um2."""
    name: str
    kind: str  # "dram" or "sram"
    parent: str | None
    capacity_bytes: int | None  # None: unbounded (DRAM)
    width_bits: int
    banks: int
    read_bytes_per_cycle: float
    write_bytes_per_cycle: float
    shared_port: bool
    read_pj: float
    write_pj: float
    area_um2: float
    holds: tuple[str, ...]
    compute: tuple[str, ...]
    fanout: Fanout | None = None
    source: str | None = None

    def may_hold(self, tensor: str, role: str) -> bool:
        """Whether this level may keep `tensor` (of role input, output or intermediate)."""
        return role in self.holds or tensor in self.holds


@dataclass(frozen=True)
class Hierarchy:
    """A validated memory hierarchy; `levels` outermost (DRAM) first, `units` the PE arrays."""
    name: str
    source: str
    clock_hz: float
    word_bytes: int
    levels: tuple[MemoryLevel, ...]
    units: Mapping[str, PEArray]
    action_pj: Mapping[str, float]
    area_um2: Mapping[str, float]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def level(self, name: str) -> MemoryLevel:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def path(self, level: str) -> list[MemoryLevel]:
        """The levels from DRAM down to `level` (inclusive)."""
        out = [self.level(level)]
        while out[-1].parent is not None:
            out.append(self.level(out[-1].parent))
        return out[::-1]

    def level_of(self, unit: str) -> MemoryLevel:
        """The level a compute unit is attached to."""
        for lv in self.levels:
            if unit in lv.compute:
                return lv
        raise KeyError(unit)

    def instances(self, level: str) -> int:
        """Copies of `level` in the whole design: the product of the fan-outs from DRAM to it."""
        n = 1
        for lv in self.path(level):
            n *= lv.fanout.count if lv.fanout else 1
        return n

    def register_file_bytes(self, unit: str) -> int:
        """Bytes of all register files of one instance of `unit`: depth x word x PEs."""
        u = self.units[unit]
        return u.register_file.depth * self.word_bytes * u.pes


# -- reading files -------------------------------------------------------------------------------------
def parse_hierarchy(data: Any, file: str = "<data>") -> Hierarchy:
    """Validate a parsed YAML document (schema: HierarchyDoc) and build a Hierarchy; errors name
    `file` and the dotted field (`levels.1.capacity_bytes`)."""
    if not isinstance(data, dict):
        raise ArchError(file, "<top>", "expected a mapping at the top level")
    try:
        doc = HierarchyDoc.model_validate(data)
    except ValidationError as err:
        raise _schema_error(file, err) from None
    action_pj, area, units = doc.action_pj, doc.area_um2, {}
    if doc.units_from is not None:
        if doc.units is not None:
            raise ArchError(file, "units", "give either units or units_from, not both")
        try:
            base = load_architecture(doc.units_from)
        except ArchError as err:
            raise ArchError(file, "units_from", str(err)) from None
        units = dict(base.units)
        action_pj = dict(base.action_pj) if action_pj is None else action_pj
        area = dict(base.area_um2) if area is None else area
    for fld, value in (("action_pj", action_pj), ("area_um2", area)):
        if value is None:
            raise ArchError(file, fld, "missing field (or give units_from)")
    for uname, u in (doc.units or {}).items():
        units[uname] = build_unit(file, f"units.{uname}", uname, u, action_pj, area)
    if not units:
        raise ArchError(file, "units", "no units (give units or units_from)")
    levels = _levels(doc, file, set(units))
    return Hierarchy(doc.name, file, float(doc.clock_hz), doc.word_bytes, tuple(levels), units,
                     {k: float(v) for k, v in action_pj.items()}, {k: float(v) for k, v in area.items()},
                     dict(doc.extra or {}))


def _levels(doc: HierarchyDoc, file: str, unit_names: set[str]) -> list[MemoryLevel]:
    """The levels, cross-checked: one DRAM, outermost; parents listed earlier; units attached once."""
    out: list[MemoryLevel] = []
    seen_units: dict[str, str] = {}
    for i, lv in enumerate(doc.levels):
        where = f"levels.{i}"
        if any(o.name == lv.name for o in out):
            raise ArchError(file, f"{where}.name", f"level {lv.name!r} is listed twice")
        if (i == 0) != (lv.kind == "dram"):
            raise ArchError(file, f"{where}.kind", "the first level, and only it, is the DRAM" if i else
                            "the first (outermost) level must be the DRAM")
        parent = lv.parent if lv.parent is not None else (out[-1].name if out else None)
        if i == 0 and lv.parent is not None:
            raise ArchError(file, f"{where}.parent", "the DRAM has no parent")
        if i and parent not in {o.name for o in out}:
            raise ArchError(file, f"{where}.parent", f"{parent!r} is not a level listed before {lv.name!r}")
        if lv.kind == "sram" and lv.capacity_bytes is None:
            raise ArchError(file, f"{where}.capacity_bytes", "missing field (an on-chip level has a capacity)")
        if lv.kind == "dram" and (lv.compute or lv.fanout):
            raise ArchError(file, f"{where}.{'compute' if lv.compute else 'fanout'}",
                            "the DRAM has no compute units and no fan-out")
        for j, h in enumerate(lv.holds):
            if h not in ROLES and not h.isidentifier():
                raise ArchError(file, f"{where}.holds.{j}", f"{h!r} is neither a role ({', '.join(ROLES)}) "
                                "nor a tensor name")
        for j, u in enumerate(lv.compute):
            if u not in unit_names:
                raise ArchError(file, f"{where}.compute.{j}", f"unknown unit {u!r} (units: {', '.join(sorted(unit_names))})")
            if u in seen_units:
                raise ArchError(file, f"{where}.compute.{j}", f"unit {u!r} is already attached to {seen_units[u]!r}")
            seen_units[u] = lv.name
        if parent is not None and lv.capacity_bytes is not None:
            above = next(o for o in out if o.name == parent)
            if above.capacity_bytes is not None and lv.capacity_bytes > above.capacity_bytes:
                raise ArchError(file, f"{where}.capacity_bytes", f"{lv.capacity_bytes} B is larger than its "
                                f"parent {parent!r} ({above.capacity_bytes} B)")
        fan = Fanout(lv.fanout.count, float(lv.fanout.link_bytes_per_cycle)) if lv.fanout else None
        out.append(MemoryLevel(lv.name, lv.kind, parent, lv.capacity_bytes, lv.width_bits, lv.banks,
                               float(lv.read_bytes_per_cycle), float(lv.write_bytes_per_cycle), lv.shared_port,
                               float(lv.read_pj), float(lv.write_pj), float(lv.area_um2), tuple(lv.holds),
                               tuple(lv.compute), fan, lv.source))
    missing = sorted(unit_names - set(seen_units))
    if missing:
        raise ArchError(file, "levels", f"unit(s) {', '.join(missing)} attached to no level (compute)")
    return out


def load_hierarchy(path: str | Path) -> Hierarchy:
    """A hierarchy file (a path, or the stem of a file in archsim/configs/hierarchy/); a stem with no
    hierarchy file but an architecture file of archsim/configs/ is converted (`from_architecture`)."""
    p = Path(path)
    if not p.suffix and not p.exists():
        candidate = HIERARCHY_DIR / f"{p}.yaml"
        if not candidate.exists():
            return from_architecture(load_architecture(str(path)))
        p = candidate
    if not p.is_file():
        raise ArchError(str(path), "<file>", "no such hierarchy file")
    try:
        data = load_yaml_file(p, "hierarchy file")
    except YamlFileError as err:
        where, _, message = str(err).removeprefix(str(p)).partition(": ")
        raise ArchError(str(p), f"line{where}" if where.startswith(":") else "<file>", message) from None
    return parse_hierarchy(data, str(p))


# -- today's architectures ------------------------------------------------------------------------------
DRAM_WIDTH_BITS = 8  # the DRAM is priced per byte: one access is one byte


def from_architecture(arch: Architecture) -> Hierarchy:
    """Two levels with every number of `arch`: DRAM (bandwidth / clock bytes per cycle, shared by reads
    and writes; pJ per byte as the energy of a one-byte access) and the buffer with all PE arrays
    attached. The buffer's bandwidth, which the simulator does not limit, is one access of
    `width_bits` per bank per cycle (an assumption, named in the level's source)."""
    per_cycle = arch.dram.bandwidth_bytes_per_s / arch.clock_hz
    dram = MemoryLevel("DRAM", "dram", None, None, DRAM_WIDTH_BITS, 1, per_cycle, per_cycle, True,
                       arch.dram.pj_per_byte, arch.dram.pj_per_byte, 0.0, ROLES, (), None,
                       f"{arch.source}: dram")
    b = arch.buffer
    bw = b.width_bits / 8 * b.banks
    buffer = MemoryLevel("buffer", "sram", "DRAM", b.capacity_bytes, b.width_bits, b.banks, bw, bw, False,
                         b.read_pj, b.write_pj, b.area_um2, ROLES, tuple(arch.units), None,
                         f"{arch.source}: buffer (bandwidth: assumption, one access per bank per cycle)")
    return Hierarchy(arch.name, arch.source, arch.clock_hz, arch.word_bytes, (dram, buffer), dict(arch.units),
                     dict(arch.action_pj), dict(arch.area_um2), dict(arch.extra))


def to_architecture(h: Hierarchy) -> Architecture:
    """The simulator's Architecture of a DRAM + one on-chip level hierarchy (ArchError otherwise)."""
    if len(h.levels) != 2 or h.levels[1].fanout is not None:
        raise ArchError(h.source, "levels", f"{h.name} has {len(h.levels)} levels"
                        f"{' and a fan-out' if len(h.levels) == 2 else ''}; the simulator reads DRAM + one buffer")
    dram, b = h.levels
    if dram.read_pj != dram.write_pj or dram.read_bytes_per_cycle != dram.write_bytes_per_cycle or not dram.shared_port:
        raise ArchError(h.source, "levels.0", "the simulator's DRAM has one bandwidth and one energy per byte")
    return Architecture(
        name=h.name, source=h.source, clock_hz=h.clock_hz, word_bytes=h.word_bytes, units=dict(h.units),
        buffer=Buffer(b.capacity_bytes, b.width_bits, b.banks, b.read_pj, b.write_pj, b.area_um2),
        dram=DRAM(dram.read_bytes_per_cycle * h.clock_hz, dram.read_pj / (dram.width_bits / 8)),
        action_pj=dict(h.action_pj), area_um2=dict(h.area_um2), extra=dict(h.extra))


def hierarchy_names() -> list[str]:
    """Stems of the hierarchy files shipped in archsim/configs/hierarchy/."""
    return sorted(p.stem for p in HIERARCHY_DIR.glob("*.yaml"))


__all__ = ["Fanout", "Hierarchy", "HierarchyDoc", "MemoryLevel", "from_architecture", "hierarchy_names",
           "load_hierarchy", "parse_hierarchy", "to_architecture"]
