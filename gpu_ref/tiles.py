"""Tile sizes and launch settings of every kernel (pure Python, no torch or triton).

The benchmark records the settings it used next to each measurement, so a performance model
can use the same tile sizes as the kernel that was timed.
"""
from __future__ import annotations

from pathlib import Path

import yaml

# kernel name -> head dim -> launch settings. BLOCK_M: query rows per program;
# BLOCK_N: key columns per inner step (linear attention: the sequence block); BLOCK_E: value
# columns per program; num_warps / num_stages: Triton launch options. The one table of them is
# the kernels' profiles in archsim/configs/gpu-kernels/ (read here as plain YAML: gpu_ref imports
# nothing of the simulator), so the GPU model and the kernels use the same tiles.
PROFILE_DIR = Path(__file__).resolve().parent.parent / "archsim" / "configs" / "gpu-kernels"
PROFILE_OF_KERNEL = {"attention_1pass": "attention_1pass", "attention_2pass": "attention_2pass",
                     "attention_3pass": "attention_3pass", "linear_attention_causal": "linear_attention"}


def _profile_tiles(profile: str) -> dict[int, dict[str, int]]:
    data = yaml.safe_load((PROFILE_DIR / f"{profile}.yaml").read_text())
    return {int(d): {k: int(v) for k, v in t.items()} for d, t in data["tiles"].items()}


TILES: dict[str, dict[int, dict[str, int]]] = {k: _profile_tiles(p) for k, p in PROFILE_OF_KERNEL.items()}

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
