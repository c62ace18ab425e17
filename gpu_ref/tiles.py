"""Tile sizes and launch settings of every kernel (pure Python, no torch or triton).

The benchmark records the settings it used next to each measurement, so a performance model
can use the same tile sizes as the kernel that was timed.
"""
from __future__ import annotations

# kernel name -> head dim -> launch settings. BLOCK_M: query rows per program;
# BLOCK_N: key columns per inner step; num_warps / num_stages: Triton launch options.
TILES: dict[str, dict[int, dict[str, int]]] = {
    "attention_1pass": {
        64: {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
        128: {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3},
    },
    "attention_2pass": {
        64: {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
        128: {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3},
    },
    # scores kernel tile (BLOCK_M x BLOCK_N) and the product-with-V kernel's tile.
    "attention_3pass": {
        64: {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 3},
        128: {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3},
    },
    # BLOCK_N: sequence block (intra-block quadratic part); BLOCK_E: value columns per program.
    "linear_attention_causal": {
        64: {"BLOCK_N": 64, "BLOCK_E": 32, "num_warps": 4, "num_stages": 2},
        128: {"BLOCK_N": 64, "BLOCK_E": 32, "num_warps": 4, "num_stages": 2},
    },
}

# Small tiles for the CPU interpreter (TRITON_INTERPRET=1) and for tiny shapes.
SMALL_TILES: dict[str, dict[str, int]] = {
    "attention_1pass": {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1},
    "attention_2pass": {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1},
    "attention_3pass": {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1},
    "linear_attention_causal": {"BLOCK_N": 16, "BLOCK_E": 16, "num_warps": 1, "num_stages": 1},
}


def tiles_for(kernel: str, head_dim: int) -> dict[str, int]:
    """Launch settings of `kernel` at `head_dim` (the nearest configured head dim at or above it)."""
    if kernel not in TILES:
        raise ValueError(f"unknown kernel {kernel!r}; known: {sorted(TILES)}")
    dims = sorted(TILES[kernel])
    for dim in dims:
        if head_dim <= dim:
            return dict(TILES[kernel][dim])
    return dict(TILES[kernel][dims[-1]])


def softmax_warps(seq_len: int) -> int:
    """Warps of the 3-pass kernel's row-softmax launch: enough threads that a row of seq_len fits in registers."""
    return 4 if seq_len <= 2048 else 8 if seq_len <= 8192 else 16
