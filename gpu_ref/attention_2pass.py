"""Softmax attention in two passes over the keys.

Pass 1 (one kernel) streams the keys and finds each row's max and softmax denominator with a
running rescale, storing only those two numbers per row (scores are not stored). Pass 2
(a second kernel) recomputes the scores, normalises them with the stored max and denominator
and accumulates the product with V. Matches the library cascade `attention_2pass`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpu_ref.common import query_block_launch
from gpu_ref.tile_helpers import (key_range, load_key_rows, load_rows, online_softmax_start, query_block,
                                  score_tile, store_rows)


@triton.jit
def _update_row_stats(m_i, l_i, s):
    """Running row max m_i and denominator l_i (log2 domain) after one more tile of scores s."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(s - m_new[:, None]), 1)
    return m_new, l_i


@triton.jit
def _row_stats_kernel(Q, K, ROW_MAX, ROW_SUM, heads, seq_len, qk_scale, s_b, s_h, s_n, s_d, CAUSAL: tl.constexpr,
                      HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid_m, pid_bh, base, offs_m, offs_n, offs_d, q, m_i, l_i = online_softmax_start(
        Q, heads, seq_len, s_b, s_h, s_n, s_d, BLOCK_M, BLOCK_N, HEAD_DIM)
    lo, hi = key_range(pid_m, seq_len, CAUSAL, BLOCK_M, BLOCK_N)
    for start in range(0, lo, BLOCK_N):
        s = score_tile(q, K, base, offs_m, start + offs_n, offs_d, seq_len, s_n, s_d, qk_scale,
                       False, CAUSAL, PRECISION)
        m_i, l_i = _update_row_stats(m_i, l_i, s)
    for start in range(lo, hi, BLOCK_N):
        s = score_tile(q, K, base, offs_m, start + offs_n, offs_d, seq_len, s_n, s_d, qk_scale,
                       True, CAUSAL, PRECISION)
        m_i, l_i = _update_row_stats(m_i, l_i, s)
    row = pid_bh * seq_len + offs_m
    tl.store(ROW_MAX + row, m_i, mask=offs_m < seq_len)
    tl.store(ROW_SUM + row, l_i, mask=offs_m < seq_len)


@triton.jit
def _add_normalised_av(acc, q, K, V, base, offs_m, cols, offs_d, seq_len, s_n, s_d, qk_scale, m_i, inv_l,
                       MASKED: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    """acc + softmax probabilities of one key tile (from the stored row max and 1 / row sum) times V."""
    s = score_tile(q, K, base, offs_m, cols, offs_d, seq_len, s_n, s_d, qk_scale, MASKED, CAUSAL, PRECISION)
    v = load_key_rows(V, base, cols, offs_d, seq_len, s_n, s_d, MASKED)
    return acc + tl.dot((tl.exp2(s - m_i[:, None]) * inv_l[:, None]).to(v.dtype), v, input_precision=PRECISION)


@triton.jit
def _normalised_av_kernel(Q, K, V, O, ROW_MAX, ROW_SUM, heads, seq_len, qk_scale,
                          s_b, s_h, s_n, s_d,
                          CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid_m, pid_bh, base, offs_m, offs_n, offs_d = query_block(heads, s_b, s_h, BLOCK_M, BLOCK_N, HEAD_DIM)
    q = load_rows(Q, base, offs_m, offs_d, seq_len, s_n, s_d)
    row = pid_bh * seq_len + offs_m
    m_i = tl.load(ROW_MAX + row, mask=offs_m < seq_len, other=0.0)
    inv_l = 1.0 / tl.load(ROW_SUM + row, mask=offs_m < seq_len, other=1.0)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    lo, hi = key_range(pid_m, seq_len, CAUSAL, BLOCK_M, BLOCK_N)
    for start in range(0, lo, BLOCK_N):
        acc = _add_normalised_av(acc, q, K, V, base, offs_m, start + offs_n, offs_d, seq_len, s_n, s_d,
                                 qk_scale, m_i, inv_l, False, CAUSAL, PRECISION)
    for start in range(lo, hi, BLOCK_N):
        acc = _add_normalised_av(acc, q, K, V, base, offs_m, start + offs_n, offs_d, seq_len, s_n, s_d,
                                 qk_scale, m_i, inv_l, True, CAUSAL, PRECISION)
    store_rows(O, base, offs_m, offs_d, seq_len, s_n, s_d, acc)


def attention_2pass(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    sm_scale: float | None = None, tiles: dict[str, int] | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v for (batch, heads, seq_len, head_dim) tensors, two passes over the keys."""
    run = query_block_launch("attention_2pass", q, k, v, causal, sm_scale, tiles)
    row_max = torch.empty(run.batch * run.heads * run.seq_len, dtype=torch.float32, device=run.q.device)
    row_sum = torch.empty_like(row_max)
    _row_stats_kernel[run.grid](run.q, run.k, row_max, row_sum, run.heads, run.seq_len, run.qk_scale, *run.strides,
                                **run.meta)
    _normalised_av_kernel[run.grid](run.q, run.k, run.v, run.out, row_max, row_sum, run.heads, run.seq_len,
                                    run.qk_scale, *run.strides, **run.meta)
    return run.out
