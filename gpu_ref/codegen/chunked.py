"""Recurrences over the keys in the chunked form: matrix products inside a chunk, a scan of
states across chunks (linear attention, gated linear attention, Mamba-2's SSD, the gated delta
rule).

A recurrence `S[e,f,m+1] = D * S[e,f,m] + U` (D, the decay, and U, the update, read neither S nor
another recurrence; D over the key and the contracted rank e only, U a product of factors over
(m, e) and over (m, f)) read by `X[f,p] = Q' * S[e,f,p+1]` (a sum over e) is evaluated by one
program per (batch, head) that walks the sequence in chunks of BLOCK_N keys, rows p of a chunk
being its keys (self-attention naming, P <= M). With G[j] the cumulative log decay of the chunk
through key j (inclusive) and S0 the state at the chunk's start:

    S[p+1] = exp(G[p]) S0 + sum_{j <= p in the chunk} exp(G[p] - G[j]) U[j]

so X = (Q' exp(G)) . S0 (a product with the state) + ((Q' . K') exp(G[p] - G[j]), causal) . V'
(two products inside the chunk), and the state moves on as
S0 <- exp(G[last]) S0 + (K' exp(G[last] - G[j]))^T . V'. A decay that varies over e weights
each (p, j, e) term on its own (a [BLOCK, BLOCK, DIM_E] block) so that no exp(-G) can overflow.
The decay must be positive (its logarithm is taken: a gate exp(...) or sigmoid(...) is); a decay
<= 0 gives NaN, never a silent number. The delta rule (a value side linear in the state read by a
key, `U = U0 + C * SK`, `SK[f,m] = S[e,f,m] * K'[e,m]`) solves a triangular system for the chunk's
updates first (`ChunkedWriter.delta`). Everything else is read off the IR; what does not fit is
refused with the Einsum named.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from einsum_cascade.ast import Access, Binary, Number, Reduce, value_vars, var_symbol, walk
from einsum_cascade.ir import Cascade, Einsum
from gpu_ref.codegen.emit import Reg, Scope
from gpu_ref.codegen.kernel import INDENT, PassWriter, free_names, local_name, signature
from gpu_ref.codegen.plan import KernelPlan, Plan, _order, choose_row
from gpu_ref.codegen.refusal import KernelRefusal
from gpu_ref.codegen.values import Val, atom, expand


def key_recurrences(cascade: Cascade, key: str) -> list[Einsum]:
    """The Einsums that are recurrences one key at a time over rank `key` (unsplit)."""
    rank = cascade.ranks[key]
    if rank.parts:
        return []
    return [e for e in cascade.einsums if not e.is_initial and e.iterative_var == rank.var]


def _terms(node) -> list:
    if isinstance(node, Binary) and node.op == "+":
        return _terms(node.left) + _terms(node.right)
    return [node]


def _factors(node) -> list:
    if isinstance(node, Binary) and node.op == "*":
        return _factors(node.left) + _factors(node.right)
    return [node]


def _product(factors: list):
    out = factors[0]
    for f in factors[1:]:
        out = Binary("*", out, f)
    return out


def _symbolic(node, target: str, x: sympy.Symbol):
    """`node` as a sympy expression in which reads of `target` are `x` and every other read or
    call is an opaque symbol of its own; None when `target` sits inside a call (not linear)."""
    from einsum_cascade.ast import Unary
    if isinstance(node, Access):
        return x if node.tensor == target else sympy.Symbol(f"_{id(node)}")
    if isinstance(node, Number):
        return sympy.Float(node.value)
    if isinstance(node, Unary):
        inner = _symbolic(node.operand, target, x)
        return None if inner is None else -inner
    if isinstance(node, Binary):
        a, b = _symbolic(node.left, target, x), _symbolic(node.right, target, x)
        if a is None or b is None:
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[node.op]
    if any(isinstance(n, Access) and n.tensor == target for n in walk(node)):
        return None
    return sympy.Symbol(f"_{id(node)}")


def _replace(node, target: str, by):
    """`node` with every read of `target` replaced by the node `by`."""
    from einsum_cascade.ast import Unary
    if isinstance(node, Access) and node.tensor == target:
        return by
    if isinstance(node, Unary):
        return Unary(node.op, _replace(node.operand, target, by))
    if isinstance(node, Binary):
        return Binary(node.op, _replace(node.left, target, by), _replace(node.right, target, by))
    return node


@dataclass
class Recurrence:
    """One recurrence of the chunked form: its state's ranks (contracted `c`, kept `o`), the
    factors of its decay, of the update's key side and of its value side."""

    e: Einsum
    c: str  # the contracted variable (e)
    o: tuple[str, ...]  # the other state variables (f), at most one
    decay: list = field(default_factory=list)
    k_side: list = field(default_factory=list)
    v_side: list = field(default_factory=list)
    readers: list = field(default_factory=list)
    delta: dict | None = None  # the delta rule's value side (see ChunkedWriter.delta)


class ChunkedWriter(PassWriter):
    """The kernel of a cascade whose recurrences over the keys run in the chunked form."""

    def __init__(self, plan: Plan, globals_, stored, dot_dtype: str, fp32: bool, dtype: str):
        super().__init__(plan, plan.kernels[0], globals_, stored, dot_dtype, fp32)
        self.dtype = dtype
        self.loop = Scope()
        self.rec: dict[str, Recurrence] = {}
        self.reader_of: dict[str, tuple[str, list]] = {}  # reader Einsum -> (recurrence, Q' factors)
        self.absorbed: set[str] = set()  # per-key Einsums of a delta rule, evaluated by its solve

    # -- analysis ----------------------------------------------------------------------------
    def analyse(self) -> list[Einsum]:
        """Check the cascade fits the chunked form; the main Einsums in their order."""
        c, plan = self.c, self.plan
        kv, rv = plan.key_var, c.ranks[plan.row].var
        order = _order(c)
        recs = {e.name for e in order if e.iterative_var == kv}
        defined = {e.name: e for e in order}
        for e in order:
            if e.name in recs:
                self.rec[e.name] = self.recurrence(e, recs, defined)
        for e in order:
            if e.name in recs or e.name in self.absorbed:
                continue
            reads = [a for a in e.reads if a.tensor in recs]
            if reads:
                self.reader(e, reads, rv)
                continue
            if kv in e.reduced_vars or any(isinstance(n, Reduce) and kv in n.vars for n in walk(e.expr)):
                raise KernelRefusal(c.name, e.name, f"reduces over the keys {kv} outside a recurrence (the chunked "
                                    "form carries only the recurrences' states across chunks)")
            if kv in e.output_vars and rv in e.output_vars:
                raise KernelRefusal(c.name, e.name, f"over both the keys {kv} and the rows {rv} (a chunked "
                                    "recurrence holds only one chunk of each)")
            if kv not in e.output_vars and rv not in e.output_vars:
                raise KernelRefusal(c.name, e.name, f"over neither the keys {kv} nor the rows {rv} (the chunked "
                                    "form computes every tensor per chunk)")
        for name in c.outputs:
            if name in recs:
                raise KernelRefusal(c.name, name, "an output that is running state (write its reads as Einsums)")
        return order

    def recurrence(self, e: Einsum, recs: set[str], defined: dict[str, Einsum]) -> Recurrence:
        c, kv = self.c, self.plan.key_var
        slot = c.iterative_slot[e.name]
        state = [str(ix) for d, ix in enumerate(e.lhs) if d != slot]
        refuse = lambda why: KernelRefusal(c.name, e.name, why)  # noqa: E731
        if e.where:
            raise refuse("a recurrence under a `where` is not generated in the chunked form")
        rv = c.ranks[self.plan.row].var
        if rv in state:
            raise refuse(f"its state is indexed by {rv}, the rank the rows of the programs run over (a state per "
                         "query, such as a cumulative sum per row, or a scan whose outputs are over the keys' own "
                         "rank, has no chunked form here)")
        if len(set(state)) != len(state) or not all(v in c.variables for v in state):
            raise refuse("its state is not indexed by distinct plain rank variables")
        initial = c.initial(e.name)
        if initial is None or not isinstance(initial.expr, Number):
            raise refuse("its initial value is not a constant")
        prev, update = [], []
        for term in _terms(e.expr):
            fs = _factors(term)
            own = [f for f in fs if isinstance(f, Access) and f.tensor == e.name]
            (prev if own else update).append((term, fs, own))
        if len(prev) != 1 or len(prev[0][2]) != 1 or len(update) != 1:
            raise refuse("not of the form decay * state + update (one term with the state, one without)")
        _, fs, (own,) = prev[0]
        want = list(e.lhs)
        want[slot] = var_symbol(kv)
        if [sympy.expand(a - b) for a, b in zip(own.indices, want)] != [0] * len(want):
            raise refuse(f"reads its state at other points than {e.name}[{', '.join(map(str, want))}]")
        decay = [f for f in fs if f is not own]
        _, update_fs, _ = update[0]
        reading = [f for f in update_fs if self.depends(f, defined) & recs]
        delta = self.delta(e, reading[0], recs, defined) if len(reading) == 1 else None
        if delta is not None:
            update_fs = [f for f in update_fs if f is not reading[0]]
        update_fs = self.inline(update_fs, defined)
        for f in decay + update_fs:
            deps = self.depends(f, defined)
            if deps & recs:
                raise refuse(f"its {'decay' if f in decay else 'update'} reads the state through "
                             f"{', '.join(sorted(deps - recs)) or e.name} (neither a decay times the state plus a "
                             "term free of it, nor the delta rule's value side linear in the state read by a key: "
                             "no chunked form is generated)")
        r = Recurrence(e, "", tuple(state), decay, update_fs)
        r.delta = delta
        return r

    def delta(self, e: Einsum, factor, recs: set[str], defined: dict[str, Einsum]) -> dict | None:
        """The delta rule's value side, or None: the update's factor `U[f,m]` (a per-key Einsum)
        is linear in `SK[f,m] = S[e,f,m] * K'[e,m]` (the state before key m read by a key side),
        `U = U0 + C * SK` with U0 and C free of the state. Inside a chunk the updates then solve
        a triangular system (the WY form): u_j = rhs_j + C_j sum_{i<j} exp(G'_j - G_i) (k'_j . k_i) u_i."""
        c, kv = self.c, self.plan.key_var
        w = defined.get(factor.tensor) if isinstance(factor, Access) else None
        if w is None or w.where or w.implicit_vars or w.iterative_var or list(factor.indices) != list(w.lhs):
            return None
        sks = [a for a in walk(w.expr) if isinstance(a, Access) and self.depends(a, defined) & recs]
        if len({a.tensor for a in sks}) != 1:
            return None
        sk = defined.get(sks[0].tensor)
        if sk is None or sk.where or list(sks[0].indices) != list(sk.lhs) or len(sk.implicit_vars) != 1:
            return None
        fs = _factors(sk.expr)
        own = [f for f in fs if isinstance(f, Access) and f.tensor == e.name]
        if len(own) != 1 or any(self.depends(f, defined) & recs for f in fs if f is not own[0]):
            return None
        slot = c.iterative_slot[e.name]
        want = list(e.lhs)
        want[slot] = var_symbol(kv)
        if [sympy.expand(a - b) for a, b in zip(own[0].indices, want)] != [0] * len(want):
            return None
        x = sympy.Symbol("_SK")
        expr = _symbolic(w.expr, sk.name, x)
        if expr is None or sympy.diff(expr, x, 2) != 0 or x in sympy.diff(expr, x).free_symbols:
            return None
        users = {n for n, d in defined.items() if any(a.tensor in (w.name, sk.name) for a in d.reads)}
        if users - {e.name, w.name}:
            return None
        u0 = _replace(w.expr, sk.name, Number(0.0))
        coeff = Binary("-", _replace(w.expr, sk.name, Number(1.0)), u0)
        self.absorbed |= {w.name, sk.name}
        return {"u0": u0, "coeff": coeff, "key": [f for f in fs if f is not own[0]], "names": (w.name, sk.name),
                "contracted": next(iter(sk.implicit_vars))}

    def inline(self, factors: list, defined: dict[str, Einsum]) -> list:
        """Update factors with reads of per-key products (KV[e,f,m] = K[e,m] * V[f,m]) replaced by
        their factors, so that the key and value sides separate."""
        out = []
        for f in factors:
            e = defined.get(f.tensor) if isinstance(f, Access) else None
            if (e is not None and not e.where and not e.implicit_vars and e.iterative_var is None
                    and not any(isinstance(n, Reduce) for n in walk(e.expr))
                    and list(f.indices) == list(e.lhs)):
                out += self.inline(_factors(e.expr), defined)
            else:
                out.append(f)
        return out

    def depends(self, node, defined: dict[str, Einsum]) -> set[str]:
        """Every defined tensor `node` reads, directly or through others."""
        seen: set[str] = set()
        stack = [a.tensor for a in walk(node) if isinstance(a, Access)]
        while stack:
            t = stack.pop()
            if t in seen or t not in defined:
                continue
            seen.add(t)
            stack += [a.tensor for a in defined[t].reads]
        return seen

    def reader(self, e: Einsum, reads: list[Access], rv: str) -> None:
        c = self.c
        refuse = lambda why: KernelRefusal(c.name, e.name, why)  # noqa: E731
        if len(reads) != 1:
            raise refuse("reads several recurrences' states (one state per Einsum is generated)")
        (access,) = reads
        r = self.rec[access.tensor]
        slot = c.iterative_slot[access.tensor]
        step = sympy.expand(access.indices[slot])
        if step != var_symbol(rv) + 1:
            raise refuse(f"reads {access.tensor} at step {step}: the chunked form reads a state at the row's "
                         f"step {rv} + 1 (the state after key {rv}; self-attention naming with a row rank)")
        state = list(r.o)
        got = [str(ix) for d, ix in enumerate(access.indices) if d != slot]
        if got != state:
            raise refuse(f"reads {access.tensor} at other points than its state's ({', '.join(state)})")
        if e.where or e.reduced_vars - e.implicit_vars:
            raise refuse("a read of a state under a `where` or inside a reduction is not generated")
        contracted = [v for v in state if v in e.implicit_vars]
        kept = tuple(v for v in state if v not in e.implicit_vars)
        if len(contracted) != 1 or set(e.implicit_vars) != set(contracted) or len(kept) > 1:
            raise refuse(f"sums over {sorted(e.implicit_vars)} of {access.tensor}: the chunked form contracts one "
                         "rank of the state and keeps at most one")
        cv = contracted[0]
        if r.readers and (r.c != cv or r.o != kept):
            raise refuse(f"contracts {access.tensor} over another rank than its other readers")
        r.c, r.o = cv, kept
        kv = self.plan.key_var
        factors = _factors(e.expr)
        own = [f for f in factors if f is access]
        if len(own) != 1:
            raise refuse(f"reads {access.tensor} other than as a factor of a product")
        q_side = [f for f in factors if f is not access]
        for f in q_side:
            extra = value_vars(f, c.variables) - {rv, cv}
            if extra:
                raise refuse(f"its factor over {sorted(extra)} (the query side may hold only {rv} and {cv})")
        for f in r.decay:
            extra = value_vars(f, c.variables) - {kv, cv}
            if extra:
                raise KernelRefusal(c.name, r.e.name, f"its decay varies over {sorted(extra)}, a rank the readers "
                                    "keep: its chunked form is not a product of matrices")
        r.readers.append(e.name)
        self.reader_of[e.name] = (access.tensor, q_side)

    def split_update(self, r: Recurrence) -> None:
        """Factors of the update over (m, c) to the key side, over (m, o) to the value side."""
        c, kv = self.c, self.plan.key_var
        factors, r.k_side, r.v_side = r.k_side + r.v_side, [], []
        for f in factors:
            vs = value_vars(f, c.variables)
            if not vs <= {kv, r.c, *r.o}:
                raise KernelRefusal(c.name, r.e.name, f"its update has a factor over {sorted(vs - {kv, r.c, *r.o})}, "
                                    "a rank outside the state")
            if r.c in vs and set(r.o) & vs:
                raise KernelRefusal(c.name, r.e.name, "its update has a factor over both ranks of the state (not a "
                                    "product of a key and a value side)")
            if r.delta is not None and set(r.o) & vs:
                raise KernelRefusal(c.name, r.e.name, "a delta rule whose key side has a factor over "
                                    f"{sorted(set(r.o) & vs)} (the value side is the solved update alone)")
            (r.k_side if r.c in vs or r.delta is not None else r.v_side).append(f)
        if r.delta is not None and (r.delta["contracted"] != r.c or any(
                r.c in value_vars(f, c.variables) for f in r.decay)):
            raise KernelRefusal(c.name, r.e.name, "a delta rule whose state is read over another rank than its "
                                "readers', or whose decay varies over it (the solve takes a decay per key)")

    # -- code ----------------------------------------------------------------------------------
    def dot(self, a: str, b: str) -> str:
        if self.dtype == "bf16":
            return f"tl.dot(_bf16({a}, INTERPRET), _bf16({b}, INTERPRET))"
        if self.fp32:
            return f'tl.dot({a}, {b}, input_precision="ieee")'
        return f"tl.dot({atom(a)}.to({self.dot_dtype}), {atom(b)}.to({self.dot_dtype}))"

    def block_of(self, factors: list, axes: tuple[str, ...], stem: str) -> str:
        """The product of `factors` as a block over `axes`, 0 where a point is absent or outside
        the sequence or a padded head dim (a name)."""
        vals = [self.value(f) for f in factors] or [Val("1.0")]
        val = vals[0]
        for v in vals[1:]:
            val = self.combine("{0} * {1}", [val, v])
        val = self.apply_mask(val, val.mask, "0.0", stem + "m") if val.mask else val
        val = self.broadcast(val, axes)
        inside = " & ".join(expand(atom(self.inside(a)), (a,), axes) for a in axes)
        name = self.fresh(stem)
        self.scope.emit(f"{name} = tl.where({inside}, {val.code}, 0.0)")
        return name

    def write_recurrence(self, r: Recurrence) -> dict:
        """The chunk's key side, value side and cumulative log decay of one recurrence."""
        plan = self.plan
        key, row = plan.key, plan.row
        ca = self.c.var_rank[r.c]
        oa = tuple(self.c.var_rank[v] for v in r.o)
        name = local_name(r.e.name)
        emit = self.scope.emit
        emit(f"# {r.e.name}: the chunk's keys (key side, value side, cumulative log decay)")
        info = {"k": self.block_of(r.k_side, self.canon((key, ca)), f"k_{name}"),
                "v": self.block_of(r.v_side, self.canon((key,) + oa), f"v_{name}"), "ca": ca, "oa": oa}
        info["per_c"] = False
        if r.decay:
            dvars = set().union(*(value_vars(f, self.c.variables) for f in r.decay))
            info["per_c"] = r.c in dvars
            daxes = self.canon((key, ca)) if info["per_c"] else (key,)
            d = self.block_of(r.decay, daxes, f"d_{name}")
            inside = " & ".join(expand(atom(self.inside(a)), (a,), daxes) for a in daxes)
            emit(f"lg_{name} = tl.where({inside}, tl.log({d}), 0.0)  # log decay at key j")
            emit(f"g_{name} = tl.cumsum(lg_{name}, 0)  # log decay through key j")
            emit(f"glast_{name} = tl.sum(lg_{name}, 0)  # through the chunk's last key")
            info["g"], info["glast"] = f"g_{name}", f"glast_{name}"
        if r.delta is not None:
            info["v"] = self.write_delta(r, info)
        return info

    def write_delta(self, r: Recurrence, info: dict) -> str:
        """The delta rule's updates of the chunk's keys: the triangular system solved row by row."""
        key, ca, oa = self.plan.key, info["ca"], info["oa"]
        name = local_name(r.e.name)
        emit = self.scope.emit
        w_name, sk_name = r.delta["names"]
        emit(f"# {w_name}, {sk_name}: the updates of the chunk's keys, {sk_name} read from the state at the "
             "chunk's start and the earlier updates (a triangular solve)")
        kp = self.block_of(r.delta["key"], self.canon((key, ca)), f"kp_{name}")
        vaxes = self.canon((key,) + oa)
        u0 = self.block_of([r.delta["u0"]], vaxes, f"u0_{name}")
        cf = self.block_of([r.delta["coeff"]], vaxes, f"cf_{name}")
        state, k, g = f"state_{name}", info["k"], info.get("g")
        emit(f"j_{name} = tl.arange(0, BLOCK_N)")
        emit(f"earlier_{name} = j_{name}[:, None] > j_{name}[None, :]  # key i before key j")
        kk = self.dot(kp, f"tl.trans({k})")
        read = self.dot(kp, state) if oa else f"tl.sum({kp} * {state}[None, :], 1)"
        expand_o = "[:, None]" if oa else ""
        if g is None:
            emit(f"tri_{name} = tl.where(earlier_{name}, {kk}, 0.0)")
            emit(f"rhs_{name} = {u0} + {cf} * {atom(read)}")
        else:
            emit(f"gx_{name} = {g} - lg_{name}  # log decay before key j")
            emit(f"tri_{name} = tl.where(earlier_{name}, {kk} * tl.exp(tl.where(earlier_{name}, "
                 f"gx_{name}[:, None] - {g}[None, :], 0.0)), 0.0)")
            emit(f"rhs_{name} = {u0} + {cf} * tl.exp(gx_{name}){expand_o} * {atom(read)}")
        u = f"u_{name}"
        emit(f"{u} = tl.zeros({self.shape(vaxes)}, tl.float32)")
        emit(f"for j in range(0, BLOCK_N):  # row j from the rows before it")
        emit(f"{INDENT}tri_j = tl.sum(tl.where(j_{name}[:, None] == j, tri_{name}, 0.0), 0)")
        if oa:
            emit(f"{INDENT}{u} = tl.where(j_{name}[:, None] == j, rhs_{name} + {cf} * tl.sum(tri_j[:, None] * {u}, 0)"
                 f"[None, :], {u})")
        else:
            emit(f"{INDENT}{u} = tl.where(j_{name} == j, rhs_{name} + {cf} * tl.sum(tri_j * {u}, 0), {u})")
        return u

    def write_reader(self, e: Einsum, r: Recurrence, info: dict, q_side: list) -> Val:
        """X[o, p] = Q' . S[p+1] for the rows of the chunk."""
        plan = self.plan
        row, key = plan.row, plan.key
        ca, oa = info["ca"], info["oa"]
        name = local_name(e.name)
        emit = self.scope.emit
        self.scope.emit(f"# {e.name}: the state after key p, inside the chunk and from the chunk's start")
        q = self.block_of(q_side, self.canon((row, ca)), f"q_{name}")
        k, v, state = info["k"], info["v"], f"state_{local_name(r.e.name)}"
        rv, kv = self.offs(row), self.offs(key)
        emit(f"causal_{name} = {rv}[:, None] >= {kv}[None, :]  # key j at or before row p")
        g = info.get("g")
        if g is None:
            emit(f"w_{name} = tl.where(causal_{name}, {self.dot(q, f'tl.trans({k})')}, 0.0)")
            qd = q
        elif not info["per_c"]:
            emit(f"w_{name} = {self.dot(q, f'tl.trans({k})')} * tl.exp(tl.where(causal_{name}, "
                 f"{g}[:, None] - {g}[None, :], 0.0))")
            emit(f"w_{name} = tl.where(causal_{name}, w_{name}, 0.0)")
            emit(f"qd_{name} = {q} * tl.exp({g})[:, None]")
            qd = f"qd_{name}"
        else:
            self.block_axes.add((row, key, ca))
            emit(f"diff_{name} = tl.where(causal_{name}[:, :, None], {g}[:, None, :] - {g}[None, :, :], 0.0)")
            emit(f"w_{name} = tl.sum({q}[:, None, :] * {k}[None, :, :] * tl.exp(diff_{name}), 2)")
            emit(f"w_{name} = tl.where(causal_{name}, w_{name}, 0.0)")
            emit(f"qd_{name} = {q} * tl.exp({g})")
            qd = f"qd_{name}"
        if oa:
            emit(f"{name} = {self.dot(f'w_{name}', v)} + {self.dot(qd, state)}")
        else:
            emit(f"{name} = tl.sum(w_{name} * {v}[None, :], 1) + tl.sum({qd} * {state}[None, :], 1)")
        return Val(name, self.canon((row,) + oa))

    def write_state_update(self, r: Recurrence, info: dict) -> None:
        name = local_name(r.e.name)
        state, k, v, g = f"state_{name}", info["k"], info["v"], info.get("g")
        emit = self.scope.emit
        emit(f"# {r.e.name}: the state after the chunk's last key")
        if g is None:
            kd, keep = k, state
        elif info["per_c"]:
            emit(f"kd_{name} = {k} * tl.exp(glast_{name}[None, :] - {g})")
            kd, keep = f"kd_{name}", f"{state} * tl.exp(glast_{name})" + ("[:, None]" if info["oa"] else "")
        else:
            emit(f"kd_{name} = {k} * tl.exp(glast_{name} - {g})[:, None]")
            kd, keep = f"kd_{name}", f"{state} * tl.exp(glast_{name})"
        if info["oa"]:
            emit(f"{state} = {keep} + {self.dot(f'tl.trans({kd})', v)}")
        else:
            emit(f"{state} = {keep} + tl.sum({kd} * {v}[:, None], 0)")

    def write_chunked(self, kname: str) -> tuple[str, list[str]]:
        """The kernel's source and its parameters."""
        order = self.analyse()
        for r in self.rec.values():
            if not r.readers:
                raise KernelRefusal(self.c.name, r.e.name, "a state no Einsum reads at a row's step")
            self.split_update(r)
        plan = self.plan
        row, key = plan.row, plan.key
        self.scope = self.loop
        infos: dict[str, dict] = {}
        for e in order:
            if e.name in self.absorbed:
                continue
            if e.name in self.rec:
                infos[e.name] = self.write_recurrence(self.rec[e.name])
                continue
            if e.name in self.reader_of:
                rec_name, q_side = self.reader_of[e.name]
                self.current = e.name
                val = self.write_reader(e, self.rec[rec_name], infos[rec_name], q_side)
            else:
                val = self.write(e, local_name(e.name))
            self.env[e.name] = Reg(val, self.lhs(e))
            self.finish(e, val)
        for name, r in self.rec.items():
            self.write_state_update(r, infos[name])
        init = []
        for name, r in self.rec.items():
            info = infos[name]
            shape = "[" + ", ".join(self.block(a) for a in (info["ca"],) + info["oa"]) + "]"
            value = float(self.c.initial(name).expr.value)
            init.append(f"state_{local_name(name)} = tl.full({shape}, {value!r}, tl.float32)  # {name}: initial value")
        rv, kv = self.c.ranks[row].var, plan.key_var
        loop = [f"for chunk in range(0, tl.cdiv(size_{row}, BLOCK_N)):  # chunks of BLOCK_N keys, in order",
                f"{INDENT}offs_{rv} = chunk * BLOCK_N + tl.arange(0, BLOCK_M)  # the chunk's rows",
                f"{INDENT}offs_{kv} = chunk * BLOCK_N + tl.arange(0, BLOCK_N)  # its keys (the same positions)"]
        loop += [INDENT + line for line in self.loop.mask_lines + self.loop.lines]
        body = init + loop
        head = [line for line in self.header(body) if not line.startswith(f"offs_{rv} =")]
        lines = head + body
        params = free_names(lines)
        out = ["@triton.jit", f"def {kname}({signature(params)}):",
               f'{INDENT}"""The cascade in chunks of {key} (a program per batch * head): {", ".join(e.name for e in order)}."""']
        out += [INDENT + line for line in lines]
        return "\n".join(out) + "\n", params


def chunked_plan(cascade: Cascade, key: str) -> Plan:
    """The one-kernel plan of a cascade in the chunked form."""
    for name, other in cascade.ranks.items():
        if other.parts:
            raise KernelRefusal(cascade.name, name, f"rank {name} is split ({' * '.join(other.parts)}); the chunked "
                                "form splits the keys itself")
    row = choose_row(cascade, key)
    whole = [r for r in cascade.ranks if r not in (key, row)]
    k = KernelPlan(1)
    kernel_of = {e.name: 1 for e in cascade.einsums}
    return Plan(cascade, key, row, whole, cascade.ranks[key].var, None, None, [k], kernel_of)
