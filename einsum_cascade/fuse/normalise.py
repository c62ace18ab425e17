"""Normalisation before the rules: logarithms and exponentials in a canonical form.

The rules see a reduction's body after `normalise`, so that variants that are algebraically the
same reach the same separation. The identities, each exact wherever both sides are defined:

    log(exp(x)) = x                            (x real: every atom is)
    log(a * b) = log a + log b, log(a / b) = log a - log b      (a, b > 0, proved below)
    log(a ** k) = k log a                      (a > 0)
    exp(a) exp(b) = exp(a + b), exp(a) / exp(b) = exp(a - b), exp(a) ** k = exp(k a)
    exp(log a) = a                             (a > 0)

A factor's positivity is proved, never assumed: a tensor is positive when its definition is
(`positive_tensors`): exp, softplus, sigmoid of anything; positive numbers and rank sizes;
sums, products, quotients, powers, extrema and sums over a rank of positive values. Its reads
then become sympy symbols with `positive=True` (see `algebra.Atoms`), and sympy's log expansion
splits exactly the factors so proved. The sum of normalised weights needs no identity of its
own: sum_m w[m] / D with D = sum_m w[m] separates into (sum_m w[m]) / D, and the rewrite reads
both sums from the same running sum, so the quotient cancels to 1 (attention entropy:
H = GM + log SD - sum(m: SN * QK) / SD, one pass).
"""
from __future__ import annotations

import sympy

from einsum_cascade.ast import Access, Binary, Call, Number, Reduce, Size, Unary
from einsum_cascade.fuse.algebra import integral_floats
from einsum_cascade.ir import Cascade

_POSITIVE_CALLS = frozenset({"exp", "softplus", "sigmoid"})
_POSITIVE_OF_POSITIVE = frozenset({"sqrt", "rsqrt", "recip", "square", "abs"})


def positive_tensors(cascade: Cascade) -> set[str]:
    """Tensors every value of which is positive, proved from their definitions (statement order;
    a recurrence is not analysed)."""
    sizes = set(cascade.size_names)
    out: set[str] = set()
    for e in cascade.einsums:
        if e.is_initial or e.iterative_var is not None:
            continue
        if is_positive(e.expr, out, sizes):
            out.add(e.name)
    return out


def is_positive(node, positive: set[str], sizes: set[str]) -> bool:
    """True when the value expression `node` is provably > 0 wherever it is present."""
    stack, ok = [node], True
    while stack and ok:
        n = stack.pop()
        if isinstance(n, Number):
            ok = n.value > 0
        elif isinstance(n, Size):
            ok = n.name in sizes  # a param may be negative
        elif isinstance(n, Access):
            ok = n.tensor in positive
        elif isinstance(n, Call):
            if n.func in _POSITIVE_CALLS:
                continue
            if n.func in _POSITIVE_OF_POSITIVE or n.func in ("max", "min"):
                stack.extend(n.args)
            elif n.func == "pow":
                stack.append(n.args[0])
            else:
                ok = False
        elif isinstance(n, Binary):
            if n.op == "-":
                ok = False
            else:
                stack.extend((n.left, n.right))
        elif isinstance(n, Reduce):
            if n.op in ("sum", "max", "min", "prod", "kth", "kth_smallest"):
                stack.append(n.body)
            else:
                ok = False
        elif isinstance(n, Unary):
            ok = False
        else:
            ok = False
    return ok


def normalise(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with the module's identities applied (logarithms of proved-positive products
    split, logarithms of exponentials removed, exponentials of logarithms removed)."""
    out = sympy.expand_log(expr, deep=True, force=False)
    out = out.replace(lambda e: isinstance(e, sympy.exp) and isinstance(e.args[0], sympy.log)
                      and e.args[0].args[0].is_positive, lambda e: e.args[0].args[0])
    return integral_floats(out)
