"""Generated Triton kernels (gpu_ref.codegen) on the CPU interpreter against Cascade.evaluate.

Every library cascade and block either generates a module whose `run` equals the numpy
evaluation (fp32: relative 1e-5 of the output's largest magnitude; fp16: 2e-3; bf16: 2e-2, the
rounding of the probabilities and values to 8 or 11 significant bits) at sizes that are not
multiples of the tiles, or is refused with the Einsum and the reason (the refusals are pinned
here and in docs/kernels.md). CASCADESIM_KERNEL_FUZZ=1 (`make fuzz`) adds more sizes, tiles and
seeds.
"""
import importlib.util
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: the kernels run on the CPU

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="torch (the `gpu` extra) is not installed")
pytest.importorskip("triton", reason="triton (the `gpu` extra) is not installed")

from gpu_ref.interpret import enable_cpu_interpreter  # noqa: E402

enable_cpu_interpreter()

import einsum_cascade as ec  # noqa: E402
from einsum_cascade.parser import parse  # noqa: E402
from gpu_ref.codegen import KernelRefusal, generate  # noqa: E402
from gpu_ref.codegen.generate import default_rank  # noqa: E402

# masked-out points (and rows past the end) may overflow or divide by zero before tl.where drops them
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FUZZ = os.environ.get("CASCADESIM_KERNEL_FUZZ") == "1"
TOL = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 2e-2}
TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# ragged: 37 rows and keys against 16-wide tiles; head dims 8 and 12 padded to 16
SIZES = {"R": 6, "E": 8, "F": 12, "P": 37, "M": 37, "N": 5, "D": 9, "T": 21, "H": 10, "V": 7}
PARAMS = {"W": 5, "S": 3, "B": 0.5, "L": 0.3, "LAM": 0.4, "G": 0.9, "KK": 4, "AA": -1.5}
# inputs whose meaning bounds them: decays and step sizes of the recurrences (a gate in (0, 1),
# Mamba's positive step with a negative AA); every other input is standard normal
# (the delta rule's gate A, its step B and keys small enough that I - B k k^T contracts, as
# DeltaNet's normalised keys make it)
INPUT_RANGES = {("gated_linear_attention", "A"): (0.5, 1.0), ("mamba2_ssd", "DT"): (0.01, 0.5),
                ("gated_delta_rule", "A"): (0.5, 1.0), ("gated_delta_rule", "B"): (0.0, 1.0),
                ("gated_delta_rule", "K"): (-0.4, 0.4)}


def load_module(source: str, name: str, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sizes_for(cascade, rank, block_n, sizes=SIZES):
    out = {k: sizes.get(k, 5) for k in cascade.ranks}  # 5: a rank the table does not name
    for name, r in cascade.ranks.items():
        if r.parts:  # split by the cascade: blocks of the tile's width (a walked tile: exactly) covering
            out[r.parts[1]] = sizes.get(r.parts[1], block_n)  # the size asked for (every row sees a key)
            outer = sizes.get(r.parts[0], max(1, -(-sizes.get(name, 3 * block_n) // out[r.parts[1]])))
            out[name] = outer * out[r.parts[1]]
    return out


def compare(cascade, tmp_path, rank="M", dtype="fp32", block_m=16, block_n=16, sizes=SIZES, seed=0,
            lead=None, kv_heads=None, name=None):
    """Generate, run and check every output against the numpy evaluation; returns the module."""
    g = generate(cascade, rank=rank, block_m=block_m, block_n=block_n, dtype=dtype, kv_heads=kv_heads)
    module = load_module(g.source, name or f"{cascade.name}_{dtype}", tmp_path)
    bound = sizes_for(cascade, rank, block_n, sizes)
    defaults = getattr(cascade, "defaults", {}) or {}
    params = {p: defaults.get(p, PARAMS.get(p, 3)) for p in cascade.params}  # 3: a small whole number
    rng = np.random.default_rng(seed)
    inputs = {}
    for n, d in cascade.inputs.items():
        shape = tuple(bound[cascade.var_rank[v]] for v in d.indices)
        low_high = INPUT_RANGES.get((cascade.name, n))
        x = rng.uniform(*low_high, shape) if low_high else rng.standard_normal(shape)
        inputs[n] = torch.tensor(x).to(TORCH[dtype])
    expected = cascade.evaluate({n: t.double().numpy() for n, t in inputs.items()}, {**bound, **params})
    read = {cascade.var_rank[v] for d in cascade.inputs.values() for v in d.indices}
    unread = {r: bound[r] for r in cascade.ranks if r not in read and not cascade.ranks[r].parts}  # e.g. a window
    unread.update({parts[1]: bound[parts[1]] for parts in getattr(module, "SPLIT", {}).values()})  # run flat
    out = module.run(**inputs, **params, **unread)
    assert sorted(out) == sorted(cascade.outputs)
    for o in cascade.outputs:
        got = out[o].double().numpy()
        scale = max(np.abs(expected[o]).max(), 1e-30)
        err = np.abs(got - expected[o]).max() / scale
        assert err <= TOL[dtype], f"{cascade.name} {o} ({dtype}, {g.form}): relative error {err:.2e}"
    return module


LIBRARY = ec.library_names() + ec.block_names()
# what the generator refuses, and why (docs/kernels.md lists the same)
REFUSED = {
    "selective_scan": ("H", "the rank the rows of the programs run over"),  # output over M itself
    "stick_breaking_attention": ("C", "the rank the rows of the programs run over"),  # a state per query
    "lightning_attention": ("OX", "reads KV at step p1"),  # its state over key blocks, read per row block
    "landmark_block_attention": ("LS", "number of tiles"),  # a reduction over the tiles m1
    "landmark_attention": ("QL", "number of tiles"),
    "selective_attention": ("FC", "recurrence over rank P"),
}


@pytest.mark.parametrize("name", LIBRARY)
def test_library_cascade_equals_evaluate_or_is_refused(name, tmp_path):
    cascade = ec.load_library(name)
    rank = default_rank(cascade)
    if name in REFUSED:
        with pytest.raises(KernelRefusal) as info:
            generate(cascade, rank=rank, block_m=16, block_n=16)
        einsum, reason = REFUSED[name]
        assert info.value.einsum == einsum and reason in info.value.reason
        assert str(info.value).startswith(f"{name}: {einsum}: ") and "\n" not in str(info.value)
        return
    compare(cascade, tmp_path, rank=rank)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["attention_sliding_window", "lse_output", "linear_attention"])
def test_half_precision(name, dtype, tmp_path):
    compare(ec.load_library(name), tmp_path, dtype=dtype)


MASKS = {
    # prefix-LM: the first S keys bidirectional, the rest causal (`or`)
    "prefix": "m < S or m <= p",
    # sinks written with `not`
    "not_sinks": "not (m > p) and (m < S or not (p - W >= m))",
    # a two-sided band over more keys than queries (M != P)
    "band": "m >= p - W and m < p + W",
    # two blocks of keys seen by everyone (fully visible and fully hidden tiles between them)
    "blocks": "m < 16 or (m >= 32 and m < 40)",
}


def masked_softmax(mask: str) -> str:
    return f"""cascade masked
rank E, F, M, P
param S, W
input Q[e,p], K[e,m], V[f,m]
output AV, LSE
QK[m,p] = Q[e,p] * K[e,m] where {mask}
GM[p]   = max(m: QK[m,p]) where {mask}
SN[m,p] = exp(QK[m,p] - GM[p]) where {mask}
SD[p]   = sum(m: SN[m,p]) where {mask}
LSE[p]  = GM[p] + log(SD[p])
A[m,p]  = SN[m,p] / SD[p] where {mask}
AV[f,p] = A[m,p] * V[f,m] where {mask}
"""


@pytest.mark.parametrize("mask", sorted(MASKS))
def test_affine_masks(mask, tmp_path):
    cascade = parse(masked_softmax(MASKS[mask]), f"<{mask}>")
    sizes = dict(SIZES, M=45)
    module = compare(cascade, tmp_path, sizes=sizes, name=mask)
    text = open(module.__file__).read()
    # fully masked tiles are left out: by the loop ranges when the mask bounds the key, else per tile
    ranged = "for m1 in range(t_full_lo, t_full_hi):" in text
    assert ranged == (mask in ("band",)) and ranged != ("skip = " in text)


def test_no_skipping_where_a_hidden_tile_changes_the_state(tmp_path):
    # C sums every key whatever the mask: a tile hidden by the mask still adds to it, so the
    # generator must not skip it (and the result must still be right).
    text = masked_softmax("m <= p").replace("output AV, LSE", "output AV, C").replace(
        "LSE[p]  = GM[p] + log(SD[p])", "C[p] = sum(m: K[0, m]) + SD[p]")
    cascade = parse(text, "<unmasked sum>")
    module = compare(cascade, tmp_path, name="unskippable")
    text = open(module.__file__).read()
    assert "skip = " not in text and "t_full_lo" not in text


def test_scalar_output_and_several_outputs(tmp_path):
    text = """cascade scalar_out
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV, KN, KM
QK[m,p] = Q[e,p] * K[e,m]
S[m,p]  = sigmoid(QK[m,p])
AV[f,p] = S[m,p] * V[f,m]
KN      = sum(m: sum(e: K[e,m] * K[e,m]))
KM[e]   = max(m: K[e,m])
"""
    compare(parse(text, "<scalar>"), tmp_path, name="scalar_out")


def test_grouped_query_heads(tmp_path):
    cascade = ec.load_library("attention_3pass_causal")
    g = generate(cascade, block_m=16, block_n=16, kv_heads=2)
    module = load_module(g.source, "gqa", tmp_path)
    rng = np.random.default_rng(1)
    q = torch.tensor(rng.standard_normal((2, 4, 8, 37)), dtype=torch.float32)
    k = torch.tensor(rng.standard_normal((2, 2, 8, 37)), dtype=torch.float32)
    v = torch.tensor(rng.standard_normal((2, 2, 12, 37)), dtype=torch.float32)
    out = module.run(Q=q, K=k, V=v)["AV"]
    assert out.shape == (2, 4, 12, 37)
    for b in range(2):
        for h in range(4):
            ref = cascade.evaluate({"Q": q[b, h].double().numpy(), "K": k[b, h // 2].double().numpy(),
                                    "V": v[b, h // 2].double().numpy()})["AV"]
            np.testing.assert_allclose(out[b, h].double().numpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    with pytest.raises(ValueError, match="generated for 2"):
        module.run(Q=q, K=k[:, :1], V=v[:, :1])
    launch = module.prepare(Q=q, K=k, V=v)  # bound once; every launch recomputes the same outputs
    first = launch()["AV"].clone()
    assert torch.equal(launch()["AV"], first) and torch.allclose(first, out)
    with pytest.raises(TypeError, match="missing V"):
        module.run(Q=q, K=k)
    with pytest.raises(ValueError, match="E = 8 but another input gives 9|gives E"):
        module.run(Q=q, K=torch.zeros(2, 2, 9, 37), V=v)


def test_source_compiles_and_is_deterministic():
    cascade = ec.load_library("attention_sinks")
    one = generate(cascade, block_m=32, block_n=16, dtype="fp16").source
    two = generate(ec.load_library("attention_sinks"), block_m=32, block_n=16, dtype="fp16").source
    assert one == two
    compile(one, "<generated>", "exec")
    for einsum in ("QK[m, p] = Q[e, p] * K[e, m]", "SNV_R[m1 + 1, f, p]", "@triton.jit", "def run("):
        assert einsum in one
    assert "tl.dot(" in one and "MASKED: tl.constexpr" in one


def test_several_kernels_for_an_unfusable_cascade(tmp_path):
    # softplus of a global (the mean score) has no one-pass form: fuse refuses, two kernels
    text = """cascade centred_softplus_sum
rank E, M, P
input Q[e,p], K[e,m]
output SD
QK[m,p] = Q[e,p] * K[e,m]
MU[p]   = sum(m: QK[m,p]) / M
SD[p]   = sum(m: softplus(QK[m,p] - MU[p]))
"""
    cascade = parse(text, "<centred>")
    g = generate(cascade, block_m=16, block_n=16)
    assert len(g.kernels) == 2 and g.form.startswith("not fused")
    assert g.kernels[0].einsums == ["QK", "MU"] and g.kernels[1].einsums == ["SD"]
    compare(cascade, tmp_path, name="centred")
    partial = generate(ec.load_library("softplus_centred_refused"), block_m=16, block_n=16)
    assert len(partial.kernels) == 2 and partial.form == "fused: 3 -> 2 passes"


def test_refusals_name_the_einsum():
    transposed = """cascade transposed
rank E, M, P
input Q[e,p], K[e,m]
output O
QK[m,p] = Q[e,p] * K[e,m]
O[p] = sum(m: QK[m,p] * K[0, m])
"""
    generate(parse(transposed), block_m=16, block_n=16)  # reads at its own points: fine
    cases = {
        "lightning_attention": ("OX", "reads KV at step p1"),  # its state over key blocks, read per row block
    }
    for name, (einsum, words) in cases.items():
        with pytest.raises(KernelRefusal) as info:
            generate(ec.load_library(name))
        assert info.value.einsum == einsum and words in info.value.reason
    with pytest.raises(ValueError, match="power of two"):
        generate(ec.load_library("attention_3pass"), block_n=24)


CHUNKED = ["linear_attention_causal", "gated_linear_attention", "mamba2_ssd", "based_attention", "gated_delta_rule"]


@pytest.mark.parametrize("name", CHUNKED)
def test_recurrences_in_the_chunked_form(name, tmp_path):
    # one program per (batch, head) walks chunks of 16 keys: products inside the chunk, the state
    # carried across; 37 keys (two whole chunks and a ragged one), fewer rows than keys
    cascade = ec.load_library(name)
    g = generate(cascade, block_m=16, block_n=16)
    assert len(g.kernels) == 1 and g.kernels[0].grid == "(1, batch * query heads)"
    assert "recurrences in chunks of 16 keys" in g.form
    assert ("tl.cumsum" in g.source) == (name in ("gated_linear_attention", "mamba2_ssd", "gated_delta_rule"))
    assert ("for j in range(0, BLOCK_N)" in g.source) == (name == "gated_delta_rule")  # the delta rule's solve
    assert "tl.dot(" in g.source and "for chunk in range(" in g.source
    compare(cascade, tmp_path, name=f"{name}_chunked")
    compare(cascade, tmp_path, sizes=dict(SIZES, P=30), seed=1, name=f"{name}_fewer_rows")
    compare(cascade, tmp_path, sizes=dict(SIZES, P=12, M=12, E=20), block_n=32, seed=2, name=f"{name}_one_chunk")


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["linear_attention_causal", "gated_linear_attention", "gated_delta_rule"])
def test_chunked_half_precision(name, dtype, tmp_path):
    compare(ec.load_library(name), tmp_path, dtype=dtype, name=f"{name}_{dtype}_chunked")


def test_chunked_recurrence_equals_the_parallel_form(tmp_path):
    # retention written as a recurrence with a constant decay G against the library's quadratic
    # (parallel) form, evaluated by numpy: the two forms are derived independently
    text = """cascade retention_recurrent
rank E, F, M, P
param G
input Q[e,p], K[e,m], V[f,m]
output AV
S[e,f,0]   = 0
S[e,f,m+1] = G * S[e,f,m] + K[e,m] * V[f,m]
AV[f,p]    = Q[e,p] * S[e,f,p+1]
"""
    g = generate(parse(text, "<retention_recurrent>"), block_m=16, block_n=16)
    module = load_module(g.source, "retention_recurrent", tmp_path)
    rng = np.random.default_rng(3)
    q, k, v = (torch.tensor(rng.standard_normal(s), dtype=torch.float32) for s in ((8, 37), (8, 37), (12, 37)))
    got = module.run(Q=q, K=k, V=v, G=0.8)["AV"].double().numpy()
    parallel = ec.load_library("retention").evaluate({"Q": q.double().numpy(), "K": k.double().numpy(),
                                                     "V": v.double().numpy()}, {"G": 0.8})["AV"]
    assert np.abs(got - parallel).max() <= 1e-5 * np.abs(parallel).max()
    with pytest.raises(ValueError, match="rows read the state after their own key"):
        module.run(Q=torch.zeros(8, 40), K=k, V=v, G=0.8)


def test_chunked_grouped_query_heads(tmp_path):
    cascade = ec.load_library("mamba2_ssd")
    g = generate(cascade, block_m=16, block_n=16, kv_heads=1)
    module = load_module(g.source, "mamba_gqa", tmp_path)
    rng = np.random.default_rng(4)
    q = torch.tensor(rng.standard_normal((1, 2, 8, 21)), dtype=torch.float32)
    k = torch.tensor(rng.standard_normal((1, 1, 8, 21)), dtype=torch.float32)
    v = torch.tensor(rng.standard_normal((1, 1, 12, 21)), dtype=torch.float32)
    dt = torch.tensor(rng.uniform(0.01, 0.5, (1, 1, 21)), dtype=torch.float32)
    out = module.run(Q=q, K=k, V=v, DT=dt, AA=-1.5)["AV"]
    for h in range(2):
        ref = cascade.evaluate({"Q": q[0, h].double().numpy(), "K": k[0, 0].double().numpy(),
                                "V": v[0, 0].double().numpy(), "DT": dt[0, 0].double().numpy()}, {"AA": -1.5})["AV"]
        assert np.abs(out[0, h].double().numpy() - ref).max() <= 1e-5 * np.abs(ref).max()


def test_chunked_refusals_name_the_einsum():
    cases = {
        # the reader keeps both ranks of a state whose decay varies over the kept one
        "decay": ("S", "its decay varies over", """cascade decay_over_f
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m], A[f,m]
output AV
S[e,f,0]   = 0
S[e,f,m+1] = A[f,m] * S[e,f,m] + K[e,m] * V[f,m]
AV[f,p]    = Q[e,p] * S[e,f,p+1]
"""),
        # the state read at another step than the row's
        "step": ("AV", "reads S at step p", """cascade shifted
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV
S[e,f,0]   = 0
S[e,f,m+1] = S[e,f,m] + K[e,m] * V[f,m]
AV[f,p]    = Q[e,p] * S[e,f,p]
"""),
        # a value side that reads the state through a non-linear function (not the delta rule)
        "nonlinear": ("S", "reads the state through SK, U", """cascade nonlinear_delta
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV
S[e,f,0]   = 0
SK[f,m]    = S[e,f,m] * K[e,m]
U[f,m]     = V[f,m] - tanh(SK[f,m])
S[e,f,m+1] = S[e,f,m] + K[e,m] * U[f,m]
AV[f,p]    = Q[e,p] * S[e,f,p+1]
"""),
        # an update that is not a product of a key side and a value side
        "update": ("S", "over both ranks of the state", """cascade mixed
rank E, F, M, P
input Q[e,p], K[e,m], V[f,m]
output AV
S[e,f,0]   = 0
S[e,f,m+1] = S[e,f,m] + exp(K[e,m] * V[f,m])
AV[f,p]    = Q[e,p] * S[e,f,p+1]
"""),
    }
    for key, (einsum, words, text) in cases.items():
        with pytest.raises(KernelRefusal) as info:
            generate(parse(text, f"<{key}>"), block_m=16, block_n=16)
        assert info.value.einsum == einsum and words in info.value.reason, (key, str(info.value))


def test_data_dependent_refusals_name_the_einsum():
    cases = {
        # a k-th value over a head dim, not the keys
        "kth_over_e": ("T", "only as a running selection", """cascade kth_e
rank E, M, P
input Q[e,p], K[e,m]
output O
T[p] = kth(2, e: Q[e,p])
O[p] = sum(m: Q[0,p] * K[0,m]) + T[p]
"""),
        # a tensor under a data-dependent condition that a later pass reads (absent != 0 for a max)
        "stored": ("QK", "under a data-dependent condition", """cascade data_stored
rank E, M, P
input Q[e,p], K[e,m]
output SD
QK[m,p] = Q[e,p] * K[e,m] where K[0,m] > 0
MU[p]   = sum(m: QK[m,p]) / M
SD[p]   = sum(m: softplus(QK[m,p] - MU[p]))
"""),
    }
    for key, (einsum, words, text) in cases.items():
        with pytest.raises(KernelRefusal) as info:
            generate(parse(text, f"<{key}>"), block_m=16, block_n=16)
        assert info.value.einsum == einsum and words in info.value.reason, (key, str(info.value))


@pytest.mark.parametrize("name, sizes", [
    # 2-D tokens: 5 x 7 queries and keys, flat rows p = px * 7 + py and keys m = mx * 7 + my
    ("neighborhood_attention_2d_tokens", {"E": 8, "F": 12, "PX": 5, "PY": 7, "MX": 5, "MY": 7}),
    # chunks / key blocks of 7 (not the tile's 16): each row's key range is its own chunk's
    ("chunked_attention", {"E": 8, "F": 12, "P": 35, "M1": 5, "M0": 7}),
    ("block_sparse_attention", {"E": 8, "F": 12, "P": 33, "M1": 5, "M0": 7}),
])
def test_split_ranks_run_flat(name, sizes, tmp_path):
    # a split rank that no recurrence walks runs flat: x1 = x // X0, x0 = x - X0 * x1 per row or key
    cascade = ec.load_library(name)
    g = generate(cascade, block_m=16, block_n=16)
    module = load_module(g.source, f"{name}_flat", tmp_path)
    assert "BK" not in g.kernels[0].einsums  # the re-indexed inputs are read through
    full = dict(sizes)
    for r, rank in cascade.ranks.items():
        if rank.parts:
            full[r] = sizes[rank.parts[0]] * sizes[rank.parts[1]]
    rng = np.random.default_rng(6)
    inputs = {n: torch.tensor(rng.standard_normal(tuple(full[cascade.var_rank[v]] for v in d.indices)),
                              dtype=torch.float32) for n, d in cascade.inputs.items()}
    params = {p: {"WR": 1, "NB": 2}[p] for p in cascade.params}
    ref = cascade.evaluate({n: t.double().numpy() for n, t in inputs.items()}, {**full, **params})["AV"]
    parts = {inner: sizes[inner] for _outer, inner in module.SPLIT.values()}
    got = module.run(**inputs, **params, **parts)["AV"].double().numpy()
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    inner = next(iter(parts))
    with pytest.raises(ValueError, match=f"is not .* = .* \\* 6"):
        module.run(**inputs, **params, **{**parts, inner: 6})


TOPK = """cascade topk_{op}
rank E, F, M, P
param KK
input Q[e,p], K[e,m], V[f,m]
output AV, T
QK[m,p]  = Q[e,p] * K[e,m] where m <= p + 9
T[p]     = {op}(KK, m: QK[m,p]) where m <= p + 9
GM[p]    = max(m: QK[m,p]) where m <= p + 9
SN[m,p]  = exp(QK[m,p] - GM[p]) where m <= p + 9 and QK[m,p] {cmp} T[p]
SD[p]    = sum(m: SN[m,p]) where m <= p + 9 and QK[m,p] {cmp} T[p]
SNV[f,p] = SN[m,p] * V[f,m] where m <= p + 9 and QK[m,p] {cmp} T[p]
AV[f,p]  = SNV[f,p] / SD[p]
"""


@pytest.mark.parametrize("op, cmp", [("kth", ">="), ("kth_smallest", "<=")])
def test_topk_selection_stage_with_ties(op, cmp, tmp_path):
    # scores of small whole numbers: many ties, which the k-th value counts as the evaluator's sort
    # does; k = 1, a middle k, and k above the keys a row sees (threshold -inf / +inf: all kept)
    cascade = parse(TOPK.format(op=op, cmp=cmp), f"<topk {op}>")
    g = generate(cascade, block_m=16, block_n=16)
    assert len(g.kernels) == 2 and g.kernels[0].einsums[:3] == ["QK", "T", "GM"]  # selection, then attention
    module = load_module(g.source, f"topk_{op}", tmp_path)
    rng = np.random.default_rng(5)
    q = torch.tensor(rng.integers(-2, 3, (8, 37)), dtype=torch.float32)
    k = torch.tensor(rng.integers(-2, 3, (8, 45)), dtype=torch.float32)
    v = torch.tensor(rng.standard_normal((12, 45)), dtype=torch.float32)
    for kk in (1, 7, 60):
        ref = cascade.evaluate({"Q": q.double().numpy(), "K": k.double().numpy(), "V": v.double().numpy()}, {"KK": kk})
        out = module.run(Q=q, K=k, V=v, KK=kk)
        np.testing.assert_array_equal(out["T"].double().numpy(), ref["T"])  # the threshold exactly
        assert np.abs(out["AV"].double().numpy() - ref["AV"]).max() <= 1e-5 * np.abs(ref["AV"]).max()
    with pytest.raises(ValueError, match="KK = 2.5 is the k of a k-th value"):
        module.run(Q=q, K=k, V=v, KK=2.5)


@pytest.mark.skipif(not FUZZ, reason="set CASCADESIM_KERNEL_FUZZ=1 (make fuzz) for the larger set")
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", [n for n in LIBRARY if n not in REFUSED])
def test_fuzz_sizes_and_tiles(name, seed, tmp_path):
    rng = np.random.default_rng(seed)
    sizes = {k: int(rng.integers(1, 70)) for k in SIZES}
    sizes["M"] = sizes["P"]  # self-attention masks compare m with p
    for d in ("E", "F", "D", "N", "H", "V", "R"):
        sizes[d] = int(rng.integers(1, 40))
    block_m, block_n = (int(rng.choice([16, 32])) for _ in range(2))
    cascade = ec.load_library(name)
    try:
        compare(cascade, tmp_path, rank=default_rank(cascade), block_m=block_m, block_n=block_n, sizes=sizes,
                seed=seed, name=f"{name}_{seed}")
    except ValueError as err:  # blocks over several whole ranks can outgrow Triton: run says so
        assert "over Triton's" in str(err), err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_bench_generated_smoke_on_cpu(tmp_path):
    """The GPU benchmark's logic on the CPU at a tiny size: every contender agrees with the reference."""
    import json

    from gpu_ref import bench_generated as bg
    out = tmp_path / "generated.json"
    assert bg.main(["--device", "cpu", "--cases", "causal", "sliding_window", "--seq-lens", "40", "--head-dims", "16",
                    "--tokens", "40", "--d-model", "16", "--dtype", "float32", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and data["gpu"] and data["date"]
    kernels = {(r["case"], r["kernel"]) for r in data["records"]}
    assert {("causal", "generated"), ("causal", "attention_1pass"), ("sliding_window", "generated"),
            ("sliding_window", "torch_sdpa")} <= kernels
    for r in data["records"]:
        assert r["max_abs_err"] < 1e-5, r


def test_docs_table_is_the_generators():
    from pathlib import Path

    from gpu_ref.codegen.table import kernel_rows, markdown
    docs = (Path(__file__).resolve().parents[1] / "docs" / "kernels.md").read_text()
    assert markdown(kernel_rows()) in docs, "paste `python -m gpu_ref.codegen.table` into docs/kernels.md"


def test_blocks_too_large_for_triton_are_refused_by_run(tmp_path):
    # the 2-D neighbourhood holds blocks over rows, keys, both head dims and the second query and
    # key ranks: at 64-wide ranks they outgrow Triton's largest block, which run says before launching
    g = generate(ec.load_library("neighborhood_attention_2d"), block_m=16, block_n=16)
    module = load_module(g.source, "neighbourhood", tmp_path)
    q, k, v = torch.zeros(64, 20, 64), torch.zeros(64, 20, 64), torch.zeros(64, 20, 64)
    with pytest.raises(ValueError, match="elements at these sizes, over Triton's"):
        module.run(Q=q, K=k, V=v)
