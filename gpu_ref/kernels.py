"""The benchmarked kernels by name, each called as fn(q, k, v, causal) on (batch, heads, seq_len, head_dim).

`torch_sdpa_flash` is the baseline: torch's scaled_dot_product_attention restricted to its
flash backend. `linear_attention_causal` exists only for causal attention.
"""
from __future__ import annotations

from typing import Callable

import torch

from gpu_ref.attention_1pass import attention_1pass
from gpu_ref.attention_2pass import attention_2pass
from gpu_ref.attention_3pass import attention_3pass
from gpu_ref.linear_attention import linear_attention_causal

KernelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]

SOFTMAX_KERNELS = ("attention_3pass", "attention_2pass", "attention_1pass")
BASELINE = "torch_sdpa_flash"
LINEAR_KERNEL = "linear_attention_causal"
ALL_KERNELS = SOFTMAX_KERNELS + (LINEAR_KERNEL, BASELINE)


def torch_sdpa_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention with only the flash backend allowed."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    if not causal:
        raise ValueError(f"{LINEAR_KERNEL} is causal only")
    return linear_attention_causal(q, k, v)


KERNELS: dict[str, KernelFn] = {
    "attention_3pass": lambda q, k, v, causal: attention_3pass(q, k, v, causal=causal),
    "attention_2pass": lambda q, k, v, causal: attention_2pass(q, k, v, causal=causal),
    "attention_1pass": lambda q, k, v, causal: attention_1pass(q, k, v, causal=causal),
    LINEAR_KERNEL: _linear,
    BASELINE: torch_sdpa_flash,
}


def supports(kernel: str, causal: bool) -> bool:
    """Whether `kernel` runs in this causal setting."""
    return causal or kernel != LINEAR_KERNEL
