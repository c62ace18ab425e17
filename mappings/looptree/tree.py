"""Loop-tree mappings: a mapping as a tree of storage, loop, compute and branch nodes (LoopTree style).

A tree is a chain: a list of nodes, each a one-key mapping, the last of which may branch:

- `storage: {level: L, tensors: [T, ...], spill: {T: f}}`: memory level L (of the architecture's
  hierarchy, archsim/hierarchy.py) keeps, for each listed tensor, the tile the loops below this node
  touch, for one iteration of the loops above it. `spill`: that fraction of a kept tile lives in the
  parent level instead (written once by its producer, read back once by each reader in a later
  sequential branch).
- `temporal: {rank: R, tile: t}`: iterate over the cascade's rank R in steps of t (an integer, a size
  name such as `M` for the whole rank, or a parameter of the tree); the loops below see t of R.
- `spatial: {rank: R, tile: t, over: UNIT.rows | UNIT.cols | LEVEL}`: the R/t steps run at once on the
  rows or columns of a PE array, or on the fan-out instances of a level.
- `compute: {einsum: E, unit: U}`: Einsum E of the cascade runs on PE array U (a leaf).
- `sequential: [chain, ...]`: the chains run one after another under the loops above (the passes of
  a fused cascade); `pipelined: [chain, ...]`: they run concurrently, tile by tile.

Ranks are the cascade's own names (a split rank `M = M1 * M0` is looped over as M; its parts follow
from the tile). Files are YAML (`name`, `cascade`, `arch`, `params` with defaults, `tree`), read by
the project's safe loader and validated with pydantic; every error names the file and the node
path, e.g. `fusemax.yaml: tree[4].pipelined[0][0].compute.unit: unknown unit 'array3d'`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import einsum_cascade as ec
from mappings.spec import SpecError

TREES_DIR = Path(__file__).parent / "trees"
NODE_KINDS = ("storage", "temporal", "spatial", "compute", "sequential", "pipelined")


class LoopTreeError(SpecError):
    """A bad loop tree: `file: node path: message`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Tile = Union[int, str]


class _StorageDoc(_Model):
    level: str
    tensors: list[str] = Field(min_length=1)
    spill: dict[str, Union[float, str]] = Field(default_factory=dict)  # a fraction or a param


class _TemporalDoc(_Model):
    rank: str
    tile: Tile


class _SpatialDoc(_Model):
    rank: str
    tile: Tile = 1
    over: str


class _ComputeDoc(_Model):
    einsum: str
    unit: str


class _TreeFileDoc(_Model):
    name: str
    description: str = ""
    cascade: str
    arch: str
    params: dict[str, Optional[Union[int, float]]] = Field(default_factory=dict)
    tree: list[Any] = Field(min_length=1)


_BODIES = {"storage": _StorageDoc, "temporal": _TemporalDoc, "spatial": _SpatialDoc, "compute": _ComputeDoc}


@dataclass(frozen=True)
class Node:
    """One node: `kind` (NODE_KINDS), its fields, its children chains (branches only), its path."""
    kind: str
    path: str
    fields: dict = field(default_factory=dict)
    branches: tuple = ()  # tuple[tuple[Node, ...], ...] for sequential / pipelined


@dataclass(frozen=True)
class LoopTree:
    """A parsed loop tree (structure only; `validate` checks it against a cascade and an architecture)."""
    name: str
    source: str
    cascade: str
    arch: str
    params: dict
    chain: tuple  # tuple[Node, ...]
    description: str = ""

    def walk(self):
        """Every node, parents first, with the chain of nodes above it (root first)."""
        stack = [(self.chain, ())]
        while stack:
            chain, above = stack.pop()
            for i, node in enumerate(chain):
                yield node, above + tuple(chain[:i])
                for b in reversed(node.branches):
                    stack.append((b, above + tuple(chain[:i + 1])))


def _error(file: str, path: str, message: str) -> LoopTreeError:
    return LoopTreeError(f"{file}: {path}: {message}")


def _pydantic_message(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    kind = first["type"]
    msg = {"missing": "missing field", "extra_forbidden": "unknown field"}.get(kind, first["msg"])
    return loc, msg


def _chain(items: Any, file: str, path: str) -> tuple[Node, ...]:
    if not isinstance(items, list) or not items:
        raise _error(file, path, "expected a non-empty list of nodes")
    out = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise _error(file, here, f"expected one of {', '.join(NODE_KINDS)} (a mapping with one key)")
        (kind, body), = item.items()
        if kind not in NODE_KINDS:
            raise _error(file, here, f"unknown node {kind!r} (one of {', '.join(NODE_KINDS)})")
        here = f"{here}.{kind}"
        if kind in ("sequential", "pipelined"):
            if i != len(items) - 1:
                raise _error(file, here, "a branch node ends its chain (put what follows inside its branches)")
            if not isinstance(body, list) or len(body) < 2:
                raise _error(file, here, "expected a list of at least two chains")
            out.append(Node(kind, here, {}, tuple(_chain(b, file, f"{here}[{j}]") for j, b in enumerate(body))))
            continue
        if not isinstance(body, dict):
            raise _error(file, here, "expected a mapping of fields")
        try:
            doc = _BODIES[kind].model_validate(body)
        except ValidationError as err:
            loc, msg = _pydantic_message(err)
            raise _error(file, f"{here}.{loc}", msg) from None
        out.append(Node(kind, here, doc.model_dump()))
    if out[-1].kind not in ("compute", "sequential", "pipelined"):
        raise _error(file, out[-1].path, "a chain ends with a compute node or a branch")
    return tuple(out)


def parse_looptree(data: Any, file: str = "<data>") -> LoopTree:
    """A LoopTree from a parsed YAML document (structure checked; see `validate` for the rest)."""
    if not isinstance(data, dict):
        raise _error(file, "<top>", "expected a mapping at the top level")
    try:
        doc = _TreeFileDoc.model_validate(data)
    except ValidationError as err:
        loc, msg = _pydantic_message(err)
        raise _error(file, loc, msg) from None
    return LoopTree(doc.name, file, doc.cascade, doc.arch, dict(doc.params), _chain(doc.tree, file, "tree"),
                    doc.description)


def load_looptree(path: str | Path) -> LoopTree:
    """A loop-tree file: a path, or the stem of a file in mappings/looptree/trees/."""
    from archsim.yamlio import YamlFileError, load_yaml_file
    p = Path(path)
    if not p.suffix and not p.exists():
        p = TREES_DIR / f"{p}.yaml"
    try:
        data = load_yaml_file(p, "loop-tree file")
    except YamlFileError as err:
        raise LoopTreeError(str(err)) from None
    return parse_looptree(data, str(p))


def tree_names() -> list[str]:
    """Stems of the loop trees shipped in mappings/looptree/trees/."""
    return sorted(p.stem for p in TREES_DIR.glob("*.yaml"))


# -- validation against a cascade and an architecture ------------------------------------------------
def views_of(c: ec.Cascade) -> dict[str, str]:
    """Einsums that only rename another tensor (`BK[e,m1,m0] = K[e, m1*M0 + m0]`) -> that tensor."""
    from einsum_cascade.ast import Access
    out = {}
    for e in c.einsums:
        if (not e.is_initial and isinstance(e.expr, Access) and not e.where and not e.implicit_vars
                and not e.reduced_vars):
            out[e.name] = e.expr.tensor
    return out


def source_of(c: ec.Cascade, t: str) -> str:
    views = views_of(c)
    while t in views:
        t = views[t]
    return t


def validate(tree: LoopTree, c: ec.Cascade, hierarchy) -> None:
    """LoopTreeError (naming file and node path) unless every node fits the cascade and the hierarchy:
    known ranks, tensors, levels and units; levels inward along every path; each computing Einsum
    computed once; each input and output kept in DRAM at the top."""
    file = tree.source
    level_names = [lv.name for lv in hierarchy.levels]
    tensors = set(c.inputs) | {e.name for e in c.einsums}
    views = views_of(c)
    computing = [e.name for e in c.einsums if not e.is_initial and e.name not in views]
    seen: dict[str, str] = {}
    for node, above in tree.walk():
        f = node.fields
        if node.kind == "storage":
            if f["level"] not in level_names:
                raise _error(file, f"{node.path}.level", f"unknown level {f['level']!r} of {hierarchy.name} "
                             f"(levels: {', '.join(level_names)})")
            level = hierarchy.level(f["level"])
            for j, t in enumerate(f["tensors"]):
                if t not in tensors:
                    raise _error(file, f"{node.path}.tensors[{j}]", f"{t!r} is not a tensor of {c.name}")
                role = "input" if t in c.inputs else "output" if t in c.outputs else "intermediate"
                if not level.may_hold(t, role):
                    raise _error(file, f"{node.path}.tensors[{j}]", f"level {level.name} may not hold {t} ({role})")
            for t, frac in f["spill"].items():
                if t not in f["tensors"]:
                    raise _error(file, f"{node.path}.spill.{t}", f"{t} is not a tensor this node keeps")
                if isinstance(frac, str) and frac not in tree.params:
                    raise _error(file, f"{node.path}.spill.{t}", f"{frac!r} is not a param of the tree")
                if not isinstance(frac, str) and not 0.0 <= frac <= 1.0:
                    raise _error(file, f"{node.path}.spill.{t}", f"expected a fraction in [0, 1], got {frac}")
            outer = [n for n in above if n.kind == "storage"]
            if outer:
                path_here = [lv.name for lv in hierarchy.path(level.name)]
                if outer[-1].fields["level"] not in path_here:
                    raise _error(file, f"{node.path}.level", f"{level.name} is not inside "
                                 f"{outer[-1].fields['level']} (the level of the storage node above)")
        elif node.kind in ("temporal", "spatial"):
            if f["rank"] not in c.ranks:
                raise _error(file, f"{node.path}.rank", f"{c.name} has no rank {f['rank']!r} (ranks: "
                             f"{', '.join(c.ranks)}; loop over a split rank by its own name)")
            tile = f["tile"]
            if isinstance(tile, str) and tile not in c.size_names and tile not in tree.params:
                raise _error(file, f"{node.path}.tile", f"{tile!r} is neither a size of {c.name} nor a param")
            if isinstance(tile, int) and tile < 1:
                raise _error(file, f"{node.path}.tile", f"expected a positive integer, got {tile}")
            if node.kind == "spatial":
                unit, _, dim = f["over"].partition(".")
                ok = (unit in hierarchy.units and dim in ("rows", "cols")) or \
                    (f["over"] in level_names and hierarchy.level(f["over"]).fanout is not None)
                if not ok:
                    raise _error(file, f"{node.path}.over", f"expected UNIT.rows, UNIT.cols or a level with a "
                                 f"fan-out, got {f['over']!r}")
        elif node.kind == "compute":
            if f["einsum"] not in computing:
                what = "a view (it computes nothing)" if f["einsum"] in views else "not an Einsum"
                raise _error(file, f"{node.path}.einsum", f"{f['einsum']!r} is {what} of {c.name}")
            if f["einsum"] in seen:
                raise _error(file, f"{node.path}.einsum", f"{f['einsum']} is computed twice (also at {seen[f['einsum']]})")
            seen[f["einsum"]] = node.path
            if f["unit"] not in hierarchy.units:
                raise _error(file, f"{node.path}.unit", f"unknown unit {f['unit']!r} of {hierarchy.name} "
                             f"(units: {', '.join(hierarchy.units)})")
    missing = [e for e in computing if e not in seen]
    if missing:
        raise _error(file, "tree", f"Einsum(s) {', '.join(missing)} of {c.name} are computed nowhere")
    top = [n for n in tree.chain if n.kind == "storage" and hierarchy.level(n.fields["level"]).kind == "dram"]
    kept = {t for n in top for t in n.fields["tensors"]}
    for t in [*c.inputs, *c.outputs]:
        if t not in kept:
            raise _error(file, "tree[0]", f"{t} ({'input' if t in c.inputs else 'output'}) is kept in no DRAM "
                         "storage node at the top of the tree")


__all__ = ["LoopTree", "LoopTreeError", "Node", "load_looptree", "parse_looptree", "source_of", "tree_names",
           "validate", "views_of"]
