"""One pass as a Triton kernel: prologue, the loop over key tiles (calling the tile step with
MASKED=False in tiles inside the sequence where every condition holds, MASKED=True in the
others, and not at all in tiles where every condition fails, when that is proved to change
nothing), epilogue and stores."""
from __future__ import annotations

import ast as pyast
import builtins
import keyword

import sympy

from einsum_cascade.ast import Comparison, Number, Reduce, Size, children, value_vars, walk
from einsum_cascade.ir import Einsum
from gpu_ref.codegen.emit import KernelWriter, Reg, describe
from gpu_ref.codegen.ranges import tile_ranges
from gpu_ref.codegen.skipping import NEVER, skip_is_identity, tile_bounds
from gpu_ref.codegen.values import COMBINE, IDENTITY, Val, atom, expand

_NOT_ARGS = {"tl", "triton", "MASKED", "_mul", "_bf16", "_topk_merge", "_topk_kth"} | set(dir(builtins))
KTH = ("kth", "kth_smallest")

TOPK_HELPERS = '''@triton.jit
def _topk_merge(best, tile, k, KPAD: tl.constexpr, BLOCK_N: tl.constexpr):
    """The k largest values of each row of `best` (the k largest so far, in order, -inf padded)
    and `tile` together, in order: k rounds of taking the larger head and removing it once."""
    cols = tl.arange(0, KPAD)[None, :]
    keys = tl.arange(0, BLOCK_N)[None, :]
    out = tl.full(best.shape, float('-inf'), tl.float32)
    for i in range(0, k):
        a = tl.max(best, 1)
        b = tl.max(tile, 1)
        from_best = a >= b
        out = tl.where(cols == i, tl.maximum(a, b)[:, None], out)
        at_a = tl.min(tl.where(best == a[:, None], cols, KPAD), 1)
        at_b = tl.min(tl.where(tile == b[:, None], keys, BLOCK_N), 1)
        best = tl.where(from_best[:, None] & (cols == at_a[:, None]), float('-inf'), best)
        tile = tl.where((from_best == 0)[:, None] & (keys == at_b[:, None]), float('-inf'), tile)
    return out


@triton.jit
def _topk_kth(best, k, KPAD: tl.constexpr):
    """The k-th largest value of each row (-inf when fewer than k were present)."""
    cols = tl.arange(0, KPAD)[None, :]
    return tl.max(tl.where(cols == k - 1, best, float('-inf')), 1)
'''


def _pow2(n: int) -> int:
    """The smallest power of two >= max(n, 16) (the width of a k-best buffer)."""
    p = 16
    while p < n:
        p *= 2
    return p
INDENT = "    "


def local_name(tensor: str) -> str:
    """The Python variable of a tensor's block (lower case; a keyword gets a trailing _)."""
    name = tensor.lower()
    return name + "_" if keyword.iskeyword(name) or name in _NOT_ARGS or name.startswith("_") else name


def free_names(lines: list[str]) -> list[str]:
    """Names a function body reads but does not assign, in order of first use."""
    tree = pyast.parse("\n".join(lines) or "pass")
    assigned = set()
    loads = []
    for node in pyast.walk(tree):
        if isinstance(node, pyast.Name):
            if isinstance(node.ctx, pyast.Store):
                assigned.add(node.id)
            else:
                loads.append((node.lineno, node.col_offset, node.id))
    order, seen = [], set()
    for _line, _col, name in sorted(loads):
        if name not in assigned and name not in _NOT_ARGS and name not in seen and not name.startswith("_pass"):
            seen.add(name)
            order.append(name)
    return sorted(order, key=lambda n: (_group(n), order.index(n)))


def _group(name: str) -> int:
    """Parameter groups: tensors (pointer, head offset, strides), sizes and params, head counts,
    values of the kernel, compile-time tile sizes."""
    for i, prefix in enumerate(("ptr_", "base_", "s_", "size_", "param_")):
        if name.startswith(prefix):
            return i
    if name in ("heads", "group"):
        return 5
    return 7 if is_constexpr(name) else 6


def is_constexpr(name: str) -> bool:
    return name in ("BLOCK_M", "BLOCK_N", "INTERPRET") or name.startswith(("DIM_", "EVEN_", "KPAD_"))


def signature(names: list[str]) -> str:
    return ", ".join(f"{n}: tl.constexpr" if is_constexpr(n) else n for n in names)


def _free(cond) -> set:
    if isinstance(cond, Comparison):
        return (cond.left - cond.right).free_symbols
    return set().union(*(_free(a) for a in getattr(cond, "args", (getattr(cond, "arg", None),)) if a is not None))


class PassWriter(KernelWriter):
    """The kernel of one pass (see the module docstring)."""

    integer_params: set

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.integer_params = set()
        self.kth_params: set[str] = set()  # params that are a k of a running k-th value
        self.kth = False

    def store(self, e_name: str, val: Val, lhs_vars: tuple[str, ...]) -> None:
        """Store a tensor's block (absent points as 0) at its slots `lhs_vars`."""
        g = self.globals[e_name]
        axes = self.canon({self.plan.axis_of(v) for v in lhs_vars})
        val = self.broadcast(val, axes)
        if e_name in self.c.outputs and val.mask:
            val = self.apply_mask(val, val.mask, "0.0", "out")
        ptr = f"ptr_{e_name} + base_{e_name}" + "".join(
            f" + {expand(self.offs(self.plan.axis_of(v)), (self.plan.axis_of(v),), axes)} * s_{e_name}_{d}"
            for d, v in enumerate(lhs_vars))
        masks = []
        for axis in axes:
            masks.append(expand(atom(self.inside(axis)), (axis,), axes))
        if self.plan.row not in axes:
            masks.append("(pid_m == 0)")
        mask = " & ".join(masks)
        self.scope.emit(f"tl.store({ptr}, {atom(val.code)}.to(ptr_{e_name}.dtype.element_ty)"
                        f"{', mask=' + mask if mask else ''})  # {g.name}")

    def lhs_vars(self, e: Einsum) -> tuple[str, ...]:
        out = []
        for d, ix in enumerate(e.lhs):
            if d == self.c.iterative_slot.get(e.name):
                continue
            out.append(ix)
        if self.plan.derived:  # a split pair (or X0 * x1 + x0) of a rank run flat: the flat variable
            out = self.plan.collapse(out) or out
        return tuple(str(ix) for ix in out)

    def presence(self, val: Val) -> tuple:
        return tuple(sorted((t.cond for t in val.mask if t.kind in ("cond", "bounds")), key=describe))

    def finish(self, e: Einsum, val: Val) -> None:
        """Record a computed tensor and store it if a later kernel or the caller needs it."""
        if e.name in self.stored:
            if e.name not in self.c.outputs and any(t.kind == "data" for t in val.mask):
                raise self.refuse("stored for a later pass under a data-dependent condition (its absent points "
                                  "would read as 0 there)", e.name)
            self.store(e.name, val, self.lhs_vars(e))
            self.globals[e.name].presence = self.presence(val)

    # -- the three parts ---------------------------------------------------------------------
    def write_pre(self) -> None:
        self.scope = self.pre
        for e in self.k.pre:
            val = self.write(e, local_name(e.name))
            self.env[e.name] = Reg(val, self.lhs(e))
            self.finish(e, val)

    def key_reductions(self) -> list[tuple[object, Einsum, Reduce | None]]:
        """The running reductions over keys of this kernel's accumulating Einsums:
        (key of the accumulator, Einsum, reduction node or None for the implicit sum)."""
        out = []
        kv = self.plan.key_vars
        for e in self.k.accumulate:
            if e.implicit_vars & kv:
                out.append((("implicit", e.name), e, None))
                continue
            stack = [e.expr]
            found = False
            while stack:
                node = stack.pop()
                if isinstance(node, Reduce) and set(node.vars) & kv:
                    if any(isinstance(n, Reduce) and set(n.vars) & kv for n in walk(node.body)):
                        raise self.refuse(f"a reduction over {self.plan.key} inside another", e.name)
                    out.append((node, e, node))
                    found = True
                    continue
                stack.extend(children(node))
            if not found:
                raise self.refuse(f"iterates over {self.plan.key} without a reduction over it", e.name)
        return out

    def reduction_axes(self, e: Einsum, node: Reduce | None) -> tuple[str, ...]:
        if node is None:
            return self.out_axes(e)
        free = value_vars(node, self.c.variables)
        return self.canon({self.plan.axis_of(v) for v in free if v != self.plan.tile_var})

    def write_step(self) -> tuple[list[str], list[str], list[str], dict]:
        """The tile step: its body, the state it takes and returns, and the initial values."""
        self.scope = self.step
        step = self.step
        state_in, state_out, init = [], [], {}
        loop_names = {e.name for e in self.k.loop}
        for e in self.k.loop:
            if e.iterative_var is not None:
                name = local_name(e.name)
                axes = self.out_axes(e)
                self.env[e.name] = Reg(None, self.lhs(e), self.c.iterative_slot[e.name], prev=Val(name, axes))
        for e in self.k.loop:
            if e.iterative_var is not None:
                name = local_name(e.name)
                val = self.write(e, name + "_next")
                reg = self.env[e.name]
                reg.val = Val(val.code, val.axes)
                state_in.append(name)
                state_out.append(name + "_next")
                initial = self.c.initial(e.name)
                if initial is None:
                    raise self.refuse("running state without an initial value", e.name)
                init[name] = (initial, reg.prev.axes)
            else:
                val = self.write(e, local_name(e.name))
                self.env[e.name] = Reg(val, self.lhs(e))
                if e.name in self.stored:
                    if self.c.iterative_slot.get(e.name) is not None or (
                            self.plan.tile_var and self.plan.tile_var in e.output_vars):
                        raise self.refuse("a per-tile value needed after the pass", e.name)
                    self.finish(e, val)
        reductions = []
        for key, e, node in self.key_reductions():
            self.current = e.name
            name = f"acc_{len(self.accs)}"
            step.emit(f"# running {'sum' if node is None else node.op} for {e.name}")
            if node is not None and node.op in KTH:
                self.running_kth(name, e, node, state_in, state_out, init)
                continue
            if node is None:
                inner = tuple(e.space_where) if any(
                    (c.variables if isinstance(c, Comparison) else set()) & set(e.implicit_vars)
                    for c in e.space_where) else tuple(e.space_where)
                partial = self.reduce("sum", tuple(sorted(e.implicit_vars)), e.expr, inner)
                op, body, where = "sum", e.expr, inner
            else:
                partial = self.reduce(node.op, node.vars, node.body, node.where)
                op, body, where = node.op, node.body, node.where
            axes = self.reduction_axes(e, node)
            partial = self.broadcast(partial, axes)
            step.emit(f"{name}_next = " + COMBINE[op].format(name, atom(partial.code)))
            self.accs[key] = (name, Val(name, axes), op)
            state_in.append(name)
            state_out.append(name + "_next")
            init[name] = (op, axes)
            reductions.append((op, body, where))
        masked_reads = {g for (g, _idx), v in self.step.loads.items() if any(t.kind == "cond" for t in v.mask)}
        stored_loop = {e.name for e in self.k.loop if e.name in self.stored}
        if self.data_masks or self.kth:  # a tile's effect then depends on the data: every tile runs
            self.skip = (False, "a data-dependent condition or a running k-th value")
        else:
            self.skip = skip_is_identity(self.c, self.plan.tile_var, self.k.loop, reductions, stored_loop,
                                         masked_reads)
        return state_in, state_out, init, loop_names

    def running_kth(self, name: str, e: Einsum, node: Reduce, state_in, state_out, init) -> None:
        """A running k-th largest (smallest) value over the keys: the k best of each row so far,
        in order, merged with each tile's (`_topk_merge`: k rounds of taking the best of either,
        exact, ties counted as the evaluator's sort counts them); the k-th is read after the loop."""
        axes = self.reduction_axes(e, node)
        if axes != (self.plan.row,):
            raise self.refuse(f"a {node.op} over {self.plan.key} whose result is over {list(axes) or 'no rank'} "
                              f"(the selection stage keeps the best per row of {self.plan.row})")
        if set(node.vars) != {self.plan.key_var}:
            raise self.refuse(f"a {node.op} over {list(node.vars)}: the selection stage selects over the keys only")
        if isinstance(node.k, Number) and float(node.k.value).is_integer() and node.k.value >= 1:
            k_code, pad = str(int(node.k.value)), str(_pow2(int(node.k.value)))
        elif isinstance(node.k, Size) and node.k.name in self.c.params:
            k_code, pad = f"param_{node.k.name}", f"KPAD_{node.k.name}"
            self.kth_params.add(node.k.name)
        else:
            raise self.refuse(f"{node.op}'s k is neither a whole number nor a param")
        worst = "float('-inf')" if node.op == "kth" else "float('inf')"
        val = self.value(node.body)
        terms = set(val.mask) | {self.term(c) for c in node.where} | {self.range_term(self.plan.key)}
        val = self.broadcast(val, (self.plan.row, self.plan.key))
        x = self.apply_mask(val, terms, worst, "x")
        sign = "" if node.op == "kth" else "-"
        self.step.emit(f"{name}_next = _topk_merge({name}, {sign}{atom(x.code)}, {k_code}, {pad}, BLOCK_N)")
        self.kth = True
        final = f"{sign}_topk_kth({name}, {k_code}, {pad})"
        self.accs[node] = (final, Val(final, axes), node.op)
        state_in.append(name)
        state_out.append(name + "_next")
        init[name] = ("kth", pad)

    def init_lines(self, init: dict) -> None:
        self.scope = self.pre
        for name, spec in init.items():
            if spec[0] == "kth":  # the k best so far: none yet
                self.pre.emit(f"{name} = tl.full([BLOCK_M, {spec[1]}], float('-inf'), tl.float32)")
                continue
            if isinstance(spec[0], str):  # a running reduction: its identity
                op, axes = spec
                self.pre.emit(f"{name} = {self.full(axes, IDENTITY[op])}")
                continue
            initial, axes = spec
            self.current = initial.name
            self.pre.emit(f"# {initial.name}: initial value")
            val = self.value(initial.expr)
            if set(val.axes) - set(axes):
                raise self.refuse("initial value over other ranks than the state", initial.name)
            if not val.axes:
                self.pre.emit(f"{name} = {self.full(axes, val.code)}")
            else:
                self.pre.emit(f"{name} = {self.full(axes, '0.0')} + {atom(expand(val.code, val.axes, axes))}")

    def full(self, axes, value: str) -> str:
        if not axes:
            return f"tl.sum(tl.full([1], {value}, tl.float32), 0)"
        return f"tl.full({self.shape(axes)}, {value}, tl.float32)"

    def write_post(self) -> None:
        self.scope = self.post
        for e in self.k.loop:
            if e.iterative_var is not None:
                reg = self.env[e.name]
                reg.final = reg.prev
                if e.name in self.stored:
                    self.store(e.name, reg.final, self.lhs_vars(e))
        for e in self.k.accumulate + self.k.post:
            val = self.write(e, local_name(e.name))
            self.env[e.name] = Reg(val, self.lhs(e))
            self.finish(e, val)

    # -- assembly ----------------------------------------------------------------------------
    def ranges(self) -> list[str] | None:
        """The tile ranges of `ranges.tile_ranges` when the loop's conditions bound the key and
        leaving hidden tiles out is proved to change nothing; None otherwise."""
        conds = sorted((t.cond for t in self.step.masks if t.kind == "cond"), key=describe)
        if conds and not self.skip[0]:
            return None
        if {c for g in self.groups for c in g} != set(conds):  # a condition of no where group
            return None
        row_var = self.c.ranks[self.plan.row].var

        def code(expr, at: str) -> str:
            p = next((s for s in expr.free_symbols if str(s) == row_var), None)
            if p is None:
                return self.index(expr).code
            c = expr.coeff(p)
            rest = sympy.expand(expr - c * p)
            head = at if c == 1 else f"-{at}" if c == -1 else f"{c} * {at}"
            return head if rest == 0 else f"{head} + ({self.index(rest).code})"

        lines = tile_ranges(self.groups, self.plan.key_var, row_var, set(self.c.params), code, f"{row_var}_lo",
                            f"{row_var}_hi", f"size_{self.plan.key}")
        if lines is None:
            return None
        self.integer_params |= {str(s) for g in self.groups for c in g for s in _free(c)} & set(self.c.params)
        rv = row_var
        return [f"{rv}_lo = pid_m * BLOCK_M  # the block's first row", f"{rv}_hi = tl.minimum({rv}_lo + BLOCK_M, "
                f"size_{self.plan.row}) - 1  # its last row"] + lines

    def branching_loop(self, call: str, assign: str) -> list[str]:
        """Every tile in turn, classified at run time: unmasked, masked, or skipped."""
        box, full, skip = self.bounds()
        loop = [f"for m1 in range(0, tl.cdiv(size_{self.plan.key}, BLOCK_N)):"]
        loop += [INDENT + line for line in box]
        loop.append(f"{INDENT}full = {full}  # inside the sequence, every condition true")
        if skip:
            loop.append(f"{INDENT}skip = {skip}  # every condition false: the tile changes nothing")
        loop.append(f"{INDENT}if full:")
        loop.append(f"{INDENT * 2}{assign}{call.format('False')}")
        loop.append(f"{INDENT}else:")
        if skip:
            loop.append(f"{INDENT * 2}if skip == 0:")
            loop.append(f"{INDENT * 3}{assign}{call.format('True')}")
        else:
            loop.append(f"{INDENT * 2}{assign}{call.format('True')}")
        return loop

    def bounds(self) -> tuple[list[str], str, str | None]:
        """Lines computing the tile's box, and the scalar codes `full` and `skip` (None: never)."""
        plan = self.plan
        row, key = plan.row, plan.key
        rv, kv = self.c.ranks[row].var, plan.key_var
        lines = [f"{kv}_lo = m1 * BLOCK_N",
                 f"{kv}_hi = tl.minimum({kv}_lo + BLOCK_N, size_{key}) - 1",
                 f"{rv}_lo = pid_m * BLOCK_M",
                 f"{rv}_hi = tl.minimum({rv}_lo + BLOCK_M, size_{row}) - 1"]
        lo, hi = {kv: f"{kv}_lo", rv: f"{rv}_lo"}, {kv: f"{kv}_hi", rv: f"{rv}_hi"}
        for axis in plan.whole:
            v = self.c.ranks[axis].var
            lo[v], hi[v] = "0", f"(size_{axis} - 1)"
        if plan.tile_var:
            lo[plan.tile_var] = hi[plan.tile_var] = "m1"
        for v, (axis, role, _outer, inner_size) in sorted(plan.derived.items()):  # x // X0 over the box
            if role == "outer":
                flat = kv if axis == key else rv
                lo[v], hi[v] = f"({flat}_lo // size_{inner_size})", f"({flat}_hi // size_{inner_size})"
        conds = [t for t in self.step.masks if t.kind == "cond"]
        full = [f"({kv}_lo + BLOCK_N <= size_{key})"]
        scalar = lambda x: self.index(sympy.sympify(x)).code  # noqa: E731
        for term in sorted(conds, key=lambda t: describe(t.cond)):
            b = tile_bounds(term.cond, lo, hi, scalar)
            full.append(b[0] if b else NEVER)
        nones = []  # every where group false: one of its conjuncts false on the whole tile
        for group in self.groups:
            parts = [b[1] for b in (tile_bounds(c, lo, hi, scalar) for c in group) if b is not None]
            nones.append(f"({' | '.join(parts)})" if parts else NEVER)
        grouped = {c for g in self.groups for c in g} == {t.cond for t in conds}
        skip = " & ".join(nones) if nones and grouped and self.skip[0] and NEVER not in nones else None
        return lines, " & ".join(full), skip

    def write_kernel(self, kname: str) -> tuple[str, list[str]]:
        """The source of this pass's kernel (and tile step) and the kernel's parameters."""
        self.write_pre()
        state_in, state_out, init, _ = self.write_step()
        step_body = self.step.mask_lines + self.step.lines
        self.init_lines(init)
        self.write_post()
        key_offs = f"offs_{self.plan.key_var}"
        step_head = [f"{key_offs} = m1 * BLOCK_N + tl.arange(0, BLOCK_N)  # keys of tile m1"]
        step_lines = step_head + step_body + ([f"return {', '.join(state_out)}"] if state_out else [])
        step_args = [n for n in free_names(step_lines)]
        if "m1" not in step_args:
            step_args.insert(0, "m1")
        out = []
        loop = []
        if self.k.loop or self.k.accumulate:
            call = f"{kname}_tile({', '.join(step_args)}, MASKED={{}})"
            assign = (", ".join(state_in) + " = ") if state_in else ""
            ranges = self.ranges()
            if ranges is not None:
                loop += ranges
                for lo, hi, masked, what in (("t_lo", "t_full_lo", True, "tiles before the core: element masks"),
                                             ("t_full_lo", "t_full_hi", False, "the core: inside the sequence, "
                                              "every condition true"),
                                             ("t_full_hi", "t_hi", True, "tiles after the core: element masks")):
                    loop.append(f"for m1 in range({lo}, {hi}):  # {what}")
                    loop.append(f"{INDENT}{assign}{call.format(masked)}")
            else:
                loop += self.branching_loop(call, assign)
            out.append("@triton.jit")
            out.append(f"def {kname}_tile({signature(step_args)}, MASKED: tl.constexpr):")
            out.append(f'{INDENT}"""One tile of keys of pass {self.k.index}: {", ".join(e.name for e in self.k.loop + self.k.accumulate)}."""')
            out += [INDENT + line for line in step_lines]
            out.append("")
            out.append("")
        body = self.pre.mask_lines + self.pre.lines + loop + self.post.mask_lines + self.post.lines
        head = self.header(body)
        lines = head + body
        params = free_names(lines)
        out.append("@triton.jit")
        out.append(f"def {kname}({signature(params)}):")
        out.append(f'{INDENT}"""Pass {self.k.index} over {self.plan.key}: {", ".join(self.k.einsums)}."""')
        out += [INDENT + line for line in lines]
        return "\n".join(out) + "\n", params

    def header(self, body: list[str]) -> list[str]:
        """Program ids, row and axis offsets, and where each tensor's head starts."""
        used = set(free_names(body))
        plan = self.plan
        rv = self.c.ranks[plan.row].var
        lines = ["pid_m = tl.program_id(0)  # block of rows",
                 "pid_bh = tl.program_id(1).to(tl.int64)  # batch * query head",
                 f"offs_{rv} = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)"]
        for axis in plan.whole:
            v = self.c.ranks[axis].var
            lines.append(f"offs_{v} = tl.arange(0, DIM_{axis})")
            if f"in_{v}" in used:
                lines += [f"if EVEN_{axis}:  # {axis} is its padded power of two: no mask",
                          f"    in_{v} = tl.full([DIM_{axis}], 1, tl.int1)",
                          "else:",
                          f"    in_{v} = offs_{v} < size_{axis}"]
        for name in sorted(self.globals):
            if f"base_{name}" not in used:
                continue
            g = self.globals[name]
            head = "pid_bh % heads" if g.query_side else "(pid_bh % heads) // group"
            lines.append(f"base_{name} = (pid_bh // heads) * s_{name}_b + ({head}) * s_{name}_h")
        return lines
