"""A GPU as an archsim architecture: predicts the time of kernel launches made of tile programs.

The GPU is described by data (`configs/h200.yaml`): SM count, tensor-core rate, exp rate,
fp32 ALU rate, memory bandwidth, shared memory and L2 capacity, launch overhead, and three
efficiency figures a study may calibrate against measurements. Knows nothing of attention:
a mapping (mappings/gpu_mapping.py) turns a cascade into `KernelLaunch`es.

Model of one launch (times in seconds):
- each program (thread block) runs on one SM at that SM's share of every rate:
  tensor = flops / (tensor rate * efficiency / SMs), vector = exps / (exp rate / SMs)
  + ALU ops / (ALU rate / SMs), program = max(tensor, vector) + (1 - overlap) * min(tensor, vector);
- a program that walks its tiles one after another (a dependent loop of `serial_steps` steps)
  takes at least steps * step_latency / (programs resident on the SM), as resident programs
  hide each other's latency;
- programs are issued in launch order to the SM that frees first (the block scheduler), which
  gives the compute time including the tail of the last wave;
- memory time = HBM bytes / (bandwidth * memory efficiency);
- launch time = launch overhead + max(compute time, memory time).
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archsim.yamlio import YamlFileError, load_yaml_file

CONFIG_DIR = Path(__file__).parent / "configs"
# Above this many programs of unequal length, the scheduler is approximated by its fluid bound.
_EXACT_SCHEDULE_LIMIT = 20000


class GPUConfigError(ValueError):
    """A bad GPU architecture file or field; the message names the file and the field."""


@dataclass(frozen=True)
class GPUArchitecture:
    """Rates in units per second, capacities in bytes; efficiencies and overlap in [0, 1]."""

    name: str
    sms: int
    clock_hz: float
    tensor_flops_per_s: float
    tensor_efficiency: float
    exp_per_s: float
    alu_ops_per_s: float
    hbm_bytes_per_s: float
    memory_efficiency: float
    hbm_bytes: float
    l2_bytes: float
    smem_bytes_per_sm: int
    smem_bytes_per_block: int
    max_warps_per_sm: int
    launch_overhead_s: float
    overlap: float
    step_latency_s: float

    def with_params(self, **params: float) -> "GPUArchitecture":
        """A copy with some fields replaced (used by calibration)."""
        return dataclasses.replace(self, **params)


_FRACTIONS = ("tensor_efficiency", "memory_efficiency", "overlap")
_INTEGERS = ("sms", "smem_bytes_per_sm", "smem_bytes_per_block", "max_warps_per_sm")


def load_gpu(path_or_name: str | Path) -> GPUArchitecture:
    """Load a GPU architecture from a YAML file, or by name from archsim/configs (`h200`)."""
    path = Path(path_or_name)
    if not path.suffix:
        path = CONFIG_DIR / f"{path_or_name}.yaml"
    try:
        data = load_yaml_file(path, "GPU architecture file")
    except YamlFileError as err:
        raise GPUConfigError(str(err)) from None
    if not isinstance(data, dict):
        raise GPUConfigError(f"{path}: expected a mapping of fields")
    fields = {f.name: f.type for f in dataclasses.fields(GPUArchitecture)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        raise GPUConfigError(f"{path}: unknown field {unknown[0]!r}")
    values = {}
    for name in fields:
        if name not in data:
            raise GPUConfigError(f"{path}: missing field {name!r}")
        value = data[name]
        if name == "name":
            if not isinstance(value, str) or not value:
                raise GPUConfigError(f"{path}: field 'name' must be a non-empty string")
            values[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GPUConfigError(f"{path}: field {name!r} must be a number, got {value!r}")
        if not value > 0:
            raise GPUConfigError(f"{path}: field {name!r} must be positive, got {value!r}")
        if name in _FRACTIONS and value > 1:
            raise GPUConfigError(f"{path}: field {name!r} must be in (0, 1], got {value!r}")
        if name in _INTEGERS:
            if int(value) != value:
                raise GPUConfigError(f"{path}: field {name!r} must be an integer, got {value!r}")
            values[name] = int(value)
        else:
            values[name] = float(value)
    return GPUArchitecture(**values)


@dataclass
class KernelLaunch:
    """One kernel launch: per-program work in launch order, and the launch's memory traffic.

    tensor_flops, exps, alu_ops: arrays (one entry per program) of tensor-core FLOPs, exps and
    other fp32 operations; hbm_bytes: bytes moved to and from GPU memory by the whole launch;
    smem_bytes: shared memory of one program; warps: warps per program; serial_steps: dependent
    loop steps of each program (None: none); resident: programs that fit on one SM at once.
    """

    name: str
    tensor_flops: np.ndarray
    exps: np.ndarray
    alu_ops: np.ndarray
    hbm_bytes: float
    smem_bytes: int = 0
    warps: int = 4
    serial_steps: np.ndarray | None = None
    resident: int = 1
    notes: dict = field(default_factory=dict)

    @property
    def programs(self) -> int:
        """Programs (thread blocks) of the launch."""
        return int(len(self.tensor_flops))


def program_times_s(arch: GPUArchitecture, launch: KernelLaunch) -> np.ndarray:
    """Seconds each program takes on one SM."""
    tensor = launch.tensor_flops / (arch.tensor_flops_per_s * arch.tensor_efficiency / arch.sms)
    vector = launch.exps / (arch.exp_per_s / arch.sms) + launch.alu_ops / (arch.alu_ops_per_s / arch.sms)
    busy = np.maximum(tensor, vector) + (1.0 - arch.overlap) * np.minimum(tensor, vector)
    if launch.serial_steps is None:
        return busy
    return np.maximum(busy, launch.serial_steps * arch.step_latency_s / max(launch.resident, 1))


def makespan_s(times: np.ndarray, sms: int) -> float:
    """Finish time of programs issued in order to the first free of `sms` SMs (seconds)."""
    if len(times) == 0:
        return 0.0
    if np.all(times == times[0]):
        return math.ceil(len(times) / sms) * float(times[0])
    if len(times) > _EXACT_SCHEDULE_LIMIT:
        return max(float(times.sum()) / sms, float(times.max()))
    free_at = [0.0] * min(sms, len(times))
    for t in times.tolist():
        heapq.heapreplace(free_at, free_at[0] + t)
    return max(free_at)


def check_fits(arch: GPUArchitecture, launch: KernelLaunch) -> None:
    """Raise ValueError if one program of the launch needs more shared memory than a block may have."""
    if launch.smem_bytes > arch.smem_bytes_per_block:
        raise ValueError(f"kernel {launch.name}: {launch.smem_bytes} bytes of shared memory per program exceed "
                         f"the {arch.smem_bytes_per_block} a block may use on {arch.name}")


@dataclass(frozen=True)
class LaunchTime:
    """Predicted seconds of one launch and its parts."""

    name: str
    total_s: float
    compute_s: float
    memory_s: float
    launch_s: float

    @property
    def bound(self) -> str:
        """'compute' or 'memory': which of the two sets the launch's time."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


def launch_time(arch: GPUArchitecture, launch: KernelLaunch) -> LaunchTime:
    """Predicted time of one kernel launch (seconds)."""
    check_fits(arch, launch)
    compute = makespan_s(program_times_s(arch, launch), arch.sms)
    memory = launch.hbm_bytes / (arch.hbm_bytes_per_s * arch.memory_efficiency)
    return LaunchTime(launch.name, arch.launch_overhead_s + max(compute, memory), compute, memory,
                      arch.launch_overhead_s)


def predict_time_s(arch: GPUArchitecture, launches: list[KernelLaunch]) -> float:
    """Predicted seconds of launches run one after another."""
    return sum(launch_time(arch, launch).total_s for launch in launches)
