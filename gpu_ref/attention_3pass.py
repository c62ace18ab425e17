"""Softmax attention in three passes: scores to GPU memory, a row softmax, the product with V.

Kernel 1 writes the scaled scores S = q k^T * scale (in the input dtype) to GPU memory; for
causal attention it skips tiles wholly above the diagonal. Kernel 2 loads one whole row of S
per program and makes its three passes on chip (row max, sum of exponentials, division),
writing the probabilities P over S in place. Kernel 3 computes P v. Matches the library
cascade `attention_3pass` with QK and A spilled to memory between the passes.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpu_ref.common import check_qkv, default_scale, kernel_meta, launch_tiles
from gpu_ref.tile_helpers import head_base, load_rows, query_block, store_rows
from gpu_ref.tiles import softmax_warps


@triton.jit
def _scores_kernel(Q, K, S, heads, seq_len, sm_scale,
                   s_b, s_h, s_n, s_d, ss_bh, ss_row,
                   CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_bh = tl.program_id(2)
    # Causal: a tile whose first key is after its last query holds no score.
    if (not CAUSAL) or (pid_n * BLOCK_N <= pid_m * BLOCK_M + BLOCK_M - 1):
        base = head_base(pid_bh, heads, s_b, s_h)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        q = load_rows(Q, base, offs_m, offs_d, seq_len, s_n, s_d)
        k = tl.load(K + base + offs_d[:, None] * s_d + offs_n[None, :] * s_n,
                    mask=offs_n[None, :] < seq_len, other=0.0)
        s = tl.dot(q, k, input_precision=PRECISION) * sm_scale
        keep = (offs_m[:, None] < seq_len) & (offs_n[None, :] < seq_len)
        tl.store(S + pid_bh.to(tl.int64) * ss_bh + offs_m[:, None] * ss_row + offs_n[None, :],
                 s.to(S.dtype.element_ty), mask=keep)


@triton.jit
def _row_softmax_kernel(S, seq_len, ss_row, CAUSAL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # over batch * heads * seq_len rows
    query = row % seq_len
    cols = tl.arange(0, BLOCK)
    if CAUSAL:
        valid = cols <= query
    else:
        valid = cols < seq_len
    ptrs = S + row.to(tl.int64) * ss_row + cols
    x = tl.load(ptrs, mask=valid, other=float("-inf")).to(tl.float32) * 1.4426950408889634
    x_max = tl.max(x, 0)                     # pass 1: row max
    e = tl.exp2(x - x_max)
    denominator = tl.sum(e, 0)               # pass 2: sum of exponentials
    tl.store(ptrs, (e / denominator).to(S.dtype.element_ty), mask=valid)  # pass 3: divide


@triton.jit
def _probs_v_kernel(P, V, O, heads, seq_len,
                    s_b, s_h, s_n, s_d, ss_bh, ss_row,
                    CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid_m, pid_bh, base, offs_m, offs_n, offs_d = query_block(heads, s_b, s_h, BLOCK_M, BLOCK_N, HEAD_DIM)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        hi = tl.minimum((pid_m + 1) * BLOCK_M, seq_len)
    else:
        hi = seq_len
    p_rows = P + pid_bh.to(tl.int64) * ss_bh + offs_m[:, None] * ss_row
    for start in range(0, hi, BLOCK_N):
        cols = start + offs_n
        keep = (offs_m[:, None] < seq_len) & (cols[None, :] < seq_len)
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        p = tl.load(p_rows + cols[None, :], mask=keep, other=0.0)
        v = load_rows(V, base, cols, offs_d, seq_len, s_n, s_d)
        acc += tl.dot(p, v, input_precision=PRECISION)
    store_rows(O, base, offs_m, offs_d, seq_len, s_n, s_d, acc)


def scores_bytes(batch: int, heads: int, seq_len: int, element_bytes: int) -> int:
    """GPU memory the 3-pass kernel needs for its score matrix, in bytes."""
    return batch * heads * seq_len * seq_len * element_bytes


def attention_3pass(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    sm_scale: float | None = None, tiles: dict[str, int] | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v for (batch, heads, seq_len, head_dim) tensors, scores stored in memory."""
    batch, heads, seq_len, head_dim = check_qkv(q, k, v)
    t = launch_tiles("attention_3pass", head_dim, tiles)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    scores = torch.empty(batch * heads, seq_len, seq_len, dtype=q.dtype, device=q.device)
    out = torch.empty_like(q)
    strides = (q.stride(0), q.stride(1), q.stride(2), q.stride(3), scores.stride(0), scores.stride(1))
    meta = kernel_meta(t, causal, head_dim, q.dtype)
    grid = (triton.cdiv(seq_len, t["BLOCK_M"]), triton.cdiv(seq_len, t["BLOCK_N"]), batch * heads)
    _scores_kernel[grid](q, k, scores, heads, seq_len, default_scale(head_dim, sm_scale), *strides, **meta)
    _row_softmax_kernel[(batch * heads * seq_len,)](
        scores, seq_len, scores.stride(1), CAUSAL=causal, BLOCK=triton.next_power_of_2(seq_len),
        num_warps=softmax_warps(seq_len))
    grid = (triton.cdiv(seq_len, t["BLOCK_M"]), batch * heads)
    _probs_v_kernel[grid](scores, v, out, heads, seq_len, *strides, **meta)
    return out
