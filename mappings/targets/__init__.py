"""Targets a cascade is simulated on, behind one interface.

A target is what an architecture description *is*, told by its `kind`:

| kind                | description file                     | model                              | module |
|---------------------|--------------------------------------|------------------------------------|--------|
| `accelerator`       | archsim/configs/*.yaml (PE arrays)   | archsim (cycles, joules, bytes)    | mappings/targets/accelerator.py |
| `gpu`               | archsim/configs/gpus/*.yaml          | the GPU roofline-and-issue model   | mappings/targets/gpu.py |
| `private-inference` | archsim/configs/pi/*.yaml (profiles) | protocol calls priced on a network | mappings/targets/private_inference.py |

`resolve_target(arch)` takes a name of a shipped description, a YAML path or an archsim
`Architecture`; a file's top-level `kind:` field says what it is (validated), and a file written
before `kind:` existed is told by its fields (`units`: accelerator, `sms`: GPU, `ops`: profile).
Each target's `simulate(cascade, sizes, options)` returns a `SimulationResult`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import einsum_cascade as ec

from mappings.targets.result import SimulationResult
from mappings.work import MappingError

KINDS = ("accelerator", "gpu", "private-inference")


@dataclass(frozen=True)
class SimulateOptions:
    """What a caller may ask of any target (each target uses the ones that apply to it).

    mapping: "auto", a mapping spec name or path, or a MappingSpec (accelerators);
    objective: latency, energy or edp; batch, heads: independent (batch, head) pairs;
    mode: "steady" or "exact" (accelerators); network: a network name (private inference);
    check: certify the result (mappings/certify.py; False only for debugging); kv_heads: heads
    of K and V when query heads share them (MQA: 1, GQA: a divisor of heads); kernel: a GPU kernel
    profile (None: the GPU target picks one from the cascade's structure); dtype: the GPU element
    type (None: bf16); plaintext: inputs the server holds in the clear (private inference: weights)."""
    mapping: Any = "auto"
    objective: str = "latency"
    batch: int = 1
    heads: int = 1
    mode: str = "steady"
    network: str | None = None
    check: bool = True
    kv_heads: int | None = None  # heads of K and V (MQA, GQA): None = heads
    kernel: str | None = None
    dtype: str | None = None
    plaintext: frozenset[str] = frozenset()


class Target(Protocol):
    """One target: `kind` (one of KINDS), `name`, and `simulate`."""
    kind: str
    name: str

    def simulate(self, cascade: ec.Cascade, sizes: dict[str, float] | None,
                 options: SimulateOptions) -> SimulationResult: ...


def kind_of_file(path: Path) -> str:
    """The kind of the description file `path` (its `kind:` field, else told by its fields)."""
    from archsim.yamlio import load_yaml_file
    data = load_yaml_file(path, "architecture file")
    if not isinstance(data, dict):
        raise MappingError(f"{path}: an architecture file is a mapping of fields")
    kind = data.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise MappingError(f"{path}: field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
        return kind
    if "units" in data:
        return "accelerator"
    if "sms" in data:
        return "gpu"
    if "ops" in data:
        return "private-inference"
    raise MappingError(f"{path}: field 'kind' missing (one of {', '.join(KINDS)})")


def resolve_target(arch: Any) -> Target:
    """The Target for `arch`: an archsim Architecture, a shipped name, or a YAML path (module docstring)."""
    from archsim.config import Architecture
    from mappings.targets.accelerator import AcceleratorTarget
    if isinstance(arch, Architecture):
        return AcceleratorTarget(arch)
    if not isinstance(arch, (str, Path)):
        raise MappingError(f"--arch: expected a name or a path, got {type(arch).__name__}")
    text = str(arch)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        kind = kind_of_file(path)
    else:
        kind = _kind_of_name(text)
    if kind == "gpu":
        from mappings.targets.gpu import GPUTarget
        return GPUTarget(text)
    if kind == "private-inference":
        from mappings.targets.private_inference import PrivateInferenceTarget
        return PrivateInferenceTarget(text)
    from archsim.config import load_architecture
    return AcceleratorTarget(load_architecture(arch))


def _kind_of_name(name: str) -> str:
    """The kind of a shipped description called `name` (accelerator when no other kind has it)."""
    from mappings.targets.private_inference.profiles import profile_names
    if name in profile_names():
        return "private-inference"
    from archsim.gpu.specs import known_gpus
    if name in known_gpus():
        return "gpu"
    return "accelerator"


def passes_over_keys(c: ec.Cascade, key_rank: str = "M") -> int | None:
    """The cascade's lower bound on passes over `key_rank` (None if it has no such rank)."""
    return ec.passes(c, key_rank).passes if key_rank in c.ranks else None


__all__ = ["KINDS", "SimulateOptions", "SimulationResult", "Target", "kind_of_file", "passes_over_keys",
           "resolve_target"]
