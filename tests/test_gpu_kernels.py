"""gpu_ref Triton kernels on the CPU (TRITON_INTERPRET=1): against torch and the library cascades."""
import math
import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: these tests run the kernels on the CPU

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="torch (the `gpu` extra) is not installed")
pytest.importorskip("triton", reason="triton (the `gpu` extra) is not installed")

from gpu_ref.interpret import enable_cpu_interpreter  # noqa: E402

enable_cpu_interpreter()  # before the kernel modules are imported

import einsum_cascade as ec  # noqa: E402
from gpu_ref import reference  # noqa: E402
from gpu_ref.attention_1pass import attention_1pass  # noqa: E402
from gpu_ref.attention_2pass import attention_2pass  # noqa: E402
from gpu_ref.attention_3pass import attention_3pass  # noqa: E402
from gpu_ref.linear_attention import linear_attention_causal  # noqa: E402
from gpu_ref.tiles import SMALL_TILES  # noqa: E402

SOFTMAX = {"attention_1pass": attention_1pass, "attention_2pass": attention_2pass, "attention_3pass": attention_3pass}
TOL = {torch.float32: 1e-4, torch.float16: 3e-3}


def qkv(batch, heads, n, d, dtype, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, heads, n, d, generator=g) * scale).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("name", sorted(SOFTMAX))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_kernels_match_torch(name, dtype, causal):
    # N = 40 is not a multiple of the 16-wide tiles: the ragged end is masked.
    q, k, v = qkv(2, 2, 40, 32, dtype)
    out = SOFTMAX[name](q, k, v, causal=causal, tiles=SMALL_TILES[name])
    expected = reference.softmax_attention(q, k, v, causal=causal)
    assert out.dtype == dtype and out.shape == q.shape
    assert torch.allclose(out.float(), expected, atol=TOL[dtype], rtol=TOL[dtype])


def test_softmax_matches_torch_sdpa_and_default_scale():
    q, k, v = qkv(1, 2, 48, 64, torch.float32, seed=3)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = attention_1pass(q, k, v, causal=True, tiles=SMALL_TILES["attention_1pass"])
    assert torch.allclose(out, expected, atol=1e-5)


def _cascade_inputs(q, k, v):
    """One head of (1, 1, N, D) tensors as the cascades' Q[e,p], K[e,m], V[f,m] arrays."""
    return {"Q": q[0, 0].T.double().numpy(), "K": k[0, 0].T.double().numpy(), "V": v[0, 0].T.double().numpy()}


@pytest.mark.parametrize("name", sorted(SOFTMAX))
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_kernels_match_library_cascade(name, causal):
    n, d = 32, 16
    q, k, v = qkv(1, 1, n, d, torch.float32, seed=1)
    cascade = ec.load_library(name + ("_causal" if causal else ""))
    sizes = {"M0": 8} if name == "attention_1pass" else {}
    av = cascade.evaluate(_cascade_inputs(q, k, v), sizes)["AV"]  # [f, p], unscaled scores
    out = SOFTMAX[name](q, k, v, causal=causal, sm_scale=1.0, tiles=SMALL_TILES[name])
    np.testing.assert_allclose(out[0, 0].numpy(), av.T, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_linear_attention_matches_torch(dtype):
    q, k, v = qkv(2, 2, 40, 32, dtype, scale=0.3)
    out = linear_attention_causal(q, k, v, tiles=SMALL_TILES["linear_attention_causal"])
    expected = reference.linear_attention_causal(q, k, v)
    scale = float(expected.abs().max())
    assert torch.allclose(out.float(), expected, atol=TOL[dtype] * scale, rtol=TOL[dtype])


def test_linear_attention_matches_lightning_cascade():
    n, d = 32, 16
    q, k, v = qkv(1, 1, n, d, torch.float32, seed=2, scale=0.5)
    cascade = ec.load_library("lightning_attention")
    av = cascade.evaluate(_cascade_inputs(q, k, v), {"M0": 16, "P0": 16, "G": 1.0})["AV"]
    out = linear_attention_causal(q, k, v, tiles=SMALL_TILES["linear_attention_causal"])
    np.testing.assert_allclose(out[0, 0].numpy(), av.T, atol=1e-4, rtol=1e-4)


def test_linear_attention_hand_example():
    # N = 2, D = 16 with one-hot rows: out[0] = (q0.k0) v0, out[1] = (q1.k0) v0 + (q1.k1) v1.
    q = torch.zeros(1, 1, 2, 16)
    k, v = torch.zeros_like(q), torch.zeros_like(q)
    q[0, 0, 0, 0], q[0, 0, 1, 0], q[0, 0, 1, 1] = 2.0, 1.0, 3.0
    k[0, 0, 0, 0], k[0, 0, 1, 1] = 1.0, 1.0
    v[0, 0, 0, 5], v[0, 0, 1, 6] = 1.0, 1.0
    out = linear_attention_causal(q, k, v, tiles=SMALL_TILES["linear_attention_causal"])[0, 0]
    assert out[0, 5] == 2.0 and out[0, 6] == 0.0
    assert out[1, 5] == 1.0 and out[1, 6] == 3.0


def test_bad_inputs_name_the_tensor():
    q, k, v = qkv(1, 1, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="k: expected 4 dims"):
        attention_1pass(q, k[0], v)
    with pytest.raises(ValueError, match="one dtype"):
        attention_2pass(q, k.half(), v)
    with pytest.raises(ValueError, match="head_dim must be a power of two"):
        attention_3pass(*qkv(1, 1, 16, 24, torch.float32))
    assert math.isclose(float(attention_1pass(q, k, v, tiles=SMALL_TILES["attention_1pass"]).sum()),
                        float(reference.softmax_attention(q, k, v).sum()), rel_tol=1e-4)


@pytest.mark.parametrize("name", sorted(SOFTMAX))
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_kernels_unequal_tiles_head_dim_128_ragged(name, causal):
    # BLOCK_M = 32 != BLOCK_N = 16, head_dim 128, N = 37 (a multiple of neither): masks and causal bounds.
    q, k, v = qkv(1, 2, 37, 128, torch.float32, seed=4)
    tiles = {"BLOCK_M": 32, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1}
    out = SOFTMAX[name](q, k, v, causal=causal, tiles=tiles)
    assert torch.allclose(out, reference.softmax_attention(q, k, v, causal=causal), atol=1e-4, rtol=1e-4)


def test_incomplete_tile_settings_name_the_missing_one():
    q, k, v = qkv(1, 1, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="tiles for attention_1pass: missing setting 'BLOCK_N'"):
        attention_1pass(q, k, v, tiles={"BLOCK_M": 16})
    with pytest.raises(ValueError, match="tiles for linear_attention_causal: missing setting 'num_warps'"):
        linear_attention_causal(q, k, v, tiles={"BLOCK_N": 16, "BLOCK_E": 16})
    with pytest.raises(ValueError, match="BLOCK_M to be a multiple of BLOCK_N"):
        attention_2pass(q, k, v, causal=True, tiles={"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 1, "num_stages": 1})
