"""Two-party secure-computation backends and networks: the data a private-inference cost model runs on.

A backend profile (YAML, `archsim/configs/pi/<name>.yaml`) gives, per protocol operation, the bytes
on the wire per element (both directions together), the rounds of one batched call, and the compute
seconds per element (per multiply-accumulate for the matmul operations), plus fixed per-run costs.
A network (`archsim/configs/pi/networks.yaml` or a user file) gives bandwidth (bits per second) and
round-trip time (seconds).

latency_s = compute_s + 8 * bytes / bandwidth_bps + rounds * rtt_s
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascadesim_errors import InputError
from archsim.config import CONFIG_DIR as ARCH_CONFIG_DIR
from archsim.yamlio import load_yaml_file

CONFIG_DIR = ARCH_CONFIG_DIR / "pi"  # the shipped profiles and networks (package data of archsim)
DEFAULT_PROFILE = "spu-cheetah"

# Operations a profile may define. The matmul ops are priced per element of the secret operand(s)
# plus the output; the others per element they are applied to.
KNOWN_OPS = (
    "exp", "recip", "rsqrt", "sqrt", "log", "max", "compare", "relu", "abs", "gelu_tanh", "gelu_erf",
    "erf", "tanh", "elu", "sigmoid", "softplus", "layernorm", "mul", "matmul_secret", "matmul_plain",
)


class ProfileError(InputError, ValueError):
    """A bad backend or network profile, or an operation a profile cannot price."""


@dataclass(frozen=True)
class OpCost:
    """Cost of one protocol operation: bytes per element, rounds per batched call, seconds per element."""

    bytes_per_element: float
    rounds: int
    seconds_per_element: float = 0.0


@dataclass(frozen=True)
class FixedCost:
    """One-time per-run costs (setup, key exchange): bytes, rounds, seconds."""

    bytes: float = 0.0
    rounds: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class BackendProfile:
    """A named secure-computation backend: per-operation costs and the fixed per-run cost."""

    name: str
    ops: dict[str, OpCost]
    fixed: FixedCost = FixedCost()
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def op(self, op_name: str) -> OpCost:
        """The cost of `op_name`; an error naming the operator and the profile if it has none."""
        if op_name not in self.ops:
            raise ProfileError(
                f"operator '{op_name}' has no cost in backend profile '{self.name}' "
                f"(it defines: {', '.join(sorted(self.ops))})")
        return self.ops[op_name]

    def has(self, op_name: str) -> bool:
        """Whether the profile prices `op_name`."""
        return op_name in self.ops


@dataclass(frozen=True)
class Network:
    """A link between the two parties: bandwidth in bits per second, round-trip time in seconds."""

    name: str
    bandwidth_bps: float
    rtt_s: float

    def transfer_s(self, comm_bytes: float) -> float:
        """Seconds to move comm_bytes over the link."""
        return 8.0 * comm_bytes / self.bandwidth_bps

    def latency_s(self, comm_bytes: float, rounds: int, compute_s: float = 0.0) -> float:
        """compute + bytes / bandwidth + rounds * RTT, in seconds."""
        return compute_s + self.transfer_s(comm_bytes) + rounds * self.rtt_s


def _number(value: Any, where: str, *, integer: bool = False, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProfileError(f"{where}: expected a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ProfileError(f"{where}: must be {'positive' if positive else 'non-negative'}, got {value!r}")
    if integer and int(value) != value:
        raise ProfileError(f"{where}: expected a whole number, got {value!r}")
    return int(value) if integer else float(value)


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _load_yaml(path: Path) -> Any:
    """One profile or networks file through the project's safe loader; errors as ProfileError."""
    return load_yaml_file(path, "profile or networks file", ProfileError)


def parse_profile(data: Any, source: str) -> BackendProfile:
    """Validate a profile document (already parsed YAML); errors name `source` and the field."""
    doc = _mapping(data, source)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{source}: field 'name': expected a non-empty string")
    ops_doc = _mapping(doc.get("ops"), f"{source}: field 'ops'")
    ops: dict[str, OpCost] = {}
    for op_name, entry in ops_doc.items():
        where = f"{source}: field 'ops.{op_name}'"
        sub = lambda name, op_name=op_name: f"{source}: field 'ops.{op_name}.{name}'"  # noqa: E731
        if op_name not in KNOWN_OPS:
            raise ProfileError(f"{where}: unknown operation (known: {', '.join(KNOWN_OPS)})")
        entry = _mapping(entry, where)
        unknown = set(entry) - {"bytes_per_element", "rounds", "seconds_per_element"}
        if unknown:
            raise ProfileError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        for required in ("bytes_per_element", "rounds"):
            if required not in entry:
                raise ProfileError(f"{where}: missing field '{required}'")
        ops[op_name] = OpCost(
            bytes_per_element=_number(entry["bytes_per_element"], sub("bytes_per_element")),
            rounds=_number(entry["rounds"], sub("rounds"), integer=True),
            seconds_per_element=_number(entry.get("seconds_per_element", 0.0), sub("seconds_per_element")))
    fixed_doc = _mapping(doc.get("fixed", {}), f"{source}: field 'fixed'")
    unknown = set(fixed_doc) - {"bytes", "rounds", "seconds"}
    if unknown:
        raise ProfileError(f"{source}: field 'fixed': unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    fixed = FixedCost(
        bytes=_number(fixed_doc.get("bytes", 0), f"{source}: field 'fixed.bytes'"),
        rounds=_number(fixed_doc.get("rounds", 0), f"{source}: field 'fixed.rounds'", integer=True),
        seconds=_number(fixed_doc.get("seconds", 0.0), f"{source}: field 'fixed.seconds'"))
    if doc.get("kind", "private-inference") != "private-inference":
        raise ProfileError(f"{source}: field 'kind': {doc['kind']!r} is not 'private-inference'")
    extra = {k: v for k, v in doc.items() if k not in {"kind", "name", "ops", "fixed", "description", "source"}}
    return BackendProfile(name=name, ops=ops, fixed=fixed, description=str(doc.get("description", "")),
                          source=str(doc.get("source", "")), extra=extra)


def profile_names() -> list[str]:
    """Names of the shipped backend profiles."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "networks")


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> BackendProfile:
    """A shipped profile by name (`spu-cheetah`, `crypten`, `paper-fit`) or a YAML file path."""
    if str(name_or_path).strip() == "":
        raise ProfileError(f"backend profile: empty name (known: {', '.join(profile_names())}; or give a .yaml path)")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists() or str(name_or_path) == "":
        pass  # a file: _load_yaml names it on every error
    else:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if str(name_or_path) == "networks" or not path.exists():
            raise ProfileError(f"unknown backend profile '{name_or_path}' "
                               f"(known: {', '.join(profile_names())}; or give a .yaml path)")
    return parse_profile(_load_yaml(path), str(path))


def parse_networks(data: Any, source: str) -> dict[str, Network]:
    """Validate a networks document: `networks: {NAME: {bandwidth_mbps: .., rtt_ms: ..}}`."""
    doc = _mapping(data, source)
    nets = _mapping(doc.get("networks"), f"{source}: field 'networks'")
    out: dict[str, Network] = {}
    for name, entry in nets.items():
        where = f"{source}: field 'networks.{name}'"
        entry = _mapping(entry, where)
        for required in ("bandwidth_mbps", "rtt_ms"):
            if required not in entry:
                raise ProfileError(f"{where}: missing field '{required}'")
        unknown = set(entry) - {"bandwidth_mbps", "rtt_ms", "description"}
        if unknown:
            raise ProfileError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        out[str(name)] = Network(
            name=str(name),
            bandwidth_bps=_number(entry["bandwidth_mbps"], f"{source}: field 'networks.{name}.bandwidth_mbps'",
                                  positive=True) * 1e6,
            rtt_s=_number(entry["rtt_ms"], f"{source}: field 'networks.{name}.rtt_ms'") / 1e3)
    return out


def load_networks(path: str | Path | None = None) -> dict[str, Network]:
    """The shipped networks, updated with those of a user file if given."""
    networks = parse_networks(_load_yaml(CONFIG_DIR / "networks.yaml"), str(CONFIG_DIR / "networks.yaml"))
    if path is not None:
        networks.update(parse_networks(_load_yaml(Path(path)), str(path)))
    return networks


def load_network(name: str, path: str | Path | None = None) -> Network:
    """A network by name (shipped or from a user file); an error listing the known names."""
    networks = load_networks(path)
    if name not in networks:
        raise ProfileError(f"unknown network '{name}' (known: {', '.join(sorted(networks))})")
    return networks[name]
