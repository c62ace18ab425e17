"""`fuse` on cascades written from papers' equations (issue 22): each new identity or rule, with
the passes derived by hand here, the fused cascade equal to an independent numpy formula and to
the original in fp64 within 1e-9 over scaled inputs; partial fusion; split ranks; 2-D windows;
self-contained output; and properties (hypothesis) over random compositions: fusing never
increases passes, the fused cascade evaluates equal to the original, fusing twice is a no-op."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from einsum_cascade.fuse import fuse
from einsum_cascade.fuse.algebra import RuleError, to_sympy, Atoms
from einsum_cascade.fuse.certify import relative_error
from einsum_cascade.fuse.normalise import normalise, positive_tensors
from studies.cli import main

try:
    from tests import references as ref
except ImportError:
    import references as ref

E, F = 4, 3
SCALES = (1.0, 10.0)
REL = 1e-9


def inputs(m: int, p: int, seed: int, scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"Q": scale * rng.standard_normal((E, p)), "K": scale * rng.standard_normal((E, m)),
            "V": rng.standard_normal((F, m))}


def check(stem: str, before: int, after: int, reference, sizes=None, make=inputs, output="AV",
          n=12, tile=4, undefined_ok=False):
    """fuse `stem`: passes before -> after (hand-derived by the caller), certified, and at sizes
    and inputs of this test's own, original and fused equal to `reference(inputs)`. With
    `undefined_ok`, the original may be NaN where an exp underflows to 0 and 0 * log 0 is taken
    (it is compared where defined); the fused cascade must equal the reference everywhere."""
    c = ec.load_library(stem)
    result = fuse(c, simulate=False)
    assert (result.passes_before, result.passes_after) == (before, after), result.reasons
    assert result.status == "reduced" and result.check_error <= REL
    assert ec.passes(result.cascade, "M").passes == after
    for seed, scale in enumerate(SCALES):
        x = make(n, n, seed, scale)
        want = reference(x)
        extra = dict(sizes or {})
        got_orig = c.evaluate(x, extra)[output]
        fused_sizes = dict(extra, **({"M0": tile} if "M0" in result.cascade.size_names else {}))
        got = result.cascade.evaluate(x, fused_sizes)[output]
        defined = ~np.isnan(got_orig) if undefined_ok else np.ones(np.shape(want), bool)
        assert relative_error(got_orig[defined], want[defined]) <= REL
        assert relative_error(got, want) <= REL
    return result


# -- logarithms: entropy and log-sum-exp ----------------------------------------------------------

def test_entropy_of_the_weights_is_one_pass_by_the_log_identities():
    # as written: QK 1, GM 1; SN 2, SD 2; A 3, H 3 -> 3 passes. log(SN/SD) = QK - GM - log SD
    # (SN = exp(..) and SD a sum of exps are positive), sum_m SN/SD = 1, so
    # H = GM + log SD - sum(m: SN*QK)/SD: every sum streams in pass 1 -> 1 pass.
    r = check("attention_entropy_direct", 3, 1, lambda x: ref.attention_entropy(x["Q"], x["K"]),
              output="H", undefined_ok=True)
    assert "H[p] = RM[M1, p] + log(SD_R[M1, p]) - H_R[M1, p] / SD_R[M1, p]" in r.text


def test_log_sum_exp_output_is_one_pass():
    # LSE = GM + log(sum(m: exp(QK - GM))): the sum needs GM (pass 2) -> with a running max,
    # GM = RM and LSE = RM + log RS: 1 pass.
    r = check("lse_log_normaliser", 2, 1, lambda x: ref.attention_lse(x["Q"], x["K"]), output="LSE")
    assert "LSE[p] = GM[p] + log(LSE_R[M1, p])" in r.text and "GM[p] = RM[M1, p]" in r.text


def test_normalise_splits_only_proved_positive_logarithms():
    c = ec.parse("rank M, P\ninput X[m,p], Y[p]\noutput Z\nN[m,p] = exp(X[m,p])\nD[p] = sum(m: N[m,p])\n"
                 "Z[m,p] = log(N[m,p] / D[p]) + log(N[m,p] * Y[p])\n")
    assert positive_tensors(c) == {"N", "D"}
    atoms = Atoms(positive=positive_tensors(c))
    z = normalise(to_sympy(c.einsum("Z").expr, atoms))
    shown = {str(atoms.node[s].tensor) for s in z.free_symbols}
    # log(N/D) = log N - log D; log(N*Y) = log N + log Y only because N > 0 (Y's sign is unknown,
    # so log(Y) stays whole): 2 log N - log D + log Y
    assert shown == {"N", "D", "Y"}
    text = str(z)
    assert text.count("log") == 3 and "log(N" not in text


def test_an_unexpected_node_is_an_internal_error_not_a_refusal():
    with pytest.raises(RuleError, match="to_sympy accepts the value nodes"):
        to_sympy(object(), Atoms())


# -- partial fusion --------------------------------------------------------------------------------

def softpick(x):
    s = x["K"].T @ x["Q"]
    g = s.max(axis=0, keepdims=True)
    e = np.exp(s - g) - np.exp(-g)
    return x["V"] @ (np.maximum(e, 0) / (np.abs(e).sum(axis=0, keepdims=True) + 1e-6))


def softplus_shifted(x):
    s = x["K"].T @ x["Q"]
    w = np.logaddexp(0.0, s - s.max(axis=0, keepdims=True))
    return x["V"] @ (w / w.sum(axis=0, keepdims=True))


@pytest.mark.parametrize("stem,reference,why", [
    ("softpick_attention", softpick, "abs is a nonlinearity of the global GM[p]"),
    ("softplus_shifted_attention", softplus_shifted, "softplus is a nonlinearity of the global GM[p]"),
])
def test_partial_fusion_defers_the_second_chain(stem, reference, why):
    # N (or SP) needs GM inside relu/softplus: it and its sum stay in pass 2. AV = sum(m: A * V)
    # with A = N / D defers the division: sum(m: N * V) / D streams in pass 2 with D -> 3 -> 2.
    r = check(stem, 3, 2, reference)
    assert r.chains_left[2][-2:] == ["GM", "N" if stem == "softpick_attention" else "SP"]
    assert why in r.why_left[2]
    assert "partly fused" in r.reasons["AV"]


def test_a_refusal_of_every_chain_is_refused():
    c = ec.parse("rank M, P\ninput X[m,p]\noutput Y\nG[p] = sum(m: X[m,p])\n"
                 "Y[p] = sum(m: relu(X[m,p] - G[p]))\n")
    r = fuse(c, simulate=False)
    assert r.status == "refused" and r.passes_after == 2 and "relu" in r.reasons["Y"]


# -- split ranks and 2-D windows --------------------------------------------------------------------

def landmark_inputs(m, p, seed, scale):
    x = inputs(m, p, seed, scale)
    x["L"] = scale * np.random.default_rng(seed + 10).standard_normal((E, m // 4))
    return x


def landmark(x, block=4):
    q, k, v, lk = x["Q"], x["K"], x["V"], x["L"]
    n_blocks = k.shape[1] // block
    gate = lk.T @ q                                          # [m1, p]
    gate = np.exp(gate - gate.max(axis=0)) / np.exp(gate - gate.max(axis=0)).sum(axis=0)
    out = np.zeros((v.shape[0], q.shape[1]))
    for b in range(n_blocks):
        s = k[:, b * block:(b + 1) * block].T @ q            # [m0, p]
        w = np.exp(s - s.max(axis=0)) / np.exp(s - s.max(axis=0)).sum(axis=0)
        out += v[:, b * block:(b + 1) * block] @ (w * gate[b])
    return out


def test_landmark_attention_over_a_split_rank_is_one_pass():
    # M = M1 * M0. Passes over M: within a block (over m0) everything keeps m1: pass 1; GM over
    # m1 (pass 1), GE, GD (pass 2), W, AV (pass 3) -> 3. The landmark softmax over m1 alone runs
    # as a running maximum with one step per block, AV's sum over (m1, m0) reads the same
    # maximum (its exponent is constant within a block) and both divisions are deferred -> 1.
    r = check("landmark_block_attention", 3, 1, landmark, sizes={"M0": 4}, make=landmark_inputs, n=16)
    assert "LM[m1, p] = LS[m1, p]" in r.text  # a block's maximum of a per-block value: itself
    assert r.identified == ["GM[p] = RM at its last index"]


def test_chunked_attention_merges_the_sums_over_chunks_into_one_pass():
    # M = M1 * M0. QK, GM pass 1; the chunk sums CS, CV (keep m1) and SD = sum(m1: CS) pass 2;
    # AV = sum(m1: CV) / SD pass 3 -> 3. sum(m1: sum(m0: B)) = sum(m1, m0: B): each sum over the
    # chunks of a chunk sum is one sum over the split rank, streamed with a running max -> 1.
    r = check("chunked_attention_global_max", 3, 1,
              lambda x: ref.softmax_attention(x["Q"], x["K"], x["V"]), sizes={"M0": 4}, n=16)
    assert r.rewritten["AV"][0] == "inlined" and "AV[f, p] = AV_R[M1, f, p] / SD_R[M1, p]" in r.text


def test_a_sum_over_chunks_of_a_nonlinear_function_of_a_chunk_sum_is_refused():
    c = ec.parse("rank P\nrank M = M1 * M0\ninput X[m,p]\noutput T\n"
                 "G[p] = max(m1, m0: X[m1*M0+m0, p])\n"
                 "S[m1,p] = sum(m0: exp(X[m1*M0+m0, p] - G[p]))\nT[p] = sum(m1: log(S[m1,p]))\n")
    r = fuse(c, simulate=False)
    assert r.status == "refused" and "not linear in the sum S" in r.reasons["T"]


def na2d_inputs(m, p, seed, scale):
    rng = np.random.default_rng(seed)
    return {"Q": scale * rng.standard_normal((E, 6, 4)), "K": scale * rng.standard_normal((E, 6, 4)),
            "V": rng.standard_normal((F, 6, 4))}


def na2d(x, w=1):
    q, k, v = x["Q"], x["K"], x["V"]
    out = np.zeros((v.shape[0],) + q.shape[1:])
    for p in range(q.shape[1]):
        for r in range(q.shape[2]):
            keys = [(m, n) for m in range(k.shape[1]) for n in range(k.shape[2])
                    if abs(m - p) <= w and abs(n - r) <= w]
            s = np.array([k[:, m, n] @ q[:, p, r] for m, n in keys])
            a = np.exp(s - s.max())
            a /= a.sum()
            out[:, p, r] = sum(a[i] * v[:, m, n] for i, (m, n) in enumerate(keys))
    return out


def test_two_dimensional_neighbourhood_attention_is_one_pass():
    # GM, SD and AV reduce over (m, n); passes over M: 3 as in softmax. Each tile's maximum runs
    # over (m0, n): max over (m, n) = max over m1 of max over (m0, n) -> 1 pass.
    r = check("neighborhood_attention_2d", 3, 1, na2d, sizes={"W": 1}, make=na2d_inputs, tile=3)
    assert "LM[m1, p, r] = max(m0, n: QK[M0*m1 + m0, n, p, r])" in r.text


def vertical_slash_mask(m, p, s=2, w=3, d=(5, 7), v=(4, 9)):
    keys, queries = np.arange(m)[:, None], np.arange(p)[None, :]
    keep = ((keys < s) | (queries - keys < w) | (queries - keys == d[0]) | (queries - keys == d[1])
            | (keys == v[0]) | (keys == v[1]))
    return (keys <= queries) & keep


VS = {"S": 2, "W": 3, "D1": 5, "D2": 7, "V1": 4, "V2": 9}


def test_vertical_slash_mask_fuses_and_counts_its_points_exactly():
    check("minference_vertical_slash", 3, 1,
          lambda x: ref.softmax_attention(x["Q"], x["K"], x["V"], vertical_slash_mask(12, 12)), sizes=VS)
    c = ec.load_library("minference_vertical_slash")
    sizes = dict(VS, E=E, F=F, M=40, P=40)
    want = int(vertical_slash_mask(40, 40).sum())  # brute force
    from einsum_cascade.cost import domain_points
    assert domain_points(c, c.einsum("QK"), sizes) == want * E  # QK's space: (m, p) x the sum over e
    # symbolically, beyond 3 or-terms the count is an explicit sum (its text linear in the clauses)
    symbolic = str(ec.cost(c).per_einsum["QK"]["multiply"])
    assert "Sum(" in symbolic and len(symbolic) < 600


# -- self-contained output --------------------------------------------------------------------------

def test_fused_output_carries_its_block_and_checks_at_the_original_sizes(tmp_path, capsys):
    out = tmp_path / "fused.cascade"
    assert main(["fuse", "attention_3pass", "-o", str(out)]) == 0
    fused = ec.load(out)
    assert fused.defaults == {"M0": 64}
    capsys.readouterr()
    # the original's sizes only: M0 from the default, M1 = 64 / 64 derived
    assert main(["eval", str(out), "--size", "M=64", "P=64", "E=8", "F=8",
                 "--check-against", "attention_3pass"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["fuse", "attention_3pass", "--block", "16", "-o", str(out)]) == 0
    assert ec.load(out).defaults == {"M0": 16}


def test_certificate_simulates_the_fused_cascade():
    r = fuse(ec.load_library("attention_3pass"))
    assert r.simulation.startswith("simulated on fusemax-cloud (auto mapping)")
    assert f"# {r.simulation}" in r.text
    # the layer norm with pow (no unit has it; rsqrt is composed since issue 19's operator set)
    text = ec.library_path("seq_layernorm").read_text().replace("rsqrt(VAR[f] + 0.00001)", "pow(VAR[f] + 0.00001, -0.5)")
    partial = fuse(ec.parse(text))
    assert partial.status == "reduced" and partial.simulation.startswith("not simulated on fusemax-cloud")


# -- properties -------------------------------------------------------------------------------------

STAGES = {
    # name: (lines with {i}, weights, passes fusion reaches for this stage alone)
    "softmax": (["G{i}[p] = max(m: S[m,p])", "N{i}[m,p] = exp(S[m,p] - G{i}[p])",
                 "D{i}[p] = sum(m: N{i}[m,p])", "A{i}[m,p] = N{i}[m,p] / D{i}[p]"], 1),
    "softplus_shifted": (["G{i}[p] = max(m: S[m,p])", "N{i}[m,p] = softplus(S[m,p] - G{i}[p])",
                          "D{i}[p] = sum(m: N{i}[m,p])", "A{i}[m,p] = N{i}[m,p] / D{i}[p]"], 2),
    "temperature": (["G{i}[p] = max(m: S[m,p])", "N{i}[m,p] = exp(0.5 * (S[m,p] - G{i}[p]))",
                     "D{i}[p] = sum(m: N{i}[m,p])", "A{i}[m,p] = N{i}[m,p] / D{i}[p]"], 1),
    "relu_shifted": (["G{i}[p] = sum(m: S[m,p]) / M", "N{i}[m,p] = relu(S[m,p] - G{i}[p])",
                      "D{i}[p] = sum(m: N{i}[m,p]) + 1", "A{i}[m,p] = N{i}[m,p] / D{i}[p]"], 2),
}


@st.composite
def compositions(draw):
    masked = draw(st.sampled_from(["", "m <= p", "m <= p and (m < 2 or p - m < 3 or p - m == 5)"]))
    kinds = draw(st.lists(st.sampled_from(sorted(STAGES)), min_size=1, max_size=3))
    w = f" where {masked}" if masked else ""
    lines = ["rank E, F, M, P", "input Q[e,p], K[e,m], V[f,m]", "output AV",
             f"S[m,p] = Q[e,p] * K[e,m]{w}"]
    for i, kind in enumerate(kinds):
        lines += [ln.format(i=i) for ln in STAGES[kind][0]]
    mix = " + ".join(f"A{i}[m,p]" for i in range(len(kinds)))
    lines += [f"B[m,p] = {mix}", "AV[f,p] = B[m,p] * V[f,m]"]
    return "\n".join(lines) + "\n", max(STAGES[k][1] for k in kinds)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compositions(), st.integers(0, 2**31 - 1))
def test_fusing_never_increases_passes_keeps_values_and_is_idempotent(case, seed):
    text, reached = case
    original = ec.parse(text)
    first = fuse(original, block_size=5, simulate=False)
    assert first.passes_after <= first.passes_before
    assert first.status == "reduced" and first.passes_after == reached, first.reasons
    rng = np.random.default_rng(seed)
    x = {"Q": 3 * rng.standard_normal((4, 10)), "K": 3 * rng.standard_normal((4, 10)),
         "V": rng.standard_normal((3, 10))}
    assert relative_error(first.cascade.evaluate(x)["AV"], original.evaluate(x)["AV"]) <= REL
    second = fuse(first.cascade, simulate=False)
    assert second.status in ("minimal", "refused") and second.passes_after == first.passes_after


@pytest.mark.parametrize("stem,rank", [
    ("attention_entropy_direct", "M"), ("lse_log_normaliser", "M"), ("softpick_attention", "M"),
    ("softplus_shifted_attention", "M"), ("landmark_block_attention", "M"),
    ("neighborhood_attention_2d", "M"), ("minference_vertical_slash", "M"),
    ("flow_attention", "M"), ("seq_layernorm", "M"), ("attention_3pass_causal", "M")])
def test_fusing_a_fused_library_cascade_again_changes_nothing(stem, rank):
    first = fuse(ec.load_library(stem), rank, simulate=False)
    second = fuse(first.cascade, rank, simulate=False)
    assert second.status in ("minimal", "refused") and second.passes_after == first.passes_after
