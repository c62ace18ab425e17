"""The numeric cost (einsum_cascade.numeric_cost, the simulation path) against the symbolic one.

The expectation is the symbolic, simplified count of `einsum_cascade.cost` with the sizes
substituted and its sums evaluated by sympy (`doit`), an independent route to the same numbers;
the existing numeric route `cost(c).at(sizes)` is checked too.
"""
from __future__ import annotations

import pytest
import sympy

import einsum_cascade as ec
from einsum_cascade.ast import size_symbol
from einsum_cascade.catalog import LIBRARY_DIR
from einsum_cascade.numeric_cost import compiled_cost, numeric_cost

CASCADES = [("library", s) for s in ec.library_names()] + \
           [("blocks", p.stem) for p in sorted((LIBRARY_DIR / "blocks").glob("*.cascade"))]
# (whole rank size, tile size, params) sets: square and rectangular, tiles dividing the rank,
# windows narrower and wider than the sequence
SIZE_SETS = [
    {"rank": 8, "other": 8, "tile": 2, "W": 3, "G": 0.5, "B": -1.0},
    {"rank": 12, "other": 6, "tile": 4, "W": 5, "G": 0.25, "B": 0.0},
    {"rank": 6, "other": 10, "tile": 3, "W": 20, "G": 1.0, "B": 2.0},
]


def _load(where: str, stem: str) -> ec.Cascade:
    return ec.load_library(stem) if where == "library" else ec.load(LIBRARY_DIR / "blocks" / f"{stem}.cascade")


def _sizes(cascade: ec.Cascade, s: dict) -> dict:
    """Every rank and param bound: M and P (sequence ranks) to `rank`/`other`, other ranks to 3,
    a tiled rank's first part from its tile size."""
    sizes = {}
    for name, rank in cascade.ranks.items():
        whole = {"M": s["rank"], "P": s["other"]}.get(name, 3)
        if rank.parts:
            inner = s["tile"] if whole % s["tile"] == 0 else 1
            for part in rank.parts[1:]:
                sizes[part] = inner
            whole = whole if len(rank.parts) == 2 else inner ** (len(rank.parts) - 1) * 2
        sizes[name] = whole
    for p in cascade.params:
        sizes[p] = s.get(p, 2)
    return sizes


def _symbolic_at(expr, bound: dict) -> int:
    value = sympy.sympify(expr).subs({size_symbol(k): v for k, v in bound.items()}).doit()
    return int(sympy.nsimplify(value)) if not value.is_Integer else int(value)


@pytest.mark.parametrize("where,stem", CASCADES)
@pytest.mark.parametrize("size_set", range(len(SIZE_SETS)))
def test_numeric_cost_equals_symbolic_cost(where, stem, size_set):
    cascade = _load(where, stem)
    sizes = _sizes(cascade, SIZE_SETS[size_set])
    symbolic = ec.cost(cascade)
    numeric = numeric_cost(cascade, sizes)
    bound = cascade.bind_sizes({}, sizes)
    for name, ops in symbolic.per_einsum.items():
        expected = {op: _symbolic_at(v, bound) for op, v in ops.items()}
        assert numeric.per_einsum[name] == expected, name
    assert numeric.total == {op: _symbolic_at(v, bound) for op, v in symbolic.total.items()}
    assert numeric.tensor_sizes == {n: _symbolic_at(v, bound) for n, v in symbolic.tensor_sizes.items()}
    at = symbolic.at(sizes)
    assert (numeric.per_einsum, numeric.total, numeric.tensor_sizes) == (at.per_einsum, at.total, at.tensor_sizes)


def test_compiled_once_per_cascade_object():
    a, b = ec.load_library("attention_1pass"), ec.load_library("attention_1pass")
    assert compiled_cost(a) is compiled_cost(a)
    assert compiled_cost(a) is not compiled_cost(b)


def test_causal_count_by_hand():
    """attention_3pass_causal at M = P = n: QK is evaluated on the n(n+1)/2 points m <= p, a MAC
    (one multiply, one add) per point and per e."""
    cascade = ec.load_library("attention_3pass_causal")
    n, e = 7, 3
    ops = numeric_cost(cascade, {"M": n, "P": n, "E": e, "F": 2}).per_einsum["QK"]
    assert ops == {"multiply": e * n * (n + 1) // 2, "add": e * n * (n + 1) // 2}


@pytest.mark.parametrize("where,check", [
    ("m <= p", lambda m, p, w: m <= p),
    ("p - W < m and m <= p", lambda m, p, w: p - w < m <= p),
    ("2*m != p and m + p < W", lambda m, p, w: 2 * m != p and m + p < w),   # enumerated, not bounded
    ("m >= 3", lambda m, p, w: m >= 3),
])
@pytest.mark.parametrize("n_m,n_p,w", [(5, 7, 3), (9, 4, 6), (1, 1, 1)])
def test_masked_counts_equal_brute_force(where, check, n_m, n_p, w):
    """A masked MAC counted point by point in Python: one multiply and one add per e and per
    (m, p) where the condition holds."""
    cascade = ec.parse(f"rank E, M, P\nparam W\ninput Q[e,p], K[e,m]\noutput S\nS[m,p] = Q[e,p] * K[e,m] where {where}\n")
    e = 3
    points = sum(1 for m in range(n_m) for p in range(n_p) if check(m, p, w))
    ops = numeric_cost(cascade, {"E": e, "M": n_m, "P": n_p, "W": w}).per_einsum["S"]
    assert ops.get("multiply", 0) == e * points and ops.get("add", 0) == e * points
    assert ops == ec.cost(cascade).at({"E": e, "M": n_m, "P": n_p, "W": w}).per_einsum["S"]
