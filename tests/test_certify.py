"""Certified results (issue 19): the invariants of mappings/certify.py on every simulated result, and
the scheduler / engine defects they found, each with its expectation derived by hand here."""
from __future__ import annotations

import copy

import pytest

import einsum_cascade as ec
from archsim.config import CONFIG_DIR, load_architecture, parse_architecture
from archsim.result import run
from archsim.yamlio import load_yaml_file
from mappings import MappingError, parse_spec
from mappings.certify import InvariantViolation, bounds, check_gpu, point_label
from mappings.scheduler import build_schedule, context
from mappings.simulation import simulate
from studies.cli import main

DENSE = """cascade mask_dense
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV
QK[m,p] = Q[e,p] * K[e,m]
AV[f,p] = QK[m,p] * V[f,m]
"""
# the dense cascade plus one extra causal output from the same scores
PROBE = DENSE.replace("mask_dense", "mask_probe").replace("output AV", "output AV, AC") + \
    "AC[f,p] = QK[m,p] * V[f,m] where m <= p\n"
NONE_SPEC = {"name": "none-probe", "fusion": "none", "query_group": "auto", "min_blocks": 16,
             "binding_rules": [{"einsums": "sum_of_products", "unit": "array2d"}, {"einsums": "rest", "unit": "array1d"}]}
PES_2D = 256 * 256  # fusemax-cloud / flat-cloud array2d
BYTES_PER_CYCLE = 429496729600 / 940e6  # both clouds' DRAM bandwidth / clock


# -- masks apply per Einsum -------------------------------------------------------------------
def test_mask_probe_takes_a_quarter_longer_than_the_dense_cascade():
    """QK and AV over every key (E*M*P MACs each), AC over the keys m <= p (F*P(P+1)/2 MACs), all on
    the 256x256 array at one MAC per PE per cycle: compute-bound, the probe takes
    1 + (P+1)/(4P) = 1.25006 x the dense cascade. (Before the fix a skipped tile dropped QK and AV
    too: 0.69x, with the array "busy 113%".)"""
    n, heads = 4096, 12
    sizes = {"M": n, "P": n, "E": 64, "F": 64}
    dense = simulate(ec.parse(DENSE), "fusemax-cloud", sizes, heads=heads)
    probe = simulate(ec.parse(PROBE), "fusemax-cloud", sizes, heads=heads)
    dense_bound = 2 * 64 * n * n * heads / PES_2D
    probe_bound = dense_bound + 64 * n * (n + 1) / 2 * heads / PES_2D
    assert dense_bound <= dense.cycles <= 1.01 * dense_bound
    assert probe_bound <= probe.cycles <= 1.01 * probe_bound
    assert probe.cycles / dense.cycles == pytest.approx(1 + (n + 1) / (4 * n), rel=0.01)


def test_skipped_tiles_still_run_the_unmasked_recurrence_updates():
    """attention_1pass_causal with fusemax-causal (256-key tiles: array2d.rows, so M1 = 16): RM's
    update RM[m1+1,p] = max(RM[m1,p], LM[m1,p]) has no mask: M1 * P = 16 * 4096 maxes per head on the
    256-PE array1d, 256 cycles per head, on every tile, skipped or not."""
    c = ec.load_library("attention_1pass_causal")
    r = simulate(c, "fusemax-cloud", {"M": 4096, "E": 64, "F": 64}, mapping="fusemax-causal", heads=12)
    rm = sum(per.get("RM", 0.0) for per in r.result.busy_by_einsum.values())
    assert rm == pytest.approx(12 * 16 * 4096 / 256)


# -- the invariants themselves ------------------------------------------------------------------
def test_compulsory_bytes_of_attention_are_its_inputs_and_output_once():
    """Q, K, V and AV of attention_1pass: 4 tensors of 64 x 4096 two-byte words per head."""
    c = ec.load_library("attention_1pass")
    a = load_architecture("fusemax-cloud")
    spec = parse_spec({"name": "t", "binding_rules": [{"einsums": "rest", "unit": "array1d"}], "tile": 256})
    ctx = context(c, spec, a, {"M": 4096, "P": 4096, "E": 64, "F": 64})
    cert = bounds(c, a, ctx.binding, ctx.global_sizes(), 12)
    assert cert.compulsory_bytes == 12 * 4 * 64 * 4096 * 2


def test_a_result_below_its_bound_exits_1_with_one_line_and_no_check_lets_it_through(monkeypatch, capsys):
    """An engine that reports half the cycles (monkeypatched) breaks busy <= latency: exit 1, one
    line naming the invariant and the point; --no-check (debugging) prints the number."""
    import archsim.result as result_module
    real = result_module.simulate
    monkeypatch.setattr(result_module, "simulate", lambda s, a, mode="steady": (real(s, a, mode)[0] / 2, 0.0))
    args = ["simulate", "attention_3pass", "--arch", "fusemax-cloud", "--size", "M=1K", "E=64", "F=64",
            "--mapping", "unfused"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invariant violated: busy <= latency" in err[0] and "attention_3pass on fusemax-cloud" in err[0]
    assert main(args + ["--no-check"]) == 0


def test_executed_work_must_equal_the_cascades_counts():
    """A schedule that drops one tile of QK (its busy cycles 1/64 short) is refused by name."""
    from mappings.certify import check_result
    c = ec.load_library("attention_3pass")
    a = load_architecture("fusemax-cloud")
    spec = parse_spec({"name": "t", "binding_rules": [{"einsums": "sum_of_products", "unit": "array2d"},
                                                      {"einsums": "rest", "unit": "array1d"}], "tile": 64})
    sizes = {"M": 4096, "P": 4096, "E": 64, "F": 64}
    res = run(build_schedule(c, spec, a, sizes), a)
    ctx = context(c, spec, a, sizes)
    cert = bounds(c, a, ctx.binding, ctx.global_sizes(), 1, point="p")
    check_result(cert, a, res.cycles, res.dram_bytes, res.joules, res.busy_cycles, res.busy_by_einsum)
    busy = copy.deepcopy(res.busy_by_einsum)
    busy["array2d"]["QK"] *= 63 / 64
    with pytest.raises(InvariantViolation, match="Einsum QK"):
        check_result(cert, a, res.cycles, res.dram_bytes, res.joules, res.busy_cycles, busy)


def test_gpu_result_faster_than_its_peak_is_refused():
    """attention_1pass at 4K x 12 heads: 4 * 4096^2 * 64 * 12 = 5.2e10 multiply-adds at most ~2e15
    FLOP/s (H200 fp8) take >= 2.6e-5 s; a result claiming 1e-9 s is refused."""
    c = ec.load_library("attention_1pass")
    r = simulate(c, "h200", {"M": 4096, "E": 64, "F": 64}, heads=12)
    assert r.latency_s >= 4 * 4096 ** 2 * 64 * 12 / 4e15
    r.latency_s = 1e-9
    with pytest.raises(InvariantViolation, match="flops / peak|HBM bytes"):
        check_gpu(r, c, "h200")


def test_simulate_on_the_gpu_prints_without_json(capsys):
    """The h200 traceback of issue 19: the GPU target has no per-unit busy time."""
    assert main(["simulate", "attention_1pass", "--arch", "h200", "--size", "M=4K", "E=64", "F=64",
                 "--heads", "12"]) == 0
    out = capsys.readouterr().out
    assert "latency" in out and "DRAM" in out and "busy" not in out


def test_auto_mapper_refusal_names_the_operator_and_the_einsum():
    """fusemax-cloud without exp on either array: attention_1pass's PRM (exp) cannot be placed."""
    data = load_yaml_file(CONFIG_DIR / "fusemax-cloud.yaml", "architecture file")
    for u in data["units"].values():
        u["operators"].pop("exp")
    arch = parse_architecture(data, "no-exp.yaml")
    with pytest.raises(MappingError, match=r"Einsum PRM .*array2d lacks exp.*array1d lacks exp"):
        simulate(ec.load_library("attention_1pass"), arch, {"M": 1024, "E": 64, "F": 64})


# -- steady mode: extrapolation where time is not affine -------------------------------------
def test_fusion_none_attention_sinks_is_at_least_its_dram_traffic():
    """attention_sinks with fusion none on flat-cloud: stages [QK] [GM SN SD] [SNV] [AV]; the M x P
    scores QK are stored and loaded once, SN stored and loaded once: >= 4 M P two-byte words per head
    through DRAM. (Before: -1.09 s at 64K, 51.7 ms at 16K under a 75.2 ms DRAM bound.)"""
    n, heads = 16384, 12
    c = ec.load_library("attention_sinks")
    r = simulate(c, "flat-cloud", {"M": n, "E": 64, "F": 64, "S": 64, "W": 64}, mapping=parse_spec(NONE_SPEC),
                 heads=heads)
    assert r.dram_bytes >= 4 * n * n * 2 * heads
    assert r.cycles >= 4 * n * n * 2 * heads / BYTES_PER_CYCLE


@pytest.mark.parametrize("name, arch, n, spec", [
    ("attention_sinks", "flat-cloud", 2048, NONE_SPEC),
    ("attention_1pass_causal", "fusemax-cloud", 2048, "fusemax-causal"),
])
def test_steady_equals_exact_within_one_percent(name, arch, n, spec):
    c = ec.load_library(name)
    sizes = {k: v for k, v in {"M": n, "E": 64, "F": 64, "S": 64, "W": 64}.items() if k in c.size_names + c.params}
    mapping = parse_spec(spec) if isinstance(spec, dict) else spec
    steady = simulate(c, arch, sizes, mapping=mapping, heads=2)
    exact = simulate(c, arch, sizes, mapping=mapping, heads=2, mode="exact")
    assert steady.cycles == pytest.approx(exact.cycles, rel=0.01)


def test_steady_mode_sees_a_bottleneck_that_changes_with_the_tile_count():
    """linear_attention_causal at 16K on fusemax-cloud, 256-key tiles: per head the block loads
    Q and stores AV (2 x 16384 x 64 x 2 B = 4 MiB) and streams K, V (2 x 64 x 256 x 2 B per tile,
    64 tiles: 4 MiB): 8 MiB / 456.9 B per cycle = 18359 cycles per head at least. Sampling 8 and 16 tiles saw the after-pass compute hide the loads and extrapolated
    32% low (154299 cycles for 12 heads, under the 220312-cycle DRAM bound)."""
    c = ec.load_library("linear_attention_causal")
    spec = parse_spec({"name": "t", "tile": 256, "query_block": 256, "register_file": ["FK"],
                       "binding": {"FQ": "array2d", "FK": "array2d", "S": "array2d", "Z": "array2d",
                                   "NUM": "array2d", "DEN": "array1d", "AV": "array1d"}})
    sizes = {"M": 16384, "E": 64, "F": 64}
    steady = simulate(c, "fusemax-cloud", sizes, mapping=spec, heads=12)
    exact = simulate(c, "fusemax-cloud", sizes, mapping=spec, heads=12, mode="exact")
    per_head = (2 * 16384 * 64 * 2 + 64 * 2 * 64 * 256 * 2) / BYTES_PER_CYCLE
    assert steady.cycles >= 12 * per_head
    assert steady.cycles == pytest.approx(exact.cycles, rel=0.01)


def test_point_label_names_sizes_heads_and_mapping():
    assert point_label("c", "a", {"M": 4096}, "auto", 1, 32, kv_heads=8) == \
        "c on a, M=4096, batch 1 heads 32 kv_heads 8, mapping auto, mode steady"


# -- defects the differential campaign found (tests/test_fuzz_simulate.py) -----------------------
def test_partial_tiles_load_whole_tiles():
    """attention_sliding_window at M = P = 64, W = 16, one 64-key tile and one 64-row group: the
    only (group, tile) pair is partial (22% of its points visible), but Q, K, V are loaded and AV
    stored whole: at least 4 x 16 x 64 two-byte words = 8192 B (the load was scaled by the visible
    share: 1808 B)."""
    r = simulate(ec.load_library("attention_sliding_window"), "fusemax-cloud", {"M": 64, "E": 16, "F": 16, "W": 16})
    assert r.dram_bytes >= 4 * 16 * 64 * 2


def test_or_and_not_masks_count_per_tile_as_brute_force():
    """`m < S or p - W < m` and `not (m > p)` per (group, tile) pair, against numpy brute force."""
    import numpy as np
    from mappings.masks import mask_pair_counts
    c = ec.parse("cascade t\nrank E, M, P\nparam S, W\ninput Q[e,p], K[e,m]\noutput QK\n"
                 "QK[m,p] = Q[e,p] * K[e,m] where (m < S or p - W < m) and not (m > p)\n")
    P = N = 48
    S, W, G, T = 5, 9, 8, 16
    got = mask_pair_counts(c, c.einsum("QK").where, ("m",), "p", {"S": S, "W": W}, P, N, G, T, "t")
    p, m = np.meshgrid(np.arange(P), np.arange(N), indexing="ij")
    visible = ((m < S) | (p - W < m)) & ~(m > p)
    want = visible.reshape(P // G, G, N // T, T).sum(axis=(1, 3))
    assert (got == want).all()


def test_fused_attention_sinks_simulates_and_matches_the_unfused_cascade():
    """`fuse attention_sinks` (an `or` mask, QK indexed by the whole split rank m): both forms do the
    same visible work (S + W keys per query): latencies within 5% of each other, certificates hold."""
    from einsum_cascade.fuse import fuse
    c = ec.load_library("attention_sinks")
    sizes = {"M": 2048, "E": 64, "F": 64, "S": 64, "W": 64}
    plain = simulate(c, "fusemax-cloud", sizes)
    fused = simulate(fuse(c, "M").cascade, "fusemax-cloud", sizes)
    assert fused.latency_s == pytest.approx(plain.latency_s, rel=0.05)


@pytest.mark.parametrize("m0", [16, 64])
def test_a_split_ranks_given_block_size_is_kept(m0):
    """attention_1pass with FuseMax's mapping (256-key tiles) at M = P = 4096, 12 heads, M0 given: the
    rescaling per block and query row on the 256-PE array1d, RM 1 + PRM 7 (exp) + SPD 1 + SPNV 64 +
    RD 1 + RNV 64 = 138 operations, M/M0 blocks: 138 x (4096/M0) x 4096 / 256 cycles a head bound the
    run (1D-bound for M0 <= 64). Before, the mapper replaced M0 by its tile: every M0 gave 426k cycles."""
    c = ec.load_library("attention_1pass")
    r = simulate(c, "fusemax-cloud", {"M": 4096, "E": 64, "F": 64, "M0": m0}, mapping="fusemax", heads=12)
    bound = 12 * 138 * (4096 / m0) * 4096 / 256
    assert bound <= r.cycles <= 1.02 * bound
    assert r.sizes["M0"] == m0


def test_a_cascades_default_block_size_is_kept():
    """A cascade's `size M0 = 64` default (Cascade.defaults) acts as --size M0=64."""
    c = ec.load_library("attention_1pass")
    c.defaults = {"M0": 64}
    sizes = {"M": 4096, "E": 64, "F": 64}
    by_default = simulate(c, "fusemax-cloud", sizes, mapping="fusemax", heads=12)
    given = simulate(ec.load_library("attention_1pass"), "fusemax-cloud", {**sizes, "M0": 64}, mapping="fusemax",
                     heads=12)
    assert by_default.cycles == given.cycles
    assert by_default.sizes_defaulted["M0"] == "the cascade's default"


def test_fusion_none_stores_an_output_written_through_a_view():
    """RS[f] = R[f,M] (the last state of a recurrence over the keys) is an output: with fusion none
    it is stored once per head, F = 16 two-byte words, besides AV (F x P words): >= 16*2 + 16*64*2 B
    of stores, and Q, K, V loaded (3 x 16 x 64 x 2 B). Before, a view's output was never stored."""
    c = ec.parse("cascade rs\nrank E, F, M, P\ninput Q[e,p], K[e,m], V[f,m]\noutput AV, RS\n"
                 "QK[m,p] = Q[e,p] * K[e,m]\nAV[f,p] = QK[m,p] * V[f,m]\n"
                 "R[f,0] = 0\nR[f,m+1] = R[f,m] + V[f,m]\nRS[f] = R[f,M]\n")
    r = simulate(c, "fusemax-cloud", {"M": 64, "P": 64, "E": 16, "F": 16}, mapping=parse_spec(NONE_SPEC))
    assert r.dram_bytes >= 16 * 2 + 16 * 64 * 2 + 3 * 16 * 64 * 2


# -- query heads that share K and V (MQA, GQA) ---------------------------------------------------
def test_gqa_decode_moves_a_quarter_of_the_kv_bytes():
    """Decode (P = 1) at M = 4096, E = F = 128, 32 query heads: K and V are 2 x 128 x 4096 two-byte
    words = 2 MiB per KV head; Q and AV 2 x 128 x 2 B per query head. 32 KV heads: 64 MiB + 16 KiB;
    8 KV heads (GQA): 16 MiB + 16 KiB, a quarter of the K/V bytes; DRAM-bound, so the latency too."""
    c = ec.load_library("attention_1pass")
    sizes = {"M": 4096, "P": 1, "E": 128, "F": 128}
    mha = simulate(c, "fusemax-cloud", sizes, heads=32)
    gqa = simulate(c, "fusemax-cloud", sizes, heads=32, kv_heads=8)
    qo = 32 * 2 * 128 * 2
    assert mha.dram_bytes == 32 * 2 * 128 * 4096 * 2 + qo
    assert gqa.dram_bytes == 8 * 2 * 128 * 4096 * 2 + qo
    assert gqa.latency_s == pytest.approx(mha.latency_s / 4, rel=0.05)
    assert gqa.kv_heads == 8


def test_gqa_prefill_is_no_slower_than_mha():
    """Prefill at 4K, 12 query heads: the same work per query head, K/V loaded once per KV head
    (12 -> 4 -> 1): latency never above MHA's, DRAM bytes down by the K/V bytes saved at least
    (K, V: 2 x 64 x 4096 x 2 B = 1 MiB per KV head, read at least once)."""
    c = ec.load_library("attention_1pass")
    sizes = {"M": 4096, "E": 64, "F": 64}
    runs = {kv: simulate(c, "fusemax-cloud", sizes, heads=12, kv_heads=kv) for kv in (12, 4, 1)}
    assert runs[4].latency_s <= runs[12].latency_s and runs[1].latency_s <= runs[4].latency_s
    assert runs[4].dram_bytes <= runs[12].dram_bytes - 8 * 2 * 64 * 4096 * 2 * (1 - 1e-9)


def test_kv_heads_must_divide_heads():
    with pytest.raises(MappingError, match="--kv-heads"):
        simulate(ec.load_library("attention_1pass"), "fusemax-cloud", {"M": 1024, "E": 64, "F": 64}, heads=12,
                 kv_heads=5)


def test_mapper_probes_a_split_rank_shorter_than_the_array():
    """attention_1pass at M = 64 on fusemax-cloud (256-row array): the mapper's probe block size was
    256, so M1 = 64 // 256 = 0 and the point crashed; it maps, with the certificate holding."""
    r = simulate(ec.load_library("attention_1pass"), "fusemax-cloud", {"M": 64, "E": 16, "F": 16})
    assert r.latency_s > 0


# -- session 4 regressions (issue 19) -----------------------------------------------------------
def test_steady_latency_is_never_below_a_units_busy_cycles():
    """attention_1pass at M = P = 16K, E = F = 64, 64 x 12 pairs, FuseMax's 256-key tiles with the
    whole 16K query rows a block: the 2D array runs per tile QK and SLNV, 16384 x 256 x 64 MACs each
    on 256 x 256 PEs = 4096 cycles each, LM (max) and SLD (add) 16384 x 256 / 65536 = 64 each, SLN
    (exp, 7 cycles) 448, RM and RD 16384 / 65536 = 0.25 each: 8768.5 cycles a tile x 64 tiles x 768
    pairs = 430,989,312 cycles at least. Steady mode extrapolated 430,982,211 cycles against a busy sum of 430,989,312 (a model
    1.6e-5 low): the run is never shorter than its busiest unit, by construction now."""
    one_d = ("PRM", "SPD", "SPNV", "RNV", "AV")
    spec = parse_spec({"name": "t", "fusion": "pass", "tile": 256, "query_group": "whole", "stationarity": "weight",
                       "binding": {e: "array1d" if e in one_d else "array2d" for e in
                                   ("QK", "LM", "RM", "SLN", "SLD", "SLNV", "RD", *one_d)},
                       "register_file": ["QK", "LM", "SLN", "SLD"]})
    r = simulate(ec.load_library("attention_1pass"), "fusemax-cloud", {"M": 16384, "E": 64, "F": 64},
                 mapping=spec, batch=64, heads=12)
    hand = (2 * 4096 + 2 * 64 + 448 + 0.25 + 0.25) * 64 * 768
    assert r.result.busy_cycles["array2d"] == hand
    assert r.cycles >= hand


def test_partial_tiles_are_charged_the_cascades_priced_work_with_data_masks():
    """minference_vertical_slash_dynamic at 4K: SN's counts mix the exp and subtract of the causal
    points with the compares of its data masks, which a unit prices differently (exp 7 cycles, the
    subtract folded into it, a compare 1). Scaling a partial tile by the share of raw operation counts
    charged SN 786,592 cycles where the cascade's counts cost 786,672; the share is now taken in priced
    cycles: the certificate (executed = counts) holds and SN's busy cycles equal the certificate's."""
    r = simulate(ec.load_library("minference_vertical_slash_dynamic"), "fusemax-cloud",
                 {"M": 4096, "E": 64, "F": 64}, heads=12, batch=64)  # certified: raises on a violation
    causal = 4096 * 4097 // 2  # SN's exps at least, 7 cycles each on one of the units' PEs
    sn = sum(per.get("SN", 0.0) for per in r.result.busy_by_einsum.values())
    assert sn >= 768 * causal * 7 / max(u.pes for u in load_architecture("fusemax-cloud").units.values())


BLOCK_MASKS = {  # mask text -> the same mask on numpy arrays (M0 = 8, NB = 3)
    "p < m1*M0 + M0 and m1*M0 + m0 <= p": lambda m1, m0, p: (p < m1 * 8 + 8) & (m1 * 8 + m0 <= p),
    "m1*M0 <= p and p < (m1 + NB)*M0": lambda m1, m0, p: (m1 * 8 <= p) & (p < (m1 + 3) * 8),
    "m1*M0 + M0 > p + 3 and m1 >= 1": lambda m1, m0, p: (m1 * 8 + 8 > p + 3) & (m1 >= 1),
}


@pytest.mark.parametrize("mask", sorted(BLOCK_MASKS))
def test_masks_on_a_block_index_count_per_tile_as_brute_force(mask):
    """Masks on the block index m1 of a split key rank (chunked and block-sparse attention), per
    (query group, key tile) pair at M = P = 96, M0 = 8, groups of 12 queries, tiles of 16 keys,
    against numpy brute force over (m1, m0, p)."""
    import numpy as np
    from mappings.masks import mask_pair_counts
    c = ec.parse("cascade t\nrank E, P\nrank M = M1 * M0\nparam NB\ninput Q[e,p], K[e,m]\noutput QK\n"
                 "BK[e,m1,m0] = K[e, m1*M0 + m0]\n"
                 f"QK[m1,m0,p] = Q[e,p] * BK[e,m1,m0] where {mask}\n")
    P = N = 96
    M0, G, T = 8, 12, 16
    got = mask_pair_counts(c, c.einsum("QK").where, ("m1", "m0"), "p", {"M0": M0, "M1": N // M0, "NB": 3},
                           P, N, G, T, "t")
    p, k = np.meshgrid(np.arange(P), np.arange(N), indexing="ij")
    visible = BLOCK_MASKS[mask](k // M0, k % M0, p)
    want = visible.reshape(P // G, G, N // T, T).sum(axis=(1, 3))
    assert (got == want).all()


# -- heads inside a cascade: masks on a head variable, K/V shared by query heads -----------------
DUO = """cascade duo_attention
rank E, F, H, M, P
param R, S, W
input Q[e,h,p], K[e,h,m], V[f,h,m]
output AV
QK[m,h,p]  = Q[e,h,p] * K[e,h,m] where MASK
GM[h,p]    = max(m: QK[m,h,p]) where MASK
SN[m,h,p]  = exp(QK[m,h,p] - GM[h,p]) where MASK
SD[h,p]    = sum(m: SN[m,h,p]) where MASK
SNV[f,h,p] = SN[m,h,p] * V[f,h,m] where MASK
AV[f,h,p]  = SNV[f,h,p] / SD[h,p]
"""
DUO_MASK = "m <= p and (h < R or m < S or p - W < m)"  # DuoAttention: retrieval heads h < R, streaming others


def test_a_mask_on_a_head_variable_counts_per_tile_as_brute_force():
    """DuoAttention's mask (Xiao et al., 2025: full causal on heads h < R, S sinks and a W-key window
    on the others) per (query group, key tile) pair, summed over the H heads a block holds, against
    numpy brute force over (h, m, p): H = 5, R = 2, S = 3, W = 7, P = M = 48, groups 8, tiles 16."""
    import numpy as np
    from mappings.masks import held_points, mask_pair_counts
    c = ec.parse(DUO.replace("MASK", DUO_MASK))
    H, R, S, W, P, G, T = 5, 2, 3, 7, 48, 8, 16
    sizes = {"H": H, "R": R, "S": S, "W": W, "E": 4, "F": 4, "M": P, "P": P}
    where = c.einsum("QK").where
    got = mask_pair_counts(c, where, ("m",), "p", sizes, P, P, G, T, "t")
    h, p, m = np.meshgrid(np.arange(H), np.arange(P), np.arange(P), indexing="ij")
    visible = (m <= p) & ((h < R) | (m < S) | (p - W < m))
    want = visible.sum(axis=0).reshape(P // G, G, P // T, T).sum(axis=(1, 3))
    assert (got == want).all()
    assert held_points(c, where, ("m",), "p", None, sizes) == H


@pytest.mark.parametrize("retrieval", ["all", "none"])
def test_duo_attention_maps_and_its_limits_are_causal_and_streaming_attention(retrieval):
    """DuoAttention at M = P = 4096, H = 8 heads in the cascade, a fused mapping (256-key tiles,
    256-row groups: 16 x 16 pairs): with R = H every head is a retrieval head, the mask is `m <= p`
    and the run equals the causal cascade's (120 full, 16 partial, 120 skipped pairs); with R = 0 every
    head streams (S = 4 sinks, W = 256): each group sees tile 0, its own and the one before: 1 + 2 +
    14 x 3 = 45 pairs, the rest skipped, and it runs faster than the causal form."""
    spec = parse_spec({"name": "t", "fusion": "pass", "tile": 256, "query_group": 256, "spill": {"QK": 1.0},
                       "binding_rules": [{"einsums": "sum_of_products", "unit": "array2d"},
                                         {"einsums": "rest", "unit": "array1d"}]})
    sizes = {"M": 4096, "E": 64, "F": 64, "H": 8, "S": 4, "W": 256, "R": 8 if retrieval == "all" else 0}
    duo = simulate(ec.parse(DUO.replace("MASK", DUO_MASK)), "fusemax-cloud", sizes, mapping=spec)
    causal = simulate(ec.parse(DUO.replace("MASK", "m <= p")), "fusemax-cloud", sizes, mapping=spec)
    if retrieval == "all":
        assert "120 full, 16 partial, 120 skipped" in " ".join(duo.notes)
        assert duo.cycles == causal.cycles and duo.dram_bytes == causal.dram_bytes
    else:
        assert "0 full, 45 partial, 211 skipped" in " ".join(duo.notes)
        assert duo.cycles < causal.cycles


def test_gqa_decode_with_a_head_rank_moves_a_quarter_of_the_kv_bytes():
    """gqa_decode (K[e,g,m], V[f,g,m] shared by the H query heads of KV head g) at M = 4096, P = 1,
    E = F = 128: 32 query heads as H = 4 x G = 8 move K and V once per KV head, 2 x 128 x 8 x 4096 x 2 B
    = 16 MiB, plus Q and AV (32 x 128 x 2 B each); as H = 1 x G = 32 (multi-head), 64 MiB + the same."""
    c = ec.load_library("gqa_decode")
    qo = 2 * 32 * 128 * 2
    gqa = simulate(c, "fusemax-cloud", {"M": 4096, "P": 1, "E": 128, "F": 128, "H": 4, "G": 8})
    mha = simulate(c, "fusemax-cloud", {"M": 4096, "P": 1, "E": 128, "F": 128, "H": 1, "G": 32})
    assert gqa.dram_bytes == 2 * 128 * 8 * 4096 * 2 + qo
    assert mha.dram_bytes == 2 * 128 * 32 * 4096 * 2 + qo


def test_gqa_prefill_with_a_head_rank_is_no_slower_than_mha():
    """gqa_causal_prefill at 4K, E = F = 64, 12 query heads: 3 KV heads of 4 (H = 4, G = 3) against 12
    KV heads (H = 1, G = 12): the same work, K and V (2 x 64 x 4096 x 2 B = 1 MiB per KV head) read
    9 times fewer: latency no higher, DRAM bytes lower by at least the 9 MiB of K/V not read."""
    c = ec.load_library("gqa_causal_prefill")
    gqa = simulate(c, "fusemax-cloud", {"M": 4096, "E": 64, "F": 64, "H": 4, "G": 3})
    mha = simulate(c, "fusemax-cloud", {"M": 4096, "E": 64, "F": 64, "H": 1, "G": 12})
    assert gqa.latency_s <= mha.latency_s
    assert gqa.dram_bytes <= mha.dram_bytes - 9 * 2 * 64 * 4096 * 2


# -- split query ranks (P = P1 x P0) ------------------------------------------------------------
SPLIT = """cascade grid
rank E
rank M = MX * MY
rank P = PX * PY
param WR
input Q[e,p], K[e,m]
output QK
BQ[e,px,py] = Q[e, px*PY + py]
BK[e,mx,my] = K[e, mx*MY + my]
QK[mx,my,px,py] = BQ[e,px,py] * BK[e,mx,my] where MASK
"""
GRID_MASK = "mx - px <= WR and px - mx <= WR and my - py <= WR and py - my <= WR"


def test_masks_over_split_query_and_key_ranks_count_per_tile_as_brute_force():
    """A 2-D neighbourhood (radius 2) on a 12 x 8 token grid, queries grouped by 3 grid rows (24
    tokens), keys tiled by 2 grid rows (16), against numpy brute force over (mx, my, px, py)."""
    import numpy as np
    from mappings.masks import mask_pair_counts
    c = ec.parse(SPLIT.replace("MASK", GRID_MASK))
    X, Y, WR = 12, 8, 2
    sizes = {"MX": X, "MY": Y, "PX": X, "PY": Y, "M": X * Y, "P": X * Y, "WR": WR, "E": 4}
    got = mask_pair_counts(c, c.einsum("QK").where, ("mx", "my"), ("px", "py"), sizes, X * Y, X * Y, 3 * Y, 2 * Y, "t")
    px, py, mx, my = np.meshgrid(*[np.arange(n) for n in (X, Y, X, Y)], indexing="ij")
    visible = (abs(mx - px) <= WR) & (abs(my - py) <= WR)
    want = visible.reshape(X // 3, 3 * Y, X // 2, 2 * Y).sum(axis=(1, 3))
    assert (got == want).all()


def test_a_split_query_rank_maps_in_whole_inner_blocks():
    """neighborhood_attention_2d_tokens at 4K (a 64 x 64 grid, radius 3) on fusemax-cloud, groups of
    1024 rows (16 grid rows) and tiles of 64 keys (one grid row): group g sees key rows 16g - 3 ..
    16g + 18 clipped to the grid: 19 + 22 + 22 + 19 = 82 partial pairs of the 4 x 64, the rest
    skipped. A group that is not whole grid rows is refused with one line."""
    spec = {"name": "t", "fusion": "pass", "tile": 64, "query_group": 1024, "spill": {"QK": 1.0},
            "binding_rules": [{"einsums": "sum_of_products", "unit": "array2d"}, {"einsums": "rest", "unit": "array1d"}]}
    sizes = {"M": 4096, "P": 4096, "MX": 64, "MY": 64, "PX": 64, "PY": 64, "WR": 3, "E": 64, "F": 64}
    c = ec.load_library("neighborhood_attention_2d_tokens")
    r = simulate(c, "fusemax-cloud", sizes, mapping=parse_spec(spec))
    assert "0 full, 82 partial, 174 skipped" in " ".join(r.notes)
    with pytest.raises(MappingError, match="whole blocks of PY = 64"):
        simulate(c, "fusemax-cloud", sizes, mapping=parse_spec({**spec, "query_group": 32}))
