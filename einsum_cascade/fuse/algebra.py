"""Value expressions as sympy expressions and back, for the rewrite rules.

A tensor read (or a nested reduction) becomes an opaque real symbol, an *atom*, remembered in
an `Atoms` table with the node it stands for; rank variables and sizes become the symbols of
`einsum_cascade.ast`. `exp`, `log`, `sqrt`, `rsqrt`, `recip` and `square` become sympy's own
functions and powers (so sympy can expand `exp(a - b)` into `exp(a) exp(-b)` and `(x - g)^2`
into powers of x and g); every other function (softplus, relu, max, ...) stays an opaque
sympy Function, which the rules may move but never look inside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from einsum_cascade.ast import (Access, Binary, BoolOp, Call, Compare, Node, Not, Number, Reduce, Size, Unary,
                                Var, size_symbol, var_symbol)

_OPAQUE_PREFIX = "F_"
# comparisons and Boolean operators as values: opaque functions (a rule may move them, never
# look inside); their names are not cascade function names, so they cannot clash
_COMPARE_NAMES = {"<": "cmp_lt", "<=": "cmp_le", ">": "cmp_gt", ">=": "cmp_ge", "==": "cmp_eq", "!=": "cmp_ne"}
_COMPARE_OPS = {v: k for k, v in _COMPARE_NAMES.items()}
_BOOL_NAMES = {"and": "bool_and", "or": "bool_or"}

# The value nodes `to_sympy` accepts, and the sympy nodes `to_ast` writes back; any other node is
# a `RuleError` (a bug in the rules, reported as such), never a refusal.
VALUE_NODES = (Number, Size, Var, Access, Unary, Binary, Call, Compare, BoolOp, Not, Reduce)
SYMPY_NODES = "Symbol, Number, Add, Mul, Pow, exp, log, Abs, +-oo and the opaque functions"


class RuleError(RuntimeError):
    """A rule met a node it does not accept: an internal error of `fuse` (with the node)."""


def opaque(name: str) -> sympy.FunctionClass:
    """The sympy Function standing for cascade function `name` (softplus, relu, max, ...)."""
    return sympy.Function(_OPAQUE_PREFIX + name)


@dataclass
class Atoms:
    """Opaque symbols for tensor reads and nested reductions: symbol <-> AST node."""

    node: dict[sympy.Symbol, Node] = field(default_factory=dict)
    positive: set[str] = field(default_factory=set)  # tensors proved positive (normalise.py)
    _by_key: dict[tuple, sympy.Symbol] = field(default_factory=dict)

    def symbol(self, node: Node) -> sympy.Symbol:
        """The atom of `node` (the same symbol for equal reads)."""
        if isinstance(node, Access):
            key = ("access", node.tensor, tuple(sympy.expand(i) for i in node.indices))
        else:
            key = ("node", repr(node))
        sym = self._by_key.get(key)
        if sym is None:
            if isinstance(node, Access) and node.tensor in self.positive:
                sym = sympy.Symbol(f"_a{len(self._by_key)}", positive=True)
            else:
                sym = sympy.Symbol(f"_a{len(self._by_key)}", real=True)
            self._by_key[key] = sym
            self.node[sym] = node
        return sym

    def access(self, tensor: str, indices: tuple) -> sympy.Symbol:
        return self.symbol(Access(tensor, tuple(sympy.sympify(i) for i in indices)))


def to_sympy(node: Node, atoms: Atoms, read=None, reduce=None) -> sympy.Expr:
    """`node` as a sympy expression; `read(access)` may replace a tensor read by an expression
    (inlining) and `reduce(node)` a reduction by its value (or None to keep it an atom); by
    default both are atoms."""
    def go(n: Node) -> sympy.Expr:
        if isinstance(n, Number):
            if math.isinf(n.value):
                return sympy.oo if n.value > 0 else -sympy.oo
            return sympy.Integer(int(n.value)) if n.value == int(n.value) else sympy.Float(n.value)
        if isinstance(n, Size):
            return size_symbol(n.name)
        if isinstance(n, Var):
            return var_symbol(n.name)
        if isinstance(n, Access):
            return read(n) if read is not None else atoms.symbol(n)
        if isinstance(n, Unary):
            return -go(n.operand)
        if isinstance(n, Binary):
            left, right = go(n.left), go(n.right)
            return {"+": left + right, "-": left - right, "*": left * right, "/": left / right}[n.op]
        if isinstance(n, Call):
            args = [go(a) for a in n.args]
            f = n.func
            if f == "exp":
                return sympy.exp(args[0])
            if f == "log":
                return sympy.log(args[0])
            if f == "sqrt":
                return sympy.sqrt(args[0])
            if f == "rsqrt":
                return 1 / sympy.sqrt(args[0])
            if f == "recip":
                return 1 / args[0]
            if f == "square":
                return args[0] ** 2
            return opaque(f)(*args)
        if isinstance(n, Compare):
            return opaque(_COMPARE_NAMES[n.op])(go(n.left), go(n.right))
        if isinstance(n, BoolOp):
            return opaque(_BOOL_NAMES[n.op])(*[go(a) for a in n.args])
        if isinstance(n, Not):
            return opaque("bool_not")(go(n.arg))
        if isinstance(n, Reduce):
            value = reduce(n) if reduce is not None else None
            return atoms.symbol(n) if value is None else value
        raise RuleError(f"fuse: to_sympy accepts the value nodes {', '.join(t.__name__ for t in VALUE_NODES)}; "
                        f"it met {type(n).__name__}: {n!r}")

    return go(node)


def to_ast(expr: sympy.Expr, atoms: Atoms, variables: set[str]) -> Node:
    """A sympy expression back to a cascade value expression (products as `*` and `/`)."""
    expr = sympy.sympify(expr)

    def number(value) -> Node:
        if value is sympy.oo:
            return Number(math.inf)
        if value is -sympy.oo:
            return Unary("-", Number(math.inf))
        v = float(value)
        return Unary("-", Number(-v)) if v < 0 else Number(v)

    def product(factors: list[Node]) -> Node:
        out = factors[0]
        for f in factors[1:]:
            out = Binary("*", out, f)
        return out

    def power(base: sympy.Expr, exponent: sympy.Expr) -> Node:
        b = go(base)
        if exponent.is_Integer and int(exponent) >= 1:
            return product([b] * int(exponent))  # exact for any sign of the base
        if exponent == sympy.Rational(1, 2):
            return Call("sqrt", (b,))
        if exponent == sympy.Rational(-1, 2):
            return Call("rsqrt", (b,))
        if exponent.is_Integer and int(exponent) < 0:
            return Binary("/", Number(1.0), power(base, -exponent))
        return Call("exp", (Binary("*", go(exponent), Call("log", (b,))),))

    def go(e: sympy.Expr) -> Node:
        if e.is_Symbol:
            if e in atoms.node:
                return atoms.node[e]
            name = e.name
            return Var(name) if name in variables else Size(name)
        if e.is_Number or e in (sympy.oo, -sympy.oo):
            return number(e)
        if isinstance(e, sympy.Add):
            terms = list(e.as_ordered_terms())
            # a positive term first reads better: a - b rather than -b + a
            terms.sort(key=lambda t: t.could_extract_minus_sign())
            out = go(terms[0])
            for t in terms[1:]:
                if t.could_extract_minus_sign():
                    out = Binary("-", out, go(-t))
                else:
                    out = Binary("+", out, go(t))
            return out
        if isinstance(e, sympy.Mul):
            coeff, factors = e.as_coeff_mul()
            numer, denom = [], []
            for f in factors:
                if f.is_Pow and f.exp.is_number and f.exp.is_negative:
                    denom.append(power(f.base, -f.exp))
                else:
                    numer.append(go(f))
            negative = coeff < 0
            coeff = abs(coeff)
            if coeff != 1:
                numer.insert(0, number(coeff))
            out = product(numer) if numer else Number(1.0)
            if denom:
                out = Binary("/", out, product(denom))
            return Unary("-", out) if negative else out
        if e.is_Pow:
            if e.exp.is_number and e.exp.is_negative:
                return Binary("/", Number(1.0), power(e.base, -e.exp))
            return power(e.base, e.exp)
        if isinstance(e, sympy.exp):
            return Call("exp", (go(e.args[0]),))
        if isinstance(e, sympy.log):
            return Call("log", (go(e.args[0]),))
        if isinstance(e, sympy.Abs):
            return Call("abs", (go(e.args[0]),))
        name = type(e).__name__
        if isinstance(e, sympy.Function) and name.startswith(_OPAQUE_PREFIX):
            func, args = name[len(_OPAQUE_PREFIX):], tuple(go(a) for a in e.args)
            if func in _COMPARE_OPS:
                return Compare(_COMPARE_OPS[func], *args)
            if func in ("bool_and", "bool_or"):
                return BoolOp(func.removeprefix("bool_"), args)
            if func == "bool_not":
                return Not(args[0])
            return Call(func, args)
        raise RuleError(f"fuse: to_ast writes back {SYMPY_NODES}; it met {type(e).__name__}: {e}")

    return go(expr)


def expand(expr: sympy.Expr) -> sympy.Expr:
    """Products distributed over sums, integer powers of products and sums multiplied out,
    `exp(a + b)` split into `exp(a) exp(b)`; logarithms and opaque functions left alone."""
    out = sympy.expand(expr, deep=True, mul=True, multinomial=True, power_exp=True,
                       power_base=True, log=False, basic=True)
    return integral_floats(out)


def integral_floats(expr: sympy.Expr) -> sympy.Expr:
    """Floats with an integer value (1.0 from 2 * 0.5) as sympy Integers, so that they cancel."""
    floats = {f: sympy.Integer(int(f)) for f in expr.atoms(sympy.Float) if f == int(f)}
    return expr.xreplace(floats) if floats else expr
