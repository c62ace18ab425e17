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
PARAMS = {"W": 5, "S": 3, "B": 0.5, "L": 0.3, "LAM": 0.4, "G": 0.9, "KK": 4}


def load_module(source: str, name: str, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sizes_for(cascade, rank, block_n, sizes=SIZES):
    out = {k: sizes.get(k, 5) for k in cascade.ranks}  # 5: a rank the table does not name
    parts = cascade.ranks[rank].parts
    if parts:  # a cascade that splits the keys itself: whole tiles of the kernel's width
        out[parts[1]] = block_n
        out[rank] = 3 * block_n
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
    inputs = {n: torch.tensor(rng.standard_normal(tuple(bound[cascade.var_rank[v]] for v in d.indices)))
              .to(TORCH[dtype]) for n, d in cascade.inputs.items()}
    expected = cascade.evaluate({n: t.double().numpy() for n, t in inputs.items()}, {**bound, **params})
    out = module.run(**inputs, **params)
    assert sorted(out) == sorted(cascade.outputs)
    for o in cascade.outputs:
        got = out[o].double().numpy()
        scale = max(np.abs(expected[o]).max(), 1e-30)
        err = np.abs(got - expected[o]).max() / scale
        assert err <= TOL[dtype], f"{cascade.name} {o} ({dtype}, {g.form}): relative error {err:.2e}"
    return module


LIBRARY = ec.library_names() + ec.block_names()
RECURRENCE = "recurrence one key at a time"
# what the generator refuses, and why (docs/kernels.md lists the same)
REFUSED = {
    "based_attention": ("S", RECURRENCE),
    "gated_linear_attention": ("S", RECURRENCE),
    "linear_attention_causal": ("S", RECURRENCE),
    "selective_scan": ("H", RECURRENCE),
    "stick_breaking_attention": ("C", RECURRENCE),
    "lightning_attention": ("P", "split"),
    "topk_attention": ("T", "kth"),
    "landmark_block_attention": ("LS", "number of tiles"),  # a reduction over the tiles m1
    "landmark_attention": ("QL", "number of tiles"),
    "gated_delta_rule": ("S", RECURRENCE),
    "mamba2_ssd": ("H", RECURRENCE),
    "selective_attention": ("FC", "recurrence over rank P"),
    "minference_vertical_slash_dynamic": ("QK", "data-dependent condition"),
    "neighborhood_attention_2d_tokens": ("P", "split"),
    "block_sparse_attention": ("BV", "per-tile tensor needed outside its pass"),
    "chunked_attention": ("BV", "per-tile tensor needed outside its pass"),
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
        "topk_attention": ("T", "kth"),
        "linear_attention_causal": ("S", "recurrence one key at a time"),
        "lightning_attention": ("P", "split"),
    }
    for name, (einsum, words) in cases.items():
        with pytest.raises(KernelRefusal) as info:
            generate(ec.load_library(name))
        assert info.value.einsum == einsum and words in info.value.reason
    with pytest.raises(ValueError, match="power of two"):
        generate(ec.load_library("attention_3pass"), block_n=24)


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
