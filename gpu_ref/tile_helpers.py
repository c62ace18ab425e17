"""Triton helpers shared by the attention kernels: where a head starts, row tiles, key ranges.

Tensors are (batch, heads, seq_len, head_dim) with strides s_b, s_h, s_n, s_d (elements).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def head_base(pid_bh, heads, s_b, s_h):
    """Offset (elements) of head `pid_bh % heads` of batch `pid_bh // heads`."""
    return (pid_bh // heads) * s_b + (pid_bh % heads) * s_h


@triton.jit
def load_rows(ptr, base, rows, offs_d, seq_len, s_n, s_d):
    """A [len(rows), len(offs_d)] tile of one head; rows past seq_len read as 0."""
    return tl.load(ptr + base + rows[:, None] * s_n + offs_d[None, :] * s_d,
                   mask=rows[:, None] < seq_len, other=0.0)


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
