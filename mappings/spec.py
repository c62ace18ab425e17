"""Mapping specs as data: a YAML file (or the equivalent `MappingSpec`) says how a cascade runs
on a spatial architecture; `mappings.scheduler` turns it into archsim's Schedule.

Fields (all optional but `name`; see docs/mapping.md for the full format):

- `binding`: Einsum -> unit; `binding_rules`: [{einsums: NAME | sum_of_products | rest, unit}]
  applied in order to the Einsums `binding` does not name ("sum_of_products": Einsums with an
  implicit sum of products, e.g. QK and AV).
- `fusion`: "pass" (one segment per pass over `rank`, intermediates stay on chip unless
  spilled) or "none" (each run of Einsums on one unit is a stage of its own, every tensor between
  stages through DRAM).
- `tile`: keys per tile of `rank` ("whole", an integer, or "UNIT.rows" / "UNIT.cols"); a cascade
  that partitions the rank (M = M1 x M0) gets its inner size (M0) from it unless the size is given
  (`--size M0=`, or the cascade's default): then M0 is the algorithm's and is kept, and a tile
  holds the largest whole number of M0-blocks (at least one) within `tile` keys.
- `query_group`: query rows per block ("all", "auto": the largest multiple of `query_block`
  rows that fits the buffer, or an integer); `query_block`: the granule of rows.
- `register_file`: tensors held in the PEs' register files (no buffer reads or writes).
- `spill`: live-across-pass tensor -> fraction written to and re-read from DRAM (0 keeps it in the
  buffer, 1 spills it all); tensors not named are kept.
- `buffer_resident`: inputs (and outputs) kept in the buffer for a whole block; other inputs are
  re-read per array tile. `stationarity`: "weight" (a key tile stays in the array while the
  block's rows stream: keys read once per block) or "output" (keys re-read per array-width of
  query rows).
- `pipeline`: "tiles" (units overlap consecutive tiles in program order), "none" (a tile waits for
  the previous tile's last ops), "blocks" (Einsums of later stages issued `lag` blocks late).
- `stall`: Einsum -> factor: factor x its cycles added per tile (a reduction across the array that
  stalls the pipeline). `fold_shift_into_exp`: the subtraction of exp's argument is free.
- `skip_masked_tiles`: tiles in which every query of the block is masked are skipped.
- `variants`: [{when: {SIZE: value | [lo, hi]}, ...fields}]: the first matching entry overrides fields.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator
from pydantic import model_validator

from archsim.yamlio import load_yaml_file
from mappings.work import MappingError

SPEC_DIR = Path(__file__).parent / "specs"
TileSize = Union[StrictInt, str]
MAX_STALL = 1000.0  # stall factor: at most 1000 x an Einsum's cycles per tile


class SpecError(MappingError):
    """A bad mapping spec: names the spec file and the field."""


class BindingRule(BaseModel):
    """Einsums matching `einsums` (a name, "sum_of_products" or "rest") go to `unit`."""
    model_config = ConfigDict(extra="forbid")
    einsums: str
    unit: str


class Variant(BaseModel):
    """Overrides applied when every `when` size matches (a value, or an inclusive [lo, hi])."""
    model_config = ConfigDict(extra="allow")
    when: dict[str, Union[StrictFloat, StrictInt, list[Union[StrictFloat, StrictInt]]]]

    @field_validator("when")
    @classmethod
    def _ranges(cls, v: dict) -> dict:
        if not v:
            raise ValueError("empty: a variant needs at least one size to match")
        for k, want in v.items():
            if isinstance(want, list) and (len(want) != 2 or want[0] > want[1]):
                raise ValueError(f"{k}: a range is [lo, hi] with lo <= hi, got {want}")
        return v

    @model_validator(mode="after")
    def _fields(self) -> "Variant":
        extra = self.model_extra or {}
        for k in extra:
            if k in ("variants", "name", "source") or k not in MappingSpec.model_fields:
                what = "variants do not nest" if k == "variants" else f"not a field a variant can set"
                raise ValueError(f"{k}: {what} (fields: "
                                 f"{', '.join(f for f in MappingSpec.model_fields if f not in ('variants', 'source'))})")
        return self


class MappingSpec(BaseModel):
    """A mapping of a cascade onto an architecture (module docstring); units: rows, keys, blocks."""
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    cascade: str | None = None
    arch: str | None = None
    rank: str = "M"
    query_rank: str = "P"
    fusion: Literal["pass", "none"] = "pass"
    binding: dict[str, str] = Field(default_factory=dict)
    binding_rules: list[BindingRule] = Field(default_factory=list)
    tile: TileSize = "whole"
    query_group: TileSize = "auto"
    query_block: TileSize = 1
    min_blocks: int = Field(default=1, ge=1)
    register_file: list[str] = Field(default_factory=list)
    spill: dict[str, float] = Field(default_factory=dict)
    buffer_resident: list[str] = Field(default_factory=list)
    stationarity: Literal["weight", "output"] = "weight"
    pipeline: Literal["tiles", "none", "blocks"] = "tiles"
    stall: dict[str, float] = Field(default_factory=dict)
    fold_shift_into_exp: bool = True
    skip_masked_tiles: bool = True
    variants: list[Variant] = Field(default_factory=list)
    source: str = Field(default="<spec>", exclude=True)

    @field_validator("spill")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for k, f in v.items():
            if not 0.0 <= f <= 1.0:  # false for NaN too
                raise ValueError(f"{k}: a spilled fraction must be in [0, 1], got {f}")
        return v

    @field_validator("stall")
    @classmethod
    def _stalls(cls, v: dict[str, float]) -> dict[str, float]:
        for k, f in v.items():
            if not math.isfinite(f) or f < 0 or f > MAX_STALL:
                raise ValueError(f"{k}: a stall factor must be in [0, {MAX_STALL}], got {f}")
        return v

    @field_validator("tile", "query_group", "query_block", mode="before")
    @classmethod
    def _size(cls, v: TileSize) -> TileSize:
        if isinstance(v, bool) or (isinstance(v, int) and v <= 0):
            raise ValueError(f"expected a positive integer or a name, got {v!r}")
        return v

    def resolved(self, sizes: dict[str, float]) -> "MappingSpec":
        """The spec with the first variant whose `when` matches `sizes` applied (no variants: itself)."""
        if not self.variants:
            return self
        for i, v in enumerate(self.variants):
            unknown = [k for k in v.when if k not in sizes]
            if unknown:
                raise SpecError(f"{self.source}: variants[{i}].when.{unknown[0]}: not a size of this cascade "
                                f"(sizes: {', '.join(sorted(sizes))})")
            if all(_matches(sizes.get(k), want) for k, want in v.when.items()):
                fields = {k: val for k, val in (v.model_extra or {}).items()}
                data = self.model_dump(exclude={"variants"})
                data.update(fields)
                try:
                    out = MappingSpec.model_validate(data)
                except ValidationError as err:
                    raise _spec_error(self.source, err, f"variants[{i}].") from None
                return out.model_copy(update={"source": self.source})
        known = "; ".join(", ".join(f"{k}={w}" for k, w in v.when.items()) for v in self.variants)
        raise SpecError(f"{self.source}: variants: none matches the sizes "
                        f"{', '.join(f'{k}={sizes[k]:g}' for k in sorted({k for v in self.variants for k in v.when}) if k in sizes)} "
                        f"(known: {known})")

    def to_yaml(self) -> str:
        """The spec as YAML text that `load_spec` reads back."""
        data = self.model_dump(exclude_defaults=True)
        data["name"] = self.name
        return yaml.safe_dump(data, sort_keys=False)


def _matches(value: float | None, want: float | list[float]) -> bool:
    if value is None:
        return False
    if isinstance(want, list):
        return len(want) == 2 and want[0] <= value <= want[1]
    return value == want


def _spec_error(source: str, err: ValidationError, prefix: str = "") -> SpecError:
    first = err.errors()[0]
    field = prefix + ".".join(str(x) for x in first["loc"]) if first["loc"] else (prefix.rstrip(".") or "<top>")
    return SpecError(f"{source}: {field}: {str(first['msg']).removeprefix('Value error, ')}")


def parse_spec(data: Any, source: str = "<spec>") -> MappingSpec:
    """Validate a parsed YAML document as a MappingSpec; errors name `source` and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: <top>: expected a mapping of spec fields")
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as err:
        raise _spec_error(source, err) from None
    base = spec.model_dump(exclude={"variants"})
    for i, v in enumerate(spec.variants):  # every variant's fields must give a valid spec
        try:
            MappingSpec.model_validate({**base, **(v.model_extra or {})})
        except ValidationError as err:
            raise _spec_error(source, err, f"variants[{i}].") from None
    return spec.model_copy(update={"source": source})


def spec_names() -> list[str]:
    """Names of the specs shipped in mappings/specs/."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def load_spec(name_or_path: str | Path) -> MappingSpec:
    """A spec from a YAML path, or the name of a file in mappings/specs/ (e.g. "fusemax")."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml", ".json") and not p.exists():
        if str(name_or_path) not in spec_names():
            raise SpecError(f"unknown mapping {str(name_or_path)!r} (known: {', '.join(spec_names())}, "
                            "auto, or a YAML file)")
        p = SPEC_DIR / f"{name_or_path}.yaml"
    return parse_spec(load_yaml_file(p, "mapping spec", SpecError), str(p))
