"""Time of GPU kernel launches made of tile programs (seconds).

Knows nothing of attention: a mapping (mappings/gpu_kernels.py) turns a kernel into
`KernelLaunch`es (per-program tensor FLOPs, exps, ALU ops and loop steps, and the launch's HBM
bytes); `Rates` are one GPU's rates for one kernel (`rates`: the tensor rate of the instruction
family the kernel uses on that GPU, for its dtype; archsim/gpu/specs.py) and `Efficiency` the
kernel profile's parameters (archsim/gpu/profiles.py), which mean the same on every GPU. Model
of one launch:

- a program runs on one SM at that SM's share of each rate: tensor = FLOPs / (instruction rate *
  issue_efficiency / SMs), vector = exps / (exp rate / SMs) + ALU ops / (ALU rate / SMs), and
  busy = max(tensor, vector) + (1 - exp_overlap) * min(tensor, vector);
- a serial loop of `steps` dependent steps takes at least steps * step_latency_s / resident
  (programs resident on one SM hide each other's latency): core = max(busy, that);
- prologue and epilogue (loading the query tile, filling the pipeline, writing the output)
  cost `prologue_steps` loop steps: program = core * (1 + prologue_steps / steps);
- programs are issued in launch order to the SM that frees first, which gives the wave
  quantisation (programs / SMs) and the tail of unequal (causal) programs;
- memory = HBM bytes / (bandwidth * memory_efficiency); the launch takes
  launch_s + max(compute, memory).

The bound of a launch is `launch` when launch_s exceeds the rest, `memory` when memory time
exceeds compute time, else whichever of tensor (`compute`), vector (`exp`) and serial-loop
(`serial`) time is largest summed over the programs.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from archsim.gpu.specs import GPUConfigError, GPUSpec

# Above this many programs of unequal length, the scheduler is approximated by its fluid bound
# plus half the longest program (the mean tail of list scheduling).
EXACT_SCHEDULE_LIMIT = 4096


@dataclass(frozen=True)
class Rates:
    """One GPU's rates for one kernel: FLOP/s, exps/s, ops/s, bytes/s; `sms` streaming
    multiprocessors; `instruction` the tensor instruction family the tensor rate is of."""

    sms: int
    tensor_flops_per_s: float
    exp_per_s: float
    alu_ops_per_s: float
    hbm_bytes_per_s: float
    instruction: str = ""


def rates(gpu: GPUSpec, instruction: str, dtype: str, clock_hz: float | None = None) -> Rates:
    """`gpu`'s rates with tensor instruction family `instruction` for `dtype` (a dtype the family
    lacks runs at its fp16 rate, as kernels up-convert fp8 where there is no fp8 MMA), SM rates
    scaled to `clock_hz` when given (HBM bandwidth is not)."""
    tensor = gpu.tensor_flops_per_s(instruction, dtype)
    if tensor is None:
        tensor = gpu.tensor_flops_per_s(instruction, "fp16") or gpu.tensor_flops_per_s(instruction, "bf16")
    if tensor is None:
        raise GPUConfigError(f"{gpu.name}: {instruction} has no {dtype} or fp16 rate")
    scale = 1.0 if clock_hz is None else clock_hz / gpu.clock_hz
    return Rates(gpu.sms, tensor * scale, gpu.exp_per_s * scale, gpu.alu_ops_per_s * scale, gpu.hbm_bytes_per_s,
                 instruction)


@dataclass(frozen=True)
class Efficiency:
    """A kernel profile's parameters resolved for one GPU (fractions, loop steps, seconds)."""

    issue_efficiency: float
    exp_overlap: float
    prologue_steps: float
    step_latency_s: float
    launch_s: float
    memory_efficiency: float


@dataclass
class KernelLaunch:
    """One kernel launch: per-program work in launch order, and the launch's memory traffic.

    tensor_flops, exps, alu_ops, steps: arrays (one entry per program) of tensor-core FLOPs,
    exps, other fp32 operations and loop steps (>= 1); hbm_bytes: bytes moved to and from GPU
    memory by the whole launch; smem_bytes: shared memory of one program; warps: warps per
    program; resident: programs that fit on one SM at once.
    """

    name: str
    tensor_flops: np.ndarray
    exps: np.ndarray
    alu_ops: np.ndarray
    hbm_bytes: float
    steps: np.ndarray | None = None
    smem_bytes: int = 0
    warps: int = 4
    resident: int = 1
    notes: dict = field(default_factory=dict)

    @property
    def programs(self) -> int:
        """Programs (thread blocks) of the launch."""
        return int(len(self.tensor_flops))

    def loop_steps(self) -> np.ndarray:
        """Loop steps of each program (1 where the launch has no loop)."""
        return np.ones(self.programs) if self.steps is None else np.maximum(np.asarray(self.steps, float), 1.0)


@dataclass(frozen=True)
class ProgramTimes:
    """Seconds per program: the total and its tensor, vector and serial-loop parts."""

    total: np.ndarray
    tensor: np.ndarray
    vector: np.ndarray
    serial: np.ndarray


def program_times(rates: Rates, eff: Efficiency, launch: KernelLaunch) -> ProgramTimes:
    """Seconds each program of `launch` occupies one SM."""
    per_sm = rates.sms
    tensor = launch.tensor_flops / (rates.tensor_flops_per_s * eff.issue_efficiency / per_sm)
    vector = launch.exps / (rates.exp_per_s / per_sm) + launch.alu_ops / (rates.alu_ops_per_s / per_sm)
    busy = np.maximum(tensor, vector) + (1.0 - eff.exp_overlap) * np.minimum(tensor, vector)
    steps = launch.loop_steps()
    serial = steps * eff.step_latency_s / max(launch.resident, 1)
    total = np.maximum(busy, serial) * (1.0 + eff.prologue_steps / steps)
    return ProgramTimes(total, tensor, vector, serial)


def makespan_s(times: np.ndarray, sms: int) -> float:
    """Finish time of programs issued in order to the first free of `sms` SMs (seconds)."""
    times = np.asarray(times, float)
    if len(times) == 0:
        return 0.0
    if np.all(times == times[0]):
        return math.ceil(len(times) / sms) * float(times[0])
    if len(times) > EXACT_SCHEDULE_LIMIT:
        return max(float(times.sum()) / sms + 0.5 * float(times.max()), float(times.max()))
    free_at = [0.0] * min(sms, len(times))
    for t in times.tolist():
        heapq.heapreplace(free_at, free_at[0] + t)
    return max(free_at)


@dataclass(frozen=True)
class LaunchTime:
    """Predicted seconds of one launch, its parts, and what bounds it."""

    name: str
    total_s: float
    compute_s: float
    memory_s: float
    launch_s: float
    bound: str


def launch_time(rates: Rates, eff: Efficiency, launch: KernelLaunch) -> LaunchTime:
    """Predicted time of one kernel launch (seconds)."""
    parts = program_times(rates, eff, launch)
    compute = makespan_s(parts.total, rates.sms)
    memory = launch.hbm_bytes / (rates.hbm_bytes_per_s * eff.memory_efficiency)
    if eff.launch_s > max(compute, memory):
        bound = "launch"
    elif memory >= compute:
        bound = "memory"
    else:
        sums = {"compute": float(parts.tensor.sum()), "exp": float(parts.vector.sum()),
                "serial": float(parts.serial.sum())}
        bound = max(sums, key=sums.get)
    return LaunchTime(launch.name, eff.launch_s + max(compute, memory), compute, memory, eff.launch_s, bound)


def launches_time(rates: Rates, eff: Efficiency, launches: list[KernelLaunch]) -> tuple[float, str, list[LaunchTime]]:
    """Seconds of launches run one after another, the bound of the call (the bound that accounts
    for the most time over the launches) and each launch's time."""
    times = [launch_time(rates, eff, launch) for launch in launches]
    by_bound: dict[str, float] = {}
    for t in times:
        by_bound[t.bound] = by_bound.get(t.bound, 0.0) + t.total_s
    return sum(t.total_s for t in times), max(by_bound, key=by_bound.get), times
