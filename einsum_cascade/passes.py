"""The lower bound on passes over a rank (the rules of `docs/cascade-language.md`).

Each tensor gets a kind (streamed: it keeps an R-variable; global: it does not) and the pass in
which it streams or at whose end it is complete; each Einsum that iterates over R runs in
p(E) = max(1, passes of streamed inputs, 1 + passes of global inputs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade, Einsum


@dataclass(frozen=True)
class EinsumPass:
    """The pass an Einsum runs in over the rank (None: it does not iterate over it)."""

    name: str
    pass_: int | None
    kind: str  # "streamed" or "global"
    complete: int  # pass at whose end (global) or in which (streamed) its output is available


@dataclass
class PassReport:
    """Passes of a cascade over one rank, what forces each extra pass, and what stays live."""

    cascade: str
    rank: str
    passes: int | None  # None when unbounded
    einsums: list[EinsumPass]
    live_across_passes: list[str]
    chains: dict[int, list[str]] = field(default_factory=dict)
    restreamed_inputs: list[str] = field(default_factory=list)
    grows_with: str | None = None  # unbounded: passes grow with this rank (`passes` is None)
    growth_chain: list[str] = field(default_factory=list)  # the loop that makes them grow

    @property
    def unbounded(self) -> bool:
        """True when the passes over the rank grow with the steps of a recurrence."""
        return self.grows_with is not None

    def describe(self) -> str:
        """`3`, or `unbounded: grows with M (S -> PRED -> S)`."""
        if not self.unbounded:
            return str(self.passes)
        return f"unbounded: grows with {self.grows_with} ({' -> '.join(self.growth_chain)})"

    def to_json(self) -> dict:
        return {
            "cascade": self.cascade,
            "rank": self.rank,
            "passes": self.passes,
            "unbounded": ({"grows_with": self.grows_with, "chain": list(self.growth_chain)}
                          if self.unbounded else None),
            "einsums": [{"name": e.name, "pass": e.pass_, "kind": e.kind} for e in self.einsums],
            "live_across_passes": list(self.live_across_passes),
            "chains": {str(k): v for k, v in self.chains.items()},
            "restreamed_inputs": list(self.restreamed_inputs),
        }


@dataclass(frozen=True)
class _Read:
    tensor: str
    is_global: bool  # a global input, complete at the end of its pass


def _reads(cascade: Cascade, e: Einsum, kind: dict[str, str], rvars: set[str]) -> list[_Read]:
    """The inputs of `e` for the pass rule (its own previous step excluded).

    A read at the final index of a recurrence over an R-variable is a global input; a final
    read of a recurrence over another rank is an ordinary slice of that tensor.
    """
    out = []
    for access in e.reads:
        if access.tensor == e.name:
            continue
        final = cascade.is_final_read(access) and cascade.einsum(access.tensor).iterative_var in rvars
        is_global = final or kind[access.tensor] == "global"
        out.append(_Read(access.tensor, is_global))
    return out


def passes(cascade: Cascade, rank: str = "M") -> PassReport:
    """Passes over `rank` needed by `cascade` (see the module docstring)."""
    if rank not in cascade.ranks:
        raise CascadeError(
            f"unknown rank {rank!r} (ranks: {', '.join(cascade.ranks)})", cascade.file
        )
    rvars = cascade.rank_vars(rank)
    kind: dict[str, str] = {}
    complete: dict[str, int] = {}
    for name, decl in cascade.inputs.items():
        streamed = bool(set(decl.indices) & rvars)
        kind[name] = "streamed" if streamed else "global"
        complete[name] = 1 if streamed else 0
    mains = [e for e in cascade.einsums if not e.is_initial]
    iterates = {e.name: bool((e.output_vars | e.reduced_vars) & rvars) for e in mains}
    for e in mains:
        kind[e.name] = "streamed" if e.output_vars & rvars else "global"
        complete[e.name] = 0
    run_pass: dict[str, int | None] = {}
    # The passes are the least fixed point of monotone max-rules, so any sweep order gives the
    # same result; sweeping in dependency order converges in a few sweeps (not one per statement).
    ordered = _dependency_order(cascade, mains)
    for _ in range(4 * len(mains) + 4):
        changed = False
        for e in ordered:
            reads = _reads(cascade, e, kind, rvars)
            if iterates[e.name]:
                value = max(
                    [1] + [complete[r.tensor] + (1 if r.is_global else 0) for r in reads]
                )
                run_pass[e.name] = value
            else:
                value = max([0] + [complete[r.tensor] for r in reads])
                run_pass[e.name] = None
            if value != complete[e.name]:
                complete[e.name] = value
                changed = True
        if not changed:
            break
    else:
        return _unbounded(cascade, rank, mains, iterates, kind, complete, rvars)
    total = max([p for p in run_pass.values() if p is not None], default=0)
    einsums = [EinsumPass(e.name, run_pass[e.name], kind[e.name], complete[e.name]) for e in mains]
    live, restreamed = [], []
    for e in mains:
        if run_pass[e.name] is None:
            continue
        for r in _reads(cascade, e, kind, rvars):
            if r.is_global or kind[r.tensor] != "streamed":
                continue
            if complete[r.tensor] < run_pass[e.name]:
                target = restreamed if r.tensor in cascade.inputs else live
                if r.tensor not in target:
                    target.append(r.tensor)
    order = {e.name: i for i, e in enumerate(mains)}
    live.sort(key=order.get)
    by_pass: dict[int, list[Einsum]] = {}
    for e in mains:
        if run_pass[e.name] is not None:
            by_pass.setdefault(run_pass[e.name], []).append(e)
    chains = {k: _chain(cascade, by_pass.get(k, []), k, complete, kind, rvars) for k in range(2, total + 1)}
    return PassReport(cascade.name, rank, total, einsums, live, chains, restreamed)


def _unbounded(cascade, rank, mains, iterates, kind, complete, rvars) -> PassReport:
    """The report of a rank whose passes do not converge: a recurrence over another rank reads,
    at each step, a global result (over `rank`) of its previous step, so every step needs one
    more pass. The loop is the cycle through the tensors whose pass still grows."""
    growing = set()
    for e in mains:  # one more sweep: what still grows
        reads = _reads(cascade, e, kind, rvars)
        if iterates[e.name]:
            value = max([1] + [complete[r.tensor] + (1 if r.is_global else 0) for r in reads])
        else:
            value = max([0] + [complete[r.tensor] for r in reads])
        if value != complete[e.name]:
            growing.add(e.name)
        complete[e.name] = value
    sub = cascade.graph.subgraph(growing)
    try:
        cycle = [u for u, _ in nx.find_cycle(sub)]
    except nx.NetworkXNoCycle:
        cycle = sorted(growing)
    order = {e.name: i for i, e in enumerate(mains)}
    start = min(range(len(cycle)), key=lambda i: order.get(cycle[i], 0)) if cycle else 0
    chain = cycle[start:] + cycle[:start] + cycle[start:start + 1]
    steps = [cascade.einsum(n).iterative_var for n in cycle if cascade.einsum(n).iterative_var]
    rank_of = {v: r for r in cascade.ranks for v in cascade.rank_vars(r)}
    grows = rank_of.get(steps[0], cascade.var_rank.get(steps[0])) if steps else "the recurrence"
    einsums = [EinsumPass(e.name, None if e.name in growing or not iterates[e.name] else complete[e.name],
                          kind[e.name], complete[e.name]) for e in mains]
    return PassReport(cascade.name, rank, None, einsums, [], {}, [], grows, chain)


def _dependency_order(cascade: Cascade, mains: list[Einsum]) -> list[Einsum]:
    """`mains` with producers before consumers (recurrence loops kept together), ties by statement order."""
    import networkx as nx

    cached = cascade.__dict__.get("_pass_order")
    if cached is not None and cached[0] == len(cascade.einsums):
        return cached[1]
    position = {e.name: i for i, e in enumerate(mains)}
    graph = nx.DiGraph()
    graph.add_nodes_from(position)
    graph.add_edges_from((u, v) for u, v in cascade.graph.edges if u in position and v in position)
    condensed = nx.condensation(graph)
    key = lambda c: min(position[n] for n in condensed.nodes[c]["members"])  # noqa: E731
    order = []
    for comp in nx.lexicographical_topological_sort(condensed, key=key):
        order.extend(sorted(condensed.nodes[comp]["members"], key=position.get))
    result = [mains[position[n]] for n in order]
    cascade.__dict__["_pass_order"] = (len(cascade.einsums), result)
    return result


def _chain(cascade, in_pass_k, k, complete, kind, rvars) -> list[str]:
    """Einsums that force pass k: a tensor streamed in pass k-1, the global result reduced
    from it (complete only at the end of pass k-1), and the first Einsum of pass k reading it.
    `in_pass_k`: the Einsums that run in pass k, in statement order."""
    for e in in_pass_k:
        for r in _reads(cascade, e, kind, rvars):
            if r.is_global and complete[r.tensor] == k - 1:
                chain = [r.tensor, e.name]
                if r.tensor in cascade.inputs:
                    return chain
                producer = cascade.einsum(r.tensor)
                sources = [s.tensor for s in _reads(cascade, producer, kind, rvars)
                           if not s.is_global and complete[s.tensor] == k - 1]
                return ([sources[0]] if sources else []) + chain
    return []


def all_passes(cascade: Cascade) -> list[PassReport]:
    """Pass reports for every declared rank."""
    return [passes(cascade, r) for r in cascade.ranks]
