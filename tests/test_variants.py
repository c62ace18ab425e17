"""Attention variants of issue 19 (item 4) and the kernel families issue 21 names, in the library.

Each variant is checked three ways, each against something that does not come from the code under
test: its output against a numpy reference (tests/references.py, fp64, written from the paper's
formula); its passes per Einsum against a count derived by hand from the rules of
docs/cascade-language.md (an Einsum iterating over the rank runs in max(1, its streamed inputs'
pass, 1 + its global inputs' completion pass); one that does not iterate runs in no pass); and its
simulated latency on fusemax-cloud against a lower bound derived by hand below.

The hand bound (seconds) = max(compute, DRAM):
- compute: the operations of every Einsum at the given sizes, counted by hand, times the cycles of
  each operator on FuseMax's PEs (reference-fusemax.md section 2, and the compositions stated in
  archsim/configs/fusemax-cloud.yaml: MAC, add, max, min, relu, abs, square, compare 1 cycle;
  exp 7 with the subtraction of its argument folded in, as the paper counts; rsqrt 8; divide 1 and
  gelu 13, both only on the 1D array, which has the divider). An Einsum is bound whole to one array,
  so an Einsum with a divide or a gelu is work for the 256 PEs of the 1D array; the rest may run on
  either array: compute = max((any + only-1D) / (65,536 + 256 PEs), only-1D / 256 PEs) / 940 MHz;
- DRAM: compulsory bytes (every input read once, every output written once, 2-byte words) over
  400 * 2^30 B/s.
The simulated latency must lie in [1.0, 1.6] x that bound, or the test says why it does not.
"""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec
from mappings.simulation import simulate

try:  # tests/ as a package, or tests/ itself on sys.path
    from tests import references as ref
except ImportError:
    import references as ref

E, F = 6, 5
REL = 1e-9
PES_2D, PES_1D, CLOCK_HZ = 256 * 256, 256, 940e6  # FuseMax cloud (reference-fusemax.md section 2)
DRAM_BYTES_PER_S, WORD_BYTES = 400 * 2**30, 2
N = 4096  # simulated sequence length (keys and queries)
D64 = 64  # head dimensions E = F of the simulated points
CAUSAL = N * (N + 1) // 2  # visible (m, p) pairs of a causal mask at N
FULL = N * N
SOFTMAX_2PASS = 1 + 7 + 1  # GM max, SN exp (shift folded), SD add per visible point (besides QK, SNV)


def rng_qkv(m: int, p: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"Q": 1.5 * rng.standard_normal((E, p)), "K": 1.5 * rng.standard_normal((E, m)),
            "V": rng.standard_normal((F, m))}


def run(stem: str, inputs: dict, sizes: dict | None = None, output: str = "AV") -> np.ndarray:
    return ec.load_library(stem).evaluate(inputs, sizes or {})[output]


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float = REL) -> None:
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    error = np.max(np.abs(actual - expected))
    assert error <= rel * np.max(np.abs(expected)), f"max abs error {error:.3e}"


def qkv(inputs: dict) -> tuple:
    return inputs["Q"], inputs["K"], inputs["V"]


# -- outputs against numpy ----------------------------------------------------------------------

def test_squared_relu_attention():
    inputs = rng_qkv(24, 16, seed=101)
    assert_close(run("squared_relu_attention", inputs), ref.squared_relu_attention(*qkv(inputs)))


@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_alibi_attention(slope):
    inputs = rng_qkv(20, 20, seed=102)
    assert_close(run("alibi_attention", inputs, {"SL": slope}), ref.alibi_attention(*qkv(inputs), slope))
    if slope == 0.0:  # no bias: plain causal softmax attention
        expected = ref.softmax_attention(*qkv(inputs), mask=ref.causal_mask(20, 20))
        assert_close(run("alibi_attention", inputs, {"SL": slope}), expected)


def test_softpick_attention():
    inputs = rng_qkv(20, 20, seed=103)
    assert_close(run("softpick_attention_causal", inputs), ref.softpick_attention(*qkv(inputs)), rel=1e-8)


def test_pattention():
    inputs = rng_qkv(24, 16, seed=104)
    assert_close(run("pattention", inputs), ref.pattention(*qkv(inputs)))


def test_hedgehog_attention():
    inputs = rng_qkv(24, 16, seed=105)
    w = np.random.default_rng(106).standard_normal((7, E))
    assert_close(run("hedgehog_attention", {**inputs, "W": w}), ref.hedgehog_attention(*qkv(inputs), w))


def test_mqa_attention_is_gqa_with_one_group():
    rng = np.random.default_rng(107)
    q, k, v = rng.standard_normal((E, 3, 16)), rng.standard_normal((E, 24)), rng.standard_normal((F, 24))
    expected = ref.grouped_query_attention(q[:, :, None, :], k[:, None, :], v[:, None, :], causal=False)[:, :, 0, :]
    assert_close(run("mqa_attention", {"Q": q, "K": k, "V": v}), expected)


@pytest.mark.parametrize("stem, causal, p", [("gqa_decode", False, 1), ("gqa_decode", False, 3),
                                             ("gqa_causal_prefill", True, 20)])
def test_grouped_query_attention(stem, causal, p):
    rng = np.random.default_rng(108 + p)
    m = 20
    q, k, v = rng.standard_normal((E, 2, 3, p)), rng.standard_normal((E, 3, m)), rng.standard_normal((F, 3, m))
    assert_close(run(stem, {"Q": q, "K": k, "V": v}), ref.grouped_query_attention(q, k, v, causal))


def test_selective_attention():
    inputs = rng_qkv(16, 16, seed=109)
    inputs["Q"] *= 0.5  # moderate scores: the accumulated masking stays within a few units
    assert_close(run("selective_attention", inputs), ref.selective_attention(*qkv(inputs)))


@pytest.mark.parametrize("block", [4, 8])
def test_landmark_attention(block):
    inputs = rng_qkv(24, 16, seed=110)
    landmarks = np.random.default_rng(111).standard_normal((E, 24 // block))
    expected = ref.landmark_attention(*qkv(inputs), landmarks, block)
    assert_close(run("landmark_attention", {**inputs, "L": landmarks}, {"M0": block}), expected)


@pytest.mark.parametrize("chunk", [4, 5])
def test_chunked_attention(chunk):
    n = 20
    inputs = rng_qkv(n, n, seed=112)
    expected = ref.softmax_attention(*qkv(inputs), mask=ref.chunk_mask(n, chunk))
    assert_close(run("chunked_attention", inputs, {"M0": chunk}), expected)


@pytest.mark.parametrize("radius", [1, 2])
def test_neighborhood_attention_2d(radius):
    nx, ny = 4, 5
    inputs = rng_qkv(nx * ny, nx * ny, seed=113)
    sizes = {"MX": nx, "MY": ny, "PX": nx, "PY": ny, "WR": radius}
    expected = ref.softmax_attention(*qkv(inputs), mask=ref.neighborhood_mask(nx, ny, radius))
    assert_close(run("neighborhood_attention_2d_tokens", inputs, sizes), expected)


def test_minference_vertical_slash():
    n = 20
    rng = np.random.default_rng(114)
    inputs = rng_qkv(n, n, seed=115)
    vertical, slash = rng.random(n) < 0.3, rng.random(n) < 0.3
    slash[0] = True  # every query sees itself, as MInference always keeps the main diagonal
    expected = ref.softmax_attention(*qkv(inputs), mask=ref.vertical_slash_mask(vertical, slash))
    arrays = {**inputs, "VS": vertical.astype(float), "SL": slash.astype(float)}
    assert_close(run("minference_vertical_slash_dynamic", arrays), expected)


@pytest.mark.parametrize("blocks", [1, 2, 5])
def test_block_sparse_attention(blocks):
    n, block = 20, 4
    inputs = rng_qkv(n, n, seed=116)
    expected = ref.softmax_attention(*qkv(inputs), mask=ref.block_local_mask(n, block, blocks))
    assert_close(run("block_sparse_attention", inputs, {"M0": block, "NB": blocks}), expected)
    if blocks == 5:  # every block kept: block-level causal attention
        mask = (np.arange(n)[:, None] // block) <= (np.arange(n)[None, :] // block)
        assert_close(run("block_sparse_attention", inputs, {"M0": block, "NB": blocks}),
                     ref.softmax_attention(*qkv(inputs), mask=mask))


def test_gated_delta_rule():
    n = 16
    rng = np.random.default_rng(117)
    inputs = rng_qkv(n, n, seed=118)
    inputs["K"] /= np.linalg.norm(inputs["K"], axis=0, keepdims=True)  # the paper's L2-normalised keys
    a, b = rng.uniform(0.8, 1.0, n), rng.uniform(0.1, 0.9, n)
    expected = ref.gated_delta_rule(*qkv(inputs), a, b)
    assert_close(run("gated_delta_rule", {**inputs, "A": a, "B": b}), expected)
    # beta = 0 leaves the state empty: output 0
    assert np.all(run("gated_delta_rule", {**inputs, "A": a, "B": np.zeros(n)}) == 0.0)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_retention(gamma):
    inputs = rng_qkv(20, 20, seed=119)
    assert_close(run("retention", inputs, {"G": gamma}), ref.retention(*qkv(inputs), gamma))
    # RetNet's recurrent form is gated linear attention with a constant gate (its own cascade)
    recurrent = run("gated_linear_attention", {**inputs, "A": np.full((E, 20), gamma)})
    assert_close(run("retention", inputs, {"G": gamma}), recurrent)


def test_mamba2_ssd():
    n = 16
    rng = np.random.default_rng(120)
    inputs = rng_qkv(n, n, seed=121)
    dt = rng.uniform(0.01, 0.5, n)
    expected = ref.mamba2_ssd(*qkv(inputs), dt, -1.3)
    assert_close(run("mamba2_ssd", {**inputs, "DT": dt}, {"AA": -1.3}), expected)


@pytest.mark.parametrize("p", [1, 2])
def test_mla_decode_equals_unabsorbed_latent_attention(p):
    rng = np.random.default_rng(122 + p)
    e, c, r, f, h, m = 4, 6, 3, 5, 2, 12
    arrays = {"Q": rng.standard_normal((e, h, p)), "QR": rng.standard_normal((r, h, p)),
              "WUK": rng.standard_normal((e, c, h)), "CKV": rng.standard_normal((c, m)),
              "KR": rng.standard_normal((r, m)), "WUV": rng.standard_normal((c, f, h))}
    expected = ref.mla_attention(*(arrays[k] for k in ("Q", "QR", "WUK", "CKV", "KR", "WUV")))
    assert_close(run("mla_decode", arrays), expected)


# -- passes per Einsum, by hand -----------------------------------------------------------------
_SOFTMAX = {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "SNV": 2, "AV": None}
_BLOCKED = {"BK": 1, "BV": 1, **_SOFTMAX}
HAND_PASSES = {
    "squared_relu_attention": {"QK": 1, "IM": None, "A": 1, "AV": 1},
    "alibi_attention": {"QK": 1, "B": 1, **{k: v for k, v in _SOFTMAX.items() if k != "QK"}},
    "softpick_attention_causal": {"QK": 1, "GM": 1, "EM": None, "SN": 2, "SA": 2, "SR": 2, "SNV": 2, "DEN": None,
                           "AV": None},
    "pattention": {"QK": 1, "SS": 1, "RN": None, "A": 2, "W": 2, "AV": 2},
    "hedgehog_attention": {**{n: None for n in ("WQ", "XQ", "NQ", "EQ1", "EQ2", "SQ1", "FQ1", "SQ2", "FQ2",
                                                "N1", "N2", "DN1", "DN2", "AV")},
                           **{n: 1 for n in ("WK", "XK", "NK", "EK1", "EK2", "SK1", "FK1", "SK2", "FK2",
                                             "KV1", "KV2", "KS1", "KS2")}},
    "mqa_attention": _SOFTMAX, "gqa_decode": _SOFTMAX, "gqa_causal_prefill": _SOFTMAX,
    "minference_vertical_slash_dynamic": _SOFTMAX,
    # SF and FC recur over p, not m: each point of m is visited in the one stream
    "selective_attention": {"QK": 1, "SF": 1, "FC": 1, "B": 1, "GM": 1, "SN": 2, "SD": 2, "SNV": 2, "AV": None},
    # within-block softmax closes in the stream (LM, SD over m0); the landmark softmax's max GL
    # over all blocks forces pass 2 for EL and what reads it
    "landmark_attention": {"BK": 1, "BV": 1, "QK": 1, "LM": 1, "SN": 1, "SD": 1, "SNV": 1, "QL": 1, "GL": 1,
                           "EL": 2, "DL": 2, "W": 2, "NUM": 2, "AV": None},
    "chunked_attention": _BLOCKED, "block_sparse_attention": _BLOCKED,
    "neighborhood_attention_2d_tokens": {"BQ": None, **_BLOCKED},
    "gated_delta_rule": {"SK": 1, "U": 1, "S": 1, "AV": None},
    "retention": {"QK": 1, "RW": 1, "AV": 1},
    "mamba2_ssd": {"DA": 1, "H": 1, "AV": None},
    "mla_decode": {"QL": None, "S1": 1, "S2": 1, "QK": 1, "GM": 1, "SN": 2, "SD": 2, "OL": 2, "NUM": None,
                   "AV": None},
}


@pytest.mark.parametrize("stem", sorted(HAND_PASSES))
def test_passes_over_keys_per_einsum_by_hand(stem):
    report = ec.passes(ec.load_library(stem), "M")
    assert {e.name: e.pass_ for e in report.einsums} == HAND_PASSES[stem]
    assert report.passes == max(p for p in HAND_PASSES[stem].values() if p)


# -- simulated latency on fusemax-cloud against the hand bound ------------------------------------

def hand_bound_s(any_cycles: float, only_1d_cycles: float, dram_words: float, instances: int) -> float:
    """max(compute, DRAM) lower bound in seconds for `instances` independent (batch, head) pairs."""
    compute = max((any_cycles + only_1d_cycles) / (PES_2D + PES_1D), only_1d_cycles / PES_1D) / CLOCK_HZ
    dram = dram_words * WORD_BYTES / DRAM_BYTES_PER_S
    return instances * max(compute, dram)


SEQ = {"M": N, "P": N, "E": D64, "F": D64}
QKVO_WORDS = 4 * N * D64  # Q, K, V read and AV written once
BLOCK, KEPT_BLOCKS = 256, 4
BLOCK_SPARSE_POINTS = sum(min(b + 1, KEPT_BLOCKS) for b in range(N // BLOCK)) * BLOCK * BLOCK
GRID, RADIUS = 64, 3
NEIGHBOURS_1D = GRID * (2 * RADIUS + 1) - RADIUS * (RADIUS + 1)  # |mx - px| <= R pairs on one axis
MLA = {"M": N, "P": 1, "E": 128, "C": 512, "R": 64, "F": 128, "H": 16}
GQA_DECODE = {"M": N, "P": 1, "E": 128, "F": 128, "H": 4, "G": 8}

# stem: (sizes, instances, any-array cycles, 1D-only cycles, compulsory DRAM words, per instance)
BOUNDS = {
    # QK E MACs, A relu + square + multiply by the scalar IM, AV F MACs per point; IM's one divide
    "squared_relu_attention": (SEQ, 12, FULL * (D64 + 3 + D64), 1, QKVO_WORDS),
    # QK, B (MAC + add), GM, SN, SD, SNV per visible point; AV's F divides per query on 1D
    "alibi_attention": ({**SEQ, "SL": 0.5}, 12, CAUSAL * (D64 + 2 + SOFTMAX_2PASS + D64), N * D64, QKVO_WORDS),
    # QK, GM max, SN exp + the EM subtraction (8), SA abs + add, SR relu, SNV; EM exp + DEN MAC per query
    "softpick_attention_causal": (SEQ, 12, CAUSAL * (D64 + 1 + 8 + 2 + 1 + D64) + N * (7 + 1), N * D64, QKVO_WORDS),
    # QK, SS square + add, A multiply, AV; RN rsqrt + multiply per query (+ sqrt(M) once); W gelu on 1D
    "pattention": (SEQ, 12, FULL * (D64 + 2 + 1 + D64) + N * (8 + 1) + 9, FULL * 13, QKVO_WORDS),
    # per token and side (D = 64 features): W x D*E MACs, max, min, 2 exp, 2 sums; KV1, KV2, N1, N2
    # D*F MACs per token; KS1, KS2, DN1, DN2 D per token; 1D: the 4 feature normalisations (D divides
    # per token) and AV (2 adds and a divide per (f, p))
    "hedgehog_attention": ({**SEQ, "D": D64}, 12, N * (2 * D64 * (D64 + 2 + 14 + 2) + 4 * D64 * D64 + 4 * D64),
                           N * (4 * D64 + 3 * D64), QKVO_WORDS + D64 * D64),
    # 12 query heads in the cascade, one K and V
    "mqa_attention": ({**SEQ, "H": 12}, 1, 12 * FULL * (D64 + SOFTMAX_2PASS + D64), 12 * N * D64,
                      (12 + 1 + 1 + 12) * N * D64),
    # 3 KV heads of 4 query heads each
    "gqa_causal_prefill": ({**SEQ, "H": 4, "G": 3}, 1, 12 * CAUSAL * (D64 + SOFTMAX_2PASS + D64), 12 * N * D64,
                           (12 + 3 + 3 + 12) * N * D64),
    # batch 16, 8 KV heads of 4 query heads, one query each: bandwidth-bound on the K/V cache
    "gqa_decode": (GQA_DECODE, 16, 32 * N * (128 + SOFTMAX_2PASS + 128), 32 * 128, (128 + 128) * 8 * (N + 4)),
    # QK, B add, softmax, SNV per visible point; on every (m, p): SF's 2 compares, logic, relu,
    # select (5) and FC's add
    "selective_attention": (SEQ, 12, CAUSAL * (D64 + 1 + SOFTMAX_2PASS + D64) + FULL * (5 + 1),
                            N * D64, QKVO_WORDS),
    # within-block softmax over all points; the landmark softmax over M1 = 16 blocks per query;
    # 1D: W's divide per (block, query), AV's F divides per query
    "landmark_attention": ({**SEQ, "M0": BLOCK}, 12, (FULL + 16 * N) * (D64 + SOFTMAX_2PASS + D64),
                           16 * N + N * D64, QKVO_WORDS + D64 * 16),
    # the data masks are counted as upper bounds (every causal point does the work), plus one
    # compare per point (SL) per masked Einsum and one per key (VS) per masked Einsum
    "minference_vertical_slash_dynamic": (SEQ, 12, CAUSAL * (D64 + SOFTMAX_2PASS + D64 + 5) + 5 * N, N * D64,
                                  QKVO_WORDS + 2 * N),
    # chunks of 256: query p sees (p mod 256) + 1 keys
    "chunked_attention": ({**SEQ, "M0": BLOCK}, 12, N * (BLOCK + 1) // 2 * (D64 + SOFTMAX_2PASS + D64),
                          N * D64, QKVO_WORDS),
    # blocks of 256, the 4 most recent key blocks per query block
    "block_sparse_attention": ({**SEQ, "M0": BLOCK, "NB": KEPT_BLOCKS}, 12,
                               BLOCK_SPARSE_POINTS * (D64 + SOFTMAX_2PASS + D64), N * D64, QKVO_WORDS),
    # a 64 x 64 grid, radius 3
    "neighborhood_attention_2d_tokens": ({**SEQ, "MX": GRID, "MY": GRID, "PX": GRID, "PY": GRID, "WR": RADIUS}, 12,
                                  NEIGHBOURS_1D ** 2 * (D64 + SOFTMAX_2PASS + D64), N * D64, QKVO_WORDS),
    # SK E*F MACs, U 2 F (MAC + multiply), S 2 E*F (MAC + multiply), AV E*F MACs per token
    "gated_delta_rule": (SEQ, 12, N * (4 * D64 * D64 + 2 * D64), 0, QKVO_WORDS + 2 * N),
    # QK, RW (MAC + multiply + exp = 9), AV per visible point; log(G) once
    "retention": ({**SEQ, "G": 0.9}, 12, CAUSAL * (D64 + 9 + D64) + 7, 0, QKVO_WORDS),
    # DA multiply + exp per token; H 3 E*F (MAC + 2 multiplies); AV E*F MACs
    "mamba2_ssd": ({**SEQ, "AA": -1.0}, 12, N * (4 * D64 * D64 + 8), 0, QKVO_WORDS + N),
    # batch 16; the latent cache (C + R per key) and the absorbed weights WUK, WUV per instance
    "mla_decode": (MLA, 16, 16 * (128 * 512 + N * (512 + 64 + 1 + SOFTMAX_2PASS + 512) + 512 * 128), 16 * 128,
                   (512 + 64) * N + 2 * 128 * 512 * 16 + (128 + 64 + 128) * 16),
}
# variants whose simulation waits for a scheduler fix on branch `certify` (issue 19 item 3)
KNOWN_DEFECTS: dict[str, str] = {}  # none since session 4 (issue 19): masks on a block index, split query ranks


def _bound_case(stem):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[stem])] if stem in KNOWN_DEFECTS else []
    return pytest.param(stem, marks=marks, id=stem)


@pytest.mark.parametrize("stem", [_bound_case(s) for s in sorted(BOUNDS)])
def test_simulated_latency_within_hand_bound(stem):
    sizes, instances, any_cycles, only_1d, words = BOUNDS[stem]
    bound = hand_bound_s(any_cycles, only_1d, words, instances)
    result = simulate(ec.load_library(stem), "fusemax-cloud", sizes, mapping="auto", heads=instances)
    assert result.dram_bytes >= instances * words * WORD_BYTES * (1 - 1e-9), "DRAM below compulsory"
    ratio = result.latency_s / bound
    assert 1.0 <= ratio <= 1.6, f"{stem}: latency {result.latency_s:.4g} s = {ratio:.3f} x hand bound {bound:.4g} s"


def test_hand_bounds_cover_every_variant():
    assert set(BOUNDS) == set(HAND_PASSES)
    assert set(HAND_PASSES) <= set(ec.library_names())
