"""The rewriter: finds the reductions that force extra passes and rewrites each with the rules.

Over rank R (variable m), the pass analysis marks every tensor early (streamed in pass 1, or an
input), late-streamed (it keeps m but needs a global complete only after a pass) or a global.
Each reduction over m that runs in pass >= 2 is rewritten:

1. its body is inlined through the late-streamed elementwise tensors it reads (their `where`
   clauses join the reduction's), so it reads only early tensors, inputs and globals;
2. `deferred.separate` splits it into terms coeff(globals) * body(streamed) (refusing, with the
   reason, a factor that mixes both: `refusals`);
3. each distinct streamed body becomes a sum in pass 1: a plain reduction, or, when it holds
   exp(x), a running sum under a running maximum of x (`online`);
4. the coefficients multiply the finished sums after the pass; globals equal to a running
   maximum are read from it and exp factors merged (`correction`).

Globals that are not reductions over m and the tensors the output no longer needs are left as
they are or dropped (dead-code elimination). The result is a list of Einsums with, for each,
the rule that produced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import sympy

from einsum_cascade.ast import (
    FUNCTIONS_1,
    FUNCTIONS_2,
    FUNCTIONS_3,
    KTH_REDUCTIONS,
    REDUCTIONS,
    Access,
    Comparison,
    Node,
    Reduce,
    Unary,
    children,
    size_symbol,
    value_vars,
    var_symbol,
    walk,
)
from einsum_cascade.fuse import correction, moments, online
from einsum_cascade.fuse.conditions import canon as _condition_key
from einsum_cascade.fuse.conditions import condition_vars, reads, subs_condition
from einsum_cascade.fuse.algebra import Atoms, to_ast, to_sympy
from einsum_cascade.fuse.deferred import separate
from einsum_cascade.fuse.normalise import normalise, positive_tensors
from einsum_cascade.fuse.refusals import Refusal, text
from einsum_cascade.ir import Cascade, Einsum
from einsum_cascade.passes import passes

EXHAUSTIVE_LEVELS = 8  # earlier passes tried one by one; beyond, a bisection (Rewriter._earliest)
_RESERVED = {"cascade", "rank", "param", "input", "output", "where", "and", "inf"}


@dataclass
class Emitted:
    """One Einsum of the rewritten cascade and why it is there."""

    einsum: Einsum
    rule: str          # "original", "deferred normalisation", "running extremum", ...
    note: str = ""
    correction: bool = False  # a correction term: work the input did not have


@dataclass
class Rewrite:
    """What the rewriter produced."""

    einsums: list[Emitted]
    tiled: bool
    rules: list[str]
    rewritten: dict[str, list[str]]            # reduction -> rules applied to it
    refused: dict[str, str]                    # reduction or tensor -> reason
    matches: list[str] = field(default_factory=list)


def _einsum(name: str, lhs: tuple, expr: Node, where: tuple, initial: bool = False) -> Einsum:
    """An Einsum to print (the parse of the printed text fills in the rest)."""
    return Einsum(name=name, lhs=tuple(lhs), expr=expr, where=tuple(where), line=0, is_initial=initial)


def _unique(where) -> tuple[Comparison, ...]:
    """The comparisons without repeats (same difference and operator), in order."""
    seen, out = set(), []
    for c in where:
        key = _canon(c)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return tuple(out)


def _canon(c) -> str:
    return _condition_key(c)


class Rewriter:
    """State of one rewrite of `cascade` over `rank`; see the module docstring."""

    def __init__(self, cascade: Cascade, rank: str, tile_names: tuple[str, str]):
        self.cascade = cascade
        self.cascade_tensors = frozenset(cascade.tensors)  # the cascade's own tensors (rules make others)
        self.rank = rank
        self.rvar = cascade.ranks[rank].var
        self.rvars = cascade.rank_vars(rank)
        self.parts = tuple(p.lower() for p in cascade.ranks[rank].parts)  # (m1, m0) of a split rank
        self.stream: tuple[str, ...] = (self.rvar,)  # the variables of the rank being reduced
        self.report = passes(cascade, rank)
        self.info = {e.name: e for e in self.report.einsums}
        self.atoms = Atoms(positive=positive_tensors(cascade))
        self.variables = set(cascade.variables)
        m1_size, m0_size = tile_names
        self.m1_size = m1_size
        self.tile = (m1_size.lower(), m0_size.lower(), m0_size)
        self.variables |= {m1_size.lower(), m0_size.lower()}
        self.taken = (set(cascade.tensors) | set(cascade.size_names) | set(cascade.params)
                      | set(cascade.variables) | set(tile_names) | _RESERVED
                      | FUNCTIONS_1 | FUNCTIONS_2 | FUNCTIONS_3 | REDUCTIONS | KTH_REDUCTIONS
                      | {"or", "not"})
        self.pending: list[Emitted] = []
        self.running: dict[tuple, online.RunningMax] = {}
        self.sums: dict[tuple, sympy.Expr] = {}
        self.tiled = False
        self.x_tensors: dict[str, str] = {}
        self.factors: dict[tuple, str] = {}
        self.aliases: dict = {}
        self._known: dict[int, dict] = {}
        self.level = 1  # the pass the reduction being rewritten is moved into
        self.made_in: dict[str, int] = {}  # tensor made by a rule -> the pass it is complete in

    # -- names and emission ------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}{k}", k + 1
        self.taken.add(name)
        return name

    def emit(self, name, lhs, expr, where, rule, note, initial=False, correction=False) -> None:
        e = _einsum(name, tuple(sympy.sympify(i) for i in lhs), expr, _unique(where), initial)
        self.made_in.setdefault(name, self.level)
        self.pending.append(Emitted(e, rule, note, correction))

    def show(self, expr: sympy.Expr) -> str:
        return text(expr, self.atoms, self.variables)

    # -- classification ----------------------------------------------------------------------
    def _kind(self, tensor: str) -> tuple[str, int]:
        if tensor in self.cascade.inputs:
            streamed = bool(set(self.cascade.inputs[tensor].indices) & self.rvars)
            return ("streamed", 1) if streamed else ("global", 0)
        info = self.info[tensor]
        return info.kind, info.complete

    def is_late_global(self, access: Access) -> bool:
        """A global complete only at the end of pass `level` or later (not yet known while the
        reduction streams in pass `level`)."""
        if access.tensor not in self.cascade_tensors:  # made by a rule: final reads are late
            return (bool(access.indices) and access.indices[0] == size_symbol(self.m1_size)
                    and self.made_in.get(access.tensor, self.level) >= self.level)
        kind, complete = self._kind(access.tensor)
        if self.cascade.is_final_read(access):
            step = self.cascade.einsum(access.tensor).iterative_var
            if step in self.rvars:
                return complete >= self.level
        return kind == "global" and complete >= self.level

    def is_late_streamed(self, tensor: str) -> bool:
        """A tensor that keeps the rank but streams only after pass `level` (it is inlined)."""
        if tensor not in self.cascade_tensors:
            return False
        kind, complete = self._kind(tensor)
        return tensor not in self.cascade.inputs and kind == "streamed" and complete >= self.level + 1

    def late_symbols(self) -> set:
        return {s for s, n in self.atoms.node.items()
                if isinstance(n, Access) and self.is_late_global(n)}

    def node_vars(self, node: Node) -> set[str]:
        return value_vars(node, self.variables)

    def bound_symbols(self, reduced: set[str]) -> set:
        out = {var_symbol(v) for v in reduced}
        for s, n in self.atoms.node.items():
            if self.node_vars(n) & reduced:
                out.add(s)
        return out

    def sym_vars(self, expr: sympy.Expr) -> set[str]:
        out = set()
        for s in expr.free_symbols:
            if s in self.atoms.node:
                out |= self.node_vars(self.atoms.node[s])
            elif s.name in self.variables:
                out.add(s.name)
        return out

    # -- substitution and inlining ------------------------------------------------------------
    @staticmethod
    def lhs_mapping(e: Einsum, access: Access) -> dict | None:
        """lhs variable -> index expression of `access`, when e's lhs are distinct plain variables."""
        mapping = {}
        for index, value in zip(e.lhs, access.indices):
            if not (isinstance(index, sympy.Symbol) and index not in mapping):
                return None
            mapping[index] = value
        return mapping

    def substituted_sympy(self, node: Node, mapping: dict, read=None) -> sympy.Expr:
        def plain(a: Access):
            b = Access(a.tensor, tuple(sympy.sympify(i).subs(mapping, simultaneous=True) for i in a.indices))
            return read(b) if read is not None else self.atoms.symbol(b)

        return to_sympy(node, self.atoms, read=plain).subs(mapping, simultaneous=True)

    @staticmethod
    def subs_comparison(c, mapping: dict):
        """A condition (any kind) with variables replaced."""
        return subs_condition(c, mapping)

    def canon(self, where) -> list[str]:
        return sorted({_canon(c) for c in where})

    def read(self, access: Access, wheres: list, depth: int = 0, nested: list | None = None) -> sympy.Expr:
        """A read inside a reduction's body: late-streamed elementwise tensors are inlined. With
        `nested` (a sum's body), one late-streamed tensor that is itself a sum (`S[m1,p] =
        sum(m0: B)`, a chunk's sum) becomes a placeholder; `reduction` merges the two sums."""
        if not self.is_late_streamed(access.tensor) or self.cascade.is_final_read(access):
            return self.atoms.symbol(access)
        e = self.cascade.einsum(access.tensor)
        name = access.tensor
        if e.iterative_var is not None:
            raise Refusal(f"{name} is a recurrence computed after the pass: inlining it is not supported")
        mapping = self.lhs_mapping(e, access)
        if mapping is None:
            raise Refusal(f"{name} has left-hand indices that are not distinct variables: "
                          "inlining it is not supported")
        if e.reduced_vars:
            inner = _plain_sum(e)
            if nested is None or nested or inner is None:
                raise Refusal(f"{name} reduces over {', '.join(sorted(e.reduced_vars))} after the pass: "
                              "inlining it is supported only for one plain sum read by a sum")
            body, conds = inner
            wheres.extend(self.subs_comparison(c, mapping) for c in conds)
            self.check_conditions(wheres)
            holder = sympy.Dummy(f"sum_{name}", real=True)
            nested.append((holder, tuple(sorted(e.reduced_vars)), name,
                           self.substituted_sympy(body, mapping,
                                                  read=lambda a: self.read(a, wheres, depth + 1))))
            return holder
        if depth > 64:
            raise Refusal(f"inlining through {name} is too deep")
        wheres.extend(self.subs_comparison(c, mapping) for c in e.where)
        self.check_conditions(wheres)
        return self.substituted_sympy(e.expr, mapping,
                                      read=lambda a: self.read(a, wheres, depth + 1))

    # -- tiling helpers ----------------------------------------------------------------------
    def tiled_index(self) -> sympy.Expr:
        m1, m0, M0 = self.tile
        return var_symbol(m1) * size_symbol(M0) + var_symbol(m0)

    def _tile_subs(self) -> dict:
        return {var_symbol(self.rvar): self.tiled_index()}

    def tile_where(self, where) -> tuple[Comparison, ...]:
        return tuple(self.subs_comparison(c, self._tile_subs()) for c in where)

    def tiled_ast(self, expr: sympy.Expr) -> Node:
        """`expr` (sympy over atoms) as an AST with m replaced by m1*M0 + m0 in every read."""
        subs = self._tile_subs()
        tiled = Atoms()
        mapping = {}
        for s in expr.free_symbols:
            if s in self.atoms.node:
                n = self.atoms.node[s]
                if isinstance(n, Access):
                    n = Access(n.tensor, tuple(sympy.sympify(i).subs(subs) for i in n.indices))
                elif self.rvar in self.node_vars(n):
                    raise Refusal("a nested reduction depending on the streamed variable cannot be tiled")
                mapping[s] = tiled.symbol(n)
            elif s == var_symbol(self.rvar):
                mapping[s] = self.tiled_index()
        return to_ast(expr.subs(mapping, simultaneous=True), tiled, self.variables)

    def read_tiled(self, x: sympy.Expr, pv: tuple[str, ...], where) -> Node:
        """x at m = m1*M0 + m0: the atom's own tensor when x is one read, else a new tensor X."""
        if x in self.atoms.node and isinstance(self.atoms.node[x], Access):
            return self.tiled_ast(x)
        key = sympy.srepr(x) + repr(pv) + repr(self.stream)
        name = self.x_tensors.get(key)
        lhs = tuple(var_symbol(v) for v in self.stream + tuple(pv))
        if name is None:
            name = self.fresh("X")
            self.x_tensors[key] = name
            self.emit(name, lhs, to_ast(x, self.atoms, self.variables), where, "running extremum",
                      "the exponent, streamed")
        access = Access(name, lhs)
        return self.tiled_ast(self.atoms.symbol(access))

    def masked(self, tensors: set[str]) -> bool:
        """True when some tensor that `tensors` depend on has a `where` clause."""
        graph = self.cascade.graph
        seen = set(tensors)
        for t in tensors:
            if t in graph:
                seen |= nx.ancestors(graph, t)
        return any(e.where or any(isinstance(n, Reduce) and n.where for n in walk(e.expr))
                   for e in self.cascade.einsums if e.name in seen)

    # -- one reduction -----------------------------------------------------------------------
    def materialise(self, u: sympy.Expr, where) -> sympy.Expr:
        """Factors of u that depend on fewer variables than u and cost operations become streamed
        tensors of their own (computed once per point of their own space, not of the sum's)."""
        groups: dict[frozenset, list] = {}
        for f in sympy.Mul.make_args(u):
            groups.setdefault(frozenset(self.sym_vars(f)), []).append(f)
        every = self.sym_vars(u)
        if len(groups) < 2:
            return u
        out = []
        for vs, fs in groups.items():
            prod = sympy.Mul(*fs)
            if vs < every and self.rvar in vs and not (prod.is_Symbol or prod.is_Number):
                order = (self.rvar,) + tuple(sorted(vs - {self.rvar}))
                name, lhs, new = self._factor_tensor(prod, order, "W")
                if new:
                    mine = [c for c in where if self._where_vars([c]) & self.variables <= vs]
                    self.emit(name, lhs, to_ast(prod, self.atoms, self.variables), mine,
                              "deferred normalisation", f"the streamed factor {self.show(prod)}, "
                              "computed once per point of its own space")
                out.append(self.atoms.symbol(Access(name, lhs)))
            else:
                out.append(prod)
        return sympy.Mul(*out)

    def known_sums(self) -> dict:
        """Sums over m that the cascade already computes in pass `level`: key -> their value."""
        if self.level in self._known:
            return self._known[self.level]
        known = self._known[self.level] = {}
        for e in self.cascade.einsums:
            info = None if e.is_initial else self.info.get(e.name)
            if info is None or info.pass_ != self.level or info.kind != "global":
                continue
            if len(set(e.lhs)) != len(e.lhs) or not all(isinstance(i, sympy.Symbol) for i in e.lhs):
                continue
            keep = tuple(str(i) for i in e.lhs)
            me = self.atoms.symbol(Access(e.name, tuple(e.lhs)))
            if self.rvar in e.implicit_vars:
                reduced, body, where, scale = tuple(sorted(e.implicit_vars)), e.expr, e.where, 1
            else:
                found = [n for n in walk(e.expr) if isinstance(n, Reduce)]
                if len(found) != 1 or found[0].op != "sum" or self.rvar not in found[0].vars:
                    continue
                holder = sympy.Dummy("sum")
                whole = to_sympy(e.expr, self.atoms, reduce=lambda n: holder)
                scale = sympy.diff(whole, holder)
                if scale.free_symbols & {holder} or sympy.simplify(whole - scale * holder) != 0:
                    continue
                if self.sym_vars(scale) or scale == 0:
                    continue
                reduced, body = found[0].vars, found[0].body
                where = tuple(found[0].where)  # its own mask and the Einsum's copied into it
            u = to_sympy(body, self.atoms)
            known[(sympy.srepr(u), tuple(reduced), tuple(self.canon(where)), keep)] = me / scale
        return known

    def sum_of(self, u: sympy.Expr, reduced: tuple[str, ...], where: list, out: tuple[str, ...],
               owner: str, used: list, rules: set) -> sympy.Expr:
        """The value of sum over `reduced` of u (streamed) as an expression of pass-1 results."""
        where = tuple(where)
        reduced_set = set(reduced)
        where_vars = set()
        for c in where:
            where_vars |= condition_vars(c, self.variables)
        exps = [f for f in sympy.Mul.make_args(u) if isinstance(f, sympy.exp)]
        x_vars = self.sym_vars(sympy.Add(*[f.args[0] for f in exps])) if exps else set()
        keep = tuple(v for v in out if v in (self.sym_vars(u) | where_vars | x_vars))
        key = (sympy.srepr(u), reduced, tuple(self.canon(where)), keep)
        if key in self.sums:
            value, rmax = self.sums[key]
            if rmax is not None:
                used.append(rmax)
            return value
        if not exps:
            if u == 1 and not (where_vars & reduced_set):
                value = sympy.Mul(*[size_symbol(self.cascade.var_rank[v]) for v in reduced])
                self.sums[key] = (value, None)
                return value
            known = self.known_sums().get(key)
            if known is not None:
                self.sums[key] = (known, None)
                return known
            name = self.fresh(owner + "_S")
            lhs = tuple(var_symbol(v) for v in keep)
            body = to_ast(self.materialise(u, where), self.atoms, self.variables)
            self.emit(name, lhs, Reduce("sum", reduced, body), where, "deferred normalisation",
                      f"sum of the streamed part {self.show(u)} of {owner}, in the pass")
            value = self.atoms.symbol(Access(name, lhs))
            self.sums[key] = (value, None)
            return value
        x = sympy.Add(*[f.args[0] for f in exps])
        w = sympy.Mul(*[f for f in sympy.Mul.make_args(u) if not isinstance(f, sympy.exp)])
        w = self.materialise(w, where)
        stream = set(self.stream)
        inner = tuple(v for v in reduced if v not in stream and v in x_vars)  # a 2D window's n
        if set(inner) & self.rvars:
            raise Refusal(f"the exponent {self.show(x)} depends on {', '.join(sorted(set(inner) & self.rvars))}, "
                          f"a part of {self.rank} reduced with {', '.join(self.stream)}")
        pv = tuple(v for v in out if v in x_vars)
        if set(pv) | set(inner) != x_vars - stream:
            raise Refusal(f"the exponent {self.show(x)} has variables outside the reduction's output")
        x_where = tuple(c for c in where
                        if condition_vars(c, self.variables) <= set(pv) | set(inner) | stream)
        stream = self.stream
        if len(stream) == 2 and stream[1] not in x_vars:
            stream = stream[:1]  # x is constant within a block: one running-max step per block
        rkey = (sympy.srepr(x), pv, inner, stream, tuple(self.canon(x_where)))
        rmax = self.running.get(rkey)
        if rmax is None:
            tensors = {self.atoms.node[s].tensor for s in x.free_symbols
                       if s in self.atoms.node and isinstance(self.atoms.node[s], Access)}
            masked = bool(x_where) or self.masked(tensors)
            kept, self.stream = self.stream, stream
            try:
                rmax = online.build_running_max(self, x, pv, x_where, masked, inner)
            finally:
                self.stream = kept
            self.running[rkey] = rmax
        self.tiled = True
        final = online.build_running_sum(self, rmax, w, reduced, keep, where, owner)
        rm_final = self.atoms.symbol(rmax.final())
        value = sympy.exp(rm_final) * self.atoms.symbol(final)
        used.append((rmax, rm_final))
        self.sums[key] = (value, (rmax, rm_final))
        rules.add("running extremum")
        return value

    def reduction(self, op: str, reduced: tuple[str, ...], body: Node, where: list,
                  out: tuple[str, ...], owner: str, rules: set, matches: list) -> sympy.Expr:
        """The value of op over `reduced` of `body`, every sum computed in the first pass."""
        wheres = list(where)
        self.check_conditions(wheres)
        nested: list = []
        expr = to_sympy(body, self.atoms, read=lambda a: self.read(a, wheres, 0, nested if op == "sum" else None))
        if nested:
            expr, reduced = self.merge_nested(expr, nested[0], reduced, out, owner)
            rules.add("inlined")
        expr = normalise(expr.subs(self.aliases))
        late = self.late_symbols()
        reduced_set = set(reduced)
        if not (expr.free_symbols & late):
            name = self.fresh(owner + "_S")
            keep = tuple(v for v in out if v in self.sym_vars(expr) | self._where_vars(wheres))
            lhs = tuple(var_symbol(v) for v in keep)
            self.emit(name, lhs, Reduce(op, reduced, to_ast(expr, self.atoms, self.variables)),
                      wheres, "inlined", f"{op} over {', '.join(reduced)} of {owner}'s body, "
                      "inlined: it reads only pass-1 values")
            rules.add("inlined")
            return self.atoms.symbol(Access(name, lhs))
        if op in KTH_REDUCTIONS:
            raise Refusal(f"{op} over {self.rvar} of {self.show(expr)}: the k-th largest (smallest) is "
                          "an order statistic of values that depend on a global complete only after "
                          "the pass; no running state of fixed size gives it (not decomposable)")
        if op != "sum":
            raise Refusal(f"{op} over {self.rvar} of {self.show(expr)}: an extremum or product of "
                          "an expression of a global complete only after the pass does not "
                          "decompose (an order statistic of it would be needed)")
        bound = self.bound_symbols(reduced_set)
        terms = separate(expr, late, bound, self.atoms, self.variables)
        if moments.is_moment(terms, late):
            rules.add("moments (running sums of powers)")
        used: list = []
        value = sympy.Integer(0)
        for term in terms:
            value += term.coeff * self.sum_of(term.body, reduced, wheres, out, owner, used, rules)
        value, found = correction.identify(self, value, used)
        matches.extend(found)
        value, corrected = correction.merge_exponentials(value)
        identified = {sym for sym, *_ in found}
        if any((t.coeff.free_symbols & late) - identified for t in terms):
            rules.add("deferred normalisation")
        if corrected:
            rules.add("multiplicative correction")
        return value

    def merge_nested(self, expr: sympy.Expr, nested: tuple, reduced: tuple[str, ...],
                     out: tuple[str, ...], owner: str) -> tuple[sympy.Expr, tuple[str, ...]]:
        """sum_a c * (sum_b B) = sum_{a, b} c * B when the body is c times the inner sum (c free
        of it) and b is free in the outer scope: one reduction over both (a chunk's sum read by a
        sum over the chunks becomes a sum over the whole split rank)."""
        holder, inner_vars, name, inner = nested
        coeff = sympy.diff(expr, holder)
        if holder in coeff.free_symbols or sympy.expand(expr - coeff * holder) != 0:
            raise Refusal(f"{owner} is not linear in the sum {name}: the two sums do not merge")
        clash = set(inner_vars) & (set(out) | set(reduced))
        if clash:
            raise Refusal(f"{name}'s sum over {', '.join(sorted(clash))} clashes with variables of {owner}")
        merged = tuple(reduced) + tuple(inner_vars)
        stream = self.stream_of(owner, merged)
        if stream is not None:
            self.stream = stream
        return coeff * inner, merged

    def late_reads(self, node) -> list[Access]:
        """Reads in `node` (a value or condition) of tensors complete or streamed only after the
        first pass."""
        return [a for a in reads(node) if self.is_late_global(a) or self.is_late_streamed(a.tensor)]

    def describe_global(self, tensor: str) -> str:
        """A few words on what a global is (an order statistic is named as such)."""
        if tensor in self.cascade_tensors and tensor not in self.cascade.inputs:
            e = self.cascade.einsum(tensor)
            if isinstance(e.expr, Reduce) and e.expr.op in KTH_REDUCTIONS:
                which = "largest" if e.expr.op == "kth" else "smallest"
                return (f"{tensor}, the k-th {which} ({e.expr.op}) over "
                        f"{', '.join(e.expr.vars)}, an order statistic")
        return tensor

    def check_conditions(self, wheres) -> None:
        """Refuse a mask that reads a value complete only after the first pass (a top-k or
        threshold selection on a global): which points enter a sum is then unknown while the
        sum streams, and no correction factor can add or remove a point afterwards."""
        for c in wheres:
            late = self.late_reads(c)
            if late:
                from einsum_cascade.printer import format_expr
                names = ", ".join(dict.fromkeys(self.describe_global(a.tensor) for a in late))
                raise Refusal(f"the mask {format_expr(c)} reads {names}, complete only after a pass: "
                              "a selection of points by a global is not decomposable (which points "
                              "enter the sum is unknown while it streams; no correction factor adds "
                              "or removes a point)")

    def _where_vars(self, where) -> set[str]:
        out = set()
        for c in where:
            out |= condition_vars(c, self.variables)
        return out

    def hoist(self, value: sympy.Expr, out_vars) -> sympy.Expr:
        """Each correction factor exp(...) of a result becomes a tensor of its own: one exp per
        point of its own space (fewer than the result's when it needs fewer variables), shared by
        every result that uses it."""
        for factor in sorted(value.atoms(sympy.exp), key=sympy.default_sort_key):
            vs = self.sym_vars(factor)
            if not vs <= set(out_vars) or factor == value:
                continue
            order = tuple(v for v in out_vars if v in vs)
            name, lhs, new = self._factor_tensor(factor, order, "CF")
            if new:
                made = any(isinstance(self.atoms.node.get(a), Access)
                           and self.atoms.node[a].tensor not in self.cascade_tensors
                           for a in factor.free_symbols)
                self.emit(name, lhs, to_ast(factor, self.atoms, self.variables), (),
                          "multiplicative correction" if made else "deferred normalisation",
                          f"the factor {self.show(factor)}, once per point of its own space",
                          correction=made)
            value = value.xreplace({factor: self.atoms.symbol(Access(name, lhs))})
        return value

    def _factor_tensor(self, factor: sympy.Expr, order: tuple, prefix: str) -> tuple[str, tuple, bool]:
        """The tensor holding `factor` over the variables `order`: (its name, its index symbols, whether
        it is new, i.e. named now with `prefix` and still to be emitted); one tensor per factor and order."""
        key = (sympy.srepr(factor), order)
        name = self.factors.get(key)
        new = name is None
        if new:
            name = self.fresh(prefix)
            self.factors[key] = name
        return name, tuple(var_symbol(v) for v in order), new

    def _alias(self, e: Einsum, value: sympy.Expr) -> None:
        """A rewritten reduction that is a plain copy of a finished sum is read as that sum."""
        if value in self.atoms.node and not e.where:
            self.aliases[self.atoms.symbol(Access(e.name, tuple(e.lhs)))] = value

    def stream_of(self, name: str, reduced) -> tuple[str, ...] | None:
        """Which variables of the rank a reduction runs over: (m,), both parts (m1, m0) of a
        split rank (the same points as m), or its outer part (m1) alone (one step per block);
        None when it runs over none. Raises Refusal for the inner part (m0) alone or a mix."""
        mine = set(reduced) & self.rvars
        if not mine:
            return None
        if mine == {self.rvar}:
            return (self.rvar,)
        if len(self.parts) == 2 and mine == set(self.parts):
            return self.parts
        if len(self.parts) == 2 and mine == {self.parts[0]}:
            return (self.parts[0],)
        raise Refusal(f"{name} reduces over {', '.join(sorted(mine))} of {self.rank}: a reduction within "
                      f"a block ({self.parts[1] if self.parts else self.rvar} alone) or over the whole rank "
                      "and a part together is not rewritten")

    def within(self) -> tuple[str, ...]:
        """The variables of the current reduction inside one tile (m0), none for a reduction over
        the blocks (m1) alone."""
        if self.parts and self.stream == (self.parts[0],):
            return ()
        return (self.tile[1],)

    def rewrite_einsum(self, e: Einsum, rules: set, matches: list) -> Einsum:
        """The new definition of reduction `e` (helpers go to `pending`)."""
        out_vars = tuple(str(s) for i in e.lhs for s in sorted(sympy.sympify(i).free_symbols, key=str)
                         if str(s) in self.variables)
        if e.iterative_var is not None:
            raise Refusal(f"{e.name} is a recurrence that needs a global of a previous pass")
        if len(set(e.lhs)) != len(e.lhs) or not all(isinstance(i, sympy.Symbol) for i in e.lhs):
            raise Refusal(f"{e.name}: left-hand indices that are not distinct variables are not supported")
        implicit_stream = self.stream_of(e.name, e.implicit_vars)
        space = tuple(out_vars) + tuple(sorted(e.implicit_vars))
        if implicit_stream is not None:
            self.stream = implicit_stream
            value = self.reduction("sum", tuple(sorted(e.implicit_vars)), e.expr, list(e.where),
                                   out_vars, e.name, rules, matches)
            keep_where = tuple(c for c in e.where if not (self._where_vars([c]) & e.implicit_vars))
            value = self.hoist(value, out_vars)
            self._alias(e, value)
            return _einsum(e.name, e.lhs, to_ast(value, self.atoms, self.variables), keep_where)
        explicit = e.reduced_vars - e.implicit_vars

        def reduce(node: Reduce):
            stream = self.stream_of(e.name, node.vars)
            if stream is None:
                return None
            self.stream = stream
            # the reduction's own mask and the conjuncts of e.where the parser copied into it
            mine = list(node.where)
            if node.k is not None and self.late_reads(node.k):
                raise Refusal(f"{e.name}: the k of {node.op} reads a global complete only after the pass")
            return self.reduction(node.op, tuple(node.vars), node.body, mine, space, e.name,
                                  rules, matches)

        value = to_sympy(e.expr, self.atoms, read=lambda a: self.read(a, []), reduce=reduce)
        value = self.hoist(normalise(value.subs(self.aliases)), out_vars)
        self._alias(e, value)
        keep_where = tuple(c for c in e.where if not (self._where_vars([c]) & explicit))
        return _einsum(e.name, e.lhs, to_ast(value, self.atoms, self.variables), keep_where)

    # -- the whole cascade -------------------------------------------------------------------
    def run(self) -> Rewrite:
        out: list[Emitted] = []
        rewritten: dict[str, list[str]] = {}
        refused: dict[str, str] = {}
        all_rules: list[str] = []
        matches: list = []
        for e in self.cascade.einsums:
            info = None if e.is_initial else self.info.get(e.name)
            late_reduction = (info is not None and info.pass_ is not None and info.pass_ >= 2
                              and info.kind == "global")
            if not late_reduction:
                out.append(Emitted(e, "original"))
                continue
            rules: set = set()
            new, why, level = self._earliest(e, info.pass_, rules, matches)
            self.level = 1
            if new is None:
                refused[e.name] = why
                out.append(Emitted(e, "original", f"not rewritten: {why}"))
                continue
            if level > 1:
                refused[e.name] = (f"its sums stream in pass {level} instead of {info.pass_} "
                                   f"(partly fused); not in pass 1 because: {why}")
            out.extend(self.pending)
            order = [r for r in ("inlined", "deferred normalisation", "running extremum",
                                 "multiplicative correction", "moments (running sums of powers)")
                     if r in rules]
            rewritten[e.name] = order
            all_rules += [r for r in order if r not in all_rules]
            out.append(Emitted(new, ", ".join(order), f"{e.name} from the sums of the pass",
                               "multiplicative correction" in rules))
        out = self._replace_matched_extrema(out, matches)
        out = _ordered(_live(self.cascade, out))
        outside = _read_outside_reductions(out) | set(self.cascade.outputs)
        for e in self.cascade.einsums:
            if (not e.is_initial and self.is_late_streamed(e.name) and e.name in outside
                    and any(x.einsum.name == e.name for x in out)):
                refused.setdefault(e.name, f"{e.name} keeps {self.rvar} and needs a global of a previous "
                                   "pass; it is an output or read outside a reduction, so its "
                                   "elements cannot be produced before that global is complete")
        notes = [f"{self.show(sym)} = {'' if sign > 0 else '-'}{rmax.rm} at its last index"
                 for sym, rmax, sign, _ in matches]
        return Rewrite(out, self.tiled, all_rules, rewritten, refused, sorted(set(notes)))

    def _earliest(self, e: Einsum, pass_: int, rules: set, matches: list) -> tuple[Einsum | None, str, int]:
        """Reduction `e` (in pass `pass_` as written) rewritten into the earliest pass it can reach:
        (the rewrite or None, why it cannot reach pass 1, the pass reached). Up to
        EXHAUSTIVE_LEVELS earlier passes are tried in order; beyond that (long chains of globals),
        pass 1, then the latest earlier pass, then a bisection between them, which finds the earliest
        pass when reaching a pass implies reaching every later one (more is complete there), and a
        certified later pass otherwise: O(log passes) attempts instead of O(passes)."""
        levels = list(range(1, pass_))
        if len(levels) <= EXHAUSTIVE_LEVELS:
            why = ""
            for level in levels:
                new, failed = self._attempt(e, level, rules, matches)
                if new is not None:
                    return new, why, level
                why = why or failed  # the reason it cannot reach pass 1 is the one to report
            return None, why, levels[-1] if levels else 1
        new, why = self._attempt(e, 1, rules, matches)
        if new is not None:
            return new, "", 1
        lo, hi = 1, pass_ - 1  # lo fails; is hi reachable?
        if not self._reaches(e, hi, rules, matches):
            return None, why, hi
        while hi - lo > 1:  # lo fails, hi succeeds
            mid = (lo + hi) // 2
            if self._reaches(e, mid, rules, matches):
                hi = mid
            else:
                lo = mid
        new, _ = self._attempt(e, hi, rules, matches)
        return new, why, hi

    def _mark(self, matches: list) -> tuple:
        """What an attempt may register, to undo it."""
        return (dict(self.sums), dict(self.running), set(self.taken), dict(self.x_tensors),
                dict(self.factors), dict(self.aliases), self.tiled, len(matches), dict(self.made_in))

    def _undo(self, mark: tuple, matches: list) -> None:
        (self.sums, self.running, self.taken, self.x_tensors, self.factors, self.aliases,
         self.tiled, kept, self.made_in) = mark
        del matches[kept:]

    def _reaches(self, e: Einsum, level: int, rules: set, matches: list) -> bool:
        """Whether `e` can stream in pass `level` (the attempt is undone either way)."""
        mark = self._mark(matches)
        new, _ = self._attempt(e, level, set(rules), matches)
        self._undo(mark, matches)
        self.pending = []
        return new is not None

    def _attempt(self, e: Einsum, level: int, rules: set, matches: list) -> tuple[Einsum | None, str]:
        """Rewrite reduction `e` so that its sums stream in pass `level`; on a Refusal, undo what
        the attempt registered and return (None, the reason). A `RuleError` (a node a rule does
        not accept: a bug, not a property of the cascade) propagates."""
        self.level = level
        self.stream = (self.rvar,)
        self.pending = []
        mark = self._mark(matches)
        tried = set(rules)
        try:
            return self.rewrite_einsum(e, rules, matches), ""
        except Refusal as why:
            self._undo(mark, matches)
            rules.intersection_update(tried)
            return None, str(why)

    def _replace_matched_extrema(self, out: list[Emitted], matches: list) -> list[Emitted]:
        """A global max (min) over m equal to a running maximum is read from it after the last
        tile instead of being recomputed."""
        result = []
        for item in out:
            e = item.einsum
            copy = None
            if item.rule == "original" and not e.is_initial and e.name in self.info:
                copy = self._as_running(e)
            if copy is None:
                result.append(item)
                continue
            rmax, expr = copy
            outer = tuple(c for c in e.where if self.rvar not in self._where_vars([c]))
            result.append(Emitted(_einsum(e.name, e.lhs, expr, outer), "running extremum",
                                  f"{e.name} is the running maximum {rmax.rm} after the last tile"))
        return result

    def _as_running(self, e: Einsum):
        if len(set(e.lhs)) != len(e.lhs) or not all(isinstance(i, sympy.Symbol) for i in e.lhs):
            return None
        found = correction.extremum_of(self, Access(e.name, tuple(e.lhs)))
        if found is None:
            return None
        op, body, where, reduced = found
        for rmax in self.running.values():
            if (where != rmax.where or set(rmax.pv) != {str(i) for i in e.lhs}
                    or set(reduced) != {*rmax.stream, *rmax.inner}):
                continue
            final = rmax.final()
            if op == "max" and sympy.expand(body - rmax.x) == 0:
                return rmax, final
            if op == "min" and sympy.expand(body + rmax.x) == 0:
                return rmax, Unary("-", final)
        return None


def _ordered(items: list[Emitted]) -> list[Emitted]:
    """The Einsums in an order where each tensor is defined before it is read (statement order
    where possible); an initial value stays just before its recurrence."""
    groups: dict[str, list[Emitted]] = {}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.einsum.name, []).append(item)
        first.setdefault(item.einsum.name, i)
    graph = nx.DiGraph()
    graph.add_nodes_from(groups)
    for name, members in groups.items():
        for item in members:
            for n in _nodes(item.einsum):
                if isinstance(n, Access) and n.tensor in groups and n.tensor != name:
                    graph.add_edge(n.tensor, name)
    condensed = nx.condensation(graph)
    key = lambda c: min(first[n] for n in condensed.nodes[c]["members"])  # noqa: E731
    out = []
    for comp in nx.lexicographical_topological_sort(condensed, key=key):
        for name in sorted(condensed.nodes[comp]["members"], key=first.get):
            out.extend(groups[name])
    return out


def _live(cascade: Cascade, items: list[Emitted]) -> list[Emitted]:
    """Only the Einsums the outputs depend on (dead-code elimination)."""
    reads: dict[str, set[str]] = {}
    for item in items:
        names = {n.tensor for n in _nodes(item.einsum) if isinstance(n, Access)}
        reads.setdefault(item.einsum.name, set()).update(names)
    live, stack = set(), list(cascade.outputs)
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        stack.extend(reads.get(name, ()))
    return [item for item in items if item.einsum.name in live]


def _plain_sum(e: Einsum) -> tuple[Node, tuple] | None:
    """(body, conditions) of an Einsum that is one sum: `S[..] = sum(v: B where c)` or an
    implicit sum; None for anything else (other reductions, a sum inside an expression)."""
    if isinstance(e.expr, Reduce):
        if e.expr.op != "sum" or e.expr.k is not None or e.implicit_vars:
            return None
        return e.expr.body, tuple(e.where) + tuple(e.expr.where)
    if e.implicit_vars and not any(isinstance(n, Reduce) for n in walk(e.expr)):
        return e.expr, tuple(e.where)
    return None


def _read_outside_reductions(items: list[Emitted]) -> set[str]:
    """Tensors some Einsum of `items` reads elementwise (not only inside a reduction)."""
    out: set[str] = set()
    for item in items:
        stack = [item.einsum.expr, *item.einsum.where]
        while stack:
            node = stack.pop()
            if isinstance(node, Reduce):
                continue
            if isinstance(node, Access):
                out.add(node.tensor)
            stack.extend(children(node))
    return out


def _nodes(e: Einsum):
    """Every node of an Einsum: its expression (reductions' masks included) and its `where`."""
    yield from walk(e.expr)
    for cond in e.where:
        yield from walk(cond)
