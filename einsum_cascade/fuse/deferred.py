"""Deferred normalisation (and the separation every rule starts from).

Justification: for a global value g (complete only after a pass over M) and streamed terms x[m],
multiplication distributes over the sum, so

    sum_m x[m] / g = (sum_m x[m]) / g,     sum_m x[m] * h(g) = h(g) * sum_m x[m]

for any h: the division (or any factor of g alone) moves out of the reduction and is applied
once, after the pass, to the running sum. More generally a body that expands (products over
sums, integer powers multiplied out, exp(a + b) = exp(a) exp(b)) into terms
c_i(g) * u_i(x[m]) gives sum_m body = sum_i c_i(g) * (sum_m u_i(x[m])), each inner sum being
computed in the pass that produces g. Terms with the same streamed part are merged, so each
distinct sum_m u_i is accumulated once.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from einsum_cascade.fuse.algebra import Atoms, expand
from einsum_cascade.fuse.refusals import Refusal, explain


@dataclass
class Term:
    """coeff(globals) * sum over the reduction of body(streamed)."""

    coeff: sympy.Expr
    body: sympy.Expr


def separate(expr: sympy.Expr, late: set, bound: set, atoms: Atoms, variables: set[str]) -> list[Term]:
    """Split `expr` into terms coeff * body with coeff free of `bound` symbols (the reduced
    variables and reads that depend on them) and body free of `late` symbols (globals complete
    only after the pass). Raises Refusal naming the factor that mixes both."""
    merged: dict[sympy.Expr, sympy.Expr] = {}
    for term in sympy.Add.make_args(expand(expr)):
        coeff, body = [], []
        for factor in sympy.Mul.make_args(term):
            free = factor.free_symbols
            if free & late and free & bound:
                raise Refusal(explain(factor, late, bound, atoms, variables))
            (body if free & bound else coeff).append(factor)
        b = sympy.Mul(*body)
        merged[b] = merged.get(b, 0) + sympy.Mul(*coeff)
    return [Term(c, b) for b, c in merged.items() if c != 0]
