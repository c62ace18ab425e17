"""Map a cascade onto a two-party secure-computation backend: protocol calls, bytes, rounds, latency.

Every operator of every Einsum becomes protocol calls priced by a `BackendProfile`:

- an elementwise function (exp, rsqrt, relu, gelu, ...) costs once per element of its argument
  (the points of the variables the argument depends on, so a row reciprocal is per row);
- `max`/`min` over n elements is a comparison tree: n - 1 `max` calls per row in ceil(log2 n)
  levels of rounds; binary `max(a, b)` is one `max` call per element;
- sums, additions, unary minus, constants and products with public values are free;
- a product of two secret tensors is a secret multiplication (`mul`) per element, unless it is
  contracted (a summed variable occurs in both factors and one factor is reused across the other's
  variables): then it is one batched secret matrix product (`matmul_secret`), priced per element
  of both operands plus the output, as the protocols exchange operands and results, not products;
- a contraction of a secret tensor with a plaintext input (a weight the server holds) is a
  `matmul_plain`: communication per element of the secret operand plus the output, compute per MAC;
- division by a secret value is a reciprocal of the divisor (per element of the divisor) and a
  secret multiplication; division by a public value is free;
- a cascade whose name is an operation of the profile (`layernorm`) is that one primitive,
  applied once per element of its output.

Rounds follow the critical path of the cascade graph (`c.graph` without its delayed edges): an
Einsum's rounds are the longest chain of protocol calls through its expression, a recurrence
(an iterative tensor) costs its per-step rounds once per step, and independent Einsums overlap.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
import sympy

import einsum_cascade as ec
from einsum_cascade.cost import numeric_points
from mappings.size_completion import bind_split_ranks
from mappings.targets.private_inference.profiles import BackendProfile, Network
from einsum_cascade.ast import Access, Binary, Call, Node, Number, Reduce, Size, Unary, Var, children, value_vars

FUNCTION_OPS = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "recip": "recip", "abs": "abs",
    "relu": "relu", "sigmoid": "sigmoid", "softplus": "softplus", "tanh": "tanh", "elu": "elu",
    "erf": "erf", "square": "mul", "max": "max", "min": "max",
}
BLOCK_OPS = ("layernorm",)


@dataclass(frozen=True)
class ProtocolCall:
    """One batched protocol call: `elements` applications of `op` inside Einsum `einsum`."""

    einsum: str
    op: str
    elements: int
    comm_bytes: float
    rounds: int
    compute_s: float


@dataclass
class SecureCost:
    """Cost of running something under 2PC: bytes on the wire, rounds, compute seconds, with breakdowns."""

    comm_bytes: float = 0.0
    rounds: int = 0
    compute_s: float = 0.0
    by_einsum: dict[str, float] = field(default_factory=dict)  # bytes
    by_op: dict[str, float] = field(default_factory=dict)  # bytes
    calls: list[ProtocolCall] = field(default_factory=list)

    def latency_s(self, network: Network) -> float:
        """compute + bytes / bandwidth + rounds * RTT, in seconds."""
        return network.latency_s(self.comm_bytes, self.rounds, self.compute_s)

    def to_json(self, networks: list[Network]) -> dict:
        """Bytes, rounds, compute seconds, latency (seconds) per network and the byte breakdowns."""
        return {
            "comm_bytes": self.comm_bytes,
            "rounds": self.rounds,
            "compute_s": self.compute_s,
            "latency_s": {n.name: self.latency_s(n) for n in networks},
            "breakdown": {"by_einsum": dict(self.by_einsum), "by_op": dict(self.by_op)},
        }


class _Counter:
    """Counts points of iteration spaces of one cascade at bound sizes (where-clauses honoured).

    The counting is `einsum_cascade.cost.numeric_points`: per-row bounds of the innermost
    constrained variable, never a dense mask over the whole space."""

    def __init__(self, c: ec.Cascade, sizes: dict[str, float]):
        self.c = c
        self.sizes = sizes
        self._points = numeric_points(c, sizes)

    def extent(self, var: str) -> int:
        return int(self.sizes[self.c.var_rank[var]])

    def points(self, variables: set[str] | frozenset[str], where: tuple = ()) -> int:
        """Number of points over `variables`, keeping those comparisons whose variables all lie in them."""
        return int(self._points(frozenset(variables), tuple(where)))


class _EinsumMapper:
    """Turns one Einsum's expression into protocol calls; returns its rounds (critical path)."""

    def __init__(self, cascade_mapper: "CascadeMapper", einsum: ec.Einsum):
        self.m = cascade_mapper
        self.e = einsum
        self.variables = set(cascade_mapper.c.variables)

    def vars_of(self, node: Node) -> set[str]:
        return value_vars(node, self.variables)

    def points(self, variables: set[str]) -> int:
        return self.m.counter.points(variables, self.m.where[self.e.name])

    def call(self, op: str, elements: int, macs: int = 0) -> int:
        """Record one batched call; return its rounds."""
        cost = self.m.profile.op(op)
        per = macs if op.startswith("matmul") else elements
        record = ProtocolCall(self.e.name, op, elements, cost.bytes_per_element * elements, cost.rounds,
                              cost.seconds_per_element * per)
        self.m.calls.append(record)
        return cost.rounds

    def secret(self, node: Node) -> bool:
        if isinstance(node, Access):
            return node.tensor in self.m.secret_tensors
        return any(self.secret(child) for child in children(node))

    def reads_plaintext(self, node: Node) -> bool:
        return any(isinstance(n, Access) and n.tensor in self.m.plaintext_tensors for n in _walk(node))

    def rounds(self, node: Node, summed: frozenset[str] = frozenset()) -> int:
        """Record the calls of `node` and return the rounds of its critical path.

        `summed`: variables a sum directly around this node (through + and -) reduces, which
        turns a product of two tensors sharing such a variable into a contraction."""
        if isinstance(node, (Number, Size, Var)):
            return 0
        if isinstance(node, Access):
            return 0
        if isinstance(node, Unary):
            return self.rounds(node.operand, summed)
        if isinstance(node, Binary):
            if node.op in "+-":
                return max(self.rounds(node.left, summed), self.rounds(node.right, summed))
            if node.op == "*":
                return self.product(node, summed)
            return self.division(node)
        if isinstance(node, Call):
            inner = max((self.rounds(a) for a in node.args), default=0)
            if not any(self.secret(a) for a in node.args):
                return inner
            op = self.m.function_op(node.func)
            return inner + self.call(op, self.points(self.vars_of(node)))
        if isinstance(node, Reduce):
            if node.op == "sum":
                return self.rounds(node.body, summed=frozenset(node.vars))
            inner = self.rounds(node.body)
            if not self.secret(node.body):
                return inner
            n_in = self.points(self.vars_of(node.body))
            n_out = self.points(self.vars_of(node))
            if n_in <= n_out:
                return inner
            depth = math.ceil(math.log2(n_in / n_out))
            op = "mul" if node.op == "prod" else "max"
            self.call(op, n_in - n_out)
            return inner + depth * self.m.profile.op(op).rounds
        raise TypeError(f"unknown expression node {node!r}")

    def product(self, node: Binary, summed: frozenset[str]) -> int:
        inner = max(self.rounds(node.left), self.rounds(node.right))
        left_secret, right_secret = self.secret(node.left), self.secret(node.right)
        if not (left_secret or right_secret):
            return inner
        lv, rv = self.vars_of(node.left), self.vars_of(node.right)
        contracted = lv & rv & summed
        is_contraction = bool(contracted) and lv != rv
        if left_secret and right_secret:
            if is_contraction:
                out = self.points((lv | rv) - contracted)
                return inner + self.call("matmul_secret", self.points(lv) + self.points(rv) + out,
                                         macs=self.points(lv | rv))
            return inner + self.call("mul", self.points(lv | rv))
        public = node.right if left_secret else node.left
        secret_vars = lv if left_secret else rv
        if is_contraction and self.reads_plaintext(public):
            out = self.points((lv | rv) - contracted)
            return inner + self.call("matmul_plain", self.points(secret_vars) + out,
                                     macs=self.points(lv | rv))
        return inner  # product with a public value: local

    def division(self, node: Binary) -> int:
        inner = max(self.rounds(node.left), self.rounds(node.right))
        if not self.secret(node.right):
            return inner  # divide by a public value: local
        r = inner + self.call("recip", self.points(self.vars_of(node.right)))
        if self.secret(node.left):
            r += self.call("mul", self.points(self.vars_of(node)))
        return r


def _walk(node: Node):
    yield node
    for child in children(node):
        yield from _walk(child)


def _check_supported(c: ec.Cascade) -> None:
    """CascadeError for the constructs of cascade language v2 that have no secure mapping yet
    (comparisons, select, kth, Boolean or data-dependent where conditions)."""
    from einsum_cascade.ast import BoolOp, Compare, Comparison, Not, walk

    for e in c.einsums:
        nodes = list(walk(e.expr)) + [n for cond in e.where for n in walk(cond)]
        for n in nodes:
            what = (f"{n.op} reduction" if isinstance(n, Reduce) and n.op not in ("sum", "max", "min", "prod")
                    else "select" if isinstance(n, Call) and n.func == "select"
                    else "a comparison or and/or/not" if isinstance(n, (Compare, BoolOp, Not))
                    else None)
            if what is None and isinstance(n, Reduce) and any(not isinstance(w, Comparison) for w in n.where):
                what = "a Boolean or data-dependent where"
            if what:
                raise ec.CascadeError(f"{e.name}: {what} has no secure-computation mapping", c.file, e.line, 1)


class CascadeMapper:
    """Prices one cascade at bound sizes on one backend profile."""

    def __init__(self, c: ec.Cascade, sizes: dict[str, float], profile: BackendProfile,
                 plaintext: frozenset[str] | set[str] = frozenset(), gelu_form: str = "tanh"):
        unknown = set(plaintext) - set(c.inputs)
        if unknown:
            raise ec.CascadeError(f"plaintext input(s) {', '.join(sorted(unknown))} are not inputs of "
                                  f"cascade {c.name} (inputs: {', '.join(c.inputs)})", c.file)
        if gelu_form not in ("tanh", "erf"):
            raise ValueError(f"gelu_form must be 'tanh' or 'erf', got {gelu_form!r}")
        _check_supported(c)
        self.c = c
        self.sizes = bind_split_ranks(c, sizes)
        self.profile = profile
        self.gelu_form = gelu_form
        self.counter = _Counter(c, self.sizes)
        self.calls: list[ProtocolCall] = []
        self.where = self._effective_where()
        self.plaintext_tensors = set(plaintext)
        self.secret_tensors = set(c.inputs) - set(plaintext)
        for e in c.einsums:  # statement order: a tensor's reads are classified before it
            if e.is_initial:
                continue
            if any(a.tensor in self.secret_tensors for a in e.reads):
                self.secret_tensors.add(e.name)
            elif any(a.tensor in self.plaintext_tensors for a in e.reads):
                self.plaintext_tensors.add(e.name)

    def _effective_where(self) -> dict[str, tuple]:
        """Per Einsum: its where-clause plus those of the tensors it reads (absent points stay absent).

        A read tensor's condition is carried over when the read indexes it with plain variables."""
        support: dict[str, tuple] = {}
        where: dict[str, tuple] = {}
        for e in self.c.einsums:
            if e.is_initial:
                continue
            clauses = list(e.where)
            for access in e.reads:
                definition = support.get(access.tensor)
                if not definition or not all(isinstance(i, sympy.Symbol) for i in access.indices):
                    continue
                lhs_vars, conds = definition
                if len(lhs_vars) != len(access.indices):
                    continue
                rename = dict(zip(lhs_vars, access.indices))
                for comp in conds:
                    renamed = type(comp)(comp.left.xreplace(rename), comp.op, comp.right.xreplace(rename))
                    if renamed not in clauses:
                        clauses.append(renamed)
            where[e.name] = tuple(clauses)
            if all(isinstance(i, sympy.Symbol) for i in e.lhs):
                lhs_names = {str(i) for i in e.lhs}
                kept = tuple(comp for comp in clauses
                             if {str(s) for s in (comp.left - comp.right).free_symbols} <= lhs_names | set(self.sizes))
                support[e.name] = (tuple(e.lhs), kept)
        return where

    def function_op(self, func: str) -> str:
        """The profile operation of cascade function `func`; CascadeError if it has none."""
        if func == "gelu":
            return f"gelu_{self.gelu_form}"
        if func not in FUNCTION_OPS:
            raise ec.CascadeError(f"function '{func}' has no secure-computation mapping", self.c.file)
        return FUNCTION_OPS[func]

    def einsum_rounds(self) -> dict[str, int]:
        """Rounds of each (non-initial) Einsum; for an iterative tensor, of one step."""
        rounds = {}
        for e in self.c.einsums:
            if e.is_initial:
                continue
            summed = frozenset(e.implicit_vars)
            r = _EinsumMapper(self, e).rounds(e.expr, summed)
            rounds[e.name] = r
        return rounds

    def cost(self) -> SecureCost:
        """Bytes, rounds and compute seconds of one run of the cascade (no fixed per-run cost)."""
        if self.c.name in BLOCK_OPS and self.profile.has(self.c.name):
            return self._block_cost()
        return self._summarise(self.critical_path_rounds(self.einsum_rounds()))

    def critical_path_rounds(self, einsum_rounds: dict[str, int]) -> int:
        """Longest chain of rounds through the cascade graph.

        A recurrence loop (a strongly connected set of tensors, closed by delayed reads) runs its
        steps one after another: its weight is steps x the longest chain through one step."""
        graph = self.c.graph
        condensed = nx.condensation(graph)
        weight: dict[int, int] = {}
        for scc, data in condensed.nodes(data=True):
            members = data["members"]
            step = graph.subgraph(members).copy()
            step.remove_edges_from([(u, v) for u, v, d in step.edges(data=True) if d.get("delayed")])
            finish: dict[str, int] = {}
            for node in nx.topological_sort(step):
                start = max((finish[p] for p in step.predecessors(node)), default=0)
                finish[node] = start + einsum_rounds.get(node, 0)
            steps = max((self.counter.extent(self.c.einsum(m).iterative_var) for m in members
                         if m in self.c.defined and self.c.einsum(m).iterative_var), default=1)
            weight[scc] = steps * max(finish.values(), default=0)
        total: dict[int, int] = {}
        for scc in nx.topological_sort(condensed):
            start = max((total[p] for p in condensed.predecessors(scc)), default=0)
            total[scc] = start + weight[scc]
        return max(total.values(), default=0)

    def _block_cost(self) -> SecureCost:
        """The whole cascade as one primitive of the profile, once per element of its output."""
        out = self.c.einsum(self.c.outputs[0])
        n = self.counter.points(out.output_vars, out.where)
        cost = self.profile.op(self.c.name)
        self.calls.append(ProtocolCall(self.c.name, self.c.name, n, cost.bytes_per_element * n, cost.rounds,
                                       cost.seconds_per_element * n))
        return self._summarise(cost.rounds)

    def _summarise(self, rounds: int) -> SecureCost:
        by_einsum: dict[str, float] = defaultdict(float)
        by_op: dict[str, float] = defaultdict(float)
        for call in self.calls:
            by_einsum[call.einsum] += call.comm_bytes
            by_op[call.op] += call.comm_bytes
        return SecureCost(comm_bytes=sum(c.comm_bytes for c in self.calls), rounds=rounds,
                          compute_s=sum(c.compute_s for c in self.calls), by_einsum=dict(by_einsum),
                          by_op=dict(by_op), calls=list(self.calls))


def map_cascade(c: ec.Cascade, sizes: dict[str, float], profile: BackendProfile,
                plaintext: frozenset[str] | set[str] = frozenset(), gelu_form: str = "tanh",
                include_fixed: bool = False) -> SecureCost:
    """Bytes, rounds and compute seconds of one run of cascade `c` at `sizes` on `profile`.

    `plaintext`: input tensors the server holds in the clear (weights); the rest are secret.
    `include_fixed`: add the profile's one-time per-run cost."""
    cost = CascadeMapper(c, sizes, profile, plaintext, gelu_form).cost()
    if include_fixed:
        cost = add_fixed(cost, profile)
    return cost


def add_fixed(cost: SecureCost, profile: BackendProfile) -> SecureCost:
    """`cost` plus the profile's one-time per-run cost (booked under op and Einsum 'fixed')."""
    fixed = profile.fixed
    by_op = dict(cost.by_op)
    by_einsum = dict(cost.by_einsum)
    if fixed.bytes:
        by_op["fixed"] = by_op.get("fixed", 0.0) + fixed.bytes
        by_einsum["fixed"] = by_einsum.get("fixed", 0.0) + fixed.bytes
    return SecureCost(cost.comm_bytes + fixed.bytes, cost.rounds + fixed.rounds, cost.compute_s + fixed.seconds,
                      by_einsum, by_op, list(cost.calls))
