"""Architecture as data: YAML files loaded into typed, validated objects.

Units: a 2D or 1D PE array is a `PEArray` (rows x cols PEs, each with the functional units
listed in `hardware` and a register file). Each array lists the `operators` it can evaluate:
cycles per element per PE and the primitive actions one evaluation performs (energy comes
from those actions). Energies are in picojoules (pJ), areas in square micrometres (um2),
capacities in bytes, bandwidth in bytes per second, clock in hertz.

A template file declares `template_params` (defaults); a string value "$name" anywhere in
the file is replaced by that parameter (no expression evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archsim.errors import ArchError
from archsim.filecache import cached_load
from archsim.yamlio import YamlFileError, load_yaml_file

CONFIG_DIR = Path(__file__).parent / "configs"
RF_ACTIONS = ("rf_read", "rf_write")
# hardware that can perform an action besides the unit of the same name (the adder sits inside the MAC)
PROVIDED_BY = {"add": ("add", "mac"), "multiply": ("mac",)}


@dataclass(frozen=True)
class Operator:
    """Cost of one operator on one PE: `cycles` per element, `actions` per element."""
    cycles: float
    actions: Mapping[str, float]


@dataclass(frozen=True)
class RegisterFile:
    """A PE's register file: `depth` words; pJ per read and per write; area in um2."""
    depth: int
    read_pj: float
    write_pj: float
    area_um2: float


@dataclass(frozen=True)
class PEArray:
    """A rows x cols array of identical PEs, each with `hardware` units and a register file."""
    name: str
    rows: int
    cols: int
    hardware: tuple[str, ...]
    register_file: RegisterFile
    operators: Mapping[str, Operator]

    @property
    def pes(self) -> int:
        """Number of PEs: rows x cols."""
        return self.rows * self.cols


@dataclass(frozen=True)
class Buffer:
    """The global buffer: capacity in bytes, access width in bits, pJ per access, area in um2."""
    capacity_bytes: int
    width_bits: int
    banks: int
    read_pj: float  # per access of width_bits
    write_pj: float
    area_um2: float


@dataclass(frozen=True)
class DRAM:
    """Off-chip memory: bandwidth in bytes per second, energy in pJ per byte."""
    bandwidth_bytes_per_s: float
    pj_per_byte: float


@dataclass(frozen=True)
class Architecture:
    """A validated architecture file; `source` is the file it was read from."""
    name: str
    source: str
    clock_hz: float
    word_bytes: int
    units: Mapping[str, PEArray]
    buffer: Buffer
    dram: DRAM
    action_pj: Mapping[str, float]
    area_um2: Mapping[str, float]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM bandwidth in bytes per clock cycle."""
        return self.dram.bandwidth_bytes_per_s / self.clock_hz

    @property
    def buffer_width_words(self) -> float:
        """Words (of `word_bytes`) per buffer access."""
        return self.buffer.width_bits / (8 * self.word_bytes)


def _substitute(data: Any, params: Mapping[str, Any], file: str, path: str = "") -> Any:
    if isinstance(data, dict):
        return {k: _substitute(v, params, file, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, params, file, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and data.startswith("$"):
        name = data[1:]
        if name not in params:
            raise ArchError(file, path, f"unknown template parameter {data!r}")
        return params[name]
    return data


# -- the schema (pydantic v2): types and physical ranges; cross-references are checked after it ----
# Upper bounds are far beyond any real design (they refuse absurd magnitudes, which would make
# results overflow or searches run for ever), lower bounds refuse zero where it divides.
Count = Annotated[int, Field(gt=0, le=2 ** 40, strict=True)]  # PEs per side, depth, banks, bits
Positive = Annotated[float, Field(gt=0, le=1e18, strict=True, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, le=1e18, strict=True, allow_inf_nan=False)]
ClockHz = Annotated[float, Field(ge=1e3, le=1e12, strict=True, allow_inf_nan=False)]  # 1 kHz .. 1 THz
WordBytes = Annotated[int, Field(gt=0, le=64, strict=True)]
CapacityBytes = Annotated[int, Field(gt=0, le=2 ** 50, strict=True)]  # at most 1 PiB on chip
BandwidthBps = Annotated[float, Field(ge=1e3, le=1e16, strict=True, allow_inf_nan=False)]  # 1 kB/s .. 10 PB/s
RESERVED_UNIT_NAMES = ("dram", "buffer")  # component names of the energy and busy breakdowns


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _OperatorDoc(_Model):
    cycles: Positive
    actions: dict[str, NonNeg]


class _RegisterFileDoc(_Model):
    depth: Count
    read_pj: NonNeg
    write_pj: NonNeg
    area_um2: NonNeg


class _UnitDoc(_Model):
    rows: Count
    cols: Count
    hardware: list[str]
    register_file: _RegisterFileDoc
    operators: dict[str, _OperatorDoc]


class _BufferDoc(_Model):
    capacity_bytes: CapacityBytes
    width_bits: Count
    banks: Count
    read_pj: NonNeg
    write_pj: NonNeg
    area_um2: NonNeg


class _DramDoc(_Model):
    bandwidth_bytes_per_s: BandwidthBps
    pj_per_byte: NonNeg


class ArchitectureDoc(_Model):
    """The schema of an architecture file (units as in the module docstring)."""
    kind: Optional[Literal["accelerator"]] = None  # what the file describes (mappings/targets/)
    name: str
    clock_hz: ClockHz
    word_bytes: WordBytes
    action_pj: dict[str, NonNeg]
    area_um2: dict[str, NonNeg]
    units: dict[str, _UnitDoc] = Field(min_length=1)
    buffer: _BufferDoc
    dram: _DramDoc
    extra: Optional[dict[str, Any]] = None


_MESSAGES = {"missing": "missing field", "extra_forbidden": "unknown field", "dict_type": "expected a mapping",
             "list_type": "expected a list of names", "string_type": "expected a string",
             "too_short": "no units"}


def _schema_error(file: str, err: ValidationError) -> ArchError:
    first = err.errors()[0]
    loc = [str(x) for x in first["loc"] if not str(x).startswith("function-")]
    field = ".".join(loc) or "<top>"
    if first["type"] in ("int_type", "float_type", "int_from_float", "finite_number", "greater_than",
                         "greater_than_equal", "less_than_equal", "less_than"):
        msg = f"{first['msg'].lower()}, got {first.get('input')!r}"
    else:
        msg = _MESSAGES.get(first["type"], first["msg"])
    return ArchError(file, field, msg)


def build_unit(file: str, path: str, uname: str, u: _UnitDoc, action_pj: Mapping[str, float],
               area_um2: Mapping[str, float]) -> PEArray:
    """A PEArray from its validated document; hardware and actions checked against the tables
    (errors name `file` and the dotted field under `path`)."""
    if uname in RESERVED_UNIT_NAMES:
        raise ArchError(file, path, f"a unit may not be called {uname!r} (reserved: the names "
                                    f"{', '.join(RESERVED_UNIT_NAMES)} are components of the breakdowns)")
    for hw in u.hardware:
        if hw not in area_um2:
            raise ArchError(file, f"{path}.hardware", f"unknown unit {hw!r} (not in area_um2)")
    operators = {}
    for oname, o in u.operators.items():
        for a in o.actions:
            if a in RF_ACTIONS:
                continue
            if a not in action_pj:
                raise ArchError(file, f"{path}.operators.{oname}.actions.{a}", f"unknown action {a!r} (not in action_pj)")
            if not set(PROVIDED_BY.get(a, (a,))) & set(u.hardware):
                raise ArchError(file, f"{path}.operators.{oname}.actions.{a}",
                                f"action {a!r} needs hardware {a!r}, which {uname} lacks")
        operators[oname] = Operator(cycles=float(o.cycles), actions={k: float(v) for k, v in o.actions.items()})
    rf = u.register_file
    return PEArray(name=uname, rows=u.rows, cols=u.cols, hardware=tuple(u.hardware),
                   register_file=RegisterFile(rf.depth, float(rf.read_pj), float(rf.write_pj), float(rf.area_um2)),
                   operators=operators)


def parse_architecture(data: Any, file: str = "<data>", params: Mapping[str, Any] | None = None) -> Architecture:
    """Validate a parsed YAML document (schema: ArchitectureDoc) and build an Architecture; errors
    name `file` and the dotted field. `params` set template parameters ("$name" values)."""
    if not isinstance(data, dict):
        raise ArchError(file, "<top>", "expected a mapping at the top level")
    tparams = data.get("template_params") or {}
    if not isinstance(tparams, dict):
        raise ArchError(file, "template_params", "expected a mapping")
    tparams = dict(tparams)
    unknown = set(params or {}) - set(tparams)
    if unknown:
        raise ArchError(file, "template_params", f"unknown parameter(s) {sorted(map(str, unknown))}")
    tparams.update(params or {})
    data = _substitute({k: v for k, v in data.items() if k != "template_params"}, tparams, file)
    try:
        doc = ArchitectureDoc.model_validate(data)
    except ValidationError as err:
        raise _schema_error(file, err) from None
    units = {uname: build_unit(file, f"units.{uname}", uname, u, doc.action_pj, doc.area_um2)
             for uname, u in doc.units.items()}
    b, d = doc.buffer, doc.dram
    return Architecture(
        name=doc.name, source=file, clock_hz=float(doc.clock_hz), word_bytes=doc.word_bytes, units=units,
        buffer=Buffer(b.capacity_bytes, b.width_bits, b.banks, float(b.read_pj), float(b.write_pj), float(b.area_um2)),
        dram=DRAM(float(d.bandwidth_bytes_per_s), float(d.pj_per_byte)),
        action_pj={k: float(v) for k, v in doc.action_pj.items()},
        area_um2={k: float(v) for k, v in doc.area_um2.items()},
        extra=dict(doc.extra or {}),
    )


def load_architecture(path: str | Path, params: Mapping[str, Any] | None = None) -> Architecture:
    """Load an architecture YAML: a path, or the stem of a file in archsim/configs/."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p}.yaml"
    if not p.exists():
        raise ArchError(str(path), "<file>", "no such architecture file")
    if p.is_dir():
        raise ArchError(str(p), "<file>", "is a directory")
    key = ("architecture", str(path), repr(sorted((params or {}).items())))
    return cached_load(p, lambda: _read_architecture(p, params), key)  # once per process and file


def _read_architecture(p: Path, params: Mapping[str, Any] | None) -> Architecture:
    try:
        data = load_yaml_file(p, "architecture file")
    except YamlFileError as err:  # names the file and line:column
        where, _, message = str(err).removeprefix(str(p)).partition(": ")
        raise ArchError(str(p), f"line{where}" if where.startswith(":") else "<file>", message) from None
    return parse_architecture(data, str(p), params)
