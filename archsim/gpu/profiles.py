"""Kernel profiles as validated data (`archsim/configs/gpu-kernels/NAME.yaml`).

A profile says how one implementation family uses a GPU, in terms that mean the same on every
GPU (docs/gpu.md, 'The model'):

- `family`: the shape of its work (`softmax`: flash-style prefill in 1, 2 or 3 passes over HBM;
  `split-kv`: flash-decoding, the keys split over programs and the partial results combined;
  `chunked-linear`: a chunked linear recurrence (retention, GLA, DeltaNet, Mamba2 SSD) with a
  serial scan of the state over chunks; `recurrent-step`: one decode step of a linear recurrence,
  the state read and written);
- `instructions`: the tensor instruction families it is written for, in order of preference (the
  first the GPU has is used: FlashAttention-2 is mma.sync everywhere, FlashAttention-3 wgmma,
  Triton picks the best the GPU has); `architectures`: where it runs at all; `max_head_dim`;
- `tiles`: launch settings per head dim (the one table of them; gpu_ref/tiles.py reads its own
  kernels' rows from these files);
- `parameters`: the fraction of the instruction family's issue rate its main loop sustains, the
  fraction of the shorter of tensor and exp time hidden under the longer, prologue/epilogue in
  loop steps, the latency of one serial step, the fixed time of a launch, the fraction of HBM
  bandwidth it reaches. `fit:` lists those the calibration fits (mappings/gpu_calibration.py;
  values in archsim/gpu/fitted.yaml, applied by `load_profile`).

Every error is a `GPUConfigError` naming the file and the field.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ValidationError, model_validator

from archsim.gpu.specs import (CONFIG_DIR, Architecture, Fraction, GPUConfigError, GPUSpec, Instruction,
                               NonNegativeFloat, PositiveInt, Strict, Text, UnitInterval, known_names, load_cached,
                               mtime, read, resolve, validation_message)

PROFILE_DIR = CONFIG_DIR / "gpu-kernels"
FITTED_FILE = Path(__file__).resolve().parent / "fitted.yaml"
FAMILIES = ("softmax", "split-kv", "chunked-linear", "recurrent-step")
PARAMETERS = ("issue_efficiency", "exp_overlap", "prologue_steps", "step_latency_s", "launch_s", "memory_efficiency")
Family = Literal["softmax", "split-kv", "chunked-linear", "recurrent-step"]
ParameterName = Literal["issue_efficiency", "exp_overlap", "prologue_steps", "step_latency_s", "launch_s",
                        "memory_efficiency"]


class Tiles(Strict):
    """Launch settings of one head dim: query rows and key columns per tile, value columns per
    program, warps and pipeline stages (Triton names)."""

    BLOCK_M: PositiveInt | None = None
    BLOCK_N: PositiveInt
    BLOCK_E: PositiveInt | None = None
    num_warps: PositiveInt
    num_stages: PositiveInt


class Parameters(Strict):
    """Efficiency parameters of a kernel implementation (see the module docstring)."""

    issue_efficiency: Fraction
    exp_overlap: UnitInterval
    prologue_steps: NonNegativeFloat
    step_latency_s: NonNegativeFloat
    launch_s: NonNegativeFloat
    memory_efficiency: Fraction


class ChunkWork(Strict):
    """Work of a chunked linear recurrence per chunk of C tokens and per head, as counts of matrix
    products (each 2 x the product of its three sizes in FLOPs) and element-wise operations.
    D: key (or SSM state) dim, Dv: value dim."""

    cc_d: NonNegativeFloat          # C x C x D products (q k^T; the WY transform's k k^T)
    cc_dv: NonNegativeFloat         # C x C x Dv products (the intra-chunk P v)
    c_d_dv: NonNegativeFloat        # C x D x Dv products in the parallel part (q S; the WY u, w)
    state_c_d_dv: NonNegativeFloat  # C x D x Dv products in the serial state scan (k^T v; delta: w S)
    exps_per_token: NonNegativeFloat = 0.0     # gate exps per token and head (x D for vector gates)
    vector_gate: bool = False                 # a gate per key dim (GLA, KDA) rather than per head
    exps_per_chunk_cc: NonNegativeFloat = 0.0  # exps per C x C entry (Mamba2's segment sums)
    solve: bool = False                        # a C x C triangular inverse per chunk (DeltaNet WY)
    state_bytes: PositiveInt = 4               # bytes per state element
    state_materialised: bool = True            # the state of every chunk stored to HBM and read back
    context_parallel: bool = False             # fused, the sequence split into segments to fill the GPU
    gate_bytes_per_token: NonNegativeFloat = 0.0  # HBM bytes of gates per token and head


class StepWork(Strict):
    """Work of one recurrent decode step per token and head: state-sized FP32 operations."""

    ops_per_state_element: NonNegativeFloat
    state_bytes: PositiveInt = 4


class KernelProfile(Strict):
    """How one attention implementation uses a GPU (the parameters that differ between kernels)."""

    name: Text
    description: Text
    source: Text
    family: Family
    passes: Literal[1, 2, 3] = 1
    instructions: list[Instruction]
    architectures: list[Architecture] | None = None
    max_head_dim: PositiveInt | None = None
    tensor_on_alu: bool = False      # a CUDA-core kernel: its products run on the FP32 lanes
    gqa_packing: bool = True         # decode: a KV head's query heads share one program's K/V reads
    tiles: dict[PositiveInt, Tiles]
    causal_order: Literal["forward", "reverse"] = "forward"
    causal_skip: bool = True
    causal_only: bool = False
    compute_dtype: Literal["fp16", "bf16", "fp8", "tf32"] | None = None  # MMA dtype if not the input's
    chunk: PositiveInt | None = None   # chunked-linear: tokens per chunk
    chunk_work: ChunkWork | None = None
    step_work: StepWork | None = None
    parameters: Parameters
    fit: list[ParameterName] = []

    @model_validator(mode="after")
    def _consistent(self) -> "KernelProfile":
        if self.family != "softmax" and self.passes != 1:
            raise ValueError("field 'passes': only softmax kernels take more than one pass")
        if self.family == "chunked-linear" and (self.chunk is None or self.chunk_work is None):
            raise ValueError("field 'chunk_work': a chunked-linear kernel needs 'chunk' and 'chunk_work'")
        if self.family == "recurrent-step" and self.step_work is None:
            raise ValueError("field 'step_work': a recurrent-step kernel needs it")
        if not self.instructions:
            raise ValueError("field 'instructions': at least one instruction family")
        for d, t in self.tiles.items():
            if self.family in ("softmax", "split-kv") and t.BLOCK_M is None:
                raise ValueError(f"field 'tiles.{d}.BLOCK_M': required for {self.family} kernels")
        if not self.tiles:
            raise ValueError("field 'tiles': at least one head dim")
        return self

    def tiles_for(self, head_dim: int) -> dict[str, int]:
        """Launch settings of the instance that runs `head_dim`: the smallest listed head dim at or
        above it. ValueError (one line) below the smallest instance (it would run padded, its padded
        lanes computed, which the model does not price) and above the largest (no instance)."""
        dims = sorted(self.tiles)
        if head_dim > dims[-1]:
            raise ValueError(f"kernel {self.name} has tiles for head dims {', '.join(map(str, dims))} only; "
                             f"head dim {head_dim} is larger than its largest instance")
        if head_dim < dims[0]:
            raise ValueError(f"kernel {self.name}'s smallest instance is head dim {dims[0]}; head dim {head_dim} "
                             f"would run padded to it, which the model does not price (give the padded head dim, "
                             f"{dims[0]})")
        chosen = next(d for d in dims if head_dim <= d)
        return {k: v for k, v in self.tiles[chosen].model_dump().items() if v is not None}

    def instruction_on(self, gpu: GPUSpec, dtype: str) -> str:
        """The tensor instruction family this kernel uses on `gpu` for `dtype`; GPUConfigError when
        the kernel cannot run there (architecture, instruction family)."""
        if self.architectures is not None and gpu.architecture not in self.architectures:
            raise GPUConfigError(f"--kernel {self.name}: runs on {', '.join(self.architectures)} GPUs only; "
                                 f"{gpu.name} is {gpu.architecture}")
        for instruction in self.instructions:
            if instruction in gpu.tensor_flops_per_clock_per_sm:
                return instruction
        raise GPUConfigError(f"--kernel {self.name}: uses {' or '.join(self.instructions)} tensor instructions; "
                             f"{gpu.name} has {', '.join(gpu.instructions)}")


def known_kernels() -> list[str]:
    """Names accepted by `load_profile`."""
    return known_names(PROFILE_DIR)


def load_fitted(path: Path = FITTED_FILE) -> dict:
    """The fitted-parameters document: {'profiles': {name: {parameter: value}}, 'defaults':
    {family: {parameter: value}}, ...} (empty mappings if the file does not exist)."""
    if not path.is_file():
        return {"profiles": {}, "defaults": {}}
    data = read(path, "fitted-parameters file")
    if not isinstance(data, dict):
        raise GPUConfigError(f"{path}: expected a mapping with 'profiles' and 'defaults'")
    for key in ("profiles", "defaults"):
        if not isinstance(data.get(key, {}), dict):
            raise GPUConfigError(f"{path}: field {key!r} must be a mapping of name to parameters")
    return {"profiles": data.get("profiles") or {}, "defaults": data.get("defaults") or {}}


@lru_cache(maxsize=8)
def _fitted_cached(stamp: int | None) -> dict:
    return load_fitted()


def with_parameters(profile: KernelProfile, values: dict, source: str) -> KernelProfile:
    """`profile` with some parameters replaced, validated."""
    params = {**profile.parameters.model_dump(), **values}
    try:
        new = Parameters.model_validate(params)
    except ValidationError as err:
        raise GPUConfigError(f"{source}: profile {profile.name!r}: {validation_message(err)}") from None
    return profile.model_copy(update={"parameters": new})


def fitted_values(profile: KernelProfile, fitted: dict) -> dict:
    """The fitted parameters that apply to `profile`: its own fit, else its family's defaults
    (for the parameters it lists under `fit:`)."""
    own = fitted["profiles"].get(profile.name)
    if own is not None:
        if not isinstance(own, dict):
            raise GPUConfigError(f"{FITTED_FILE}: field 'profiles.{profile.name}' must be a mapping")
        return own
    defaults = fitted["defaults"].get(profile.family) or {}
    return {k: v for k, v in defaults.items() if k in profile.fit}


def load_profile(name_or_path: str | Path, fitted: bool = True) -> KernelProfile:
    """A kernel profile by name (`flash2`, `triton-tutorial`, ...) or from a YAML file; with
    `fitted`, the calibrated parameters of archsim/gpu/fitted.yaml replace the file's starting
    values (a profile without measured rows takes its family's fitted defaults)."""
    path = resolve(name_or_path, PROFILE_DIR, "kernel")
    profile = load_cached(KernelProfile, path, "kernel profile file", mtime(path))
    if fitted:
        values = fitted_values(profile, _fitted_cached(mtime(FITTED_FILE)))
        if values:
            profile = with_parameters(profile, values, str(FITTED_FILE))
    return profile
