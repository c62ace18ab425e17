"""One call for every target: `simulate(cascade, arch, sizes, mapping="auto", objective="latency")`.

`arch` names or is a target (mappings/targets/): a spatial accelerator (mapped by a spec or by the
mapper, simulated by archsim), the GPU model, or a private-inference profile. Sizes are completed
by mappings/size_completion.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import einsum_cascade as ec

from mappings.size_completion import complete_sizes
from mappings.spec import MappingSpec
from mappings.targets import SimulateOptions, resolve_target
from mappings.targets.accelerator import evaluate
from mappings.targets.result import SimulationResult
from mappings.work import MappingError

OBJECTIVES = ("latency", "energy", "edp")


def load_cascade(cascade: ec.Cascade | str | Path) -> ec.Cascade:
    """A Cascade, a library or block name (`attention_1pass`, `blocks/matmul`), or a .cascade path."""
    if isinstance(cascade, ec.Cascade):
        return cascade
    p = Path(cascade)
    if p.suffix == ".cascade" or p.exists():
        return ec.load(p)
    stem = str(cascade).removeprefix("blocks/")
    if stem in ec.library_names() or stem in ec.block_names():
        return ec.load_library(stem)
    raise MappingError(f"cascade: {str(cascade)!r} is neither a file nor a library cascade")


def simulate(cascade: ec.Cascade | str | Path, arch: Any, sizes: dict[str, float] | None = None,
             mapping: MappingSpec | str | Path = "auto", objective: str = "latency", batch: int = 1, heads: int = 1,
             mode: str = "steady", network: str | None = None, check: bool = True,
             kv_heads: int | None = None, kernel: str | None = None, dtype: str | None = None,
             plaintext: frozenset[str] = frozenset()) -> SimulationResult:
    """Simulate `cascade` at `sizes` on target `arch` (mappings/targets/) for `batch` x `heads`
    independent (batch, head) pairs. `mapping`: "auto" (the mapper, optimising `objective`: latency,
    energy or edp), a spec name or path, or a MappingSpec (accelerators only). Every result is
    certified (mappings/certify.py: InvariantViolation on a broken invariant); `check=False` skips
    that, for debugging only. `kv_heads`: heads of K and V (MQA / GQA; default `heads`): K/V traffic
    is priced once per KV head (accelerators: the query heads of one KV head run together; GPU).
    `kernel` and `dtype` apply to the GPU target; `plaintext`: inputs the server holds in the clear
    (private inference: weights)."""
    if objective not in OBJECTIVES:
        raise MappingError(f"--objective: unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
    for name, v in (("batch", batch), ("heads", heads), ("kv-heads", heads if kv_heads is None else kv_heads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise MappingError(f"--{name}: must be a positive integer, got {v!r}")
    c = load_cascade(cascade)
    options = SimulateOptions(mapping=mapping, objective=objective, batch=batch, heads=heads, mode=mode,
                              network=network, check=check, kv_heads=kv_heads, kernel=kernel, dtype=dtype,
                              plaintext=frozenset(plaintext))
    target = resolve_target(arch)
    if kv_heads not in (None, heads) and target.kind == "private-inference":
        raise MappingError(f"--kv-heads: the {target.kind} target models one K and V per query head")
    return target.simulate(c, sizes, options)


__all__ = ["OBJECTIVES", "SimulationResult", "complete_sizes", "evaluate", "load_cascade", "simulate"]
