"""Tile ranges from masks that bound the key: FlashAttention's loops without per-tile branches.

When every condition of a loop is a conjunction of comparisons `m <= U(p)` / `m >= L(p)` (the key
m with coefficient +-1, bounds affine in the row p with integer coefficients: causal, windows,
bands, prefixes), the tiles a block of rows [p_lo, p_hi] can see form one range and those
wholly visible a sub-range. The kernel then runs three loops: masked tiles before the visible
core, the core unmasked, masked tiles after it; tiles outside are never visited (valid only when
leaving them out is proved to change nothing, `skipping.skip_is_identity`).
"""
from __future__ import annotations

import sympy

from einsum_cascade.ast import BoolOp, Comparison

# m op 0 for `a*m + r op 0` with a = +1 / -1: (kind, offset) of the bound m <= U or m >= L
_BOUND = {(1, "<"): ("upper", -1), (1, "<="): ("upper", 0), (1, ">"): ("lower", 1), (1, ">="): ("lower", 0),
          (-1, "<"): ("lower", 1), (-1, "<="): ("lower", 0), (-1, ">"): ("upper", -1), (-1, ">="): ("upper", 0)}


def key_bounds(cond, key: str, row: str, params: set[str]) -> list[tuple[str, sympy.Expr]] | None:
    """[(upper|lower, bound)] with m <= bound / m >= bound for a conjunction of comparisons, each
    bound affine in the row variable and the params with integer coefficients; None otherwise."""
    if isinstance(cond, BoolOp) and cond.op == "and":
        out = []
        for arg in cond.args:
            part = key_bounds(arg, key, row, params)
            if part is None:
                return None
            out += part
        return out
    if not isinstance(cond, Comparison) or cond.op in ("==", "!="):
        return None
    diff = sympy.expand(cond.left - cond.right)
    m = next((s for s in diff.free_symbols if str(s) == key), None)
    if m is None:
        return None
    a = diff.coeff(m)
    rest = sympy.expand(diff - a * m)
    if a not in (1, -1) or not all(str(s) == row or str(s) in params for s in rest.free_symbols):
        return None
    poly = sympy.Poly(rest, *sorted(rest.free_symbols, key=str)) if rest.free_symbols else None
    if poly is not None and (poly.total_degree() > 1 or not all(c.is_Integer for c in poly.coeffs())):
        return None
    if not rest.free_symbols and not rest.is_Integer:
        return None
    kind, offset = _BOUND[(int(a), cond.op)]
    bound = -rest if a == 1 else rest
    return [(kind, sympy.expand(bound + offset))]


def tile_ranges(terms: list, key: str, row: str, params: set[str], code, p_lo: str, p_hi: str,
                size_key: str) -> list[str] | None:
    """Lines computing t_lo <= t_full_lo <= t_full_hi <= t_hi (tile indices) for the where groups
    `terms` (each a tuple of conditions: a conjunction of key bounds), or None when one is not of
    that form: a tile outside [t_lo, t_hi) has every group false, one in [t_full_lo, t_full_hi)
    every condition true.
    `code(expr)` writes an affine expression of the row variable (bound to a name) and params."""
    per_term = []
    for group in terms:  # each a conjunction (a tuple of conditions)
        bounds = []
        for cond in group:
            part = key_bounds(cond, key, row, params)
            if part is None:
                return None
            bounds += part
        per_term.append(bounds)
    vis_lo, vis_hi, full_lo, full_hi = [], [], [], []
    p = sympy.Symbol(row)
    for bounds in per_term:
        lows, highs, flows, fhighs = ["0"], [f"{size_key} - 1"], ["0"], [f"{size_key} - 1"]
        for kind, bound in bounds:
            c = bound.coeff(next((s for s in bound.free_symbols if str(s) == row), p))
            at_lo, at_hi = code(bound, p_lo), code(bound, p_hi)
            if kind == "upper":  # m <= U(p): some row sees m up to max U, every row up to min U
                highs.append(at_hi if c >= 0 else at_lo)
                fhighs.append(at_lo if c >= 0 else at_hi)
            else:  # m >= L(p)
                lows.append(at_lo if c >= 0 else at_hi)
                flows.append(at_hi if c >= 0 else at_lo)
        vis_lo.append(_fold("tl.maximum", lows))
        vis_hi.append(_fold("tl.minimum", highs))
        full_lo.append(_fold("tl.maximum", flows))
        full_hi.append(_fold("tl.minimum", fhighs))
    if not per_term:  # no conditions: every key of the sequence
        vis_lo, vis_hi, full_lo, full_hi = ["0"], [f"{size_key} - 1"], ["0"], [f"{size_key} - 1"]
    n = f"tl.cdiv({size_key}, BLOCK_N)"
    return [
        f"key_lo = {_fold('tl.minimum', vis_lo)}  # the first key a row of the block sees",
        f"key_hi = {_fold('tl.maximum', vis_hi)}  # the last one",
        f"core_lo = {_fold('tl.maximum', full_lo)}  # every row sees the keys core_lo..core_hi",
        f"core_hi = {_fold('tl.minimum', full_hi)}",
        "t_lo = tl.maximum(key_lo, 0) // BLOCK_N",
        f"t_hi = tl.minimum(tl.cdiv(tl.maximum(key_hi + 1, 0), BLOCK_N), {n})",
        "t_full_lo = tl.minimum(tl.maximum(tl.cdiv(tl.maximum(core_lo, 0), BLOCK_N), t_lo), t_hi)",
        "t_full_hi = tl.minimum(tl.maximum(tl.maximum(core_hi + 1, 0) // BLOCK_N, t_full_lo), t_hi)",
    ]


def _fold(func: str, parts: list[str]) -> str:
    out = parts[0]
    for p in parts[1:]:
        out = f"{func}({out}, {p})"
    return out
