"""Triton kernels generated from any cascade (`generate`), FlashAttention's loop structure.

`generate(cascade, rank="M", block_m=64, block_n=64, dtype="fp32", kv_heads=None)` returns a
`GeneratedKernel` whose `source` is a standalone module (its `run(**inputs, **sizes)` launches
the kernels on torch tensors); `KernelRefusal` names the Einsum it cannot compile and why.
Generating needs neither torch nor triton; running the module needs both.
"""
from __future__ import annotations

from gpu_ref.codegen.generate import GeneratedKernel, KernelInfo, generate
from gpu_ref.codegen.refusal import KernelRefusal

__all__ = ["GeneratedKernel", "KernelInfo", "KernelRefusal", "generate"]
