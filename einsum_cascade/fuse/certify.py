"""Certification of a rewrite: the fused cascade evaluates equal to the original.

Both cascades run on the same random fp64 inputs (standard normal, then scaled by 10 and by 100,
so that a score bilinear in two inputs, Q.K, is scaled by 100 and 10^4, and one linear in an
input by 10 and 100), with several tilings of the rank (tiles of 4 and of 3, tiles of 1).
Every output must agree within a relative error `rtol` of its largest magnitude, be NaN
nowhere the original is not, and at least one trial must have the original defined at every
point; points where the original is NaN (0 * log 0 once an exp underflows at the large scales)
and the rewrite finite are left out and reported in the trial's line. Sizes are small (a dozen keys) so that the check costs
little; ranks compared with the fused rank in a `where` get its size (a causal or
windowed mask then leaves every query a key).
"""
from __future__ import annotations

import numpy as np

from einsum_cascade.ast import Reduce, walk
from einsum_cascade.fuse.conditions import condition_vars
from einsum_cascade.ir import Cascade

# (scale of every input, keys per tile M0, tiles M1, seed)
TRIALS = ((1.0, 4, 3, 0), (10.0, 4, 3, 1), (100.0, 3, 2, 2), (1.0, 1, 5, 3))
PARAM_VALUES = (3.0, 2.0, 5.0, 1.0, 4.0, 7.0)  # params in declaration order (distinct: a mask of
# several params, `p - m == D1 or p - m == D2`, is checked with distinct diagonals)
OTHER_SIZES = (5, 3, 4, 6, 2, 7)


def check_sizes(original: Cascade, rank: str, m0: int, m1: int) -> dict[str, int | float]:
    """Sizes for one trial: the fused rank M = m1*m0, ranks masked against it the same, others small."""
    sizes: dict[str, int | float] = {}
    rvars = original.rank_vars(rank)
    paired = set()
    for e in original.einsums:
        conds = list(e.where) + [c for n in walk(e.expr) if isinstance(n, Reduce) for c in n.where]
        for c in conds:
            names = condition_vars(c, original.variables)
            if names & rvars:
                paired |= {original.var_rank[v] for v in names if v in original.var_rank}
    total = m0 * m1
    k = 0
    for r in original.ranks.values():
        if r.name == rank or (r.name in paired and not r.parts):
            sizes[r.name] = total
            if r.name == rank and r.parts:
                sizes[r.parts[-1]] = m0 if len(r.parts) == 2 else 1
            continue
        if r.parts:
            for part in r.parts[1:]:
                sizes[part] = 2
            sizes[r.parts[0]] = 3
            continue
        sizes[r.name] = OTHER_SIZES[k % len(OTHER_SIZES)]
        k += 1
    for i, p in enumerate(original.params):
        sizes[p] = PARAM_VALUES[i % len(PARAM_VALUES)]
    return sizes


def undefined_points(actual: np.ndarray, expected: np.ndarray) -> int:
    """Points where the original is NaN (undefined: 0 * log 0 after an exp underflows) and the
    rewrite finite; `relative_error` leaves them out, `certify` reports them."""
    a, b = np.asarray(actual, float), np.asarray(expected, float)
    if a.shape != b.shape:
        return 0
    return int(np.count_nonzero(np.isnan(b) & np.isfinite(a)))


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| over finite points; inf if inf patterns differ
    or the rewrite is NaN where the original is not. Where the original is NaN and the rewrite
    finite the original has no value to compare with: those points are left out (and counted by
    `undefined_points`)."""
    a, b = np.asarray(actual, float), np.asarray(expected, float)
    if a.shape != b.shape:
        return float("inf")
    if np.any(np.isnan(a) & ~np.isnan(b)):
        return float("inf")
    undefined = np.isnan(b) & np.isfinite(a)
    if undefined.any():
        a, b = a[~undefined], b[~undefined]
    inf_b = np.isinf(b)
    if not np.array_equal(inf_b, np.isinf(a)) or not np.array_equal(a[inf_b], b[inf_b]):
        return float("inf")
    ok = np.isfinite(b)
    if not ok.any():
        return 0.0
    scale = float(np.max(np.abs(b[ok])))
    diff = float(np.max(np.abs(a[ok] - b[ok])))
    return diff / scale if scale else diff


def certify(original: Cascade, fused: Cascade, rank: str, tile_names: tuple[str, str] | None,
            rtol: float = 1e-9) -> tuple[float, list[str]]:
    """The largest relative error over trials and outputs, and a line per trial."""
    worst, lines, defined_trials = 0.0, [], 0
    for scale, m0, m1, seed in TRIALS:
        sizes = check_sizes(original, rank, m0, m1)
        rng = np.random.default_rng(seed)
        bound = original.bind_sizes({}, sizes)
        inputs = {n: scale * rng.standard_normal(original.tensor_shape(n, bound)) for n in original.inputs}
        fused_sizes = dict(sizes)
        if tile_names is not None and tile_names[1] not in sizes:
            fused_sizes[tile_names[1]] = m0
        with np.errstate(all="ignore"):  # an undefined point of the original is reported below
            want = original.evaluate(inputs, sizes)
            got = fused.evaluate(inputs, {k: v for k, v in fused_sizes.items()
                                          if k in set(fused.size_names) | set(fused.params)})
        errors = {name: relative_error(got[name], want[name]) for name in want}
        undefined = sum(undefined_points(got[name], want[name]) for name in want)
        err = max(errors.values(), default=0.0)
        worst = max(worst, err)
        defined_trials += undefined == 0
        lines.append(f"inputs x{scale:g}, {rank} = {m1} tiles of {m0}: max relative error {err:.2e}"
                     + (f" ({undefined} point(s) where the original is NaN and the rewrite finite, "
                        "left out)" if undefined else ""))
    if not defined_trials:  # nothing was compared at every point
        worst = float("inf")
        lines.append("no trial where the original is defined at every point: not certified")
    return worst, lines


SIMULATION_ARCH = "fusemax-cloud"
SIMULATION_TILE = (16, 4)  # keys per tile, tiles: the simulated fused rank has 64 keys


def simulate_line(original: Cascade, fused: Cascade, rank: str) -> str:
    """One line for the certificate: the fused cascade simulated on fusemax-cloud (auto mapping)
    at small sizes, or why it could not be mapped (a simulator limit: a note, not a refusal)."""
    from einsum_cascade.errors import CascadeError
    from mappings import simulate
    from mappings.work import MappingError

    m0, m1 = SIMULATION_TILE
    sizes = check_sizes(original, rank, m0, m1)
    names = set(fused.size_names) | set(fused.params)
    sizes = {k: v for k, v in sizes.items() if k in names}
    shown = ", ".join(f"{k}={v:g}" for k, v in sizes.items())
    try:
        result = simulate(fused, SIMULATION_ARCH, sizes, mapping="auto")
    except (MappingError, CascadeError) as err:
        why = getattr(err, "message", None) or str(err)
        return f"not simulated on {SIMULATION_ARCH} (auto mapping) at {shown}: {why}"
    except Exception as err:  # noqa: BLE001 - a simulator defect must not fail a certified rewrite
        return (f"not simulated on {SIMULATION_ARCH} (auto mapping) at {shown}: the simulator failed "
                f"({type(err).__name__}: {err}; a simulator defect, not a property of the rewrite)")
    latency = float(result.latency_s)
    if not (latency > 0 and np.isfinite(latency)):
        return f"simulated on {SIMULATION_ARCH} at {shown}: latency {latency!r} is not a positive number"
    return f"simulated on {SIMULATION_ARCH} (auto mapping) at {shown}: latency {latency:.3e} s"
