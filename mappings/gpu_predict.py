"""Predicted time of one attention-family kernel call on one GPU: the public entry point.

    predict(gpu, kernel, shape, dtype="bf16") -> Prediction

`gpu` is a GPU name (`a100`, `h100-sxm`, `h200`, `b200`, `rtx-4090`, `mi300x`, ...), a YAML path
or a `GPUSpec`; `kernel` a kernel-profile name (`flash2`, `flash3`, `flash-decoding`,
`fla-chunk-gdn`, `mamba2-ssd-triton`, ...), a path or a `KernelProfile`; `shape` an
`AttentionShape` (mappings/gpu_kernels.py). `flops` follows the published convention for the
family: 4 * B * H * P * M * D for softmax attention (halved when causal with P = M; D the mean
of the key and value head dims), the tensor-core FLOPs the mapped programs compute otherwise.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from archsim.gpu.model import Efficiency, KernelLaunch, LaunchTime, launches_time, rates
from archsim.gpu.profiles import KernelProfile, load_profile
from archsim.gpu.specs import ELEMENT_BYTES, GPUConfigError, GPUSpec, load_gpu, normalise_dtype
from mappings.gpu_kernels import AttentionShape, Work, kernel_launches, launch_settings


@dataclass(frozen=True)
class Prediction:
    """Predicted seconds of one forward call, its TFLOP/s (convention above) and its bound."""

    gpu: str
    kernel: str
    dtype: str
    shape: AttentionShape
    time_s: float
    tflops: float
    bound: str              # compute | exp | memory | serial | launch
    flops: float            # the family's FLOP convention (module docstring)
    flops_model: float      # tensor-core FLOPs the mapped programs compute
    hbm_bytes: float        # bytes the launches move to and from HBM
    instruction: str        # tensor instruction family used on this GPU
    launches: tuple[LaunchTime, ...]

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        s = self.shape
        return {"gpu": self.gpu, "kernel": self.kernel, "dtype": self.dtype, "instruction": self.instruction,
                "batch": s.batch, "heads": s.heads, "kv_heads": s.hkv, "seq_len_q": s.q_len, "seq_len_kv": s.kv_len,
                "head_dim": s.head_dim, "head_dim_v": s.dv, "causal": s.causal, "window": s.window,
                "page_size": s.page_size, "time_s": self.time_s, "tflops": self.tflops, "bound": self.bound,
                "flops": self.flops, "flops_model": self.flops_model, "hbm_bytes": self.hbm_bytes,
                "launches": [{"name": t.name, "total_s": t.total_s, "compute_s": t.compute_s,
                              "memory_s": t.memory_s, "launch_s": t.launch_s, "bound": t.bound}
                             for t in self.launches]}


def attention_flops(shape: AttentionShape) -> float:
    """4 * B * H * P * M * D, halved when causal with P = M (FLOPs); D the mean of the key and value dims."""
    d = (shape.head_dim + shape.dv) / 2.0
    flops = 4.0 * shape.batch * shape.heads * shape.q_len * shape.kv_len * d
    return flops / 2 if shape.causal and shape.q_len == shape.kv_len else flops


def efficiency(profile: KernelProfile) -> Efficiency:
    """The profile's parameters (the same on every GPU)."""
    p = profile.parameters
    return Efficiency(p.issue_efficiency, p.exp_overlap, p.prologue_steps, p.step_latency_s, p.launch_s,
                      p.memory_efficiency)


def launches_for(gpu: GPUSpec, profile: KernelProfile, shape: AttentionShape, dtype: str,
                 tiles: dict[str, int] | None = None, per_point: Work | None = None) -> list[KernelLaunch]:
    """The kernel launches of one call (work from the cascade or the profile, tiles from the profile)."""
    shape = replace(shape, element_bytes=ELEMENT_BYTES[dtype])
    with _kernel_named(profile):
        return kernel_launches(gpu, profile, shape, tiles, per_point)


def launch_choices(gpu: GPUSpec, profile: KernelProfile, shape: AttentionShape, dtype: str,
                   tiles: dict[str, int] | None = None, per_point: Work | None = None) -> list[list[KernelLaunch]]:
    """The launches of one call under each launch setting it may run with (gpu_kernels.launch_settings)."""
    with _kernel_named(profile):
        settings = launch_settings(profile, shape, tiles)
    return [launches_for(gpu, profile, shape, dtype, t, per_point) for t in settings]


@contextmanager
def _kernel_named(profile: KernelProfile) -> Iterator[None]:
    """A shape the kernel cannot run (ValueError) as a GPUConfigError naming the kernel."""
    try:
        yield
    except ValueError as err:
        raise GPUConfigError(f"--kernel {profile.name}: {err}") from None


def fastest(rate, eff: Efficiency, choices: list[list[KernelLaunch]]) -> tuple[float, str, list[LaunchTime], list[KernelLaunch]]:
    """(seconds, bound, launch times, launches) of the fastest of `choices` (the first on a tie)."""
    best = None
    for launches in choices:
        total, bound, times = launches_time(rate, eff, launches)
        if best is None or total < best[0]:
            best = (total, bound, times, launches)
    return best


def check_shape(shape: AttentionShape) -> None:
    """GPUConfigError (one line) for a shape field that is not a positive integer or is inconsistent."""
    for name in ("batch", "heads", "seq_len", "head_dim"):
        value = getattr(shape, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GPUConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in ("kv_heads", "seq_len_kv", "head_dim_v", "window", "page_size", "state_writes"):
        value = getattr(shape, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (0 if name in ("window", "state_writes") else 1)):
            raise GPUConfigError(f"{name} must be a positive integer, got {value!r}")
    if shape.heads % shape.hkv:
        raise GPUConfigError(f"heads ({shape.heads}) must be a multiple of kv_heads ({shape.hkv})")
    if not (0 < shape.density <= 1) or not math.isfinite(shape.density):
        raise GPUConfigError(f"density must be in (0, 1], got {shape.density!r}")


def predict(gpu: str | Path | GPUSpec, kernel: str | Path | KernelProfile, shape: AttentionShape,
            dtype: str = "bf16", clock_hz: float | None = None, tiles: dict[str, int] | None = None,
            per_point: Work | None = None) -> Prediction:
    """Predicted forward time of `kernel` on `gpu` at `shape` and `dtype` (see the module docstring).

    Raises GPUConfigError (one line: the unknown name, bad file and field, or a kernel that
    cannot run the shape or the GPU, e.g. FlashAttention-3 on an A100). `per_point`: a cascade's
    own work per score point (mappings/targets/gpu.py) instead of the library cascade's.
    """
    spec = gpu if isinstance(gpu, GPUSpec) else load_gpu(gpu)
    profile = kernel if isinstance(kernel, KernelProfile) else load_profile(kernel)
    dtype = normalise_dtype(dtype)
    if clock_hz is not None and not (isinstance(clock_hz, (int, float)) and 0 < clock_hz < float("inf")):
        raise GPUConfigError(f"--clock-mhz must be a positive finite number, got {clock_hz!r}")
    check_shape(shape)
    mma_dtype = profile.compute_dtype or dtype
    instruction = profile.instruction_on(spec, mma_dtype)
    choices = launch_choices(spec, profile, shape, dtype, tiles, per_point)
    total, bound, times, launches = fastest(rates(spec, instruction, mma_dtype, clock_hz), efficiency(profile), choices)
    model_flops = float(sum(float(l.tensor_flops.sum()) for l in launches))
    flops = attention_flops(shape) if profile.family in ("softmax", "split-kv") else model_flops
    if not (math.isfinite(total) and total > 0):
        raise GPUConfigError(f"--kernel {profile.name}: the model gave a non-finite or non-positive time ({total!r})")
    return Prediction(spec.name, profile.name, dtype, shape, total, flops / total / 1e12, bound, flops, model_flops,
                      float(sum(l.hbm_bytes for l in launches)), instruction, tuple(times))
