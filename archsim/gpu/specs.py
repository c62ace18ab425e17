"""GPU descriptions as validated data (`archsim/configs/gpus/NAME.yaml`).

A description gives a GPU's datasheet figures per streaming multiprocessor (or compute unit) and
per clock, so that a kernel's limits are computed the same way on every GPU:

- `tensor_flops_per_clock_per_sm`: dense tensor-core FLOP per clock per SM for each instruction
  family the GPU has (`mma.sync` on every NVIDIA GPU since Ampere; `wgmma` on Hopper; `tcgen05`
  on data-centre Blackwell; `mfma` on AMD CDNA) and each dtype (fp32 accumulation: the rate an
  attention kernel gets; an absent dtype is not supported by that family);
- `exp_per_clock_per_sm` (special-function unit ex2 rate), `fp32_lanes_per_sm`;
- `clock_hz` (the clock at which the datasheet quotes its peaks), HBM bandwidth and capacity, L2,
  shared memory per SM and per block, warps per SM;
- `datasheet`: the peaks the vendor quotes (dense TFLOP/s per dtype, FP32 TFLOP/s), kept only so
  that tests recompute them from the per-SM figures (SMs x per-SM rate x clock);
- `sources`: the public source of every figure (a figure without one is an error).

Every error is a `GPUConfigError` naming the file and the field (or the unknown name).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from archsim.yamlio import YamlFileError, load_yaml_file
from cascadesim_errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GPU_DIR = CONFIG_DIR / "gpus"

ARCHITECTURES = ("ampere", "ada", "hopper", "blackwell", "blackwell-rtx", "cdna3")
INSTRUCTIONS = ("mma.sync", "wgmma", "tcgen05", "mfma")
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
Instruction = Literal["mma.sync", "wgmma", "tcgen05", "mfma"]
Architecture = Literal["ampere", "ada", "hopper", "blackwell", "blackwell-rtx", "cdna3"]


class Strict(BaseModel):
    """Frozen pydantic model that rejects unknown fields."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerDtype(Strict):
    """A figure per dtype; None: not supported."""

    fp16: PositiveFloat | None = None
    bf16: PositiveFloat | None = None
    tf32: PositiveFloat | None = None
    fp8: PositiveFloat | None = None


class Datasheet(Strict):
    """Peaks as the vendor quotes them: dense tensor TFLOP/s per dtype (at `clock_hz`); FP32
    (non-tensor) TFLOP/s and special-function exp2 rate (10^12/s), quoted at `boost_clock_hz`
    when the vendor quotes them at another clock than the tensor peak."""

    tensor_tflops: PerDtype
    fp32_tflops: PositiveFloat | None = None
    exp_tera_per_s: PositiveFloat | None = None
    boost_clock_hz: PositiveFloat | None = None


class GPUSpec(Strict):
    """One GPU: per-SM, per-clock rates, the clock (Hz), bandwidth (bytes/s), capacities (bytes)."""

    kind: Literal["gpu"] | None = None  # what the file describes (mappings/targets/)
    name: Text
    vendor: Literal["nvidia", "amd"]
    architecture: Architecture
    sms: PositiveInt
    clock_hz: PositiveFloat
    tensor_flops_per_clock_per_sm: dict[Instruction, PerDtype]
    exp_per_clock_per_sm: PositiveFloat
    fp32_lanes_per_sm: PositiveInt
    hbm_bytes_per_s: PositiveFloat
    hbm_bytes: PositiveFloat
    l2_bytes: PositiveFloat
    smem_bytes_per_sm: PositiveInt
    smem_bytes_per_block: PositiveInt
    max_warps_per_sm: PositiveInt
    datasheet: Datasheet
    sources: dict[Text, Text]

    @model_validator(mode="after")
    def _every_figure_has_a_source(self) -> "GPUSpec":
        missing = [f for f in type(self).model_fields if f not in ("kind", "name", "vendor", "sources")
                   and f not in self.sources]
        if missing:
            raise ValueError(f"field 'sources': no source named for field {missing[0]!r}")
        unknown = sorted(set(self.sources) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"field 'sources': {unknown[0]!r} is not a field")
        if self.smem_bytes_per_block > self.smem_bytes_per_sm:
            raise ValueError("field 'smem_bytes_per_block': larger than smem_bytes_per_sm")
        if not self.tensor_flops_per_clock_per_sm:
            raise ValueError("field 'tensor_flops_per_clock_per_sm': no instruction family")
        return self

    @property
    def instructions(self) -> list[str]:
        """Tensor instruction families this GPU has."""
        return list(self.tensor_flops_per_clock_per_sm)

    def tensor_flops_per_s(self, instruction: str, dtype: str) -> float | None:
        """Dense tensor FLOP/s of the whole GPU for `instruction` and `dtype` (None: unsupported)."""
        rates = self.tensor_flops_per_clock_per_sm.get(instruction)
        per_clock = getattr(rates, dtype) if rates is not None else None
        return None if per_clock is None else per_clock * self.sms * self.clock_hz

    def peak_tensor_flops_per_s(self, dtype: str) -> float:
        """The best dense tensor FLOP/s over the instruction families for `dtype` (0 if none)."""
        rates = [self.tensor_flops_per_s(i, dtype) for i in self.instructions]
        return max((r for r in rates if r is not None), default=0.0)

    @property
    def exp_per_s(self) -> float:
        """Special-function exp2 evaluations per second."""
        return self.exp_per_clock_per_sm * self.sms * self.clock_hz

    @property
    def alu_ops_per_s(self) -> float:
        """FP32 operations per second (one per lane per clock; an FMA counts as one)."""
        return float(self.fp32_lanes_per_sm) * self.sms * self.clock_hz


_UNION_TAG = re.compile(r"^(constrained-\w+|\w+\[.*\]|function-\w+)$")


def validation_message(err: ValidationError) -> str:
    """`field 'a.b': message` of the first error of `err`."""
    first = err.errors()[0]
    # drop the union-branch tags pydantic adds to locations ('constrained-float', 'dict[...]')
    where = ".".join(str(x) for x in first["loc"] if not (isinstance(x, str) and _UNION_TAG.match(x)))
    message = first["msg"].removeprefix("Value error, ")
    return f"field {where!r}: {message}" if where else message


def validate(model: type[BaseModel], data: object, path: Path) -> BaseModel:
    """`data` read from `path` validated as `model`; GPUConfigError naming the file and field."""
    if not isinstance(data, dict):
        raise GPUConfigError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise GPUConfigError(f"{path}: {validation_message(err)}") from None


def read(path: Path, what: str) -> object:
    """The YAML document at `path` (archsim.yamlio), errors as GPUConfigError."""
    try:
        return load_yaml_file(path, what)
    except YamlFileError as err:
        raise GPUConfigError(str(err)) from None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve(name_or_path: str | Path, folder: Path, what: str) -> Path:
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


def mtime(path: Path) -> int | None:
    """Modification time of `path` in ns (None if it does not exist): part of cache keys."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=256)
def load_cached(model: type[BaseModel], path: Path, what: str, stamp: int | None) -> BaseModel:
    """`path` validated as `model`, cached per path and modification time (models are frozen)."""
    return validate(model, read(path, what), path)


def load_gpu(name_or_path: str | Path) -> GPUSpec:
    """A GPU description by name (`a100`, `h100-sxm`, `h200`, ...) or from a YAML file."""
    path = resolve(name_or_path, GPU_DIR, "GPU")
    return load_cached(GPUSpec, path, "GPU description file", mtime(path))


def normalise_dtype(dtype: str) -> str:
    """`bf16`, `fp16`, `fp8`, `tf32` from any accepted spelling; GPUConfigError otherwise."""
    name = DTYPE_ALIASES.get(dtype, dtype)
    if name not in DTYPES:
        raise GPUConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return name
