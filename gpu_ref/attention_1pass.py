"""Softmax attention in one pass over the keys (online softmax, deferred normalisation).

FlashAttention-2 style: each program owns BLOCK_M query rows and streams the keys in
BLOCK_N-wide tiles, keeping the running row max, the running denominator and the unnormalised
output in registers; it divides by the denominator once at the end. Matches the FuseMax
1-pass cascade `attention_1pass` (RM, RD, RNV are the running max, denominator and numerator).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpu_ref.common import query_block_launch
from gpu_ref.tile_helpers import key_range, load_key_rows, online_softmax_start, score_tile, store_rows


@triton.jit
def _attn_1pass_step(acc, m_i, l_i, q, K, V, base, offs_m, cols, offs_d, seq_len, s_n, s_d, qk_scale,
                     MASKED: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    """One key tile: update running max m_i, denominator l_i and numerator acc (log2 domain)."""
    s = score_tile(q, K, base, offs_m, cols, offs_d, seq_len, s_n, s_d, qk_scale, MASKED, CAUSAL, PRECISION)
    v = load_key_rows(V, base, cols, offs_d, seq_len, s_n, s_d, MASKED)
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, m_new, l_i


@triton.jit
def _attn_1pass_kernel(Q, K, V, O, heads, seq_len, qk_scale, s_b, s_h, s_n, s_d, CAUSAL: tl.constexpr,
                       HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid_m, pid_bh, base, offs_m, offs_n, offs_d, q, m_i, l_i = online_softmax_start(
        Q, heads, seq_len, s_b, s_h, s_n, s_d, BLOCK_M, BLOCK_N, HEAD_DIM)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    lo, hi = key_range(pid_m, seq_len, CAUSAL, BLOCK_M, BLOCK_N)
    for start in range(0, lo, BLOCK_N):
        acc, m_i, l_i = _attn_1pass_step(acc, m_i, l_i, q, K, V, base, offs_m, start + offs_n, offs_d, seq_len,
                                         s_n, s_d, qk_scale, False, CAUSAL, PRECISION)
    for start in range(lo, hi, BLOCK_N):
        acc, m_i, l_i = _attn_1pass_step(acc, m_i, l_i, q, K, V, base, offs_m, start + offs_n, offs_d, seq_len,
                                         s_n, s_d, qk_scale, True, CAUSAL, PRECISION)
    acc = acc / l_i[:, None]
    store_rows(O, base, offs_m, offs_d, seq_len, s_n, s_d, acc)


def attention_1pass(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    sm_scale: float | None = None, tiles: dict[str, int] | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v for (batch, heads, seq_len, head_dim) tensors, one pass over the keys."""
    run = query_block_launch("attention_1pass", q, k, v, causal, sm_scale, tiles)
    _attn_1pass_kernel[run.grid](run.q, run.k, run.v, run.out, run.heads, run.seq_len, run.qk_scale, *run.strides,
                                 **run.meta)
    return run.out
