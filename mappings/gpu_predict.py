"""Predicted forward time of one attention call on one GPU: the public entry point.

    predict(gpu, kernel, shape, dtype="bf16") -> Prediction

`gpu` is a GPU name (`a100`, `h100-sxm`, `h100-pcie`, `h200`, `h20`, `b200`), a YAML path or a
`GPUSpec`; `kernel` a kernel-profile name (`flash2`, `flash3`, `triton-tutorial`, `lightning2`,
`attention_1pass`, ...), a path or a `KernelProfile`; `shape` an `AttentionShape` (batch, heads,
seq_len, head_dim, causal). The FLOP convention of `tflops` is 4 * B * H * N^2 * D, halved when
causal (the convention of the published benchmarks), whatever the kernel does; `flops_model` is
what the mapped programs actually compute (whole diagonal tiles, linear attention's own work).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from archsim.gpu_model import Efficiency, KernelLaunch, LaunchTime, Rates, launches_time
from archsim.gpu_specs import (ELEMENT_BYTES, GPUConfigError, GPUSpec, KernelProfile, load_gpu, load_profile,
                               normalise_dtype)
from mappings.gpu_mapping import AttentionShape, kernel_launches


# Library cascade -> the gpu_ref kernel profile that implements it (for callers that start from a cascade).
PROFILE_FOR_CASCADE = {"attention_1pass": "attention_1pass", "attention_2pass": "attention_2pass",
                       "attention_3pass": "attention_3pass", "lightning_attention": "linear_attention"}


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
    flops: float            # 4 B H N^2 D, halved when causal
    flops_model: float      # tensor-core FLOPs the mapped programs compute
    hbm_bytes: float        # bytes the launches move to and from HBM
    launches: tuple[LaunchTime, ...]

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return {"gpu": self.gpu, "kernel": self.kernel, "dtype": self.dtype,
                "batch": self.shape.batch, "heads": self.shape.heads, "seq_len": self.shape.seq_len,
                "head_dim": self.shape.head_dim, "causal": self.shape.causal, "time_s": self.time_s,
                "tflops": self.tflops, "flop_convention": "4*B*H*N^2*D, halved when causal",
                "bound": self.bound, "flops": self.flops, "flops_model": self.flops_model,
                "hbm_bytes": self.hbm_bytes,
                "launches": [{"name": t.name, "total_s": t.total_s, "compute_s": t.compute_s,
                              "memory_s": t.memory_s, "launch_s": t.launch_s, "bound": t.bound}
                             for t in self.launches]}


def attention_flops(shape: AttentionShape) -> float:
    """4 * B * H * N^2 * D, halved when causal (FLOPs)."""
    flops = 4.0 * shape.batch * shape.heads * shape.seq_len ** 2 * shape.head_dim
    return flops / 2 if shape.causal else flops


def rates(gpu: GPUSpec, dtype: str, clock_hz: float | None = None) -> Rates:
    """The GPU's peaks for `dtype`, scaled to `clock_hz` when given (HBM bandwidth is not)."""
    scale = 1.0 if clock_hz is None else clock_hz / gpu.clock_hz
    return Rates(gpu.sms, gpu.tensor_rate(dtype) * scale, gpu.exp_per_s * scale, gpu.alu_ops_per_s * scale,
                 gpu.hbm_bytes_per_s)


def efficiency(profile: KernelProfile, gpu: GPUSpec) -> Efficiency:
    """The profile's parameters for this GPU's architecture."""
    p = profile.parameters
    arch = gpu.architecture
    return Efficiency(profile.mma_efficiency(arch), profile.parameter("exp_overlap", arch), p.prologue_steps,
                      p.step_latency_s, p.launch_s, p.memory_efficiency)


def launches_for(gpu: GPUSpec, profile: KernelProfile, shape: AttentionShape, dtype: str,
                 tiles: dict[str, int] | None = None) -> list[KernelLaunch]:
    """The kernel launches of one call (work from the cascade, tiles from the profile)."""
    shape = replace(shape, element_bytes=ELEMENT_BYTES[dtype])
    try:
        return kernel_launches(gpu, profile, shape, tiles)
    except ValueError as err:
        raise GPUConfigError(f"--kernel {profile.name}: {err}") from None


def predict(gpu: str | Path | GPUSpec, kernel: str | Path | KernelProfile, shape: AttentionShape,
            dtype: str = "bf16", clock_hz: float | None = None, tiles: dict[str, int] | None = None) -> Prediction:
    """Predicted forward time of `kernel` on `gpu` at `shape` and `dtype` (see the module docstring).

    Raises GPUConfigError (one line: the unknown name, bad file and field, or a kernel that
    cannot run the shape, e.g. linear attention without a causal mask).
    """
    spec = gpu if isinstance(gpu, GPUSpec) else load_gpu(gpu)
    profile = kernel if isinstance(kernel, KernelProfile) else load_profile(kernel)
    dtype = normalise_dtype(dtype)
    if clock_hz is not None and not (isinstance(clock_hz, (int, float)) and 0 < clock_hz < float("inf")):
        raise GPUConfigError(f"--clock-mhz must be a positive finite number, got {clock_hz!r}")
    for name in ("batch", "heads", "seq_len", "head_dim"):
        value = getattr(shape, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GPUConfigError(f"{name} must be a positive integer, got {value!r}")
    launches = launches_for(spec, profile, shape, dtype, tiles)
    mma_dtype = profile.compute_dtype or dtype
    total, bound, times = launches_time(rates(spec, mma_dtype, clock_hz), efficiency(profile, spec), launches)
    flops = attention_flops(shape)
    return Prediction(spec.name, profile.name, dtype, shape, total, flops / total / 1e12, bound, flops,
                      float(sum(float(l.tensor_flops.sum()) for l in launches)),
                      float(sum(l.hbm_bytes for l in launches)), tuple(times))
