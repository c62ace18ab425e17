"""Triton source of one kernel of a plan: the cascade's expressions as block operations.

Inside a program the row rank is a block of `BLOCK_M` rows (`offs_<row>`), the streamed rank a
tile of `BLOCK_N` keys (`offs_<key>`, tile `<tile var>` of the loop) and every other rank a
whole axis padded to a power of two (`DIM_<rank>`). Each Einsum becomes one statement (a comment
names it); sums of two-factor products over one axis become `tl.dot`; running state (the
cascade's recurrences over tiles) and running reductions over the keys are the loop-carried
values of a `@triton.jit` tile step whose `MASKED` argument drops the element masks in tiles
that are inside the sequence and wholly visible.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from einsum_cascade.ast import (
    Access, Binary, BoolOp, Call, Compare, Comparison, Node, Not, Number, Reduce, Size, Unary, Var,
    is_data_dependent, var_symbol, size_symbol,
)
from einsum_cascade.ir import Einsum
from einsum_cascade.printer import format_einsum, format_expr
from gpu_ref.codegen.plan import KernelPlan, Plan
from gpu_ref.codegen.refusal import KernelRefusal
from gpu_ref.codegen.skipping import condition_vars
from gpu_ref.codegen.values import (
    FUNCTIONS, IDENTITY, REDUCER, ZERO_PRESERVING, Term, Val, atom, expand,
)


FP32_MAX = 3.4028234663852886e38


@dataclass
class Reg:
    """A tensor held in registers: its block, its left-hand side over kernel variables and,
    for running state, the slot of its tile index and its blocks before / after the tile."""

    val: Val
    lhs: tuple
    slot: int | None = None
    prev: Val | None = None
    final: Val | None = None


@dataclass
class Scope:
    """Lines of one function body being written, with its cache of loads."""

    lines: list[str] = field(default_factory=list)
    loads: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)  # Term -> mask variable name
    mask_lines: list[str] = field(default_factory=list)
    tile: bool = False  # inside the tile step (MASKED exists)

    def emit(self, line: str) -> None:
        self.lines.append(line)


@dataclass
class Global:
    """A tensor in global memory: an input or a tensor an earlier kernel stored."""

    name: str
    slot_ranks: tuple[str, ...]  # the rank of each stored slot
    query_side: bool  # indexed per query head (else per key/value head)
    lhs_vars: tuple[str, ...] = ()  # for a stored tensor: the variables of its slots
    presence: tuple = ()  # for a stored tensor: its conditions over lhs_vars


class KernelWriter:
    """Writes the `@triton.jit` kernel (and its tile step) of one pass."""

    def __init__(self, plan: Plan, kplan: KernelPlan, globals_: dict[str, Global], stored: dict[str, str],
                 dot_dtype: str, fp32: bool):
        self.plan, self.k, self.globals, self.stored = plan, kplan, globals_, stored
        self.c = plan.cascade
        self.dot_dtype, self.fp32 = dot_dtype, fp32
        self.order = [plan.row, plan.key] + list(plan.whole)
        self.env: dict[str, Reg] = {}
        self.accs: dict[object, tuple[str, Val, str]] = {}  # reduction -> (state name, partial, op)
        self.tmp = 0
        self.current = ""  # the Einsum being written (for refusals)
        self.uses_prod = False
        m1 = plan.tile_var
        self.subs = {}
        for v, (axis, role, outer, inner_size) in plan.derived.items():  # x0 = x - X0 * x1
            if role == "inner":
                self.subs[var_symbol(v)] = (var_symbol(self.c.ranks[axis].var)
                                            - size_symbol(inner_size) * var_symbol(outer))
        if m1:
            in_tile = plan.in_tile_var
            tile_size = self.c.ranks[plan.key].parts[1]
            self.subs[var_symbol(in_tile)] = var_symbol(plan.key_var) - size_symbol(tile_size) * var_symbol(m1)
        self.pre = Scope()
        self.step = Scope(tile=True)
        self.post = Scope()
        self.scope = self.pre
        self.state: list[tuple[str, str]] = []  # (name before the tile, name after it)
        self.groups: list[tuple] = []  # conjunctions of conditions of the tile step (see group)
        self.block_axes: set[tuple[str, ...]] = set()  # the axes of every block written
        self.data_masks = False  # a data-dependent `where` (every tile then runs, none is skipped)

    # -- helpers -----------------------------------------------------------------------------
    def group(self, terms) -> None:
        """Record a conjunction of conditions that makes values of the tile step absent."""
        conds = tuple(sorted((t.cond for t in terms if t.kind == "cond"), key=describe))
        if conds and self.scope is self.step and conds not in self.groups:
            self.groups.append(conds)

    def refuse(self, reason: str, name: str | None = None) -> KernelRefusal:
        return KernelRefusal(self.c.name, name or self.current, reason)

    def fresh(self, stem: str) -> str:
        self.tmp += 1
        return f"{stem}_{self.tmp}"

    def canon(self, axes) -> tuple[str, ...]:
        return tuple(a for a in self.order if a in set(axes))

    def shape(self, axes: tuple[str, ...]) -> str:
        return "[" + ", ".join(self.block(a) for a in axes) + "]"

    def block(self, axis: str) -> str:
        if axis == self.plan.row:
            return "BLOCK_M"
        if axis == self.plan.key:
            return "BLOCK_N"
        return f"DIM_{axis}"

    def offs(self, axis: str) -> str:
        return f"offs_{self.c.ranks[axis].var}"

    def inside(self, axis: str) -> str:
        """Code of the points of an axis inside its extent: `in_e` for a whole axis (all true,
        a constant the compiler folds, when its extent is its padded power of two)."""
        if axis in self.plan.whole:
            return f"in_{self.c.ranks[axis].var}"
        return f"{self.offs(axis)} < size_{axis}"

    def sub(self, expr) -> sympy.Expr:
        return sympy.expand(sympy.sympify(expr).subs(self.subs)) if self.subs else sympy.expand(sympy.sympify(expr))

    # -- index expressions (integers) --------------------------------------------------------
    def symbol(self, sym: sympy.Symbol) -> Val:
        name = str(sym)
        plan = self.plan
        if name in self.c.variables:
            if name == plan.tile_var:
                return Val("m1")
            if name in plan.derived:  # the outer part of a split rank run flat: x // X0
                axis, _role, _outer, inner_size = plan.derived[name]
                return Val(f"({self.offs(axis)} // size_{inner_size})", (axis,))
            axis = plan.axis_of(name)
            if axis == plan.row or axis == plan.key or axis in plan.whole:
                return Val(self.offs(axis), (axis,))
        key = self.c.ranks[plan.key]
        if plan.tile_var and key.parts and name == key.parts[1]:
            return Val("BLOCK_N")
        if plan.tile_var and key.parts and name == key.parts[0]:
            raise self.refuse(f"uses the number of tiles {name} outside a final read")
        if name in self.c.ranks or name in self.c.var_rank.values():
            return Val(f"size_{name}")
        if name in self.c.params:
            return Val(f"param_{name}")
        raise self.refuse(f"unknown symbol {name}")

    def index(self, expr) -> Val:
        """An affine sympy expression of kernel variables as integer block code."""
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return Val(str(int(expr)))
        if expr.is_Number:
            return Val(repr(float(expr)))
        if expr.is_Symbol:
            return self.symbol(expr)
        if expr.is_Add:
            parts = [self.index(t) for t in expr.as_ordered_terms()]
            out = parts[0]
            for p in parts[1:]:
                if p.code.startswith("-"):
                    out = self.combine("{0} - {1}", [out, Val(p.code[1:], p.axes)])
                else:
                    out = self.combine("{0} + {1}", [out, p])
            return out
        if expr.is_Mul:
            coeff, rest = expr.as_coeff_Mul()
            factors = [self.index(f) for f in sympy.Mul.make_args(rest)]
            out = factors[0]
            for f in factors[1:]:
                out = self.combine("{0} * {1}", [out, f], raw=True)
            if coeff == -1:
                return Val("-" + atom(out.code), out.axes)
            if coeff != 1:
                return self.combine("{0} * {1}", [self.index(coeff), out], raw=True)
            return out
        if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
            base = self.index(expr.base)
            out = base
            for _ in range(int(expr.exp) - 1):
                out = self.combine("{0} * {1}", [out, base], raw=True)
            return out
        raise self.refuse(f"index expression {expr} is not affine")

    # -- combining blocks --------------------------------------------------------------------
    def combine(self, template: str, vals: list[Val], zero: bool = False, raw: bool = False) -> Val:
        axes = self.canon(set().union(*(v.axes for v in vals)))
        self.block_axes.add(axes)
        codes = [atom(expand(v.code, v.axes, axes)) for v in vals]
        if raw:
            codes = [atom(c) for c in codes]
        mask = frozenset().union(*(v.mask for v in vals))
        return Val(template.format(*codes), axes, mask, zero)

    def bind(self, stem: str, val: Val) -> Val:
        """Assign `val` to a new variable (a statement) and return it under that name."""
        name = self.fresh(stem)
        self.scope.emit(f"{name} = {val.code}")
        return Val(name, val.axes, val.mask, val.zero)

    def broadcast(self, val: Val, axes: tuple[str, ...]) -> Val:
        """`val` at the full shape of `axes` (a superset of its axes)."""
        axes = self.canon(axes)
        if val.axes == axes:
            return val
        self.block_axes.add(axes)
        code = f"{atom(expand(val.code, val.axes, axes))} + tl.zeros({self.shape(axes)}, tl.float32)"
        return Val(code, axes, val.mask, val.zero)

    # -- conditions --------------------------------------------------------------------------
    def cond_sub(self, cond):
        """A condition with the in-tile variable written through the key variable."""
        if isinstance(cond, Comparison):
            return Comparison(self.sub(cond.left), cond.op, self.sub(cond.right))
        if isinstance(cond, BoolOp):
            return BoolOp(cond.op, tuple(self.cond_sub(a) for a in cond.args))
        if isinstance(cond, Not):
            return Not(self.cond_sub(cond.arg))
        raise self.refuse("a data-dependent condition (it compares tensor values: a selection stage "
                          "such as top-k is not generated)")

    def term(self, cond) -> Term:
        """The presence term of a `where` condition: "data" when it compares tensor values (top-k's
        `QK[m,p] >= T[p]`: an element mask applied in every tile, never a reason to skip one),
        else "cond" (affine)."""
        if is_data_dependent(cond):
            self.data_masks = True
            return Term("data", cond)
        return Term("cond", self.cond_sub(cond))

    def data_mask(self, cond) -> Val:
        """A data-dependent condition as a boolean block, computed where it is first applied."""
        cache = self.scope.loads
        if ("data", cond) in cache:
            return cache[("data", cond)]
        if isinstance(cond, Compare):
            a, b = self.value(cond.left), self.value(cond.right)
            val = self.combine("{0} " + cond.op + " {1}", [a, b], raw=True)
        elif isinstance(cond, BoolOp):
            parts = [self.data_mask(a) if is_data_dependent(a) else self.cond_code(self.cond_sub(a))
                     for a in cond.args]
            sep = " & " if cond.op == "and" else " | "
            val = self.combine(sep.join("{%d}" % i for i in range(len(parts))), parts, raw=True)
        elif isinstance(cond, Not):
            inner = self.data_mask(cond.arg) if is_data_dependent(cond.arg) else self.cond_code(self.cond_sub(cond.arg))
            val = Val(f"{atom(inner.code)} == 0", inner.axes)
        else:
            raise self.refuse(f"a condition {describe(cond)} of no known form")
        name = self.fresh("keep_data")
        self.scope.emit(f"{name} = {val.code}  # {describe(cond)}")
        out = Val(name, val.axes)
        cache[("data", cond)] = out
        return out

    def cond_code(self, cond) -> Val:
        if isinstance(cond, Comparison):
            return self.combine("{0} " + cond.op + " {1}", [self.index(cond.left), self.index(cond.right)], raw=True)
        if isinstance(cond, BoolOp):
            sep = " & " if cond.op == "and" else " | "
            parts = [self.cond_code(a) for a in cond.args]
            return self.combine(sep.join("{%d}" % i for i in range(len(parts))), parts, raw=True)
        inner = self.cond_code(cond.arg)
        return Val(f"{atom(inner.code)} == 0", inner.axes)

    def cond_axes(self, cond) -> tuple[str, ...]:
        if is_data_dependent(cond):
            return self.data_mask(cond).axes
        return self.cond_code(cond).axes

    def mask_name(self, term: Term) -> Val:
        """The variable holding a presence condition in the current scope (defined at its top)."""
        cond = term.cond
        if term.kind == "data":
            return self.data_mask(cond)
        if isinstance(cond, Comparison) and cond.op == "<" and str(cond.left) in self.c.variables:
            axis = self.plan.axis_of(str(cond.left))
            if axis in self.plan.whole and cond.right == size_symbol(axis):
                return Val(self.inside(axis), (axis,))
        scope = self.scope
        if term not in scope.masks:
            code = self.cond_code(term.cond)
            name = f"keep_{len(scope.masks)}"
            scope.masks[term] = (name, code.axes)
            scope.mask_lines.append(f"{name} = {code.code}  # {describe(term.cond)}")
        name, axes = scope.masks[term]
        return Val(name, axes)

    def apply_mask(self, val: Val, terms, fill: str, stem: str) -> Val:
        """`val` with `fill` where a presence term fails (a statement; terms dropped in unmasked
        tiles are applied only when MASKED)."""
        terms = sorted(set(terms), key=lambda t: (t.kind, describe(t.cond)))
        if not terms:
            return Val(val.code, val.axes, frozenset(), val.zero)
        masks = [self.mask_name(t) for t in terms]
        axes = self.canon(set(val.axes).union(*(m.axes for m in masks)))
        val = self.broadcast(val, axes) if set(axes) - set(val.axes) else val
        name = self.fresh(stem)
        self.scope.emit(f"{name} = {val.code}")
        always = [m for m, t in zip(masks, terms) if t.kind in ("bounds", "data") or not self.scope.tile]
        tiled = [m for m, t in zip(masks, terms) if not (t.kind in ("bounds", "data") or not self.scope.tile)]

        def where(ms):
            cond = " & ".join(expand(m.code, m.axes, axes) for m in ms)
            return f"{name} = tl.where({cond}, {name}, {fill})"

        if always:
            self.scope.emit(where(always))
        if tiled:
            self.scope.emit("if MASKED:")
            self.scope.emit("    " + where(tiled))
        return Val(name, axes, frozenset(), False)

    # -- values ------------------------------------------------------------------------------
    def value(self, node: Node) -> Val:
        if isinstance(node, Number):
            v = float(node.value)
            if v in (float("inf"), -float("inf")):
                return Val("float('inf')" if v > 0 else "float('-inf')")
            if abs(v) > FP32_MAX:  # e.g. fuse's -1e300 start of a running max: the largest finite fp32
                return Val(repr(FP32_MAX if v > 0 else -FP32_MAX))
            return Val(repr(v))
        if isinstance(node, Size):
            s = self.symbol(size_symbol(node.name))
            return Val(f"({s.code} * 1.0)")
        if isinstance(node, Var):
            s = self.index(self.sub(var_symbol(node.name)))
            return Val(f"({s.code}) * 1.0" if s.axes else f"({s.code} * 1.0)", s.axes)
        if isinstance(node, Access):
            return self.read(node)
        if isinstance(node, Unary):
            x = self.value(node.operand)
            return Val(f"-{atom(x.code)}", x.axes, x.mask, x.zero)
        if isinstance(node, Binary):
            a, b = self.value(node.left), self.value(node.right)
            # zero outside the ranges only if both are: 0 * (an unbounded value there) need not be 0
            zero = (a.zero and b.zero) if node.op in "*+-" else False
            return self.combine("{0} " + node.op + " {1}", [a, b], zero)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Compare):
            a, b = self.value(node.left), self.value(node.right)
            return self.combine("tl.where({0} " + node.op + " {1}, 1.0, 0.0)", [a, b])
        if isinstance(node, BoolOp):
            parts = [self.value(a) for a in node.args]
            sep = " & " if node.op == "and" else " | "
            body = sep.join("({%d} != 0.0)" % i for i in range(len(parts)))
            return self.combine("tl.where(" + body + ", 1.0, 0.0)", parts)
        if isinstance(node, Not):
            x = self.value(node.arg)
            return self.combine("tl.where({0} == 0.0, 1.0, 0.0)", [x])
        if isinstance(node, Reduce):
            if node in self.accs:
                name, _, _ = self.accs[node]
                return Val(name, self.accs[node][1].axes)
            return self.reduce(node.op, node.vars, node.body, node.where, node.k)
        raise self.refuse(f"unknown expression {node!r}")

    def call(self, node: Call) -> Val:
        if node.func == "select":
            cond, a, b = (self.value(x) for x in node.args)
            if a.mask != b.mask:
                raise self.refuse("select of two operands present at different points")
            out = self.combine("tl.where({0} != 0.0, {1}, {2})", [cond, a, b])
            return out
        if node.func == "pow":
            base, exponent = node.args
            if not isinstance(exponent, Number):
                raise self.refuse("pow with a tensor exponent (only a constant exponent is generated)")
            x = self.value(base)
            n = float(exponent.value)
            if n.is_integer() and 0 < abs(n) <= 8:
                out = self.combine(" * ".join(["{0}"] * int(abs(n))), [x], x.zero)
                return out if n > 0 else self.combine("1.0 / {0}", [out])
            return self.combine("tl.exp(" + repr(n) + " * tl.log({0}))", [x])
        if node.func not in FUNCTIONS:
            raise self.refuse(f"function {node.func} has no Triton form here")
        args = [self.value(a) for a in node.args]
        zero = node.func in ZERO_PRESERVING and args[0].zero
        if FUNCTIONS[node.func].count("{0}") > 1 and not args[0].code.replace("_", "").isalnum():
            args[0] = self.bind("x", args[0])  # a template that repeats its argument: computed once
        return self.combine(FUNCTIONS[node.func], args, zero)

    # -- reads -------------------------------------------------------------------------------
    def read(self, access: Access) -> Val:
        name = access.tensor
        if name in self.plan.views:  # a re-indexed input: read the input itself
            view = self.plan.views[name]
            mapping = dict(zip(view.lhs, access.indices))
            inner = view.expr
            idx = tuple(sympy.expand(sympy.sympify(ix).xreplace(mapping)) for ix in inner.indices)
            return self.read(Access(inner.tensor, idx, access.line, access.col))
        if name in self.env:
            return self.read_register(access)
        if name in self.globals:
            return self.load(access)
        k = self.plan.kernel_of.get(name)
        raise self.refuse(f"reads {name} before it is complete (it is computed "
                          f"{'later in' if k == self.k.index else 'in'} pass {k})")

    def read_register(self, access: Access) -> Val:
        reg = self.env[access.tensor]
        want = [self.sub(ix) for ix in access.indices]
        for d, (have, got) in enumerate(zip(reg.lhs, want)):
            if d == reg.slot:
                continue
            if sympy.simplify(have - got) != 0:
                raise self.refuse(f"reads {access.tensor}[{', '.join(map(str, access.indices))}]: not the block "
                                  f"it computes ({access.tensor}[{', '.join(map(str, reg.lhs))}]); a kernel reads "
                                  "a tensor of its own pass only at its own points")
        if reg.slot is None:
            return reg.val
        step = want[reg.slot]
        m1 = var_symbol(self.plan.tile_var)
        parts = self.c.ranks[self.plan.key].parts
        if step == m1 + 1 and self.scope is self.step and reg.val is not None:
            return reg.val
        if step == m1 and self.scope is self.step:
            return reg.prev
        if step == size_symbol(parts[0]) and self.scope is self.post:
            return reg.final
        raise self.refuse(f"reads {access.tensor} at step {step} here (a kernel reads running state at the "
                          "previous or current tile inside the loop, at its last index after it)")

    def load(self, access: Access) -> Val:
        g = self.globals[access.tensor]
        idx = [self.sub(ix) for ix in access.indices]
        if g.lhs_vars and len(idx) != len(g.slot_ranks) and self.plan.derived:  # a split pair stored flat
            idx = [self.sub(ix) for ix in (self.plan.collapse(access.indices) or access.indices)]
        if g.lhs_vars:  # a stored tensor: its own slots (the step slot of running state dropped)
            reg_slot = self.c.iterative_slot.get(access.tensor)
            if reg_slot is not None:
                parts = self.c.ranks[self.plan.key].parts
                if idx[reg_slot] != size_symbol(parts[0]):
                    raise self.refuse(f"reads {access.tensor} at step {idx[reg_slot]} in a later pass (only its "
                                      "final value is stored)")
                idx = idx[:reg_slot] + idx[reg_slot + 1:]
        hoist = self.scope is self.step and not any(
            str(s) in self.plan.key_vars | {self.plan.tile_var} for ix in idx for s in sympy.sympify(ix).free_symbols)
        if hoist:  # the same block for every tile: loaded once, before the loop
            inner, self.scope = self.scope, self.pre
            try:
                return self.load_here(access, g, idx)
            finally:
                self.scope = inner
        return self.load_here(access, g, idx)

    def load_here(self, access: Access, g: Global, idx: list) -> Val:
        cache_key = (access.tensor, tuple(idx))
        if cache_key in self.scope.loads:
            return self.scope.loads[cache_key]
        terms, load_masks = set(), []
        for ix, rank in zip(idx, g.slot_ranks):
            plain = ix.is_Symbol and str(ix) in self.c.variables and self.plan.axis_of(str(ix)) == rank
            if plain:
                axis = rank
                if axis == self.plan.key:
                    terms.add(Term("key", Comparison(ix, "<", size_symbol(rank))))
                else:
                    load_masks.append(Val(self.inside(axis), (axis,)))
            else:
                for cond in (Comparison(ix, ">=", sympy.Integer(0)), Comparison(ix, "<", size_symbol(rank))):
                    if not _trivially_true(cond):
                        terms.add(Term("bounds", cond))
                # zero past the extents of the axes it spans (a padded head dim `w` of `p - w` reads real keys)
                for v in sorted(str(s) for s in ix.free_symbols if str(s) in self.c.variables):
                    axis = self.plan.axis_of(v)
                    if axis in self.plan.whole:
                        load_masks.append(Val(self.inside(axis), (axis,)))
                    elif axis == self.plan.key:
                        terms.add(Term("key", Comparison(var_symbol(v), "<", size_symbol(axis))))
        index_vals = [self.index(ix) for ix in idx]
        axes = self.canon(set().union(*(v.axes for v in index_vals)) if index_vals else set())
        ptr = f"ptr_{g.name} + base_{g.name}" + "".join(
            f" + {atom(expand(v.code, v.axes, axes))} * s_{g.name}_{d}" for d, v in enumerate(index_vals))
        key_masks = []  # dropped in tiles inside the sequence
        for t in sorted(terms, key=lambda t: describe(t.cond)):
            (key_masks if t.kind == "key" and self.scope.tile else load_masks).append(self.mask_name(t))
        presence = set()
        for cond in g.presence:  # a stored tensor is present where its conditions held
            mapping = {var_symbol(v): ix for v, ix in zip(g.lhs_vars, idx)}
            presence.add(Term("cond", _subs_cond(cond, mapping)))
        self.group(presence)
        terms |= presence
        name = self.fresh(access.tensor.lower())
        comment = f"  # {access.tensor}[{', '.join(map(str, access.indices))}]"

        def load(masks) -> str:
            mask = " & ".join(expand(m.code, m.axes, axes) for m in masks)
            return f"{name} = tl.load({ptr}{', mask=' + mask + ', other=0.0' if mask else ''}).to(tl.float32)"

        if key_masks:
            self.scope.emit("if MASKED:")
            self.scope.emit(f"    {load(load_masks + key_masks)}{comment}")
            self.scope.emit("else:")
            self.scope.emit(f"    {load(load_masks)}")
        else:
            self.scope.emit(load(load_masks) + comment)
        out = Val(name, axes, frozenset(terms), True)
        self.scope.loads[cache_key] = out
        return out

    # -- reductions --------------------------------------------------------------------------
    def axis_of_reduced(self, var: str) -> str:
        plan = self.plan
        if var == plan.tile_var:
            raise self.refuse(f"reduces over the tile index {var} (a kernel reduces over keys, not tiles)")
        axis = plan.axis_of(var)
        if axis == plan.row:
            raise self.refuse(f"reduces over {axis}, the rank split across programs")
        return axis

    def reduce(self, op: str, rvars, body: Node, conds=(), k=None, partial: bool = False) -> Val:
        """`op(rvars: body where conds)` over the current block (the current tile for keys)."""
        if op not in IDENTITY:
            raise self.refuse(f"a {op} reduction over {', '.join(rvars)}: a k-th value is generated only as a "
                              f"running selection over the streamed keys {self.plan.key}, per row")
        axes = list(dict.fromkeys(self.axis_of_reduced(v) for v in rvars))  # both parts of a split: one axis
        terms = {self.term(c) for c in conds}
        self.group(terms)
        if op == "sum":
            factors = _factors(body)
            if len(factors) > 1:
                vals = [self.value(f) for f in factors]
                dot = self.try_dot(vals, axes, terms)
                if dot is not None:
                    return dot
                product = vals[0]
                for v in vals[1:]:
                    product = self.combine("{0} * {1}", [product, v], product.zero or v.zero)
                return self.fold(op, product, axes, terms)
        return self.fold(op, self.value(body), axes, terms)

    def range_term(self, axis: str) -> Term:
        """Inside the extent of an axis: the key inside the sequence ("key": dropped in tiles inside
        it), a head dim inside its size (padded to a power of two; "bounds": always applied)."""
        if axis == self.plan.key:
            return Term("key", Comparison(var_symbol(self.plan.key_var), "<", size_symbol(axis)))
        return Term("bounds", Comparison(var_symbol(self.c.ranks[axis].var), "<", size_symbol(axis)))

    def fold(self, op: str, val: Val, axes, terms) -> Val:
        """`op` over `axes` of `val`, absent points (and those past the axes' extents) skipped."""
        axes = self.canon(axes)
        val = self.broadcast(val, self.canon(set(val.axes) | set(axes)))
        all_terms = set(val.mask) | set(terms)
        if op == "sum" and val.zero:  # zero past the extents already: the sum needs no range mask
            all_terms = {t for t in all_terms if t.kind != "key"}
        else:
            all_terms |= {self.range_term(a) for a in axes}
        x = self.apply_mask(val, all_terms, IDENTITY[op], "x") if all_terms else val
        code, have = x.code, list(x.axes)
        for axis in sorted(axes, key=lambda a: -have.index(a)):
            i = have.index(axis)
            if op == "prod":
                self.uses_prod = True
                code = f"tl.reduce({code}, {i}, _mul)"
            else:
                code = f"{REDUCER[op]}({code}, {i})"
            have.pop(i)
        return Val(code, tuple(have), frozenset(), op == "sum" and val.zero)

    def try_dot(self, vals: list[Val], axes, terms) -> Val | None:
        """`tl.dot` of two blocks of two axes sharing the one reduced axis, masks moved onto the
        operand that holds their axes; None when the product is not of that form."""
        if len(vals) != 2 or len(axes) != 1:
            return None
        a, b = vals
        (c,) = axes
        if len(a.axes) != 2 or len(b.axes) != 2 or c not in a.axes or c not in b.axes or set(a.axes) == set(b.axes):
            return None
        # absent points (a `where`, a shifted read) are zeroed in every operand that holds their
        # axes, so that no product meets a value computed there; keys past the end and padded
        # head dims likewise, in each operand not already zero there
        pending = {t for t in set(a.mask) | set(b.mask) | set(terms) if t.kind != "key"}
        if pending - {t for t in pending if set(self.cond_axes(t.cond)) <= set(a.axes) | set(b.axes)}:
            return None
        on_a = {t for t in pending if set(self.cond_axes(t.cond)) <= set(a.axes)}
        on_b = {t for t in pending if set(self.cond_axes(t.cond)) <= set(b.axes)}
        if pending - on_a - on_b:
            return None
        extent = self.range_term(c)
        on_a |= set() if a.zero else {extent}
        on_b |= set() if b.zero else {extent}
        a = self.apply_mask(a, on_a, "0.0", "a") if on_a else a
        b = self.apply_mask(b, on_b, "0.0", "b") if on_b else b
        out_axes = self.canon(set(a.axes + b.axes) - {c})
        left, right = (a, b) if out_axes[0] in a.axes else (b, a)
        lcode = left.code if left.axes == (out_axes[0], c) else f"tl.trans({left.code})"
        rcode = right.code if right.axes == (c, out_axes[1]) else f"tl.trans({right.code})"
        precision = ', input_precision="ieee"' if self.fp32 else ""
        if self.dot_dtype == "tl.bfloat16":  # through a helper: the interpreter's bf16 products are wrong
            code = f"tl.dot(_bf16({lcode}, INTERPRET), _bf16({rcode}, INTERPRET))"
        else:
            cast = "" if self.fp32 else f".to({self.dot_dtype})"
            code = f"tl.dot({atom(lcode)}{cast}, {atom(rcode)}{cast}{precision})"
        return Val(code, out_axes, frozenset(), a.zero and b.zero)

    # -- Einsums -----------------------------------------------------------------------------
    def einsum_value(self, e: Einsum) -> Val:
        """The right-hand side of `e` with its implicit sum and its `where` (as the evaluator)."""
        where = tuple(e.space_where)
        implicit = tuple(sorted(e.implicit_vars))
        wvars = set()
        for c in where:
            wvars |= c.variables if isinstance(c, Comparison) else condition_vars(c)
        inner = where if where and wvars & set(implicit) else ()
        outer = where if where and not inner else ()
        if implicit:
            if ("implicit", e.name) in self.accs:
                name, partial, _ = self.accs[("implicit", e.name)]
                val = Val(name, partial.axes)
            else:
                val = self.reduce("sum", implicit, e.expr, inner)
        else:
            val = self.value(e.expr)
        if outer:
            terms = {self.term(c) for c in outer}
            self.group(terms)
            val = Val(val.code, val.axes, val.mask | terms, val.zero)
        return val

    def out_axes(self, e: Einsum) -> tuple[str, ...]:
        axes = set()
        for v in e.output_vars:
            if v == self.plan.tile_var:
                continue
            axes.add(self.plan.axis_of(v))
        return self.canon(axes)

    def write(self, e: Einsum, stem: str | None = None) -> Val:
        """One Einsum as a statement in the current scope; returns its block."""
        self.current = e.name
        val = self.einsum_value(e)
        axes = self.out_axes(e)
        if set(val.axes) - set(axes):
            raise self.refuse(f"its value depends on {sorted(set(val.axes) - set(axes))} that is neither on the "
                              "left nor reduced")
        name = stem or e.name.lower()
        self.scope.emit(f"# {format_einsum(e, self.c.variables)}")
        if self.plan.tile_var and e.iterative_var == self.plan.tile_var or (self.scope is self.step and
                                                                            e.name in self.stored):
            val = self.broadcast(val, axes)
        self.scope.emit(f"{name} = {val.code}")
        return Val(name, val.axes, val.mask, val.zero)

    def lhs(self, e: Einsum) -> tuple:
        return tuple(self.sub(ix) for ix in e.lhs)


def describe(cond) -> str:
    """A condition as cascade text."""
    return format_expr(cond)


def _factors(node: Node) -> list[Node]:
    if isinstance(node, Binary) and node.op == "*":
        return _factors(node.left) + _factors(node.right)
    return [node]


def _subs_cond(cond, mapping: dict):
    if isinstance(cond, Comparison):
        return Comparison(sympy.expand(cond.left.subs(mapping)), cond.op, sympy.expand(cond.right.subs(mapping)))
    if isinstance(cond, BoolOp):
        return BoolOp(cond.op, tuple(_subs_cond(a, mapping) for a in cond.args))
    return Not(_subs_cond(cond.arg, mapping))


def _trivially_true(cond: Comparison) -> bool:
    """`x >= 0` of a non-negative expression (a sum of variables and sizes with positive
    coefficients)."""
    diff = sympy.expand(cond.left - cond.right)
    return cond.op == ">=" and diff.is_nonnegative is True
