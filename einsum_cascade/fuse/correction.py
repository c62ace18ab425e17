"""General multiplicative correction: a global G reaches the sum through a factor h(G).

Justification: if a reduction's terms are u(x[m]) * h(G) and h(a) * h(b)^-1 is expressible
(h = exp: exp(a) exp(-b) = exp(a - b); h = a power g^k: g^k / g'^k = (g / g')^k; products of
these), then the pass computes sum_m u(x[m]) with a stabiliser RM of its own (a running
maximum, `online`), and after the pass the result is corrected once by h(G) * h(RM)^-1:

    sum_m exp(x[m] - G) w[m] = exp(RM_M1 - G) * sum_m exp(x[m] - RM_M1) w[m].

When G is itself the maximum of x over the same points (the softmax's max), RM_M1 = G exactly
(max is exact in floating point), the correction is exp(0) = 1 and disappears: G is then read
from the running maximum (`identify`), which is the FuseMax / FlashAttention cascade. When G is
a minimum of -x, G = -RM_M1. Any other G (a max over other points, a max clipped at 0 for an
attention sink, a mean) keeps the correction factor exp(RM_M1 - G), one exp per output point.
Powers and products of G need no running state: g^-k multiplies the finished sum once.
"""
from __future__ import annotations

import sympy

from einsum_cascade.ast import Reduce


def extremum_of(ctx, access) -> tuple[str, sympy.Expr, frozenset, tuple] | None:
    """If `access` reads a global defined as max(m, ...: body) or min(m, ...: body) (lhs plain
    variables), the op, the body (sympy, at the read's indices), its canonical where and the
    reduced variables; else None."""
    try:
        e = ctx.cascade.einsum(access.tensor)
    except KeyError:
        return None
    if not isinstance(e.expr, Reduce) or e.expr.op not in ("max", "min") or e.implicit_vars:
        return None
    if not set(e.expr.vars) & ctx.rvars:
        return None
    mapping = ctx.lhs_mapping(e, access)
    if mapping is None:
        return None
    body = ctx.substituted_sympy(e.expr.body, mapping)
    conds = tuple(e.where) + tuple(e.expr.where)  # the Einsum's and the reduction's own masks
    where = frozenset(ctx.canon(tuple(ctx.subs_comparison(c, mapping) for c in conds)))
    return e.expr.op, body, where, tuple(e.expr.vars)


def identify(ctx, value: sympy.Expr, used: list) -> tuple[sympy.Expr, list[tuple]]:
    """Replace each global that equals a running maximum built for this value (`used`: list of
    (RunningMax, final-read atom)) by that maximum; returns the new value and the matches
    (global atom, running max, sign)."""
    matches = []
    for sym in sorted(value.free_symbols & ctx.late_symbols(), key=str):
        found = extremum_of(ctx, ctx.atoms.node[sym])
        if found is None:
            continue
        op, body, where, reduced = found
        for rmax, final in used:
            if where != rmax.where or set(reduced) != {*rmax.stream, *rmax.inner}:
                continue
            if op == "max" and sympy.expand(body - rmax.x) == 0:
                matches.append((sym, rmax, 1, final))
                value = value.subs(sym, final)
                break
            if op == "min" and sympy.expand(body + rmax.x) == 0:
                matches.append((sym, rmax, -1, final))
                value = value.subs(sym, -final)
                break
    return value, matches


def merge_exponentials(value: sympy.Expr) -> tuple[sympy.Expr, bool]:
    """Each term's exp factors merged into one (exp(RM) exp(-G) -> exp(RM - G)); the flag says
    whether a correction factor exp(...) of globals remains."""
    terms = []
    corrected = False
    for term in sympy.Add.make_args(sympy.expand(value, power_exp=False, log=False)):
        factors = sympy.Mul.make_args(term)
        exps = [f for f in factors if isinstance(f, sympy.exp)]
        rest = [f for f in factors if not isinstance(f, sympy.exp)]
        if exps:
            arg = sympy.Add(*[f.args[0] for f in exps])
            if arg != 0:
                corrected = True
                rest.append(sympy.exp(arg))
        terms.append(sympy.Mul(*rest))
    return sympy.Add(*terms), corrected
