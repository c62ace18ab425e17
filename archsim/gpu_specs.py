"""GPU descriptions and kernel implementation profiles, as validated data.

Two kinds of YAML file, each read through `archsim.yamlio` and validated with pydantic:

- a **GPU description** (`archsim/configs/gpus/NAME.yaml`): SM count, clock, dense tensor-core
  FLOP/s per dtype, exp (MUFU) rate, fp32 ALU rate, HBM bandwidth and capacity, L2, shared
  memory, warps per SM, and under `sources:` the public source of every figure;
- a **kernel profile** (`archsim/configs/gpu-kernels/NAME.yaml`): how one implementation
  family uses a GPU: its algorithm and passes over HBM, tile shapes per head dim, the launch
  order of query tiles under a causal mask, and the few efficiency parameters that differ
  between implementations (MMA efficiency per GPU architecture, exp/MMA overlap, prologue and
  epilogue in loop steps, per-step latency of the serial loop, fixed per-call time, memory
  efficiency). `archsim/configs/gpu-kernels-fitted.yaml` holds the values the calibration
  (`cascadesim study gpu-crossval --write-fitted`) fitted; `load_profile` applies them.

Every error is a `GPUConfigError` naming the file and the field (or the unknown name).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cascadesim_errors import InputError
from archsim.yamlio import YamlFileError, load_yaml_file

CONFIG_DIR = Path(__file__).parent / "configs"
GPU_DIR = CONFIG_DIR / "gpus"
PROFILE_DIR = CONFIG_DIR / "gpu-kernels"
FITTED_FILE = CONFIG_DIR / "gpu-kernels-fitted.yaml"

ARCHITECTURES = ("ampere", "hopper", "blackwell")
DTYPES = ("fp16", "bf16", "fp8", "tf32")
ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp8": 1, "tf32": 4}
# Spellings found in measurement files -> the dtype names above.
DTYPE_ALIASES = {"float16": "fp16", "half": "fp16", "16-bit": "fp16", "bfloat16": "bf16",
                 "float8": "fp8", "float8_e5m2": "fp8", "float8_e4m3fn": "fp8", "float32": "tf32", "fp32": "tf32"}


class GPUConfigError(InputError, ValueError):
    """A bad GPU description or kernel profile, or an unknown name; the message names the file and field."""


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False, strict=True)]
UnitInterval = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
Text = Annotated[str, Field(min_length=1, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorRates(_Strict):
    """Dense tensor-core FLOP/s per dtype; None: no native support (the kernel runs at the fp16 rate)."""

    fp16: PositiveFloat
    bf16: PositiveFloat
    tf32: PositiveFloat
    fp8: PositiveFloat | None = None


class GPUSpec(_Strict):
    """One GPU: rates per second at `clock_hz`, capacities in bytes."""

    kind: Literal["gpu"] | None = None  # what the file describes (mappings/targets/)
    name: Text
    architecture: Literal["ampere", "hopper", "blackwell"]
    sms: PositiveInt
    clock_hz: PositiveFloat
    tensor_flops_per_s: TensorRates
    exp_per_s: PositiveFloat
    alu_ops_per_s: PositiveFloat
    hbm_bytes_per_s: PositiveFloat
    hbm_bytes: PositiveFloat
    l2_bytes: PositiveFloat
    smem_bytes_per_sm: PositiveInt
    smem_bytes_per_block: PositiveInt
    max_warps_per_sm: PositiveInt
    sources: dict[Text, Text]

    @model_validator(mode="after")
    def _every_figure_has_a_source(self) -> "GPUSpec":
        missing = [f for f in type(self).model_fields if f not in ("kind", "name", "architecture", "sources")
                   and f not in self.sources]
        if missing:
            raise ValueError(f"field 'sources': no source named for field {missing[0]!r}")
        unknown = sorted(set(self.sources) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"field 'sources': {unknown[0]!r} is not a field")
        if self.smem_bytes_per_block > self.smem_bytes_per_sm:
            raise ValueError("field 'smem_bytes_per_block': larger than smem_bytes_per_sm")
        return self

    def tensor_rate(self, dtype: str) -> float:
        """Dense tensor FLOP/s for `dtype` (fp8 without native support: the fp16 rate)."""
        rate = getattr(self.tensor_flops_per_s, dtype)
        return rate if rate is not None else self.tensor_flops_per_s.fp16


class Tiles(_Strict):
    """Launch settings of one head dim: query rows and key columns per tile, value columns per
    program (linear attention), warps and pipeline stages (Triton names, as gpu_ref/tiles.py)."""

    BLOCK_M: PositiveInt | None = None
    BLOCK_N: PositiveInt
    BLOCK_E: PositiveInt | None = None
    num_warps: PositiveInt
    num_stages: PositiveInt


class Parameters(_Strict):
    """Efficiency parameters of a kernel implementation (see docs/gpu.md, 'The model')."""

    mma_efficiency: dict[Literal["ampere", "hopper", "blackwell"], Fraction]
    exp_overlap: UnitInterval | dict[Literal["ampere", "hopper", "blackwell"], UnitInterval]
    prologue_steps: NonNegativeFloat
    step_latency_s: NonNegativeFloat
    launch_s: NonNegativeFloat
    memory_efficiency: Fraction


class KernelProfile(_Strict):
    """How one attention implementation uses a GPU (the parameters that differ between kernels)."""

    name: Text
    description: Text
    source: Text
    algorithm: Literal["softmax", "linear"]
    passes: Literal[1, 2, 3]
    tiles: dict[PositiveInt, Tiles]
    causal_order: Literal["forward", "reverse"] = "forward"
    causal_skip: bool = True
    causal_only: bool = False
    compute_dtype: Literal["fp16", "bf16", "fp8", "tf32"] | None = None  # MMA dtype if not the input's
    parameters: Parameters
    fit: list[Literal["mma_efficiency", "exp_overlap", "prologue_steps", "step_latency_s", "launch_s",
                      "memory_efficiency"]] = []
    calibrated_on: list[Text] = []

    @model_validator(mode="after")
    def _consistent(self) -> "KernelProfile":
        if self.algorithm == "linear" and self.passes != 1:
            raise ValueError("field 'passes': linear attention is one pass")
        for d, t in self.tiles.items():
            if self.algorithm == "softmax" and t.BLOCK_M is None:
                raise ValueError(f"field 'tiles.{d}.BLOCK_M': required for softmax attention")
            if self.algorithm == "linear" and t.BLOCK_E is None:
                raise ValueError(f"field 'tiles.{d}.BLOCK_E': required for linear attention")
        return self

    def tiles_for(self, head_dim: int) -> dict[str, int]:
        """Launch settings at `head_dim`: the nearest listed head dim at or above it (else the largest)."""
        dims = sorted(self.tiles)
        chosen = next((d for d in dims if head_dim <= d), dims[-1])
        return {k: v for k, v in self.tiles[chosen].model_dump().items() if v is not None}

    def parameter(self, name: str, architecture: str) -> float:
        """Parameter `name` on `architecture`: a per-architecture table's entry (an unlisted
        architecture: the mean of the listed ones) or the one value."""
        value = getattr(self.parameters, name)
        if not isinstance(value, dict):
            return value
        if architecture in value:
            return value[architecture]
        return sum(value.values()) / len(value)

    def mma_efficiency(self, architecture: str) -> float:
        """MMA efficiency on `architecture`."""
        return self.parameter("mma_efficiency", architecture)


_UNION_TAG = re.compile(r"^(constrained-\w+|\w+\[.*\]|function-\w+)$")


def _validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    # drop the union-branch tags pydantic adds to locations ('constrained-float', 'dict[...]')
    where = ".".join(str(x) for x in first["loc"] if not (isinstance(x, str) and _UNION_TAG.match(x)))
    message = first["msg"].removeprefix("Value error, ")
    return f"field {where!r}: {message}" if where else message


def _validate(model: type[BaseModel], data: object, path: Path) -> BaseModel:
    if not isinstance(data, dict):
        raise GPUConfigError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise GPUConfigError(f"{path}: {_validation_message(err)}") from None


def _read(path: Path, what: str) -> object:
    try:
        return load_yaml_file(path, what)
    except YamlFileError as err:
        raise GPUConfigError(str(err)) from None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _resolve(name_or_path: str | Path, folder: Path, what: str) -> Path:
    """A name in `folder` (`a100`) or a path to a YAML file; unknown names list the known ones."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml", ".json")) or "/" in text or "\\" in text:
        return Path(text)
    if _NAME.match(text) and (folder / f"{text}.yaml").is_file():
        return folder / f"{text}.yaml"
    raise GPUConfigError(f"unknown {what} {text!r}; known: {', '.join(known_names(folder))} "
                         "(or give a path to a YAML file)")


def known_names(folder: Path) -> list[str]:
    """Names of the YAML files in `folder`, sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def known_gpus() -> list[str]:
    """Names accepted by `load_gpu`."""
    return known_names(GPU_DIR)


def known_kernels() -> list[str]:
    """Names accepted by `load_profile`."""
    return known_names(PROFILE_DIR)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=256)
def _load_cached(model: type[BaseModel], path: Path, what: str, mtime: int | None) -> BaseModel:
    return _validate(model, _read(path, what), path)


def load_gpu(name_or_path: str | Path) -> GPUSpec:
    """A GPU description by name (`a100`, `h100-sxm`, `h200`, ...) or from a YAML file (cached
    per path and modification time; the models are frozen)."""
    path = _resolve(name_or_path, GPU_DIR, "GPU")
    return _load_cached(GPUSpec, path, "GPU description file", _mtime(path))


def load_fitted(path: Path = FITTED_FILE) -> dict[str, dict]:
    """Fitted parameters per profile name (empty if the file does not exist)."""
    if not path.is_file():
        return {}
    data = _read(path, "fitted-parameters file")
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise GPUConfigError(f"{path}: field 'profiles' must be a mapping of profile name to parameters")
    return data.get("profiles", {})


@lru_cache(maxsize=8)
def _fitted_cached(mtime: int | None) -> dict[str, dict]:
    return load_fitted()


def with_parameters(profile: KernelProfile, values: dict, source: str) -> KernelProfile:
    """`profile` with some parameters replaced (per-architecture tables merged), validated."""
    params = profile.parameters.model_dump()
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **value}
        else:
            params[key] = value
    try:
        new = Parameters.model_validate(params)
    except ValidationError as err:
        raise GPUConfigError(f"{source}: profile {profile.name!r}: {_validation_message(err)}") from None
    return profile.model_copy(update={"parameters": new})


def load_profile(name_or_path: str | Path, fitted: bool = True) -> KernelProfile:
    """A kernel profile by name (`flash2`, `triton-tutorial`, ...) or from a YAML file; with
    `fitted`, the calibrated parameters of gpu-kernels-fitted.yaml replace the file's starting values."""
    path = _resolve(name_or_path, PROFILE_DIR, "kernel")
    profile = _load_cached(KernelProfile, path, "kernel profile file", _mtime(path))
    if fitted:
        values = _fitted_cached(_mtime(FITTED_FILE)).get(profile.name)
        if values:
            if not isinstance(values, dict):
                raise GPUConfigError(f"{FITTED_FILE}: field 'profiles.{profile.name}' must be a mapping")
            profile = with_parameters(profile, values, str(FITTED_FILE))
    return profile


def normalise_dtype(dtype: str) -> str:
    """`bf16`, `fp16`, `fp8`, `tf32` from any accepted spelling; GPUConfigError otherwise."""
    name = DTYPE_ALIASES.get(dtype, dtype)
    if name not in DTYPES:
        raise GPUConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return name
