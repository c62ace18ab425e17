"""Which Einsum runs where: kernels (one per pass over the streamed rank) and their phases.

A kernel is a FlashAttention-style program per (block of rows, batch * head): a prologue
(`pre`), a loop over tiles of the streamed rank (`loop`: per-tile values, running state carried
from tile to tile, running reductions `accumulators`) and an epilogue (`post`). The plan is read
off the cascade's IR and its pass analysis (`einsum_cascade.passes`), never off its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import sympy

from einsum_cascade.ast import Access, Reduce, size_symbol, var_symbol, walk
from einsum_cascade.ir import Cascade, Einsum
from einsum_cascade.passes import passes
from gpu_ref.codegen.refusal import KernelRefusal


@dataclass
class KernelPlan:
    """One kernel: the Einsums of its prologue, tile loop and epilogue, in dependency order."""

    index: int  # 1-based pass number
    pre: list[Einsum] = field(default_factory=list)
    loop: list[Einsum] = field(default_factory=list)  # per-tile values and running state
    accumulate: list[Einsum] = field(default_factory=list)  # running reductions over the streamed rank
    post: list[Einsum] = field(default_factory=list)

    @property
    def einsums(self) -> list[str]:
        """Names of the Einsums this kernel evaluates, in its order."""
        return [e.name for e in self.pre + self.loop + self.accumulate + self.post]


@dataclass
class Plan:
    """The kernels of a cascade over the streamed rank `key` (rows of programs: rank `row`)."""

    cascade: Cascade
    key: str  # the streamed rank (FlashAttention's keys)
    row: str  # the rank split across programs (FlashAttention's queries)
    whole: list[str]  # ranks held whole inside a program (head dims)
    key_var: str  # the variable of a key inside the sequence (m)
    tile_var: str | None  # the variable of a tile (m1), when the rank is split in two
    in_tile_var: str | None  # the variable of a key inside its tile (m0)
    kernels: list[KernelPlan]
    kernel_of: dict[str, int]  # defined tensor -> index of the kernel that computes it
    # a split rank X = X1 * X0 the kernel runs over flat (rows p, or keys m when no recurrence
    # walks its tiles): x1 = x // X0 and x0 = x - X0 * x1 are values of the flat variable;
    # part variable -> (the flat rank, "outer" or "inner", the outer part's variable, X0)
    derived: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    views: dict[str, Einsum] = field(default_factory=dict)  # re-indexed inputs, read through

    def axis_of(self, var: str) -> str | None:
        """The kernel axis (a rank name) of a rank variable; None for the tile variable."""
        if var == self.tile_var:
            return None
        if var in (self.key_var, self.in_tile_var):
            return self.key
        if var in self.derived:
            return self.derived[var][0]
        return self.cascade.var_rank[var]

    @property
    def key_vars(self) -> set[str]:
        return {v for v in (self.key_var, self.in_tile_var) if v} | {
            v for v, d in self.derived.items() if d[0] == self.key}

    def split_of(self, rank: str) -> tuple[str, str] | None:
        """(outer, inner) part names of a rank the kernel runs over flat; None otherwise."""
        parts = self.cascade.ranks[rank].parts
        return tuple(parts) if parts and parts[0].lower() in self.derived else None

    def collapse(self, indices) -> list | None:
        """Indices with each (outer, inner) pair of a flat-run split, or `X0 * x1 + x0`, written
        as the flat variable; None when a split variable appears otherwise."""
        flat = {}
        for rank in {d[0] for d in self.derived.values()}:
            outer, inner = (v.lower() for v in self.cascade.ranks[rank].parts)
            flat[(outer, inner)] = self.cascade.ranks[rank].var
        out, i = [], 0
        idx = [sympy.expand(sympy.sympify(x)) for x in indices]
        while i < len(idx):
            ix = idx[i]
            pair = (str(ix), str(idx[i + 1])) if i + 1 < len(idx) else None
            if pair in flat:
                out.append(var_symbol(flat[pair]))
                i += 2
                continue
            for (outer, inner), var in flat.items():
                inner_size = self.derived[inner][3]
                if sympy.expand(ix - var_symbol(outer) * size_symbol(inner_size) - var_symbol(inner)) == 0:
                    ix = var_symbol(var)
            if {str(s) for s in ix.free_symbols} & set(self.derived):
                return None
            out.append(ix)
            i += 1
        return out


def _refuse(cascade: Cascade, einsum: str, reason: str) -> KernelRefusal:
    return KernelRefusal(cascade.name, einsum, reason)


def _reduced_vars(e: Einsum) -> set[str]:
    """Every variable reduced in `e` (implicitly or by a reduction)."""
    out = set(e.implicit_vars)
    for node in walk(e.expr):
        if isinstance(node, Reduce):
            out |= set(node.vars)
    return out


def choose_row(cascade: Cascade, key: str) -> str:
    """The rank split across programs: never reduced, not split, not the keys, in an output;
    `P` when it qualifies, else one in every output, else the first in declaration order (an
    output without it, e.g. a scalar, is computed by every program and stored by the first)."""
    reduced = set()
    for e in cascade.einsums:
        reduced |= {cascade.var_rank[v] for v in _reduced_vars(e)}
    candidates = []
    for name, rank in cascade.ranks.items():
        if name == key or name in reduced or (rank.parts and not _flat_ok(cascade, name)):
            continue
        names = {rank.var} | {part.lower() for part in rank.parts}
        count = sum(bool(names & cascade.einsum(o).output_vars) for o in cascade.outputs)
        if count:
            candidates.append((name != "P", -count, name))
    if not candidates:
        out = cascade.outputs[0]
        raise _refuse(cascade, out, f"no rank to split programs over: every rank of the outputs besides "
                      f"{key} is reduced somewhere (a program per block of rows needs one that is not)")
    order = {name: i for i, name in enumerate(cascade.ranks)}
    return min(candidates, key=lambda c: (c[0], c[1], order[c[2]]))[2]


def _flat_ok(cascade: Cascade, rank: str) -> bool:
    """A split rank a kernel may run over flat: no recurrence walks its outer part."""
    outer = cascade.ranks[rank].parts[0].lower()
    return not any(e.iterative_var == outer for e in cascade.einsums)


def views(cascade: Cascade) -> dict[str, Einsum]:
    """Einsums that only re-index an input (`BK[e,m1,m0] = K[e, m1*M0 + m0]`): read through."""
    out = {}
    for e in cascade.einsums:
        names = [str(ix) for ix in e.lhs]
        if (isinstance(e.expr, Access) and e.expr.tensor in cascade.inputs and not e.where and not e.is_initial
                and e.iterative_var is None and all(ix.is_Symbol for ix in e.lhs) and len(set(names)) == len(names)
                and e.name not in cascade.outputs):
            out[e.name] = e
    return out


def _order(cascade: Cascade) -> list[Einsum]:
    """Main Einsums in dependency order, reads of a previous step ignored; ties by line."""
    mains = [e for e in cascade.einsums if not e.is_initial]
    graph = nx.DiGraph()
    graph.add_nodes_from(e.name for e in mains)
    graph.add_edges_from((u, v) for u, v, d in cascade.graph.edges(data="delayed")
                         if not d and u in graph and v in graph and u != v)
    try:
        names = list(nx.lexicographical_topological_sort(graph, key=lambda n: (cascade.einsum(n).line, n)))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(graph)]
        raise _refuse(cascade, cycle[0], f"the tensors {' -> '.join(cycle)} read each other at the same "
                      "step (no order to compute them in)") from None
    return [cascade.einsum(n) for n in names]


def make_plan(cascade: Cascade, key: str) -> Plan:
    """The kernels of `cascade` streaming rank `key`; KernelRefusal when it has no such plan."""
    rank = cascade.ranks[key]
    if len(rank.parts) not in (0, 2):
        raise _refuse(cascade, key, f"rank {key} is split in {len(rank.parts)} parts; a kernel tiles a rank "
                      "of two parts or an unsplit one")
    flat_key = bool(rank.parts) and _flat_ok(cascade, key)
    tile_var = rank.parts[0].lower() if rank.parts and not flat_key else None
    in_tile_var = rank.parts[1].lower() if rank.parts and not flat_key else None
    row = choose_row(cascade, key)
    derived: dict[str, tuple[str, str, str, str]] = {}
    for name, other in cascade.ranks.items():
        if other.parts and (name == row or (name == key and flat_key)):
            outer, inner = (v.lower() for v in other.parts)
            derived[outer] = (name, "outer", outer, other.parts[1])
            derived[inner] = (name, "inner", outer, other.parts[1])
        elif other.parts and name != key:
            raise _refuse(cascade, name, f"rank {name} is split ({' * '.join(other.parts)}); only the streamed "
                          f"rank {key} and the rows may be (a recurrence walks the blocks of {name})"
                          if not _flat_ok(cascade, name) else f"rank {name} is split "
                          f"({' * '.join(other.parts)}); only the streamed rank {key} and the rows may be")
    report = passes(cascade, key)
    if report.unbounded:
        raise _refuse(cascade, report.growth_chain[0] if report.growth_chain else key,
                      f"passes over {key} are unbounded ({report.describe()})")
    if not report.passes:
        raise _refuse(cascade, cascade.outputs[0], f"no Einsum iterates over {key}: nothing to stream")
    whole = [r for r in cascade.ranks if r not in (key, row)]
    info = {p.name: p for p in report.einsums}
    through = views(cascade) if derived else {}
    kernels = [KernelPlan(k) for k in range(1, report.passes + 1)]
    kernel_of: dict[str, int] = {}
    key_vars = {v for v in (rank.var, in_tile_var) if v} | {v for v, d in derived.items() if d[0] == key}
    for e in _order(cascade):
        if e.name in through:
            continue
        p = info[e.name]
        if e.iterative_var is not None and e.iterative_var != tile_var:
            what = "one key at a time" if e.iterative_var in key_vars else \
                f"over rank {cascade.var_rank[e.iterative_var]}"
            raise _refuse(cascade, e.name, f"a recurrence {what} ({e.name}[..{e.iterative_var}+1..]): the "
                          "chunked form (products inside a chunk, a scan of states across chunks) is not generated")
        if p.pass_ is None:
            k = max(p.complete, 1)
            (kernels[k - 1].pre if p.complete == 0 else kernels[k - 1].post).append(e)
        else:
            k = p.pass_
            tiled = bool(e.output_vars & (key_vars | ({tile_var} if tile_var else set())))
            (kernels[k - 1].loop if tiled else kernels[k - 1].accumulate).append(e)
        kernel_of[e.name] = k
    return Plan(cascade, key, row, whole, rank.var, tile_var, in_tile_var, kernels, kernel_of, derived, through)
