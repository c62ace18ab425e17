"""The sweep spec: a YAML file (or dict) validated by pydantic, expanded into design points.

A spec names an architecture (a name in archsim/configs/ or a path), the cascades, a mapping,
an objective, the rank sizes, heads and batch, and `vary`: a mapping from a template parameter of
the architecture, or a dotted path into its YAML document (`dram.bandwidth_bytes_per_s`), to a
list of values or a range (`{from: 64, to: 512, times: 2}` or `{from: 1, to: 4, step: 1}`).
The points are the cartesian product of the vary values, the cascades, and every list among
sizes, heads and batch. Relative paths in a spec file are relative to the file's folder.

Every error is a `SweepSpecError`: one line `file[:line:col]: field: message`.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError
from pydantic import field_validator, model_validator

from cascadesim_errors import InputError
from einsum_cascade.size_text import SizeTextError, parse_number, parse_size
import einsum_cascade as ec
from archsim.config import CONFIG_DIR, parse_architecture
from archsim.errors import ArchError
from archsim.yamlio import load_yaml_text, read_text_file
from studies.sweep.expr import ExprError, evaluate, names_of, parse_expr

MAX_POINTS = 500_000  # a larger product is refused before any point is built (memory: about 1 kB a point)
MAX_RANGE_VALUES = 1_000_000
MAX_CHECKED_ARCHS = 10_000  # architecture combinations (zip, derive) validated one by one at expansion
MAX_CHECKED_VALUES = 2_000  # values of one vary or zip axis validated one by one (first and last half)
OBJECTIVES = ("latency", "energy", "edp")
SAME_AS = re.compile(r"^same-as-([A-Za-z_][A-Za-z_0-9]*)$")
# columns of the results table that a vary key or a rank name must not shadow
RESERVED_COLUMNS = ("point", "cascade", "mapping", "heads", "batch", "latency_s", "energy_j", "area_mm2",
                    "dram_bytes", "cycles", "bound", "status", "error", "front_latency_energy",
                    "front_latency_area")


class SweepSpecError(InputError, ValueError):
    """A bad sweep spec; the message names the file, line:column where known, and the field."""


def dotted(loc: tuple) -> str:
    """('vary', 'd', 0) -> 'vary.d[0]'."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


class _FieldError(ValueError):
    """A semantic error at spec location `loc` (a tuple of keys), for line:column."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(f"{dotted(loc)}: {message}" if loc else message)
        self.loc = loc


class RangeSpec(BaseModel):
    """`{from, to, times}` (geometric: from, from*times, ... <= to) or `{from, to, step}` (arithmetic)."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Union[StrictInt, StrictFloat] = Field(alias="from")
    to: Union[StrictInt, StrictFloat]
    times: Union[StrictInt, StrictFloat, None] = None
    step: Union[StrictInt, StrictFloat, None] = None

    @model_validator(mode="after")
    def _check(self) -> "RangeSpec":
        if (self.times is None) == (self.step is None):
            raise ValueError("a range needs exactly one of `times` (geometric) or `step` (arithmetic)")
        for name in ("start", "to", "times", "step"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{'from' if name == 'start' else name} must be finite, got {v}")
        if self.to < self.start:
            raise ValueError(f"empty range: to ({self.to}) is below from ({self.start})")
        if self.times is not None:
            if self.start <= 0:
                raise ValueError(f"a geometric range needs from > 0, got {self.start}")
            if self.times <= 1:
                raise ValueError(f"times must be greater than 1, got {self.times}")
            count = math.floor(math.log(self.to / self.start) / math.log(self.times) + 1e-9) + 1
        else:
            if self.step <= 0:
                raise ValueError(f"step must be positive, got {self.step}")
            count = math.floor((self.to - self.start) / self.step + 1e-9) + 1
        if count > MAX_RANGE_VALUES:
            raise ValueError(f"the range has {count} values, more than {MAX_RANGE_VALUES}")
        return self

    def values(self) -> list[int | float]:
        """The values, from `from` up to `to` inclusive (within 1e-9 relative); ints if all inputs are."""
        whole = all(isinstance(v, int) for v in (self.start, self.to, self.times, self.step) if v is not None)
        out: list[float] = []
        while True:
            k = len(out)
            v = self.start * self.times ** k if self.times is not None else self.start + k * self.step
            if v > self.to + 1e-9 * max(1.0, abs(self.to)):
                break
            out.append(v)
        return [int(round(v)) for v in out] if whole else [float(v) for v in out]


def parse_range(raw: dict, loc: tuple) -> RangeSpec:
    """A range mapping validated; errors are _FieldError at `loc` (or at the offending key)."""
    try:
        return RangeSpec.model_validate(raw)
    except ValidationError as err:
        e = err.errors()[0]
        key = tuple(p for p in e["loc"] if p in ("from", "to", "times", "step") or p not in
                    ("start",) and isinstance(p, str) and not p.startswith("function"))
        if e["type"] == "extra_forbidden":
            raise _FieldError(loc + key, f"unknown key {key[-1]!r} in a range (known: from, to, times, step)")
        if e["type"] == "missing":
            name = "from" if "start" in e["loc"] or "from" in e["loc"] else e["loc"][-1]
            raise _FieldError(loc, f"bad range: missing {name!r} (a range is {{from, to, times}} or "
                                   "{from, to, step})")
        if e["type"] == "value_error":
            raise _FieldError(loc, f"bad range: {str(e['msg']).removeprefix('Value error, ')}")
        raise _FieldError(loc + key[:1], f"bad range: expected a number, got {e.get('input')!r}")


class CascadeGroup(BaseModel):
    """A cascade (or a list of cascades) with sizes of its own, over the spec's shared `sizes`."""
    model_config = ConfigDict(extra="forbid")
    cascade: Union[StrictStr, list[StrictStr]]
    sizes: dict[StrictStr, Any] = Field(default_factory=dict)


class SweepSpec(BaseModel):
    """The fields of a sweep spec file (see docs/sweep.md); value lists and ranges are checked
    when the spec is expanded (`_values`)."""
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    arch: StrictStr
    cascades: list[Union[StrictStr, CascadeGroup]]
    mapping: StrictStr = "auto"
    objective: Literal["latency", "energy", "edp"] = "latency"
    sizes: dict[StrictStr, Any] = Field(default_factory=dict)
    heads: Any = 1
    batch: Any = 1
    vary: dict[StrictStr, Any] = Field(default_factory=dict)
    zip: list[dict[StrictStr, Any]] = Field(default_factory=list)
    derive: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    front_by: Union[list[StrictStr], None] = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("cascades", mode="before")
    @classmethod
    def _cascades(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


@dataclass(frozen=True)
class Source:
    """A file the sweep reads (architecture or cascade): label as written, where it is, its text."""
    label: str
    path: str
    text: str

    @property
    def sha(self) -> str:
        """SHA-256 of the text (16 hex digits): the identity of the file's content."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


@dataclass
class Sweep:
    """A validated spec, expanded: `points` (plain dicts, see `point_identity`) and `context`
    (sha -> (path, text) of the architecture and cascade files, shipped once to each worker)."""
    spec: SweepSpec
    source: str
    points: list[dict]
    context: dict[str, tuple[str, str]]
    vary_keys: list[str]
    size_ranks: list[str]
    front_by: list[str]
    ties: dict[str, str]  # rank -> the rank it is the same as


def point_identity(point: dict) -> str:
    """Canonical JSON of what determines a point's result (everything but its index)."""
    return json.dumps({k: v for k, v in point.items() if k != "index"}, sort_keys=True)


def _size_value(v: Any, loc: tuple) -> int:
    try:
        return parse_size(v)
    except SizeTextError:
        raise _FieldError(loc, f"expected a positive integer, a size like 4K or 1M, or same-as-RANK, got {v!r}") from None


def _param_value(v: Any, loc: tuple) -> int | float:
    """A cascade param's value: any finite number (as `--size BETA=0.5` takes it)."""
    try:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise SizeTextError(repr(v))
        return v if isinstance(v, (int, float)) else parse_number(v)
    except SizeTextError:
        raise _FieldError(loc, f"expected a number (a param of the cascade), got {v!r}") from None


def _values(raw: Any, loc: tuple, scalar_ok: bool) -> list:
    """The values of a list, a range mapping, or (if `scalar_ok`) a single value."""
    if isinstance(raw, dict):
        values = parse_range(raw, loc).values()
    elif isinstance(raw, list):
        values = list(raw)
    elif scalar_ok:
        values = [raw]
    else:
        raise _FieldError(loc, f"expected a list of values or a range {{from, to, times|step}}, got {raw!r}")
    if not values:
        raise _FieldError(loc, "empty list: the product has no points")
    for i, v in enumerate(values):
        if v is None or isinstance(v, (list, dict)) or (isinstance(v, float) and not math.isfinite(v)):
            raise _FieldError(loc + (i,), f"expected a number or a string, got {v!r}")
    if len({json.dumps(v) for v in values}) != len(values):
        raise _FieldError(loc, f"repeated value in {values!r}")
    return values


def _positive_ints(raw: Any, loc: tuple) -> list[int]:
    values = _values(raw, loc, scalar_ok=True)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise _FieldError(loc + ((i,) if isinstance(raw, list) else ()), f"expected a positive integer, got {v!r}")
    return values


def _resolve_file(text: str, base: Path) -> Path | None:
    """`text` as a path (relative to `base`) when it looks like one or exists; else None."""
    p = Path(text)
    candidate = p if p.is_absolute() else base / p
    if candidate.is_file() or p.suffix in (".yaml", ".yml", ".json", ".cascade") or "/" in text:
        return candidate
    return None


def _arch_source(name: str, base: Path) -> Source:
    path = _resolve_file(name, base)
    if path is None:
        path = CONFIG_DIR / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
            raise _FieldError(("arch",), f"{name!r} is neither a file nor a known architecture ({known})")
    return Source(name, str(path), read_text_file(path, "architecture file"))


def _cascade_source(name: str, base: Path, loc: tuple) -> Source:
    path = _resolve_file(name, base)
    if path is None:
        if name not in ec.library_names():
            raise _FieldError(loc, f"{name!r} is neither a file nor a library cascade "
                                   f"({', '.join(ec.library_names())})")
        path = ec.library_path(name)
    return Source(name, str(path), read_text_file(path, "cascade file"))


def _check_arch_path(doc: Any, key: str, arch: str, loc: tuple | None = None) -> None:
    loc = loc or ("vary", key)
    node, walked = doc, []
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            where = ".".join(walked) or "the top level"
            known = ", ".join(map(str, node)) if isinstance(node, dict) else "none"
            raise _FieldError(loc, f"unknown arch field path: {arch} has no field {part!r} under "
                                             f"{where} (fields there: {known}), and {key!r} is not one of its "
                                             "template parameters")
        walked.append(part)
    if isinstance(node, (dict, list)):
        raise _FieldError(loc, f"arch field {key!r} of {arch} is a {type(node).__name__}, not a value")


def set_path(doc: dict, key: str, value: Any) -> None:
    """Set the field at dotted path `key` of a parsed YAML document (list items by index)."""
    parts = key.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def apply_arch(doc: dict, source: str, params: dict, overrides: dict):
    """The Architecture of document `doc` with template `params` and dotted-path `overrides`."""
    doc = copy.deepcopy(doc)
    for key, value in overrides.items():
        set_path(doc, key, value)
    return parse_architecture(doc, source, params)


def _mapping(name: str, base: Path) -> tuple[str, Any]:
    """(the mapping as a point carries it, its MappingSpec or None for auto); the file is parsed
    and validated here, so a bad mapping file is a spec error, not a sweep of infeasible points."""
    if name == "auto":
        return name, None
    from mappings.spec import SpecError, load_spec as load_mapping, spec_names
    names = spec_names()
    if name in names:
        return name, load_mapping(name)
    path = _resolve_file(name, base)
    if path is None or not path.is_file():
        raise _FieldError(("mapping",), f"{name!r} is not auto, a mapping name ({', '.join(names)}) "
                                        "or an existing mapping file")
    try:
        return str(path), load_mapping(path)
    except SpecError as err:
        raise _FieldError(("mapping",), f"invalid mapping file: {err}") from None


def _size_axes(raw_sizes: dict, loc: tuple, params: frozenset[str] = frozenset()
               ) -> tuple[dict[str, list[int | float]], dict[str, str]]:
    """The values of each rank (or param, in `params`) of a sizes mapping, and its `same-as-X` ties
    (rank -> X)."""
    size_values: dict[str, list[int]] = {}
    ties: dict[str, str] = {}
    for rank, raw in raw_sizes.items():
        if rank in RESERVED_COLUMNS or rank.startswith("util_"):
            raise _FieldError(loc + (rank,), f"a rank may not be called {rank!r} (a column of the results)")
        tie = SAME_AS.match(raw.strip()) if isinstance(raw, str) else None
        if tie:
            ties[rank] = tie.group(1)
            continue
        values = _values(raw, loc + (rank,), scalar_ok=True)
        read = _param_value if rank in params else _size_value
        size_values[rank] = [read(v, loc + (rank,) + ((i,) if isinstance(raw, list) else ()))
                             for i, v in enumerate(values)]
    return size_values, ties


def _cascade_entries(spec: SweepSpec, base: Path) -> list[tuple[Source, ec.Cascade, dict, tuple]]:
    """(source, parsed cascade, its own sizes, location) of every cascade of the spec, in order."""
    if not spec.cascades:
        raise _FieldError(("cascades",), "empty list: the product has no points")
    out = []
    for i, entry in enumerate(spec.cascades):
        if isinstance(entry, str):
            names, own, loc = [entry], {}, ("cascades", i)
        else:
            names = [entry.cascade] if isinstance(entry.cascade, str) else entry.cascade
            own, loc = entry.sizes, ("cascades", i, "cascade")
            if not names:
                raise _FieldError(loc, "empty list of cascades")
        for j, name in enumerate(names):
            where = loc if isinstance(entry, str) or isinstance(entry.cascade, str) else loc + (j,)
            src = _cascade_source(name, base, where)
            c = ec.parse(src.text, src.path)  # CascadeError names the file, line and column
            out.append((src, c, own, ("cascades", i)))
    if len({src.label for src, *_ in out}) != len(out):
        raise _FieldError(("cascades",), "a cascade is listed twice")
    return out


def _cascade_sizes(spec: SweepSpec, c: ec.Cascade, own: dict, loc: tuple, mapping_spec: Any,
                   used: set[str]) -> tuple[list[str], list[dict], dict[str, str]]:
    """(size names, every sizes dict, ties) of one cascade: the spec's shared sizes that it has,
    and its own (which must all be its sizes); checked complete against the cascade."""
    from mappings.size_completion import complete_sizes
    from mappings.work import MappingError
    known = set(c.size_names) | set(c.params)
    for rank in own:
        if rank not in known:
            raise _FieldError(loc + ("sizes", rank), f"not a size of {c.name} (sizes: "
                                                      f"{', '.join(c.size_names + c.params)})")
    merged = {k: v for k, v in spec.sizes.items() if k in known and k not in own}
    used.update(k for k in spec.sizes if k in known)
    shared_values, shared_ties = _size_axes(merged, ("sizes",), frozenset(c.params))
    own_values, own_ties = _size_axes(own, loc + ("sizes",), frozenset(c.params))
    values, ties = {**shared_values, **own_values}, {**shared_ties, **own_ties}
    for rank, other in ties.items():
        if other not in values:
            what = "itself tied (same-as)" if other in ties else f"not in sizes (of {c.name})"
            where = loc + ("sizes", rank) if rank in own else ("sizes", rank)
            raise _FieldError(where, f"same-as-{other}: {other} is {what}")
    order = [k for k in [*spec.sizes, *own] if k in values or k in ties]
    order = list(dict.fromkeys(order))
    ranks = [r for r in order if r in values]
    combos = [dict(zip(ranks, sz)) for sz in itertools.product(*(values[r] for r in ranks))]
    sizes = [{r: s[ties.get(r, r)] for r in order} for s in combos]
    qr = getattr(mapping_spec, "query_rank", "P") if mapping_spec is not None else "P"
    kr = getattr(mapping_spec, "rank", "M") if mapping_spec is not None else "M"
    try:  # the names are the same in every combination: one check covers all
        complete_sizes(c, sizes[0] if sizes else {}, qr, kr)
    except MappingError as err:
        message = re.sub(r" \(e\.g\. --size [^)]*\)", "", str(err).removeprefix("--size: "))
        raise _FieldError(loc, f"{message}: give it under sizes") from None
    return order, sizes, ties


def _checked_sample(values: list) -> list:
    """The values of an axis that are validated one by one: all, or the first and last
    MAX_CHECKED_VALUES // 2 of a longer axis (its other points say why they are infeasible)."""
    half = MAX_CHECKED_VALUES // 2
    return values if len(values) <= MAX_CHECKED_VALUES else values[:half] + values[-half:]


def _arch_axes(spec: SweepSpec, doc: dict, arch: Source, tparams: set,
               per_arch: int) -> tuple[list[list[dict]], list[str]]:
    """The axes of the architecture: each a list of {key: value} (a `vary` key, or a `zip` group
    whose keys move together), and the keys in column order."""
    taken = set(spec.sizes) | {k for e in spec.cascades if not isinstance(e, str) for k in e.sizes}

    def check_key(key: str, loc: tuple) -> None:
        if key in RESERVED_COLUMNS or key.startswith("util_") or key in taken:
            raise _FieldError(loc, f"{key!r} is already a column of the results (a size or a field)")
        if key not in tparams:
            _check_arch_path(doc, key, spec.arch, loc)
        taken.add(key)

    def check_value(key: str, v: Any, loc: tuple) -> None:
        params, overrides = ({key: v}, {}) if key in tparams else ({}, {key: v})
        try:
            apply_arch(doc, arch.path, params, overrides)
        except ArchError as err:
            raise _FieldError(loc, f"value {v!r} gives an invalid architecture: {err}") from None

    axes, keys, total = [], [], per_arch
    for key, raw in spec.vary.items():
        check_key(key, ("vary", key))
        values = _values(raw, ("vary", key), scalar_ok=False)
        total *= len(values)
        if total > MAX_POINTS:
            raise _FieldError(("vary",), f"the product has {total} points or more, more than {MAX_POINTS}")
        axes.append([{key: v} for v in values])
        keys.append(key)
    for key, axis in zip(keys, axes):
        for item in _checked_sample(axis):  # each value alone must give a valid architecture
            check_value(key, item[key], ("vary", key))
    for g, group in enumerate(spec.zip):
        if not group:
            raise _FieldError(("zip", g), "empty group")
        lists = {}
        for key, raw in group.items():
            check_key(key, ("zip", g, key))
            lists[key] = _values(raw, ("zip", g, key), scalar_ok=False)
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) != 1:
            raise _FieldError(("zip", g), "the lists of a zip group move together and need one length, got "
                                          + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        axis = [dict(zip(lists, combo)) for combo in zip(*lists.values())]
        total *= len(axis)
        if total > MAX_POINTS:
            raise _FieldError(("zip", g), f"the product has {total} points or more, more than {MAX_POINTS}")
        for values in _checked_sample(axis):
            for key, v in values.items():
                check_value(key, v, ("zip", g, key, axis.index(values)))
        axes.append(axis)
        keys.extend(lists)
    for key, text in spec.derive.items():
        check_key(key, ("derive", key))
        try:
            tree = parse_expr(text)
        except ExprError as err:
            raise _FieldError(("derive", key), str(err)) from None
        unknown = names_of(tree) - set(keys)
        if unknown:
            raise _FieldError(("derive", key), f"unknown name(s) {', '.join(sorted(unknown))}: an expression reads "
                                               f"varied fields ({', '.join(keys) or 'none'})")
        keys.append(key)
    return axes, keys


def _derived(spec: SweepSpec, values: dict) -> dict:
    """`values` with every `derive` field computed from the varied ones."""
    out = dict(values)
    for key, text in spec.derive.items():
        try:
            v = evaluate(parse_expr(text), out)
        except ExprError as err:
            raise _FieldError(("derive", key), f"at {', '.join(f'{k}={x}' for k, x in values.items())}: {err}") \
                from None
        out[key] = int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53 else v
    return out


def _expand(spec: SweepSpec, base: Path, source: str) -> Sweep:
    arch = _arch_source(spec.arch, base)
    doc = load_yaml_text(arch.text, arch.path)
    try:
        parse_architecture(copy.deepcopy(doc), arch.path)
    except ArchError as err:
        raise _FieldError(("arch",), str(err)) from None
    tparams = set(doc.get("template_params") or {})
    mapping, mapping_spec = _mapping(spec.mapping, base)

    used: set[str] = set()
    entries = []
    for src, c, own, loc in _cascade_entries(spec, base):
        order, sizes, ties = _cascade_sizes(spec, c, own, loc, mapping_spec, used)
        entries.append((src, order, sizes, ties))
    unused = [k for k in spec.sizes if k not in used]
    if unused:
        raise _FieldError(("sizes", unused[0]), f"not a size of any cascade of the sweep ({', '.join(spec_names_of(entries))})")
    heads = _positive_ints(spec.heads, ("heads",))
    batch = _positive_ints(spec.batch, ("batch",))
    per_arch = sum(len(sizes) for _, _, sizes, _ in entries) * len(heads) * len(batch)
    axes, keys = _arch_axes(spec, doc, arch, tparams, per_arch)

    size_ranks = list(dict.fromkeys(r for _, order, _, _ in entries for r in order))
    ties = {r: t for *_, tie in entries for r, t in tie.items()}
    front_by = spec.front_by if spec.front_by is not None else ["cascade", *size_ranks, "heads", "batch"]
    allowed = ["cascade", *size_ranks, "heads", "batch", *keys]
    for col in front_by:
        if col not in allowed:
            raise _FieldError(("front_by",), f"unknown column {col!r} (one of {', '.join(allowed)})")

    total = math.prod([len(a) for a in axes]) * per_arch
    if total > MAX_POINTS:
        raise _FieldError(("vary",), f"the product has {total} points, more than {MAX_POINTS}")

    points = []
    checked = 0
    for combo in itertools.product(*axes):
        values = _derived(spec, {k: v for part in combo for k, v in part.items()})
        params = {k: v for k, v in values.items() if k in tparams}
        overrides = {k: v for k, v in values.items() if k not in tparams}
        if spec.derive or spec.zip:
            if checked < MAX_CHECKED_ARCHS:  # the combination must give a valid architecture
                try:
                    apply_arch(doc, arch.path, params, overrides)
                except ArchError as err:
                    raise _FieldError(("derive",) if spec.derive else ("zip",),
                                      f"at {', '.join(f'{k}={x}' for k, x in values.items())}: invalid "
                                      f"architecture: {err}") from None
                checked += 1
        for (c, _, size_list, _), h, b in itertools.product(entries, heads, batch):
            for sizes in size_list:
                points.append({
                    "index": len(points), "values": values,
                    "arch": {"label": arch.label, "sha": arch.sha}, "params": params, "overrides": overrides,
                    "cascade": {"label": c.label, "sha": c.sha}, "mapping": mapping, "objective": spec.objective,
                    "sizes": dict(sizes), "heads": h, "batch": b,
                })
    context = {arch.sha: (arch.path, arch.text), **{c.sha: (c.path, c.text) for c, *_ in entries}}
    return Sweep(spec, source, points, context, keys, size_ranks, list(front_by), ties)


def spec_names_of(entries: list) -> list[str]:
    """The labels of the cascades of expanded entries."""
    return [src.label for src, *_ in entries]


def _node_at(node: yaml.Node | None, loc: tuple, key: bool = False) -> yaml.Node | None:
    """The YAML node at location `loc` (as far as it goes); with `key`, the last key's own node."""
    for n, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not match:
                return node
            node = match[0][0] if key and n == len(loc) - 1 else match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _where(text: str | None, loc: tuple, key: bool = False) -> str:
    """':line:col' of `loc` in the spec text ('' without text)."""
    if text is None:
        return ""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # the text already passed archsim.yamlio
    except yaml.YAMLError:
        return ""
    node = _node_at(root, loc, key)
    return "" if node is None else f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _pydantic_error(err: ValidationError) -> tuple[tuple, str, bool]:
    """(location, message, whether the location is a key) of the first error worth reporting."""
    errors = sorted(err.errors(), key=lambda e: (e["type"] != "extra_forbidden", e["type"] != "missing",
                                                 len(e["loc"])))
    e = errors[0]
    loc = tuple(p for p in e["loc"] if p not in ("str", "CascadeGroup") and not str(p).startswith("list["))
    if loc[:1] == ("cascades",) and len(loc) == 2 and e["type"] in ("string_type", "model_type", "dict_type"):
        return loc, (f"{dotted(loc)}: expected a cascade name or {{cascade: NAME, sizes: {{...}}}}, "
                     f"got {e.get('input')!r}"), False
    field = dotted(loc)
    if e["type"] == "extra_forbidden":
        known = ", ".join(SweepSpec.model_fields)
        return loc, f"{field}: unknown key {loc[-1]!r} (known: {known})", True
    if e["type"] == "missing":
        return loc, f"{field}: missing field", False
    message = str(e["msg"]).removeprefix("Value error, ")
    return loc, f"{field}: {message}, got {e.get('input')!r}" if "input" in e else f"{field}: {message}", False


def parse_spec(data: Any, source: str = "<spec>", text: str | None = None, base: Path | None = None) -> Sweep:
    """Validate a parsed spec document and expand it; errors name `source`, line:column and field."""
    base = base if base is not None else Path.cwd()
    if not isinstance(data, dict):
        raise SweepSpecError(f"{source}: expected a mapping of fields ({', '.join(SweepSpec.model_fields)})")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        loc, message, key = _pydantic_error(err)
        raise SweepSpecError(f"{source}{_where(text, loc, key)}: {message}") from None
    try:
        return _expand(spec, base, source)
    except _FieldError as err:
        key = "unknown key" in str(err)
        raise SweepSpecError(f"{source}{_where(text, err.loc, key)}: {err}") from None


def load_sweep(spec: str | Path | dict | SweepSpec) -> Sweep:
    """A Sweep from a spec file path, a dict (paths relative to the working directory) or a SweepSpec."""
    if isinstance(spec, SweepSpec):
        return parse_spec(spec.model_dump())
    if isinstance(spec, dict):
        return parse_spec(spec)
    path = Path(spec)
    text = read_text_file(path, "sweep spec")
    data = load_yaml_text(text, str(path))
    return parse_spec(data, str(path), text, path.parent)
