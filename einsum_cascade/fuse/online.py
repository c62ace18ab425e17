"""Running extremum with rescaling (the online softmax), tiled over M = M1 x M0.

Justification: for streamed x[m] and any value w[m], with RM_j = max over the first j tiles
of x (RM_0 = -inf) and S_j = sum over the first j tiles of exp(x[m] - RM_j) w[m],

    S_{j+1} = S_j * exp(RM_j - RM_{j+1}) + sum_{m0 in tile j} exp(x[m] - RM_{j+1}) w[m]

because exp(x - RM_{j+1}) = exp(x - RM_j) * exp(RM_j - RM_{j+1}). After the last tile,
sum_m exp(x[m]) w[m] = exp(RM_M1) * S_M1, and every exponent evaluated is <= 0, so nothing
overflows however large x is. One running maximum (LM: max of a tile, RM: running max, PRM:
the correction exp(RM_prev - RM_new), SLN: the tile's exp(x - RM_new)) serves every running
sum with the same exponent x; each such sum gets its tile sum SL and its running value RS,
rescaled by PRM at every step. The factor exp(RM_M1) is then merged with the coefficient the
sum is multiplied by (see `correction`).

When the reduction is masked (a `where` on m, or masked inputs), a tile may see no element:
its local max is -inf, and a running max that were still -inf would give
exp(-inf - (-inf)) = NaN. The running max then starts at -1e300 instead of -inf, which is
exact for every x above -1e300 (exp(-1e300 - RM) = 0 for finite RM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from einsum_cascade.ast import Access, Binary, Call, Comparison, Number, Reduce, Unary, size_symbol, var_symbol

FLOOR = -1e300


@dataclass
class RunningMax:
    """The Einsums of one running maximum of x over the tiles, and how to read them."""

    x: sympy.Expr
    pv: tuple[str, ...]       # the variables x keeps besides m (the running max's indices)
    where: frozenset          # canonical comparisons it honours
    lm: str
    rm: str
    prm: str
    sln: str

    def final(self) -> Access:
        """RM at its final index: the maximum over every tile."""
        return Access(self.rm, (size_symbol(self._m1_size),) + tuple(var_symbol(v) for v in self.pv))

    _m1_size: str = "M1"
    inner: tuple[str, ...] = ()  # other reduced variables x depends on (a 2D window: n with m)
    stream: tuple[str, ...] = ("m",)  # the rank's reduced variables: (m,), (m1, m0) or (m1,)
    within: tuple[str, ...] = ("m0",)  # the rank's variables inside a tile: (m0,) or ()


def _pv_syms(pv):
    return tuple(var_symbol(v) for v in pv)


def build_running_max(ctx, x: sympy.Expr, pv: tuple[str, ...], where: tuple[Comparison, ...],
                      masked: bool, inner: tuple[str, ...] = ()) -> RunningMax:
    """Emit LM, RM, PRM and SLN for exponent x (a sympy expression of streamed atoms). With
    `inner` (variables reduced together with m, a 2D window's n), each tile's maximum runs over
    m0 and `inner`: max over (m, n) = max over tiles m1 of max over (m0, n), so the identity
    of the running maximum holds unchanged with the tile enlarged to m0 x inner."""
    m1, m0, M0 = ctx.tile
    t1 = var_symbol(m1)
    within = ctx.within()  # (m0,), or () for a reduction over the blocks m1 alone
    ws = _pv_syms(within)
    pvs = _pv_syms(pv)
    ivs = _pv_syms(inner)
    x_tile = ctx.read_tiled(x, inner + pv, where)
    tiled_where = ctx.tile_where(where)
    names = [ctx.fresh(b) for b in ("LM", "RM", "PRM", "SLN")]
    lm, rm, prm, sln = names
    note = f"running max of {ctx.show(x)}"
    tile_max = Reduce("max", within + tuple(inner), x_tile) if within + tuple(inner) else x_tile
    ctx.emit(lm, (t1,) + pvs, tile_max, tiled_where,
             "running extremum", f"{note}: maximum of tile {m1}")
    floor = Unary("-", Number(math.inf)) if not masked else Unary("-", Number(-FLOOR))
    ctx.emit(rm, (sympy.Integer(0),) + pvs, floor, (), "running extremum",
             f"{note}: initial value" + ("" if not masked else " (-1e300: a masked tile keeps "
                                          "the correction finite)"), initial=True)
    prev = Access(rm, (t1,) + pvs)
    new = Access(rm, (t1 + 1,) + pvs)
    ctx.emit(rm, (t1 + 1,) + pvs, Call("max", (prev, Access(lm, (t1,) + pvs))), (),
             "running extremum", f"{note}: running maximum after tile {m1}", correction=True)
    ctx.emit(prm, (t1,) + pvs, Call("exp", (Binary("-", prev, new),)), (),
             "running extremum", "correction exp(RM_prev - RM_new) applied to every running sum "
             "that carries this maximum", correction=True)
    ctx.emit(sln, (t1,) + ws + ivs + pvs, Call("exp", (Binary("-", x_tile, new),)), tiled_where,
             "running extremum", f"exp({ctx.show(x)} - running max): every exponent <= 0")
    return RunningMax(x, pv, frozenset(ctx.canon(where)), lm, rm, prm, sln, _m1_size=ctx.m1_size,
                      inner=tuple(inner), stream=tuple(ctx.stream), within=within)


def build_running_sum(ctx, rmax: RunningMax, w: sympy.Expr, reduced: tuple[str, ...],
                      out: tuple[str, ...], where: tuple[Comparison, ...], owner: str) -> Access:
    """Emit the tile sum SL = sum(m0, others: SLN * w) and the running sum RS rescaled by PRM;
    returns the read of RS at its final index (sum_m exp(x - RM_M1) w)."""
    m1, m0, M0 = ctx.tile
    t1 = var_symbol(m1)
    pvs = _pv_syms(rmax.pv)
    outs = tuple(var_symbol(v) for v in out)
    sln = Access(rmax.sln, (t1,) + _pv_syms(rmax.within) + _pv_syms(rmax.inner) + pvs)
    body = sln if w == 1 else Binary("*", sln, ctx.tiled_ast(w))
    others = tuple(v for v in reduced if v not in rmax.stream)
    sl, rs = ctx.fresh(owner + "_L"), ctx.fresh(owner + "_R")
    if w == 1:  # a running sum of exponentials: positive (normalise.py splits its logarithm)
        ctx.atoms.positive.add(rs)
    summed = rmax.within + others
    ctx.emit(sl, (t1,) + outs, Reduce("sum", summed, body) if summed else body, ctx.tile_where(where),
             "running extremum", f"tile {m1} of sum_m exp(x - RM) * ({ctx.show(w)}) for {owner}")
    ctx.emit(rs, (sympy.Integer(0),) + outs, Number(0.0), (), "running extremum",
             "running sum: initial value", initial=True)
    ctx.emit(rs, (t1 + 1,) + outs,
             Binary("+", Binary("*", Access(rs, (t1,) + outs), Access(rmax.prm, (t1,) + pvs)),
                    Access(sl, (t1,) + outs)), (),
             "running extremum", f"running sum for {owner}, rescaled by {rmax.prm} at every tile",
             correction=True)
    return Access(rs, (size_symbol(ctx.m1_size),) + outs)
