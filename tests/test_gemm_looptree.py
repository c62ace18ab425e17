"""GEMMs priced from loop trees (mappings/gemm.py): hand-derived traffic and cycles of a GEMM with two
buffer levels, the tile search against a brute-force count written here, the bound below every
searched mapping (property), and the certified GEMM route with a buffer the operands do not fit."""
import dataclasses
import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsim.config import load_architecture
from archsim.hierarchy import from_architecture, load_hierarchy
from archsim.result import run
from mappings import simulate
from mappings.bound import lower_bound
from mappings.divisors import divisors
from mappings.gemm import best_gemm_mapping, gemm_cascade, gemm_schedule, tile_candidates
from mappings.looptree import LoopTreeError, check_capacity, dram_traffic, parse_looptree
from mappings.looptree.cost import level_cycles, tree_cost


def _two_level_tree(local_tensors=("A", "B")):
    return parse_looptree({"name": "g2", "cascade": "gemm", "arch": "fusemax-local-buffers", "tree": [
        {"storage": {"level": "DRAM", "tensors": ["A", "B", "Z"]}},
        {"temporal": {"rank": "M", "tile": 256}},
        {"storage": {"level": "buffer", "tensors": ["A", "Z"]}},
        {"temporal": {"rank": "N", "tile": 128}},
        {"temporal": {"rank": "K", "tile": 256}},
        {"storage": {"level": "local2d", "tensors": list(local_tensors)}},
        {"compute": {"einsum": "Z", "unit": "array2d"}}]}, "g2.yaml")


def test_gemm_with_two_buffer_levels_by_hand():
    """Z[m,n] = sum_k A[m,k] B[k,n], M = N = K = 512, on fusemax-local-buffers (DRAM -> 16 MiB buffer ->
    256 KiB local2d -> 256 x 256 array). Tree: M in steps of 256; the buffer keeps A (256 x 512) and Z
    (256 x 512); N in steps of 128, K in steps of 256; local2d keeps A (256 x 256) and B (256 x 128).
    DRAM: A read 2 x 131,072 = 262,144 words (once), Z written once (262,144); B has no buffer copy, so
    local2d's tile comes from DRAM once per (M, N, K) step: 2 x 4 x 2 x 32,768 = 524,288 words (twice).
    local2d fills: A from the buffer once per (M, N, K) step, 16 x 65,536 = 1,048,576 words (the N loop
    re-reads it), B 524,288. Footprints: buffer 262,144 words (512 KiB), local2d 98,304 (192 KiB).
    Cycles: DRAM (262,144 + 524,288 + 262,144) x 2 B / 456.9114 B/cycle = 4,589.84; buffer link 524,288 B
    in at min(456.91, 16,384) and 524,288 B out at min(16,384, 456.91): 2,294.92; local2d 3,145,728 B
    at min(16,384, 4,096) = 768; the array 512**3 / 65,536 PEs = 2,048: DRAM-bound at 4,589.84."""
    h = load_hierarchy("fusemax-local-buffers")
    sizes = {"M": 512, "N": 512, "K": 512}
    t = dram_traffic(_two_level_tree(), gemm_cascade(), h, sizes)
    assert t.reads == {"A": 262144, "B": 524288} and t.writes == {"Z": 262144}
    assert t.fills == {"buffer": {"A": 262144}, "local2d": {"A": 1048576, "B": 524288}}
    assert t.drains == {"buffer": {"Z": 262144}}
    held = check_capacity(_two_level_tree(), h, t)
    assert held["buffer"] == 262144 and held["local2d"] == 98304
    dram_bpc = 400 * 2**30 / 940e6
    assert level_cycles(t, h) == pytest.approx({"DRAM": 2 * 1048576 / dram_bpc, "buffer": 2 * 524288 / dram_bpc,
                                                "local2d": 768.0}, rel=1e-12)
    cost = tree_cost(_two_level_tree(), gemm_cascade(), h, sizes)  # MACs: numeric_cost's multiplies and adds
    assert cost.unit_cycles == {"array2d": 2048.0} and cost.bounding == "DRAM"
    assert cost.cycles == pytest.approx(2 * 1048576 / dram_bpc, rel=1e-12)


def test_a_tile_that_does_not_fit_a_level_names_the_node():
    """local2d (256 KiB) keeping A, B and an 8 x bigger B tile: (256 x 256 + 256 x 512) x 2 B = 384 KiB."""
    h = load_hierarchy("fusemax-local-buffers")
    tree = parse_looptree({"name": "g", "cascade": "gemm", "arch": "fusemax-local-buffers", "tree": [
        {"storage": {"level": "DRAM", "tensors": ["A", "B", "Z"]}},
        {"temporal": {"rank": "K", "tile": 256}},
        {"storage": {"level": "local2d", "tensors": ["A", "B"]}},
        {"compute": {"einsum": "Z", "unit": "array2d"}}]}, "big.yaml")
    t = dram_traffic(tree, gemm_cascade(), h, {"M": 256, "N": 512, "K": 512})
    with pytest.raises(LoopTreeError, match=r"big\.yaml: tree\[2\]\.storage: the tiles kept in local2d need 393216 B"):
        check_capacity(tree, h, t)


def _words_by_hand(order, tiles, sizes) -> float:
    """Each tensor's size times the trips of the loop over the rank it lacks (A: N, B: M, Z: K) when that
    loop is above the tensor's innermost own loop; Z's partial sums: written f times, read f - 1 times."""
    pos = {r: i for i, r in enumerate(order)}
    trips = {r: -(-sizes[r] // tiles[r]) for r in order}  # ceil: a short last trip
    out = 0.0
    for own, lacks, words, produced in ((("M", "K"), "N", sizes["M"] * sizes["K"], False),
                                        (("K", "N"), "M", sizes["K"] * sizes["N"], False),
                                        (("M", "N"), "K", sizes["M"] * sizes["N"], True)):
        f = trips[lacks] if pos[lacks] < max(pos[r] for r in own) else 1
        out += words * (2 * f - 1 if produced else f)
    return out


def _with_buffer(h, capacity_bytes):
    return dataclasses.replace(h, name=f"{h.name}-{capacity_bytes}",
                               levels=(h.levels[0], dataclasses.replace(h.levels[1], capacity_bytes=capacity_bytes)))


@pytest.mark.parametrize("sizes,buffer", [((1024, 1024, 1024), 2**20), ((768, 1536, 640), 2**19),
                                          ((4096, 256, 2048), 2**20), ((96, 4096, 4096), 2**21),
                                          ((4099, 1031, 2053), 2**20)])
def test_search_equals_a_brute_force_count(sizes, buffer):
    """The search's DRAM words = the least hand-counted words over every order and every tile triple of
    the candidate sets (all divisors where the sizes are powers of two; tiles that do not divide leave a
    short last trip) that fits (A + B + Z tiles <= S, the K tile at least min(K, 256)); the pruned search
    equals the exhaustive one."""
    h = _with_buffer(from_architecture(load_architecture("fusemax-cloud")), buffer)
    s = dict(zip("MNK", sizes))
    S = buffer // 2
    cands = {r: (divisors(s[r]) if s[r] & (s[r] - 1) == 0 else tile_candidates(s[r])) for r in "MNK"}
    best = math.inf
    for order in itertools.permutations("MNK"):
        for tm, tn, tk in itertools.product(cands["M"], cands["N"], cands["K"]):
            if tm * tk + tk * tn + tm * tn <= S and tk >= min(s["K"], 256):
                best = min(best, _words_by_hand(order, {"M": tm, "N": tn, "K": tk}, s))
    found = best_gemm_mapping(*sizes, h)
    assert found.traffic.total_words == best
    assert best_gemm_mapping(*sizes, h, exhaustive=True).traffic.total_words == best
    assert found.footprint_words <= S


def test_one_mib_buffer_by_hand_through_the_simulator():
    """1024**3 on fusemax-cloud with a 1 MiB buffer (S = 524,288 words), K tiles >= 256. Output-stationary
    (M > N > K): 512 x 512 output tiles fit exactly (262,144 + 256 x 1,024 = S): A and B read twice, Z once:
    5 x 2**20 words. Keeping A (M > K > N) costs |A| + |B| M / TM + |Z| (2 K / TK - 1) >= 6 x 2**20 (TK = 1024:
    TM <= 510 -> 256, B 4 times; TK = 512: TM 512, B twice, Z 3 times; TK = 256: B once, Z 7 times); keeping
    B likewise. DRAM 10,485,760 B over 456.91 B/cycle = 22,949.2 cycles > the array's 2**30 / 65,536 = 16,384:
    the simulator's cycles are the DRAM's plus at most one fold's lead-in."""
    a = load_architecture("fusemax-cloud")
    small = dataclasses.replace(a, buffer=dataclasses.replace(a.buffer, capacity_bytes=2**20))
    sched = gemm_schedule("g", 1024, 1024, 1024, small)
    assert any("output-stationary" in n for n in sched.notes)
    res = run(sched, small, "exact")
    assert res.dram_bytes == 2 * 5 * 2**20
    dram_cycles = 2 * 5 * 2**20 / a.dram_bytes_per_cycle
    fold = 2**30 / 16 / 65536  # 16 folds of 1,024 cycles
    assert dram_cycles <= res.cycles <= dram_cycles + fold
    big = run(gemm_schedule("g", 1024, 1024, 1024, a), a, "exact")
    assert big.dram_bytes == 2 * 3 * 2**20  # 16 MiB: everything fits, the compulsory traffic
    assert res.joules > big.joules


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(0, 13), n=st.integers(0, 13), k=st.integers(0, 13), odd=st.sampled_from([1, 3, 5]),
       buffer_log=st.integers(16, 24))
def test_bound_at_most_the_searched_mapping(m, n, k, odd, buffer_log):
    """mappings/bound.py's least DRAM traffic <= the loop tree the search picks, over shapes and buffers."""
    sizes = {"M": 2**m * odd, "N": 2**n, "K": 2**k}
    h = _with_buffer(from_architecture(load_architecture("fusemax-cloud")), 2**buffer_log)
    found = best_gemm_mapping(sizes["M"], sizes["N"], sizes["K"], h)
    b = lower_bound(gemm_cascade(), sizes, 2**buffer_log, 2)
    assert b.total_bytes <= found.traffic.total_bytes * (1 + 1e-12)
    assert found.footprint_words * 2 <= 2**buffer_log


def test_certified_gemm_route_re_reads_tiles():
    """blocks/matmul through simulate (certified by check_gemm): a 16K x 16K x 16K GEMM moves 17 x 2**28
    words (test_bound.py derives it), above the sqrt(S) bound; latency >= DRAM bytes / bandwidth."""
    r = simulate("blocks/matmul", "fusemax-cloud", {"T": 16384, "D": 16384, "N": 16384})
    assert r.dram_bytes == 2 * 17 * 2**28
    b = lower_bound(gemm_cascade(), {"M": 16384, "N": 16384, "K": 16384}, 16 * 2**20, 2)
    assert r.dram_bytes >= b.total_bytes
    assert any("loop tree" in n for n in r.notes)


RUNSUM = """cascade runsum
rank E, M
input X[e,m]
output Y
S[e,0] = 0
S[e,m+1] = S[e,m] + X[e,m]
Y[e,m] = 2 * S[e,m+1]
"""


def _runsum_tree():
    return parse_looptree({"name": "runsum", "cascade": "runsum", "arch": "fusemax-cloud", "tree": [
        {"storage": {"level": "DRAM", "tensors": ["X", "Y"]}},
        {"temporal": {"rank": "M", "tile": 256}},
        {"storage": {"level": "buffer", "tensors": ["X", "Y", "S"]}},
        {"sequential": [[{"compute": {"einsum": "S", "unit": "array1d"}}],
                        [{"compute": {"einsum": "Y", "unit": "array1d"}}]]}]}, "runsum.yaml")


@pytest.mark.parametrize("E,M,s_cycles,bounding", [(64, 1024, 1024.0, "array1d"), (1024, 256, 1024.0, "DRAM")])
def test_recurrence_tree_by_hand(E, M, s_cycles, bounding):
    """A running sum S[e,m+1] = S[e,m] + X[e,m], Y = 2 S, on fusemax-cloud's 1D array (256 PEs): M in steps of
    256; the buffer keeps the X and Y tiles (E x 256 words each) and one step of S (E words: the stepping
    index is not stored). DRAM: X read once, Y written once (E x M words each). Cycles: S's E x M adds
    run in M steps, each at least one add's cycle: M x max(E / 256, 1) (E = 64, M = 1,024: 1,024 steps of
    1 cycle though a step has only 64 adds; E = 1,024, M = 256: 4 cycles a step, 1,024); Y's E x M
    multiplies / 256 PEs; both on the 1D array, one after the other. DRAM: 2 E M words x 2 B / 456.91 B per
    cycle: 573.7 (E = 64: the 1D array's 1,280 bound it) and 2,294.9 (E = 1,024: above the array's 2,048)."""
    import einsum_cascade as ec
    c, h = ec.parse(RUNSUM), load_hierarchy("fusemax-cloud")
    cost = tree_cost(_runsum_tree(), c, h, {"E": E, "M": M})
    assert cost.traffic.reads == {"X": E * M} and cost.traffic.writes == {"Y": E * M}
    assert cost.footprint_words["buffer"] == 2 * E * 256 + E
    y_cycles = E * M / 256
    assert cost.einsum_cycles == {"S": s_cycles, "Y": y_cycles}
    assert cost.unit_cycles == {"array1d": s_cycles + y_cycles}
    dram = 2 * E * M * 2 / (400 * 2**30 / 940e6)
    assert cost.level_cycles["DRAM"] == pytest.approx(dram, rel=1e-12)
    assert cost.cycles == max(s_cycles + y_cycles, dram) and cost.bounding == bounding
