"""The intermediate representation: ranks, tensors, Einsums and the cascade that links them."""
from __future__ import annotations

from dataclasses import dataclass, field
import networkx as nx
import numpy as np
import sympy

from einsum_cascade.ast import Access, Comparison, Node, size_symbol, var_symbol

@dataclass(frozen=True)
class Rank:
    """A rank (a dimension of the iteration space); its size is the symbol of its name.

    A partitioned rank `M = M1 * M0` has parts ("M1", "M0"): variable m = m1*M0 + m0.
    """

    name: str
    parts: tuple[str, ...] = ()

    @property
    def symbol(self) -> sympy.Symbol:
        return size_symbol(self.name)

    @property
    def var(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class TensorDecl:
    """An input tensor: its name and its index variables."""

    name: str
    indices: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True)
class Tensor:
    """Any tensor of a cascade: its name, number of indices, role and, for an iterative tensor,
    the index slot its recurrence steps (`RM[m1+1, p]`: slot 0)."""

    name: str
    arity: int
    role: str  # "input", "intermediate" or "output"
    iterative_slot: int | None = None


@dataclass(frozen=True)
class TransposedRead:
    """A read that puts a rank in another slot than its tensor declares (`QK[p,m]` of a tensor
    `QK[m,p]`): valid only where the extents of the swapped ranks are equal."""

    access: Access
    declared: tuple  # the tensor's index variables per slot (None: not a plain variable)
    read: tuple  # the read's index variables per slot (None: not a plain variable)
    slots: tuple  # the slots whose rank differs from the declared one

    def describe(self, file: str) -> str:
        decl = ", ".join(v or "?" for v in self.declared)
        read = ", ".join(v or "?" for v in self.read)
        return (f"{file}:{self.access.line}:{self.access.col}: {self.access.tensor}[{read}] reads a "
                f"tensor declared {self.access.tensor}[{decl}] in another order")


@dataclass
class Einsum:
    """One statement `NAME[lhs] = expr [where ...]` of a cascade."""

    name: str
    lhs: tuple  # tuple[sympy.Expr, ...]
    expr: Node
    where: tuple[Comparison, ...]
    line: int
    is_initial: bool = False
    iterative_var: str | None = None
    output_vars: frozenset[str] = frozenset()
    implicit_vars: frozenset[str] = frozenset()
    reduced_vars: frozenset[str] = frozenset()
    reads: list[Access] = field(default_factory=list)
    space_where: tuple = ()  # conjuncts of `where` over the top-level space (the rest sit in Reduce.where)

    @property
    def space_vars(self) -> frozenset[str]:
        """Variables of the top-level iteration space: output plus implicitly reduced."""
        return self.output_vars | self.implicit_vars


@dataclass
class Cascade:
    """A parsed cascade: declarations, Einsums in statement order, and the dependency graph."""

    name: str
    ranks: dict[str, Rank]
    params: list[str]
    inputs: dict[str, TensorDecl]
    outputs: list[str]
    einsums: list[Einsum]
    file: str = "<string>"
    arity: dict[str, int] = field(default_factory=dict)
    iterative_slot: dict[str, int] = field(default_factory=dict)
    transposed_reads: list[TransposedRead] = field(default_factory=list)
    defaults: dict[str, int | float] = field(default_factory=dict)  # `size NAME = NUMBER` statements

    def __post_init__(self) -> None:
        self.var_rank: dict[str, str] = {}
        for rank in self.ranks.values():
            self.var_rank[rank.var] = rank.name
            for part in rank.parts:
                self.var_rank[part.lower()] = part
        self.graph = self._build_graph()

    # -- names -------------------------------------------------------------------------------
    @property
    def variables(self) -> frozenset[str]:
        """Every rank variable of the cascade."""
        return frozenset(self.var_rank)

    @property
    def size_names(self) -> list[str]:
        """Every size symbol: ranks and their parts."""
        return sorted({name for name in self.var_rank.values()} | set(self.ranks))

    def rank_vars(self, rank: str) -> set[str]:
        """The R-variables of rank `rank`: its own variable and those of its parts."""
        r = self.ranks[rank]
        return {r.var} | {p.lower() for p in r.parts}

    def _index(self) -> dict[tuple[str, bool], Einsum]:
        """(name, is_initial) -> the first such Einsum; rebuilt if `einsums` changed length."""
        cached = self.__dict__.get("_einsum_index")
        if cached is None or cached[0] != len(self.einsums):
            index: dict[tuple[str, bool], Einsum] = {}
            for e in self.einsums:
                index.setdefault((e.name, e.is_initial), e)
            cached = (len(self.einsums), index)
            self.__dict__["_einsum_index"] = cached
        return cached[1]

    def einsum(self, name: str) -> Einsum:
        """The main (non-initial) Einsum that defines tensor `name`."""
        try:
            return self._index()[(name, False)]
        except KeyError:
            raise KeyError(name) from None

    def initial(self, name: str) -> Einsum | None:
        """The initial-value Einsum of an iterative tensor, or None."""
        return self._index().get((name, True))

    @property
    def tensors(self) -> dict[str, Tensor]:
        """Every tensor: inputs first, then defined tensors in statement order."""
        out = {}
        for name in list(self.inputs) + self.defined:
            role = "input" if name in self.inputs else "output" if name in self.outputs else "intermediate"
            out[name] = Tensor(name, self.arity[name], role, self.iterative_slot.get(name))
        return out

    @property
    def defined(self) -> list[str]:
        """Tensors defined by Einsums, in statement order of their main definition."""
        return [e.name for e in self.einsums if not e.is_initial]

    def is_delayed_read(self, access: Access) -> bool:
        """True when `access` reads an iterative tensor at the previous step (`RM[m1, p]`)."""
        slot = self.iterative_slot.get(access.tensor)
        if slot is None:
            return False
        var = self.einsum(access.tensor).iterative_var
        return access.indices[slot] == var_symbol(var)

    def is_final_read(self, access: Access) -> bool:
        """True when `access` reads an iterative tensor at its final index (`RNV[f, M1, p]`)."""
        slot = self.iterative_slot.get(access.tensor)
        if slot is None:
            return False
        var = self.einsum(access.tensor).iterative_var
        return access.indices[slot] == size_symbol(self.var_rank[var])

    def _build_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(self.inputs, input=True)
        for e in self.einsums:
            graph.add_node(e.name, input=False)
        for e in self.einsums:
            for access in e.reads:
                delayed = self.is_delayed_read(access)
                if graph.has_edge(access.tensor, e.name):
                    graph.edges[access.tensor, e.name]["delayed"] &= delayed
                else:
                    graph.add_edge(access.tensor, e.name, delayed=delayed)
        return graph

    # -- numbers -----------------------------------------------------------------------------
    def bind_sizes(
        self, inputs: dict[str, np.ndarray] | None = None, sizes: dict[str, float] | None = None
    ) -> dict[str, float]:
        """Every rank size and param as a number, inferred from input shapes where possible."""
        from einsum_cascade.sizes import bind_sizes

        bound = bind_sizes(self, inputs or {}, sizes or {})
        self.check_transposed_reads(bound)
        return bound

    def check_transposed_reads(self, sizes: dict[str, float]) -> None:
        """CascadeError at the read when a transposed read swaps ranks of different extents."""
        from einsum_cascade.errors import CascadeError

        for t in self.transposed_reads:
            for d in t.slots:
                want, got = self.var_rank[t.declared[d]], self.var_rank[t.read[d]]
                if want in sizes and got in sizes and sizes[want] != sizes[got]:
                    raise CascadeError(
                        f"{t.access.tensor} is declared {t.access.tensor}[{', '.join(v or '?' for v in t.declared)}] "
                        f"but read as {t.access.tensor}[{', '.join(v or '?' for v in t.read)}]: index {d + 1} "
                        f"ranges over {got} = {sizes[got]:g} where the tensor has {want} = {sizes[want]:g}",
                        self.file, t.access.line, t.access.col)

    def tensor_shape(self, name: str, sizes: dict[str, float]) -> tuple[int, ...]:
        """The extent of each dimension of a tensor for bound sizes."""
        from einsum_cascade.sizes import tensor_shape

        return tensor_shape(self, name, sizes)

    def evaluate(
        self, inputs: dict[str, np.ndarray], sizes: dict[str, float] | None = None
    ) -> dict[str, np.ndarray]:
        """Evaluate the cascade on numpy inputs; returns the outputs by name (absent points read 0)."""
        from einsum_cascade.evaluate import evaluate

        return evaluate(self, inputs, sizes or {})
