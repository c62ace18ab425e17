"""Input checks and small helpers shared by the kernel wrappers (needs torch)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gpu_ref.tiles import TILES, tiles_for

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * LOG2E)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int]:
    """Validate q, k, v of shape (batch, heads, seq_len, head_dim); return those four sizes."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name}: expected 4 dims (batch, heads, seq_len, head_dim), got shape {tuple(t.shape)}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} not supported; use one of {SUPPORTED_DTYPES}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must have one shape; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must have one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k, v must be on one device")
    batch, heads, seq_len, head_dim = q.shape
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"head_dim must be a power of two >= 16, got {head_dim}")
    return batch, heads, seq_len, head_dim


def default_scale(head_dim: int, sm_scale: float | None) -> float:
    """The softmax scale: 1/sqrt(head_dim) unless given."""
    return 1.0 / math.sqrt(head_dim) if sm_scale is None else float(sm_scale)


def dot_precision(dtype: torch.dtype) -> str:
    """`input_precision` for tl.dot: exact fp32 products for fp32 inputs, tensor-core default otherwise."""
    return "ieee" if dtype == torch.float32 else "tf32"


def launch_tiles(kernel: str, head_dim: int, tiles: dict[str, int] | None, causal_multiple: bool = False
                 ) -> dict[str, int]:
    """The launch settings of `kernel`: `tiles` if given (checked to have every setting), else the defaults.

    causal_multiple: the kernel walks causal key tiles from a query tile's first row, so
    BLOCK_M must be a multiple of BLOCK_N. Raises ValueError naming the missing or bad setting.
    """
    if not tiles:
        t = tiles_for(kernel, head_dim)
    else:
        t = dict(tiles)
        needed = TILES[kernel][min(TILES[kernel])]
        missing = [name for name in needed if name not in t]
        if missing:
            raise ValueError(f"tiles for {kernel}: missing setting {missing[0]!r} (needs {', '.join(needed)})")
    if causal_multiple and t["BLOCK_M"] % t["BLOCK_N"]:
        raise ValueError(f"causal {kernel} needs BLOCK_M to be a multiple of BLOCK_N; "
                         f"got BLOCK_M={t['BLOCK_M']}, BLOCK_N={t['BLOCK_N']}")
    return t


def kernel_meta(tiles: dict[str, int], causal: bool, head_dim: int, dtype: torch.dtype) -> dict:
    """Compile-time arguments and launch settings shared by the query-block attention kernels."""
    return dict(CAUSAL=causal, HEAD_DIM=head_dim, BLOCK_M=tiles["BLOCK_M"], BLOCK_N=tiles["BLOCK_N"],
                PRECISION=dot_precision(dtype), num_warps=tiles["num_warps"], num_stages=tiles["num_stages"])


@dataclass(frozen=True)
class QueryBlockLaunch:
    """A launch of query-block attention kernels: contiguous q, k, v, the output, the sizes, the grid
    (query blocks x (batch, head) pairs), the exp2 score scale, q's strides and the compile-time arguments."""
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor
    batch: int
    heads: int
    seq_len: int
    grid: tuple[int, int]
    qk_scale: float
    strides: tuple[int, int, int, int]
    meta: dict


def query_block_launch(kernel: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                       sm_scale: float | None, tiles: dict[str, int] | None) -> QueryBlockLaunch:
    """The checked inputs and launch settings of `kernel` (a softmax-attention kernel over query blocks)."""
    batch, heads, seq_len, head_dim = check_qkv(q, k, v)
    t = launch_tiles(kernel, head_dim, tiles, causal_multiple=causal)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    return QueryBlockLaunch(q, k, v, torch.empty_like(q), batch, heads, seq_len,
                            (-(-seq_len // t["BLOCK_M"]), batch * heads), default_scale(head_dim, sm_scale) * LOG2E,
                            (q.stride(0), q.stride(1), q.stride(2), q.stride(3)),
                            kernel_meta(t, causal, head_dim, q.dtype))
