"""A matrix product on a GPU: a tiled tensor-core GEMM, timed by archsim/gpu/model.py.

One program per 128 x 128 tile of outputs (edge tiles smaller), each running its tile's
2 x rows x cols x reduction FLOPs on the best tensor instruction family the GPU has for the dtype;
HBM traffic is compulsory (both operands read once, the output written once: L2 and shared-memory
tiling are assumed to reach it). No published GEMM row is in the project's data, so the efficiencies
are ASSUMED, not fitted: tensor issue at 75% of the instruction's peak (large bf16 GEMMs of cuBLAS
and CUTLASS are commonly reported at 70-80% of the dense peak on Ampere and Hopper), memory at 85%
of the HBM bandwidth (the value the fitted decode profiles cluster at, archsim/gpu/fitted.yaml), and
5 microseconds of launch and prologue per GEMM.
"""
from __future__ import annotations

import math

import numpy as np

from archsim.gpu.model import Efficiency, KernelLaunch, launches_time, rates
from archsim.gpu.specs import GPUConfigError, GPUSpec

TILE = 128
GEMM_EFFICIENCY = Efficiency(issue_efficiency=0.75, exp_overlap=1.0, prologue_steps=0.0, step_latency_s=0.0,
                             launch_s=5e-6, memory_efficiency=0.85)
DTYPE_BYTES = {"fp8": 1, "fp16": 2, "bf16": 2, "tf32": 4}


def best_instruction(gpu: GPUSpec, dtype: str) -> str:
    """The tensor instruction family with the highest dense rate for `dtype` on `gpu`."""
    rated = [(gpu.tensor_flops_per_s(i, dtype) or 0.0, i) for i in gpu.instructions]
    rate, name = max(rated)
    if rate <= 0:
        raise GPUConfigError(f"{gpu.name}: no tensor instruction for {dtype}")
    return name


def gemm_launch(rows: int, cols: int, red: int, dtype: str, pairs: int = 1) -> KernelLaunch:
    """`pairs` independent (rows x red) times (red x cols) products as one launch of output tiles."""
    edge = [(min(TILE, rows - i), min(TILE, cols - j)) for i in range(0, rows, TILE) for j in range(0, cols, TILE)]
    if len(edge) * pairs > 4_000_000:  # a whole-GPU-sized grid: programs of equal length, merged
        merge = math.ceil(len(edge) * pairs / 4_000_000)
        flops = np.full(math.ceil(len(edge) * pairs / merge), 2.0 * rows * cols * red * pairs / math.ceil(
            len(edge) * pairs / merge))
    else:
        flops = np.tile(np.array([2.0 * r * c * red for r, c in edge]), pairs)
    b = DTYPE_BYTES[dtype]
    hbm = float(pairs) * (rows * red + red * cols + rows * cols) * b
    zeros = np.zeros(len(flops))
    return KernelLaunch("gemm", flops, zeros, zeros, hbm, smem_bytes=2 * TILE * 64 * b, warps=8, resident=1)


def predict_gemm(gpu: GPUSpec, rows: int, cols: int, red: int, dtype: str, pairs: int = 1):
    """(seconds, bound, HBM bytes, instruction) of the GEMM (module docstring)."""
    instruction = best_instruction(gpu, dtype)
    launch = gemm_launch(rows, cols, red, dtype, pairs)
    total, bound, _ = launches_time(rates(gpu, instruction, dtype), GEMM_EFFICIENCY, [launch])
    return total, bound, launch.hbm_bytes, instruction
