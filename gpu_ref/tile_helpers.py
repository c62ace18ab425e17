"""Triton helpers shared by the attention kernels: where a head starts, row tiles, key ranges,
score tiles.

Tensors are (batch, heads, seq_len, head_dim) with strides s_b, s_h, s_n, s_d (elements).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def head_base(pid_bh, heads, s_b, s_h):
    """Offset (elements, int64) of head `pid_bh % heads` of batch `pid_bh // heads`.

    int64 so that tensors of more than 2**31 elements address correctly; offsets inside one head
    stay int32 (seq_len * head_dim < 2**31)."""
    pid_bh = pid_bh.to(tl.int64)
    return (pid_bh // heads) * s_b + (pid_bh % heads) * s_h


@triton.jit
def query_block(heads, s_b, s_h, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    """A program of a (query blocks, batch * heads) grid: its block index, its (batch, head) index,
    where that head starts, and the offsets of its query rows, of a key tile and of the head dim."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    return (pid_m, pid_bh, head_base(pid_bh, heads, s_b, s_h), offs_m, tl.arange(0, BLOCK_N),
            tl.arange(0, HEAD_DIM))


@triton.jit
def load_rows(ptr, base, rows, offs_d, seq_len, s_n, s_d):
    """A [len(rows), len(offs_d)] tile of one head; rows past seq_len read as 0."""
    return tl.load(ptr + base + rows[:, None] * s_n + offs_d[None, :] * s_d,
                   mask=rows[:, None] < seq_len, other=0.0)


@triton.jit
def load_key_rows(ptr, base, cols, offs_d, seq_len, s_n, s_d, MASKED: tl.constexpr):
    """A [len(cols), len(offs_d)] tile of keys or values; with MASKED, rows past seq_len read as 0."""
    ptrs = ptr + base + cols[:, None] * s_n + offs_d[None, :] * s_d
    if MASKED:
        tile = tl.load(ptrs, mask=cols[:, None] < seq_len, other=0.0)
    else:
        tile = tl.load(ptrs)
    return tile


@triton.jit
def score_tile(q, K, base, offs_m, cols, offs_d, seq_len, s_n, s_d, qk_scale,
               MASKED: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    """Scores q k^T * qk_scale of query rows offs_m against key tile `cols` (fp32).

    With MASKED, keys past seq_len (and, if CAUSAL, keys after the query) score -inf; without
    it the whole tile must be inside the sequence and visible to every row."""
    k_ptrs = K + base + offs_d[:, None] * s_d + cols[None, :] * s_n
    if MASKED:
        k = tl.load(k_ptrs, mask=cols[None, :] < seq_len, other=0.0)
    else:
        k = tl.load(k_ptrs)
    s = tl.dot(q, k, input_precision=PRECISION) * qk_scale
    if MASKED:
        valid = cols[None, :] < seq_len
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None])
        s = tl.where(valid, s, float("-inf"))
    return s


@triton.jit
def online_softmax_start(Q, heads, seq_len, s_b, s_h, s_n, s_d, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         HEAD_DIM: tl.constexpr):
    """A query-block program's start (query_block's values), its rows of Q, and the running row max
    (-inf) and softmax denominator (0) before the first key tile."""
    pid_m, pid_bh, base, offs_m, offs_n, offs_d = query_block(heads, s_b, s_h, BLOCK_M, BLOCK_N, HEAD_DIM)
    q = load_rows(Q, base, offs_m, offs_d, seq_len, s_n, s_d)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    return pid_m, pid_bh, base, offs_m, offs_n, offs_d, q, m_i, l_i


@triton.jit
def store_rows(ptr, base, rows, offs_d, seq_len, s_n, s_d, value):
    """Store a [len(rows), len(offs_d)] tile (cast to the output type); rows past seq_len skipped."""
    tl.store(ptr + base + rows[:, None] * s_n + offs_d[None, :] * s_d, value.to(ptr.dtype.element_ty),
             mask=rows[:, None] < seq_len)


@triton.jit
def key_range(pid_m, seq_len, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Key tiles [0, lo) need no mask; [lo, hi) hold the diagonal (causal) or the ragged end."""
    if CAUSAL:
        lo = pid_m * BLOCK_M
        hi = tl.minimum((pid_m + 1) * BLOCK_M, seq_len)
    else:
        lo = (seq_len // BLOCK_N) * BLOCK_N
        hi = seq_len
    return lo, hi
