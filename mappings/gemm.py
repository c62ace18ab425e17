"""GEMMs from loop trees on the 2D array, and the six GEMMs of a transformer layer (end to end).

A GEMM Z[m,n] = sum_k A[m,k] B[k,n] (M rows, N columns, K reduction) is mapped as a loop tree
(mappings/looptree/): DRAM keeps A, B and Z; three temporal loops over M, N and K in some order
with tiles TM, TN, TK; the buffer keeps the A, B and Z tiles the loops leave (TM x TK, TK x TN,
TM x TN words, all three at once: the capacity check); the 2D array computes Z. The loop order
is the stationarity at the buffer: the innermost loop that steps (more than one trip) names the
operand that streams while the others stay: K innermost is output-stationary (Z's partial sums
stay on chip), N innermost keeps A (input-stationary), M innermost keeps B (weight-stationary).
DRAM traffic is counted from the storage nodes (mappings/looptree/traffic.py): an operand tile
is re-read whenever a loop above it that indexes it steps; Z's partial sums go back to DRAM and
are read again when K is not innermost. `best_gemm_mapping` searches the six orders and the
tiles (the powers of two below each size, its largest divisor below each of them, the size
split evenly into a power of two of trips, the whole size; a tile that does not divide leaves a short last trip, counted at its true size) under
the buffer capacity for the least DRAM words (ties: fewer K steps, then the smaller footprint).

The schedule (`gemm_schedule`) is one op per fold of the array (ceil(M / rows) x ceil(N / cols)
output blocks). Timing `paper` (default): each fold's cycles = its MACs / PEs. Timing `systolic`:
SCALE-Sim's per-fold fill + stream + drain for dataflow os, ws or is (archsim.systolic). The loop
tree's DRAM bytes are spread evenly over the folds, so the DES gives about max(DRAM bytes /
bandwidth, cycles of the folds). Energy per action: the folds' MACs, the array's operand reads
from the buffer ((rows + cols) x K words per fold), its output block written to the buffer after
each of the K / TK reduction steps and read back before each step but the first, the DRAM bytes,
and the buffer writes and reads those DRAM bytes cause (archsim.result). On a hierarchy of more
levels, `mappings.looptree.cost.tree_cost` gives a GEMM tree's cycles (a roofline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

import einsum_cascade as ec
from archsim.config import Architecture
from archsim.result import Result, run
from archsim.schedule import Schedule, Segment, TileOp
from archsim.systolic import folds_and_cycles_per_fold
from mappings.divisors import divisors
from mappings.looptree.traffic import Traffic, check_capacity, dram_traffic
from mappings.looptree.tree import LoopTree, parse_looptree, validate
from mappings.work import MappingError, cost_on_unit
from mappings.workload import Workload

GEMM_TEXT = """cascade gemm
rank M, N, K
input A[m,k], B[k,n]
output Z
Z[m,n] = A[m,k] * B[k,n]
"""
RANKS = ("M", "N", "K")
STATIONARITY = {"K": "output-stationary", "N": "A-stationary (input)", "M": "B-stationary (weight)", None: "one tile"}


@lru_cache(maxsize=1)
def gemm_cascade() -> ec.Cascade:
    """Z[m,n] = sum_k A[m,k] B[k,n] over ranks M, N, K."""
    return ec.parse(GEMM_TEXT)


def gemm_tree(order: tuple[str, ...], arch: str, level: str = "buffer", unit: str = "array2d") -> LoopTree:
    """The GEMM loop tree with loops over `order` (outermost first, tiles TM, TN, TK: params) above
    the storage node of `level` that keeps the A, B and Z tiles, the compute on `unit`."""
    if sorted(order) != sorted(RANKS):
        raise ValueError(f"gemm_tree: order {order!r} is not a permutation of {RANKS}")
    return parse_looptree({
        "name": f"gemm-{''.join(order).lower()}", "cascade": "gemm", "arch": arch,
        "params": {f"T{r}": None for r in RANKS},
        "tree": [{"storage": {"level": "DRAM", "tensors": ["A", "B", "Z"]}},
                 *({"temporal": {"rank": r, "tile": f"T{r}"}} for r in order),
                 {"storage": {"level": level, "tensors": ["A", "B", "Z"]}},
                 {"compute": {"einsum": "Z", "unit": unit}}]}, f"<gemm tree {''.join(order)}>")


@dataclass(frozen=True)
class GemmMapping:
    """A GEMM's loop tree at its tiles: DRAM and level traffic (words), buffer footprint (words)."""
    sizes: dict
    order: tuple[str, ...]
    tiles: dict
    traffic: Traffic
    footprint_words: float
    candidates: int

    @property
    def stationarity(self) -> str:
        """What stays in the buffer while the innermost stepping loop runs (module docstring)."""
        stepping = [r for r in self.order if self.tiles[r] < self.sizes[r]]
        return STATIONARITY[stepping[-1] if stepping else None]

    def describe(self) -> str:
        loops = " > ".join(f"{r}/{self.tiles[r]}" for r in self.order if self.tiles[r] < self.sizes[r]) or "no loop"
        return (f"loop tree {loops} ({self.stationarity}), buffer tiles {self.footprint_words:.0f} words, "
                f"DRAM {self.traffic.total_words:.0f} words ({self.candidates} candidates)")


def tile_candidates(n: int) -> list[int]:
    """Tiles of a rank of size n: each power of two below n, the largest divisor of n <= each power
    of two, n split evenly in a power of two of trips (ceil(n / 2**j)), and n itself (ascending). A
    tile that does not divide n leaves a short last trip."""
    ds = divisors(int(n))
    out, j = {n}, 0
    while 2 ** j < n:
        out |= {2 ** j, max(d for d in ds if d <= 2 ** j), -(-n // 2 ** j)}
        j += 1
    return sorted(out)


def evaluate_gemm(order: tuple[str, ...], tiles: dict, sizes: dict, hierarchy, level: str = "buffer",
                  unit: str = "array2d", tree: LoopTree | None = None) -> GemmMapping:
    """The GemmMapping of one tree (order, tiles) at `sizes` ({M, N, K}) on `hierarchy`; LoopTreeError
    when a tile does not divide its size or the tiles exceed `level`'s capacity."""
    given = tree is not None
    tree = tree if given else gemm_tree(order, hierarchy.name, level, unit)
    params = {f"T{r}": int(tiles[r]) for r in RANKS}
    t = dram_traffic(tree, gemm_cascade(), hierarchy, sizes, params, checked=given, partial=True)
    footprint = check_capacity(tree, hierarchy, t)[level]
    return GemmMapping(dict(sizes), tuple(order), dict(tiles), t, footprint, 1)


_SEARCHED: dict = {}


def best_gemm_mapping(M: int, N: int, K: int, hierarchy, level: str = "buffer", unit: str = "array2d",
                      exhaustive: bool = False) -> GemmMapping:
    """The loop tree (order, tiles) of the least DRAM words whose tiles fit `level` (module docstring).

    Score: DRAM words, then the K steps of a fold (each step after the first reads the array's
    partial sums back from the buffer), then the footprint. Pruning (exact, not a heuristic): each
    tensor's DRAM words are its size times the trips of the loop over the rank it lacks when that
    loop is above its innermost own loop, so the tile of the innermost loop changes no traffic,
    only the footprint (and the K steps when it is K's): it is set to its smallest candidate (K:
    the largest that fits). The reduction tile is at least min(K, the array's rows) (a fold
    streams at least that deep).
    `exhaustive`: try every tile of the innermost loop too (tests check both give the same words)."""
    cap = hierarchy.level(level).capacity_bytes
    key = (M, N, K, hierarchy.name, cap, hierarchy.word_bytes, level, unit, exhaustive)
    if key in _SEARCHED:
        return _SEARCHED[key]
    sizes = {"M": int(M), "N": int(N), "K": int(K)}
    S = cap // hierarchy.word_bytes
    depth = min(sizes["K"], hierarchy.units[unit].rows)
    cands = {r: tile_candidates(sizes[r]) for r in RANKS}
    cands["K"] = [t for t in cands["K"] if t >= depth] or [sizes["K"]]
    c = gemm_cascade()
    best, best_score, seen, n = None, None, set(), 0
    for order in permutations(RANKS):
        tree = gemm_tree(order, hierarchy.name, level, unit)
        validate(tree, c, hierarchy)
        for t1 in cands[order[0]]:
            for t2 in cands[order[1]]:
                inner = cands[order[2]]
                if not exhaustive and order[2] == "K":  # the deepest reduction tile that fits (fewest partial sums)
                    room = (S - t1 * t2) / (t1 + t2)
                    inner = [max([t for t in inner if t <= room], default=inner[0])]
                elif not exhaustive:
                    inner = inner[:1]
                for t3 in inner:
                    tiles = dict(zip(order, (t1, t2, t3)))
                    tm, tn, tk = tiles["M"], tiles["N"], tiles["K"]
                    words = tm * tk + tk * tn + tm * tn
                    if words > S:
                        continue
                    stepping = tuple(r for r in order if tiles[r] < sizes[r])
                    if (stepping, tm, tn, tk) in seen:  # the same loops in effect as an order tried before
                        continue
                    seen.add((stepping, tm, tn, tk))
                    n += 1
                    t = dram_traffic(tree, c, hierarchy, sizes, {"TM": tm, "TN": tn, "TK": tk}, checked=True,
                                     partial=True)
                    score = (t.total_words, math.ceil(sizes["K"] / tk), words)
                    if best_score is None or score < best_score:
                        best, best_score = (order, tiles, tree), score
    if best is None:
        raise MappingError(f"GEMM {M} x {N} x {K}: no tile of A, B and Z fits the {cap} B of {level} "
                           f"({hierarchy.name})")
    found = evaluate_gemm(best[0], best[1], sizes, hierarchy, level, unit, best[2])
    found = GemmMapping(found.sizes, found.order, found.tiles, found.traffic, found.footprint_words, n)
    _SEARCHED[key] = found
    return found


def gemm_schedule(name: str, M: int, N: int, K: int, arch: Architecture, timing: str = "paper",
                  dataflow: str = "os") -> Schedule:
    """Schedule of one GEMM (M x K times K x N) on `arch`'s 2D array: one op per fold, with its
    cycles (`timing` "paper" or "systolic"), the DRAM bytes of the best loop tree (spread over the
    folds) and the fold's operand strips of one K tile in the buffer (bytes, held while it runs)."""
    from archsim.hierarchy import from_architecture
    unit = arch.units["array2d"]
    wb = arch.word_bytes
    folds, per_fold = folds_and_cycles_per_fold(M, N, K, unit.rows, unit.cols, dataflow)
    macs = float(M) * N * K
    paper_cycles, actions = cost_on_unit(unit, {"mac": macs / folds}, f"GEMM {name}")
    if timing == "paper":
        cycles = paper_cycles
    elif timing == "systolic":
        cycles = float(per_fold)
    else:
        raise ValueError(f"unknown array timing {timing!r} (paper or systolic)")
    mapping = best_gemm_mapping(M, N, K, from_architecture(arch))
    reads, writes = sum(mapping.traffic.reads.values()), sum(mapping.traffic.writes.values())
    k_steps = math.ceil(K / mapping.tiles["K"])  # the fold's partial sums leave the array after each K step
    actions["buffer.read_words"] = (unit.rows + unit.cols) * K * 1.0 + float(M) * N / folds * (k_steps - 1)
    actions["buffer.write_words"] = float(M) * N / folds * k_steps
    op = TileOp("GEMM", "array2d", cycles, name, ("prev:GEMM",), load_bytes=reads * wb / folds,
                store_bytes=writes * wb / folds, buffer_bytes=(unit.rows + unit.cols) * mapping.tiles["K"] * wb,
                actions=actions)
    for value in (op.load_bytes, op.store_bytes):
        if not math.isfinite(value) or value < 0:
            raise MappingError(f"GEMM {name}: DRAM bytes per fold {value!r}")
    return Schedule(name=f"gemm:{name}", blocks=1, segments=(Segment("folds", folds, (op,)),),
                    notes=(f"{folds} folds of {cycles:.0f} cycles ({timing} timing)", mapping.describe()))


def layer_gemms(w: Workload) -> list[tuple[str, int, int, int]]:
    """The six GEMMs (name, M, N, K) of one layer, R = B*P rows (docs/references/reference-fusemax.md section 5)."""
    R, EH = w.B * w.seq_len, w.E * w.H
    return [("Q", R, EH, w.D), ("K", R, EH, w.D), ("V", R, w.F * w.H, w.D), ("O", R, w.D, w.F * w.H),
            ("FFN1", R, w.S, w.D), ("FFN2", R, w.D, w.S)]


def run_layer_gemms(w: Workload, arch: Architecture, mode: str = "steady") -> list[Result]:
    """Simulated results (cycles, seconds, joules, bytes) of the layer's six GEMMs, in layer_gemms order."""
    return [run(gemm_schedule(n, M, N, K, arch), arch, mode) for n, M, N, K in layer_gemms(w)]


__all__ = ["GEMM_TEXT", "GemmMapping", "best_gemm_mapping", "evaluate_gemm", "gemm_cascade", "gemm_schedule",
           "gemm_tree", "layer_gemms", "run_layer_gemms", "tile_candidates"]
