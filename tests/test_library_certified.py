"""Every library cascade and block simulates on fusemax-cloud and flat-cloud with its certificate
holding (issue 19's "done when"): `simulate` raises InvariantViolation on a broken invariant, so a
point that returns is certified.

The suite runs the blocks and the cascades that no mapping honoured before session 4 (on
flat-cloud at 4K; tests/test_variants.py runs those on fusemax-cloud against hand bounds; the
2-D token grid, 20 s on flat-cloud, is left to the sweep). Every
library cascade at 4K, 16K and 64K on both accelerators (the study's points, about 15 minutes)
runs with CASCADESIM_LIBRARY_SWEEP set to the lengths, e.g. `CASCADESIM_LIBRARY_SWEEP=4K,16K,64K`.
"""
from __future__ import annotations

import os

import pytest

import einsum_cascade as ec
from mappings.simulation import simulate
from studies.cascades_study import cascade_point

ARCHS = ("fusemax-cloud", "flat-cloud")
PES_2D = 256 * 256  # both clouds' 2D array
T = 4096  # tokens
# BERT-base's layer shapes (d_model 768, FFN 3072, vocabulary 30,522); one gated-delta-rule step of
# 64 x 64 heads. Sizes -> the multiply-accumulates of its matrix products (the 2D array's work).
BLOCKS = {
    "embedding": ({"V": 30522, "D": 768, "T": T}, T * 30522 * 768),
    "ffn_fused": ({"D": 768, "N": 3072, "T": T}, T * 768 * 3072),
    "ffn_gelu": ({"D": 768, "H": 3072, "N": 768, "T": T}, 2 * T * 768 * 3072),
    "ffn_relu": ({"D": 768, "H": 3072, "N": 768, "T": T}, 2 * T * 768 * 3072),
    "ffn_scaled": ({"D": 768, "H": 3072, "N": 768, "T": T}, 2 * T * 768 * 3072),
    "gated_delta_rule_step": ({"K": 64, "V": 64}, 3 * 64 * 64),
    "layernorm": ({"D": 768, "T": T}, 0),
    "linear": ({"D": 768, "N": 768, "T": T}, T * 768 * 768),
    "matmul": ({"D": 768, "N": 768, "T": T}, T * 768 * 768),
}
REFUSED_BEFORE = ["attention_1pass", "attention_sliding_window_1pass", "block_sparse_attention", "chunked_attention",
                  "lightning_attention", "minference_vertical_slash_dynamic", "neighborhood_attention_2d"]


def test_blocks_cover_the_library():
    assert set(BLOCKS) == set(ec.block_names())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_block_simulates_certified(name, arch):
    """Each block at BERT's shapes and 4K tokens: certified, and no faster than its matrix products
    on the 256 x 256 2D array (one multiply-accumulate per PE and cycle)."""
    sizes, macs = BLOCKS[name]
    r = simulate(f"blocks/{name}", arch, sizes)
    assert r.cycles >= macs / PES_2D
    assert r.latency_s > 0 and r.dram_bytes > 0


@pytest.mark.parametrize("name", REFUSED_BEFORE)
def test_cascades_refused_before_simulate_certified_on_flat_cloud(name):
    p = cascade_point(name, "flat-cloud", "4K")
    assert p["status"] == "ok", p["reason"]
    assert p["dram_bytes"] >= p["compulsory_bytes"] * (1 - 1e-9)


SWEEP = [n for n in os.environ.get("CASCADESIM_LIBRARY_SWEEP", "").split(",") if n]


@pytest.mark.skipif(not SWEEP, reason="set CASCADESIM_LIBRARY_SWEEP=4K,16K,64K to run every library point")
@pytest.mark.parametrize("length", SWEEP or ["4K"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ec.library_names())
def test_every_library_cascade_simulates_certified(name, arch, length):
    p = cascade_point(name, arch, length)
    assert p["status"] == "ok", p["reason"]
