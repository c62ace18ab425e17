"""Plain torch references of the kernels' results (float32 math, for tests and accuracy checks)."""
from __future__ import annotations

import math

import torch


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                      sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v over the last two dims, computed in float32."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    if causal:
        n = q.shape[-2]
        keep = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v.float()


def linear_attention_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal linear attention without normalisation: out[p] = sum_{m <= p} (q[p] . k[m]) v[m]."""
    n = q.shape[-2]
    keep = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    s = (q.float() @ k.float().transpose(-1, -2)).masked_fill(~keep, 0.0)
    return s @ v.float()
