"""Causal linear attention, Lightning-Attention style (no softmax, no normalisation).

out[p] = sum_{m <= p} (q[p] . k[m]) v[m]. The sequence is cut into BLOCK_N blocks; inside a
block the quadratic form (q k^T masked to m <= p) v is used, and across blocks a running
state KV = sum over earlier blocks of k^T v (head_dim x head_dim, fp32 in registers) gives
q KV. One program walks the blocks of one (batch, head) in order for BLOCK_E value columns.
Matches the library cascade `lightning_attention` (linear cost in the sequence length).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpu_ref.common import check_qkv, dot_precision, launch_tiles
from gpu_ref.tile_helpers import head_base


@triton.jit
def _lightning_kernel(Q, K, V, O, heads, seq_len,
                      s_b, s_h, s_n, s_d,
                      HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr,
                      PRECISION: tl.constexpr):
    pid_bh = tl.program_id(0)
    pid_e = tl.program_id(1)
    base = head_base(pid_bh, heads, s_b, s_h)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_e = pid_e * BLOCK_E + tl.arange(0, BLOCK_E)
    state = tl.zeros([HEAD_DIM, BLOCK_E], dtype=tl.float32)  # sum over earlier blocks of k^T v
    for start in range(0, seq_len, BLOCK_N):
        rows = start + offs_n
        inside = rows < seq_len
        q = tl.load(Q + base + rows[:, None] * s_n + offs_d[None, :] * s_d, mask=inside[:, None], other=0.0)
        k_t = tl.load(K + base + offs_d[:, None] * s_d + rows[None, :] * s_n, mask=inside[None, :], other=0.0)
        v = tl.load(V + base + rows[:, None] * s_n + offs_e[None, :] * s_d, mask=inside[:, None], other=0.0)
        s = tl.dot(q, k_t, input_precision=PRECISION)
        s = tl.where(offs_n[None, :] <= offs_n[:, None], s, 0.0)
        out = tl.dot(s.to(v.dtype), v, input_precision=PRECISION)
        out += tl.dot(q, state.to(q.dtype), input_precision=PRECISION)
        state += tl.dot(k_t, v, input_precision=PRECISION)
        tl.store(O + base + rows[:, None] * s_n + offs_e[None, :] * s_d, out.to(O.dtype.element_ty),
                 mask=inside[:, None])


def linear_attention_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            tiles: dict[str, int] | None = None) -> torch.Tensor:
    """Causal linear attention of (batch, heads, seq_len, head_dim) tensors: out[p] = sum_{m<=p} (q[p].k[m]) v[m]."""
    batch, heads, seq_len, head_dim = check_qkv(q, k, v)
    t = launch_tiles("linear_attention_causal", head_dim, tiles)
    block_e = min(t["BLOCK_E"], head_dim)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    grid = (batch * heads, triton.cdiv(head_dim, block_e))
    _lightning_kernel[grid](q, k, v, out, heads, seq_len,
                            q.stride(0), q.stride(1), q.stride(2), q.stride(3),
                            HEAD_DIM=head_dim, BLOCK_N=t["BLOCK_N"], BLOCK_E=block_e,
                            PRECISION=dot_precision(q.dtype),
                            num_warps=t["num_warps"], num_stages=t["num_stages"])
    return out
