"""One call for every target: `simulate(cascade, arch, sizes, mapping="auto", objective="latency")`.

Targets (`arch`):
- a spatial accelerator (an archsim architecture name or YAML path, or an Architecture): the
  cascade is mapped by a spec (a name in mappings/specs/, a YAML path, a MappingSpec) or by the
  mapper (`"auto"`, mappings/mapper.py) and simulated by archsim;
- the GPU model (`"h200"` or another archsim/configs GPU file): the gpu_ref kernel that implements
  the cascade, through mappings/gpu_mapping.py (no mapping choice; energy and cycles are null);
- a private-inference profile (`"spu-cheetah"`, archsim/configs/pi/): the cascade's protocol
  calls (mappings/secure_mapping.py) on `network` (default "lan"); cycles, energy, DRAM null.

Sizes: every rank size and param of the cascade; a missing query rank P (or key rank M) is the
other one (self-attention); a split rank's inner size (M0) comes from the mapping's tile; other
missing sizes come from the cascade's own defaults where it declares them, else are an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import einsum_cascade as ec

from archsim.config import CONFIG_DIR, Architecture, load_architecture
from archsim.result import Result, run
from mappings.spec import MappingSpec, load_spec
from mappings.work import MappingError

OBJECTIVES = ("latency", "energy", "edp")


@dataclass
class SimulationResult:
    """Outcome of `simulate`. Units: seconds, cycles, joules, bytes; util busy fractions 0..1.
    Fields that do not apply to the target are None."""
    target: str  # "accelerator", "gpu" or "private-inference"
    cascade: str
    arch: str
    sizes: dict[str, float]
    batch: int
    heads: int
    latency_s: float
    cycles: float | None = None
    energy_j: float | None = None
    energy_by_component: dict[str, float] | None = None
    dram_bytes: float | None = None
    util: dict[str, float] | None = None
    bounding_unit: str | None = None
    passes: int | None = None
    mapping: dict[str, Any] | None = None
    candidates_evaluated: int | None = None
    objective: str | None = None
    comm_bytes: float | None = None
    rounds: int | None = None
    network: str | None = None
    sizes_defaulted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    result: Result | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable fields (the archsim Result left out)."""
        d = asdict(self)
        d.pop("result")
        return d

    def score(self, objective: str) -> float:
        """The objective's value: latency_s, energy_j, or their product (edp, joule-seconds)."""
        if objective == "latency":
            return self.latency_s
        if self.energy_j is None:
            raise MappingError(f"objective {objective!r}: the {self.target} target has no energy model")
        return self.energy_j if objective == "energy" else self.energy_j * self.latency_s


def load_cascade(cascade: ec.Cascade | str | Path) -> ec.Cascade:
    """A Cascade, a library name, or a .cascade path."""
    if isinstance(cascade, ec.Cascade):
        return cascade
    p = Path(cascade)
    if p.suffix == ".cascade" or p.exists():
        return ec.load(p)
    if str(cascade) in ec.library_names():
        return ec.load_library(str(cascade))
    raise MappingError(f"cascade: {str(cascade)!r} is neither a file nor a library cascade")


def complete_sizes(c: ec.Cascade, sizes: dict[str, float] | None, query_rank: str = "P",
                   key_rank: str = "M") -> tuple[dict[str, float], dict[str, str]]:
    """`sizes` completed (module docstring) and, for each size filled in, where it came from."""
    out = {k: v for k, v in (sizes or {}).items()}
    how: dict[str, str] = {}
    for a, b in ((query_rank, key_rank), (key_rank, query_rank)):
        if a in c.ranks and a not in out and b in out:
            out[a] = out[b]
            how[a] = f"= {b} (self-attention)"
    from einsum_cascade.sizes import with_defaults  # a part the others determine is derived, not defaulted

    for k, v in with_defaults(c, out).items():
        if k not in out:
            out[k] = v
            how[k] = "the cascade's default"
    unknown = sorted(set(out) - set(c.size_names) - set(c.params))
    if unknown:
        raise MappingError(f"--size: {', '.join(unknown)} not a rank or param of {c.name} "
                           f"(sizes: {', '.join(c.size_names + c.params)})")
    parts = {x for r in c.ranks.values() if len(r.parts) == 2 for x in r.parts}  # set by the mapping's tile
    missing = [n for n in c.size_names + c.params if n not in out and n not in parts]
    if missing:
        raise MappingError(f"--size: {c.name} needs {', '.join(missing)} (e.g. --size "
                           f"{' '.join(f'{m}=64' for m in missing)})")
    return out, how


def _is_gpu(arch: Any) -> bool:
    """A GPU description (a name in archsim/configs/gpus/, or a YAML file with `sms` and no `units`)."""
    if not isinstance(arch, (str, Path)):
        return False
    from archsim.gpu_specs import known_gpus
    if str(arch) in known_gpus():
        return True
    p = Path(arch)
    if p.suffix not in (".yaml", ".yml") or not p.is_file():
        return False
    from archsim.yamlio import load_yaml_file
    data = load_yaml_file(p, "architecture file")
    return isinstance(data, dict) and "sms" in data and "units" not in data


def _is_pi(arch: Any) -> bool:
    if not isinstance(arch, str):
        return False
    from archsim.secure_backend import profile_names
    return arch in profile_names()


def simulate(cascade: ec.Cascade | str | Path, arch: Architecture | str | Path, sizes: dict[str, float] | None = None,
             mapping: MappingSpec | str | Path = "auto", objective: str = "latency", batch: int = 1, heads: int = 1,
             mode: str = "steady", network: str | None = None) -> SimulationResult:
    """Simulate `cascade` at `sizes` on `arch` for `batch` x `heads` independent (batch, head) pairs
    (module docstring). `mapping`: "auto" (the mapper, optimising `objective`: latency, energy or
    edp), a spec name or path, or a MappingSpec."""
    if objective not in OBJECTIVES:
        raise MappingError(f"--objective: unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
    for name, v in (("batch", batch), ("heads", heads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise MappingError(f"--{name}: must be a positive integer, got {v!r}")
    c = load_cascade(cascade)
    if _is_pi(arch):
        return _private_inference(c, str(arch), sizes, batch, heads, network)
    if _is_gpu(arch):
        return _gpu(c, str(arch), sizes, batch, heads)
    a = arch if isinstance(arch, Architecture) else load_architecture(arch)
    spec = mapping if isinstance(mapping, MappingSpec) else None
    if spec is None and str(mapping) != "auto":
        spec = load_spec(mapping)
    query_rank = spec.query_rank if spec else "P"
    full, how = complete_sizes(c, sizes, query_rank, spec.rank if spec else "M")
    if spec is None:
        from mappings.mapper import search
        found = search(c, a, full, objective=objective, batch=batch, heads=heads)
        spec, res, n = found.spec, found.result, found.candidates
        if mode != "steady":
            res = evaluate(c, spec, a, full, batch, heads, mode)
    else:
        res, n = evaluate(c, spec, a, full, batch, heads, mode), 1
    return _accelerator_result(c, a, full, how, batch, heads, spec, res, n, objective)


def evaluate(c: ec.Cascade, spec: MappingSpec, a: Architecture, sizes: dict, batch: int = 1, heads: int = 1,
             mode: str = "steady") -> Result:
    """archsim Result of `spec` (sizes complete, partition inner size from the spec's tile)."""
    from mappings.scheduler import build_schedule
    return run(build_schedule(c, spec, a, sizes, outer_blocks=batch * heads), a, mode, configuration=spec.name)


def _accelerator_result(c, a: Architecture, sizes, how, batch, heads, spec: MappingSpec, res: Result, n: int,
                        objective: str) -> SimulationResult:
    from mappings.scheduler import context
    ctx = context(c, spec, a, sizes)
    util = {u: res.busy(u) for u in a.units}
    busiest = max(util, key=util.get) if util else None
    dram_frac = res.dram_bytes / a.dram_bytes_per_cycle / res.cycles if res.cycles else 0.0
    bounding = "dram" if busiest is None or dram_frac > util[busiest] else busiest
    mapping = spec.resolved(sizes).model_dump(exclude_defaults=True)
    mapping["name"] = spec.name
    return SimulationResult(
        target="accelerator", cascade=c.name, arch=a.name, sizes=dict(sizes), batch=batch, heads=heads,
        latency_s=res.seconds, cycles=res.cycles, energy_j=res.joules, energy_by_component=res.energy_by_component,
        dram_bytes=res.dram_bytes, util=util, bounding_unit=bounding, passes=ctx.st.n_passes, mapping=mapping,
        candidates_evaluated=n, objective=objective, sizes_defaulted=how, notes=list(res.notes), result=res)


def _gpu(c: ec.Cascade, arch: str, sizes, batch: int, heads: int) -> SimulationResult:
    """Thin adapter to mappings/gpu_predict.py: the gpu_ref kernel implementing the cascade."""
    from mappings.gpu_mapping import AttentionShape
    from mappings.gpu_predict import PROFILE_FOR_CASCADE, predict
    if c.name not in PROFILE_FOR_CASCADE:
        raise MappingError(f"--arch {arch}: no GPU kernel implements cascade {c.name} "
                           f"(kernels for: {', '.join(sorted(PROFILE_FOR_CASCADE))})")
    full, how = complete_sizes(c, sizes)
    if full.get("M") != full.get("P"):
        raise MappingError(f"--arch {arch}: the GPU kernels run self-attention (M = P), got M={full.get('M')}, P={full.get('P')}")
    shape = AttentionShape(batch=batch, heads=heads, seq_len=int(full["M"]), head_dim=int(full["E"]), causal=False)
    kernel = PROFILE_FOR_CASCADE[c.name]
    pred = predict(arch, kernel, shape)
    return SimulationResult(target="gpu", cascade=c.name, arch=str(arch), sizes=full, batch=batch, heads=heads,
                            latency_s=pred.time_s, bounding_unit=pred.bound, dram_bytes=pred.hbm_bytes,
                            passes=ec.passes(c, "M").passes if "M" in c.ranks else None,
                            sizes_defaulted=how, notes=[f"gpu_ref kernel profile {kernel} ({pred.dtype})"])


def _private_inference(c: ec.Cascade, profile_name: str, sizes, batch: int, heads: int,
                       network: str | None) -> SimulationResult:
    """Thin adapter to mappings/secure_mapping.py: protocol calls priced on a network."""
    from archsim.secure_backend import load_network, load_profile
    from mappings.secure_mapping import map_cascade
    full, how = complete_sizes(c, sizes)
    net = load_network(network or "lan")
    cost = map_cascade(c, full, load_profile(profile_name))
    pairs = batch * heads
    comm, compute = cost.comm_bytes * pairs, cost.compute_s * pairs
    return SimulationResult(target="private-inference", cascade=c.name, arch=profile_name, sizes=full, batch=batch,
                            heads=heads, latency_s=net.latency_s(comm, cost.rounds, compute), comm_bytes=comm,
                            rounds=cost.rounds, network=net.name,
                            passes=ec.passes(c, "M").passes if "M" in c.ranks else None, sizes_defaulted=how,
                            notes=[f"{pairs} (batch, head) pairs run in parallel rounds"]
                            + ([] if network else ["network: lan (default)"]))
