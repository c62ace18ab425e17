"""Refusals: what the rules cannot decompose, with the reason.

A reduction over M of f(x[m], G) with G complete only after a pass can be computed in the same
pass as G only if f separates into a finite sum of products h_i(G) * u_i(x[m]) (then
sum_m f = sum_i h_i(G) * sum_m u_i(x[m]), and each sum_m u_i is streamed; exp factors are
stabilised by a running maximum). That fails, and the rules refuse, when

- a nonlinearity that is not a product or power rule (softplus, relu, sigmoid, tanh, gelu, elu,
  erf, abs, binary max/min, log of a sum) is applied to an argument mixing x[m] and G:
  softplus(x - G) = log(1 + e^x e^-G) has no finite separation (its Taylor series in e^-G
  does not terminate), relu(x - G) is a threshold at G (an order statistic of x when G is
  one: the k-th largest, a median, top-k);
- a power with a non-integer exponent has a base mixing x and G (sqrt(x + G));
- an extremum (max, min) or product over M is taken of an expression mixing x and G: max_m
  f(x[m], G) commutes with G only for f monotone in G, which the rules do not prove;
- a streamed tensor (it keeps the M index) that needs G is an output or is read by something
  other than a reduction: its elements cannot be produced before G is complete, so a second
  pass is inherent (a normalised attention matrix, a layer norm over the sequence);
- a tensor read after the pass is a recurrence or itself reduces over another rank (inlining
  it is not implemented).
"""
from __future__ import annotations

import sympy

from einsum_cascade.fuse.algebra import Atoms, RuleError, to_ast
from einsum_cascade.printer import format_expr


class Refusal(Exception):
    """A rule cannot rewrite a reduction; the message is the reason, for a person."""


def text(expr: sympy.Expr, atoms: Atoms, variables: set[str]) -> str:
    """A sympy expression as cascade text, for messages."""
    try:
        return format_expr(to_ast(expr, atoms, variables))
    except RuleError:  # a message must not fail: sympy's own text
        return sympy.sstr(expr)


def _mixes(e: sympy.Expr, late: set, bound: set) -> bool:
    free = e.free_symbols
    return bool(free & late) and bool(free & bound)


def explain(factor: sympy.Expr, late: set, bound: set, atoms: Atoms, variables: set[str]) -> str:
    """Why a factor mixing a late global and a streamed value cannot be separated: names the
    innermost function or power whose argument mixes them."""
    culprit = factor
    for sub in sympy.preorder_traversal(factor):
        if sub is factor or not _mixes(sub, late, bound):
            continue
        if isinstance(sub, (sympy.Function, sympy.Pow, sympy.exp, sympy.log)):
            culprit = sub
    globals_ = sorted(text(s, atoms, variables) for s in culprit.free_symbols & late)
    shown = text(culprit, atoms, variables)
    if isinstance(culprit, sympy.exp):
        return (f"exp({text(culprit.args[0], atoms, variables)}) multiplies a streamed value by "
                f"the global {', '.join(globals_)} inside the exponent: exp(a*b) is not a product "
                f"of a function of a and a function of b")
    if isinstance(culprit, sympy.Pow):
        return (f"{shown}: a non-integer power of a sum of a streamed value and the global "
                f"{', '.join(globals_)} does not factor")
    if isinstance(culprit, sympy.log):
        return (f"{shown}: the logarithm of a sum of a streamed value and the global "
                f"{', '.join(globals_)} does not separate")
    if isinstance(culprit, sympy.Function) and type(culprit).__name__.startswith(("F_cmp_", "F_bool_")):
        return (f"{shown}: a comparison (or Boolean) of a streamed value with the global "
                f"{', '.join(globals_)}: a threshold at a value complete only after the pass selects "
                "points no running state can revise (not decomposable)")
    if isinstance(culprit, sympy.Function):
        name = type(culprit).__name__.removeprefix("F_")
        return (f"{shown}: {name} is a nonlinearity of the global {', '.join(globals_)} and a "
                f"streamed value; it has no finite separation h(G)*u(x) (not decomposable in one pass)")
    return f"{shown} mixes the global {', '.join(globals_)} with streamed values inseparably"
