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

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from archsim.errors import ArchError
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


class _Reader:
    """Typed access to a YAML mapping with errors naming file and dotted field."""

    def __init__(self, file: str):
        self.file = file

    def error(self, path: str, message: str) -> ArchError:
        return ArchError(self.file, path, message)

    def get(self, data: Any, path: str, key: str, kind: str = "number", default: Any = ...) -> Any:
        full = f"{path}.{key}" if path else key
        if not isinstance(data, dict):
            raise self.error(path or "<top>", "expected a mapping")
        if data.get(key) is None and default is not ...:  # absent or null: the default
            return default
        if key not in data:
            raise self.error(full, "missing field")
        value = data[key]
        if kind == "mapping":
            if not isinstance(value, dict):
                raise self.error(full, "expected a mapping")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise self.error(full, "expected a string")
            return value
        if kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(full, "expected a list of names")
            return tuple(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(full, f"expected a number, got {value!r}")
        if kind == "positive" and value <= 0:
            raise self.error(full, f"must be positive, got {value}")
        if kind == "nonneg" and value < 0:
            raise self.error(full, f"must not be negative, got {value}")
        if kind == "count":
            if value <= 0 or int(value) != value:
                raise self.error(full, f"must be a positive integer, got {value}")
            return int(value)
        return float(value)


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


def parse_architecture(data: Any, file: str = "<data>", params: Mapping[str, Any] | None = None) -> Architecture:
    """Validate a parsed YAML document and build an Architecture."""
    r = _Reader(file)
    if not isinstance(data, dict):
        raise r.error("<top>", "expected a mapping at the top level")
    tparams = dict(r.get(data, "", "template_params", "mapping", default={}))
    unknown = set(params or {}) - set(tparams)
    if unknown:
        raise r.error("template_params", f"unknown parameter(s) {sorted(map(str, unknown))}")
    tparams.update(params or {})
    data = _substitute({k: v for k, v in data.items() if k != "template_params"}, tparams, file)

    action_pj_raw = r.get(data, "", "action_pj", "mapping")
    action_pj = {k: r.get(action_pj_raw, "action_pj", k, "nonneg") for k in action_pj_raw}
    area_raw = r.get(data, "", "area_um2", "mapping")
    area = {k: r.get(area_raw, "area_um2", k, "nonneg") for k in area_raw}

    units: dict[str, PEArray] = {}
    for uname, u in r.get(data, "", "units", "mapping").items():
        path = f"units.{uname}"
        hardware = r.get(u, path, "hardware", "list")
        for hw in hardware:
            if hw not in area:
                raise r.error(f"{path}.hardware", f"unknown unit {hw!r} (not in area_um2)")
        rf = r.get(u, path, "register_file", "mapping")
        rfile = RegisterFile(
            depth=r.get(rf, f"{path}.register_file", "depth", "count"),
            read_pj=r.get(rf, f"{path}.register_file", "read_pj", "nonneg"),
            write_pj=r.get(rf, f"{path}.register_file", "write_pj", "nonneg"),
            area_um2=r.get(rf, f"{path}.register_file", "area_um2", "nonneg"),
        )
        operators = {}
        for oname, o in r.get(u, path, "operators", "mapping").items():
            opath = f"{path}.operators.{oname}"
            acts = r.get(o, opath, "actions", "mapping")
            actions = {}
            for a in acts:
                count = r.get(acts, f"{opath}.actions", a, "nonneg")
                if a not in RF_ACTIONS:
                    if a not in action_pj:
                        raise r.error(f"{opath}.actions.{a}", f"unknown action {a!r} (not in action_pj)")
                    if not set(PROVIDED_BY.get(a, (a,))) & set(hardware):
                        raise r.error(f"{opath}.actions.{a}", f"action {a!r} needs hardware {a!r}, which {uname} lacks")
                actions[a] = count
            operators[oname] = Operator(cycles=r.get(o, opath, "cycles", "positive"), actions=actions)
        units[uname] = PEArray(
            name=uname,
            rows=r.get(u, path, "rows", "count"),
            cols=r.get(u, path, "cols", "count"),
            hardware=hardware,
            register_file=rfile,
            operators=operators,
        )
    if not units:
        raise r.error("units", "no units")
    b = r.get(data, "", "buffer", "mapping")
    buffer = Buffer(
        capacity_bytes=r.get(b, "buffer", "capacity_bytes", "count"),
        width_bits=r.get(b, "buffer", "width_bits", "count"),
        banks=r.get(b, "buffer", "banks", "count"),
        read_pj=r.get(b, "buffer", "read_pj", "nonneg"),
        write_pj=r.get(b, "buffer", "write_pj", "nonneg"),
        area_um2=r.get(b, "buffer", "area_um2", "nonneg"),
    )
    d = r.get(data, "", "dram", "mapping")
    dram = DRAM(
        bandwidth_bytes_per_s=r.get(d, "dram", "bandwidth_bytes_per_s", "positive"),
        pj_per_byte=r.get(d, "dram", "pj_per_byte", "nonneg"),
    )
    return Architecture(
        name=r.get(data, "", "name", "str"),
        source=file,
        clock_hz=r.get(data, "", "clock_hz", "positive"),
        word_bytes=r.get(data, "", "word_bytes", "count"),
        units=units,
        buffer=buffer,
        dram=dram,
        action_pj=action_pj,
        area_um2=area,
        extra=dict(r.get(data, "", "extra", "mapping", default={})),
    )


def load_architecture(path: str | Path, params: Mapping[str, Any] | None = None) -> Architecture:
    """Load an architecture YAML: a path, or the stem of a file in archsim/configs/."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p}.yaml"
    if not p.exists():
        raise ArchError(str(path), "<file>", "no such architecture file")
    try:
        data = load_yaml_file(p, "architecture file")
    except YamlFileError as err:
        raise ArchError(str(p), "<file>", str(err).removeprefix(str(p)).lstrip(": ")) from None
    return parse_architecture(data, str(p), params)
