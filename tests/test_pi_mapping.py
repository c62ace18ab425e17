"""Private-inference mapping of cascades: bytes, rounds and breakdowns against hand derivations.

Every expectation below is worked out by hand from the mapping rules in mappings/targets/private_inference/protocol.py
with a made-up test profile (round numbers, so each product is easy to check), not from the code.
"""
from __future__ import annotations

import pytest

import einsum_cascade as ec
from mappings.targets.private_inference.profiles import ProfileError, parse_profile
from mappings.targets.private_inference.protocol import map_cascade
from mappings.targets.private_inference.decoder import BLOCKS_DIR, DecoderConfig, model_cost

# op: (bytes per element, rounds per call)
TEST_OPS = {"exp": (10, 2), "max": (3, 1), "recip": (7, 4), "mul": (5, 3), "matmul_secret": (2, 5),
            "matmul_plain": (1.5, 6), "relu": (11, 1), "gelu_tanh": (13, 1), "gelu_erf": (17, 1),
            "rsqrt": (19, 2), "layernorm": (23, 4)}


def profile(ops=TEST_OPS, fixed=None, drop=()):
    doc = {"name": "test", "ops": {k: {"bytes_per_element": b, "rounds": r} for k, (b, r) in ops.items()
                                   if k not in drop}}
    if fixed:
        doc["fixed"] = fixed
    return parse_profile(doc, "<test>")


SOFTMAX = """
cascade tiny_softmax
rank E, M, P
input Q[e,p], K[e,m]
output A, B2
QK[m,p] = Q[e,p] * K[e,m]
GM[p]   = max(m: QK[m,p])
SN[m,p] = exp(QK[m,p] - GM[p])
SD[p]   = sum(m: SN[m,p])
A[m,p]  = SN[m,p] / SD[p]
B2[m,p] = exp(QK[m,p])
"""


def test_softmax_bytes_rounds_by_hand():
    # E=2, M=4, P=3.
    # QK: secret x secret contraction over e: operands Q 6 + K 8, output 12 -> 26 elements x 2 B = 52 B, 5 rounds
    # GM: max tree over 4 per row: 12 - 3 = 9 compares x 3 B = 27 B; ceil(log2 4) = 2 levels x 1 round
    # SN: exp on 12 elements = 120 B, 2 rounds;  SD: free
    # A:  recip of SD (3 elements) = 21 B, 4 rounds; then mul on 12 = 60 B, 3 rounds
    # B2: exp on 12 = 120 B, 2 rounds, off the critical path (QK -> B2 = 7 rounds)
    c = ec.parse(SOFTMAX, filename="<tiny>")
    cost = map_cascade(c, {"E": 2, "M": 4, "P": 3}, profile())
    assert cost.comm_bytes == pytest.approx(52 + 27 + 120 + 81 + 120)
    assert cost.rounds == 5 + 2 + 2 + 0 + 7
    assert cost.by_einsum == pytest.approx({"QK": 52, "GM": 27, "SN": 120, "A": 81, "B2": 120})
    assert cost.by_op == pytest.approx({"matmul_secret": 52, "max": 27, "exp": 240, "recip": 21, "mul": 60})


def test_where_clause_reduces_points_by_hand():
    # Causal: m <= p with M = P = 4 keeps 10 of the 16 points.
    # QK: Q 8 + K 8 + output 10 = 26 elements x 2 B = 52 B; GM: 10 - 4 = 6 compares x 3 B = 18 B
    # SN (inherits m <= p from QK): exp on 10 = 100 B
    text = SOFTMAX.replace("output A, B2", "output SN").replace("QK[m,p] = Q[e,p] * K[e,m]",
                                                               "QK[m,p] = Q[e,p] * K[e,m] where m <= p")
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("SD", "A[", "B2")))
    c = ec.parse(text, filename="<causal>")
    cost = map_cascade(c, {"E": 2, "M": 4, "P": 4}, profile())
    assert cost.by_einsum == pytest.approx({"QK": 52, "GM": 18, "SN": 100})


RECURRENCE = """
cascade tiny_recurrence
rank P
rank M = M1 * M0
input X[m,p]
output Y
RM[0,p]    = -inf
LM[m1,p]   = max(m0: X[m1*M0 + m0, p])
RM[m1+1,p] = max(RM[m1,p], LM[m1,p])
Y[p]       = exp(RM[M1,p])
"""


def test_recurrence_rounds_are_sequential_by_hand():
    # M = 8, M0 = 2 -> M1 = 4, P = 3.
    # LM: 24 - 12 = 12 compares x 3 B = 36 B, 1 level x 1 round
    # RM: binary max on 12 points = 36 B; 1 round per step, 4 steps one after another = 4 rounds
    # Y: exp on 3 = 30 B, 2 rounds.  Critical path 1 + 4 + 2 = 7.
    c = ec.parse(RECURRENCE, filename="<rec>")
    cost = map_cascade(c, {"M": 8, "M0": 2, "P": 3}, profile())
    assert cost.comm_bytes == pytest.approx(36 + 36 + 30)
    assert cost.rounds == 7


def test_plaintext_weight_matmul_and_public_products_by_hand():
    # linear block, D=4, N=3, T=2: X 8 + output 6 = 14 activation elements x 1.5 B = 21 B; bias add free.
    linear = ec.load(BLOCKS_DIR / "linear.cascade")
    cost = map_cascade(linear, {"D": 4, "N": 3, "T": 2}, profile(), plaintext={"W", "B"})
    assert cost.comm_bytes == pytest.approx(21)
    assert cost.rounds == 6
    # The same block with a secret weight is a secret matmul: X 8 + W 12 + out 6 = 26 x 2 B.
    cost = map_cascade(linear, {"D": 4, "N": 3, "T": 2}, profile())
    assert cost.by_op == pytest.approx({"matmul_secret": 52})


def test_layernorm_decomposed_or_primitive_by_hand():
    ln = ec.load(BLOCKS_DIR / "layernorm.cascade")
    sizes = {"D": 4, "T": 3}
    # Primitive (the profile has `layernorm`): 12 output elements x 23 B, 4 rounds.
    cost = map_cascade(ln, sizes, profile(), plaintext={"G", "B"})
    assert (cost.comm_bytes, cost.rounds) == (pytest.approx(12 * 23), 4)
    # Decomposed: XC*XC is a mul on 12 (60 B, 3 rounds), rsqrt on 3 (57 B, 2 rounds), XC*RS a mul
    # on 12 (60 B, 3 rounds); means and divisions by D free. Path: VAR 3 -> RS 2 -> Y 3.
    cost = map_cascade(ln, sizes, profile(drop=("layernorm",)), plaintext={"G", "B"})
    assert cost.comm_bytes == pytest.approx(60 + 57 + 60)
    assert cost.rounds == 8


def test_decoder_counts_by_hand():
    # Only relu costs (1 B): bytes = L x T x FFN width.  Only layernorm (1 B): (2L + 1) x T x d.
    only = lambda op: profile({k: ((1, 1) if k == op else (0, 0)) for k in TEST_OPS})  # noqa: E731
    cfg = DecoderConfig(layers=3, context=5, variant="SM+LN+R", d_model=8, heads=2, ffn=16, vocab=11)
    assert model_cost(cfg, only("relu")).comm_bytes == 3 * 5 * 16
    assert model_cost(cfg, only("layernorm")).comm_bytes == (2 * 3 + 1) * 5 * 8
    # matmul_plain (1 B per activation element): embedding 5*11 + 5*8; per layer QKV 5*8 + 5*24,
    # projection 2*5*8, FFN 5*8 + 5*16 + 5*16 + 5*8; vocabulary 5*8 + 5*11.
    per_layer = 40 + 120 + 80 + 40 + 80 + 80 + 40
    assert model_cost(cfg, only("matmul_plain")).comm_bytes == 95 + 3 * per_layer + 95
    # GELU variant prices gelu (tanh form by default, erf on request) on the same elements as ReLU.
    gelu = DecoderConfig(layers=3, context=5, variant="SM+LN+G", d_model=8, heads=2, ffn=16, vocab=11)
    assert model_cost(gelu, only("gelu_tanh")).comm_bytes == 3 * 5 * 16
    erf = DecoderConfig(layers=3, context=5, variant="SM+LN+G", d_model=8, heads=2, ffn=16, vocab=11,
                        gelu_form="erf")
    assert model_cost(erf, only("gelu_erf")).comm_bytes == 3 * 5 * 16
    # Fixed per-run bytes are added once.
    fixed = profile({k: (0, 0) for k in TEST_OPS}, fixed={"bytes": 1000, "rounds": 2})
    assert model_cost(cfg, fixed).comm_bytes == 1000


def test_missing_operator_names_operator_and_profile():
    c = ec.load_library("softplus_attention")
    with pytest.raises(ProfileError, match=r"operator 'softplus' has no cost in backend profile 'test'"):
        map_cascade(c, {"E": 2, "F": 2, "M": 4, "P": 4}, profile())


def test_simulate_chooses_the_tile_of_a_split_rank_and_names_the_bound():
    # attention_1pass splits M = M1 * M0 with no default for M0: the target prices every size as given,
    # so it takes the decoder's tile (64 keys, at most M) and says so; the result equals M0=64 given
    from mappings import simulate
    from mappings.targets.private_inference.profiles import load_network
    c = ec.load_library("attention_1pass")
    auto = simulate(c, "archsim/configs/pi/crypten.yaml", {"M": 512, "E": 64, "F": 64})
    given = simulate(c, "archsim/configs/pi/crypten.yaml", {"M": 512, "E": 64, "F": 64, "M0": 64})
    assert auto.sizes["M0"] == 64 and "tile" in auto.sizes_defaulted["M0"]
    assert (auto.latency_s, auto.comm_bytes, auto.rounds) == (given.latency_s, given.comm_bytes, given.rounds)
    short = simulate(c, "archsim/configs/pi/crypten.yaml", {"M": 16, "E": 8, "F": 8})
    assert short.sizes["M0"] == 16
    lan = load_network("lan")  # latency = compute + bytes / bandwidth + rounds x RTT: the bound is the largest
    wire, waits = lan.transfer_s(auto.comm_bytes), auto.rounds * lan.rtt_s
    assert auto.bound == ("bandwidth" if wire >= waits and wire >= auto.latency_s - wire - waits else
                          "rounds" if waits >= auto.latency_s - wire - waits else "compute")
