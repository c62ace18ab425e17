"""`where` masks on (key, query) positions counted per tile with GLOBAL positions.

A mask is a conjunction of affine comparisons of a cascade's `where`. Over the tiled key rank
(global key position k = m, or m1*M0 + m0 for a partitioned rank) and the query rank (p), each
comparison bounds k for a given p, so each query row sees an interval [lo(p), hi(p)] of keys.
`tile_classes` counts, for every (query group, key tile) pair, how many (query, key) points are
visible: a pair is full (every point visible), partial or empty. Counting uses sorted interval
ends and prefix sums: O(P log P + groups x tiles), exact (tests compare it with brute force).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
import sympy

from einsum_cascade.ast import Comparison, size_symbol, value_vars, var_symbol
from einsum_cascade.printer import format_expr
from mappings.work import MappingError


@dataclass(frozen=True)
class TileClasses:
    """Counts over all (query group, key tile) pairs: full, partial and empty pairs, visible points."""
    full: int
    partial: int
    empty: int
    points: int


def key_intervals(cascade, where, key_vars: tuple[str, ...], query_var: str, sizes: dict,
                  n_queries: int, n_keys: int, who: str, whole_var: str | None = None,
                  fixed: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) inclusive visible key interval per query position 0..n_queries-1 (hi < lo: none).

    `key_vars`: (m,) or (m1, m0) with k = m1 * M0 + m0 (`whole_var`: m itself, when an Einsum of a
    split rank indexes it whole; `fixed`: other variables at given values, e.g. a head). Raises
    MappingError naming `who` for a
    mask this counting cannot honour (a comparison on other variables, a key coefficient not +-1).
    """
    k, p = sympy.Symbol("__key", integer=True), var_symbol(query_var)
    if len(key_vars) == 2:
        m1, m0 = (var_symbol(v) for v in key_vars)
        inner = cascade.var_rank[key_vars[1]]
        to_key = {m0: k - size_symbol(inner) * m1}
    else:
        m1, to_key = None, {var_symbol(key_vars[0]): k}
    if whole_var is not None:  # the split rank's own variable (m = m1 * M0 + m0) in an unsplit Einsum
        to_key[var_symbol(whole_var)] = k
    for v, value in (fixed or {}).items():
        to_key[var_symbol(v)] = value
    subs = {size_symbol(n): v for n, v in sizes.items()}
    lo = np.zeros(n_queries, dtype=np.int64)
    hi = np.full(n_queries, n_keys - 1, dtype=np.int64)
    pos = np.arange(n_queries, dtype=np.int64)
    for c in where:
        if not isinstance(c, Comparison):  # language v2: or / not / a data-dependent comparison
            raise MappingError(f"{who}: mask '{format_expr(c)}' is not an affine comparison: the tile "
                               "counting handles conjunctions of affine comparisons only")
        diff = sympy.expand(sympy.sympify(c.left - c.right).subs(to_key).subs(subs))
        if m1 is not None:
            diff = sympy.expand(diff)
        if m1 is not None and diff.coeff(k) == 0 and m1 in diff.free_symbols:
            # a comparison on the block index m1 = floor(k / M0) alone: an interval of whole blocks
            lo, hi = _block_bound(diff, c.op, m1, p, pos, int(sizes[inner]), lo, hi, who, c)
            continue
        extra = {str(s) for s in diff.free_symbols} - {str(k), str(p)}
        if extra:
            raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}' depends on {sorted(extra)}, not only on "
                               f"the global key and query positions; this mapping cannot count it per tile")
        a, b = diff.coeff(k), diff.coeff(p)
        const = diff - a * k - b * p
        if not (a.is_number and b.is_number and const.is_number):
            raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}' is not affine in the key and query positions")
        a, b, const = float(a), float(b), float(const)
        rest = b * pos + const  # a*k + rest OP 0
        op = c.op
        if op in ("==", "!="):
            raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}': equality masks cannot be counted per tile")
        if a == 0:
            ok = {"<": rest < 0, "<=": rest <= 0, ">": rest > 0, ">=": rest >= 0}[op]
            hi = np.where(ok, hi, -1)
            continue
        if abs(a) != 1:
            raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}': key coefficient {a:g} is not +-1")
        bound = -rest / a  # k OP' bound
        if a < 0:
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
        if op == "<":
            hi = np.minimum(hi, np.ceil(bound).astype(np.int64) - 1)
        elif op == "<=":
            hi = np.minimum(hi, np.floor(bound).astype(np.int64))
        elif op == ">":
            lo = np.maximum(lo, np.floor(bound).astype(np.int64) + 1)
        else:
            lo = np.maximum(lo, np.ceil(bound).astype(np.int64))
    return lo, hi


def _block_bound(diff, op: str, m1, p, pos: np.ndarray, block: int, lo: np.ndarray, hi: np.ndarray, who: str,
                 c) -> tuple[np.ndarray, np.ndarray]:
    """Narrow the key interval [lo, hi] by `diff OP 0`, affine in the block index m1 and the query p:
    m1 OP' X(p) holds for whole blocks of `block` keys (k = m1 * block + m0, 0 <= m0 < block), so
    m1 <= X is k <= block * floor(X) + block - 1 and m1 >= X is k >= block * ceil(X)."""
    a, b = diff.coeff(m1), diff.coeff(p)
    const = diff - a * m1 - b * p
    if not (a.is_number and b.is_number and const.is_number) or op in ("==", "!="):
        raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}' is not an affine inequality in the key block "
                           "and query positions; this mapping cannot count it per tile")
    a, b, const = float(a), float(b), float(const)
    bound = -(b * pos + const) / a  # m1 OP' bound
    if a < 0:
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
    if op == "<=":
        return lo, np.minimum(hi, block * np.floor(bound).astype(np.int64) + block - 1)
    if op == "<":
        return lo, np.minimum(hi, block * np.ceil(bound).astype(np.int64) - 1)
    if op == ">=":
        return np.maximum(lo, block * np.ceil(bound).astype(np.int64)), hi
    return np.maximum(lo, block * (np.floor(bound).astype(np.int64) + 1)), hi


def pair_counts(lo: np.ndarray, hi: np.ndarray, group: int, tile: int, n_keys: int) -> np.ndarray:
    """Visible points of every (query group of `group` rows, key tile of `tile` keys) pair: an array
    [groups, tiles]."""
    n_q = len(lo)
    bounds = np.arange(0, n_keys + 1, tile, dtype=np.int64)
    out = np.zeros((n_q // group, len(bounds) - 1), dtype=np.int64)
    for g in range(n_q // group):
        a, b = lo[g * group:(g + 1) * group], hi[g * group:(g + 1) * group] + 1
        keep = b > a
        a, b = np.sort(a[keep]), np.sort(b[keep])
        ca, cb = np.concatenate(([0], np.cumsum(a))), np.concatenate(([0], np.cumsum(b)))

        def below(ends, csum):  # sum over rows of max(x - end, 0), for every boundary x
            i = np.searchsorted(ends, bounds, side="left")
            return i * bounds - csum[i]

        visible = below(a, ca) - below(b, cb)  # keys < x visible, summed over the group's rows
        out[g] = np.diff(visible)
    return out


def mask_pair_counts(cascade, where, key_vars: tuple[str, ...], query_var: str, sizes: dict, n_queries: int,
                     n_keys: int, group: int, tile: int, who: str, whole_var: str | None = None) -> np.ndarray:
    """Visible points of every (query group, key tile) pair under a mask with `and`, `or` and `not`
    (affine comparisons): its disjunctive normal form, the terms combined by inclusion-exclusion
    (each intersection of terms is a conjunction: one interval of keys per query). A data-dependent
    comparison counts as possibly true (the upper bound, as einsum_cascade.points counts it)."""
    from itertools import combinations

    from einsum_cascade.points import _MAX_DNF_TERMS, _dnf, conjunction_form
    terms = _dnf(conjunction_form(tuple(where)), _MAX_DNF_TERMS)
    if terms is None:
        raise MappingError(f"{who}: mask '{' and '.join(format_expr(c) for c in where)}' has more than "
                           f"{_MAX_DNF_TERMS} terms in disjunctive normal form; this mapping cannot count it per tile")
    out = np.zeros((n_queries // group, -(-n_keys // tile)), dtype=np.int64)
    for fixed in _held_values(cascade, where, key_vars, query_var, whole_var, sizes, who):
        for r in range(1, len(terms) + 1):
            for chosen in combinations(terms, r):
                lits = tuple(lit for term in chosen for lit in term)
                if isinstance(query_var, tuple):
                    out += (-1) ** (r + 1) * split_pair_counts(cascade, lits, key_vars, query_var, sizes, n_queries,
                                                               n_keys, group, tile, who, fixed)
                    continue
                lo, hi = key_intervals(cascade, lits, key_vars, query_var, sizes, n_queries, n_keys, who, whole_var,
                                       fixed)
                out += (-1) ** (r + 1) * pair_counts(lo, hi, group, tile, n_keys)
    return out


MAX_HELD_VALUES = 4096  # assignments of a mask's other variables (heads) enumerated per count


def held_points(cascade, where, key_vars, query_var, whole_var, sizes: dict) -> int:
    """Assignments of the mask's variables other than the key and query positions (a head h of
    `where h < R or ...`, held whole in every block): each (query, key) point counts once per one."""
    return math.prod(int(sizes[cascade.var_rank[v]]) for v in _held_vars(cascade, where, key_vars, query_var,
                                                                         whole_var))


def _held_vars(cascade, where, key_vars, query_var, whole_var) -> list[str]:
    own = set(key_vars) | set(query_var if isinstance(query_var, tuple) else (query_var,)) | {whole_var}
    ranks = {cascade.var_rank[v] for v in own if v in cascade.var_rank}
    for r in cascade.ranks.values():  # a split rank and its parts are the key or query positions too
        if r.name in ranks or ranks & set(r.parts):
            ranks |= {r.name, *r.parts}
    mine = {v for v, r in cascade.var_rank.items() if r in ranks}
    used = set()
    for c in where:
        used |= value_vars(c, cascade.variables)
    return sorted(used - mine)


def _held_values(cascade, where, key_vars, query_var, whole_var, sizes: dict, who: str):
    """Every assignment of the mask's held variables (one empty assignment when there are none)."""
    names = _held_vars(cascade, where, key_vars, query_var, whole_var)
    ranges = [range(int(sizes[cascade.var_rank[v]])) for v in names]
    if math.prod(len(r) for r in ranges) > MAX_HELD_VALUES:
        raise MappingError(f"{who}: mask over {', '.join(names)} has more than {MAX_HELD_VALUES} assignments of "
                           "those variables; this mapping cannot count it per tile")
    for values in product(*ranges):
        yield dict(zip(names, values))


def split_pair_counts(cascade, where, key_vars: tuple[str, ...], query_vars: tuple[str, str], sizes: dict,
                      n_queries: int, n_keys: int, group: int, tile: int, who: str,
                      fixed: dict[str, int] | None = None) -> np.ndarray:
    """Visible points of every (query group, key tile) pair of a conjunction over a split query rank
    q = q1 * Q0 + q0 and a split key rank k = k1 * K0 + k0 (2-D neighbourhoods, blocked linear
    attention): groups of whole inner query blocks (`group` a multiple of Q0) and tiles of whole
    inner key blocks (`tile` a multiple of K0). Each comparison is on (k1, q1) or on (k0, q0) alone,
    so the count of a pair is the outer pairs it sees (intervals of k1 per q1, as `pair_counts`)
    times the inner points (intervals of k0 per q0, summed over q0)."""
    if len(key_vars) != 2:
        raise MappingError(f"{who}: a mask over a split query rank needs a split key rank to count per tile")
    (k1, k0), (q1, q0) = key_vars, query_vars
    K0, Q0 = int(sizes[cascade.var_rank[k0]]), int(sizes[cascade.var_rank[q0]])
    if group % Q0 or tile % K0:
        raise MappingError(f"{who}: query groups of {group} rows and key tiles of {tile} keys are not whole inner "
                           f"blocks ({Q0} queries, {K0} keys); this mapping cannot count the mask per tile")
    outer, inner = [], []
    for c in where:
        if not isinstance(c, Comparison):
            raise MappingError(f"{who}: mask '{format_expr(c)}' is not an affine comparison: the tile "
                               "counting handles conjunctions of affine comparisons only")
        used = {str(x) for x in (c.left - c.right).free_symbols} & set(cascade.variables) - set(fixed or ())
        if used <= {k1, q1}:
            outer.append(c)
        elif used <= {k0, q0}:
            inner.append(c)
        else:
            raise MappingError(f"{who}: mask '{c.left} {c.op} {c.right}' mixes the outer and inner parts of the "
                               f"split ranks ({sorted(used)}); this mapping counts each part's comparisons apart")
    n1, m1 = n_queries // Q0, n_keys // K0
    lo, hi = key_intervals(cascade, tuple(outer), (k1,), q1, sizes, n1, m1, who, fixed=fixed)
    blocks = pair_counts(lo, hi, group // Q0, tile // K0, m1)
    lo, hi = key_intervals(cascade, tuple(inner), (k0,), q0, sizes, Q0, K0, who, fixed=fixed)
    return blocks * int(np.maximum(hi - lo + 1, 0).sum())


def tile_classes(counts_list: list[np.ndarray], group: int, tile: int, held: list[int] | None = None) -> TileClasses:
    """Classify pairs over several masks: a pair is empty when every mask sees nothing in it, full
    when every mask sees all group x tile points (x `held[i]`, mask i's held assignments)."""
    stack = np.stack(counts_list)
    empty = (stack == 0).all(axis=0)
    cap = np.array(held or [1] * len(counts_list), dtype=np.int64).reshape(-1, *([1] * (stack.ndim - 1)))
    full = (stack == group * tile * cap).all(axis=0)
    return TileClasses(full=int(full.sum()), partial=int((~empty & ~full).sum()), empty=int(empty.sum()),
                       points=int(stack[0].sum()))
