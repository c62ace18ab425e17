"""Workloads: a model's attention layer bound to a sequence length (self-attention, M = P)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cascadesim_errors import InputError
from einsum_cascade.size_text import SizeTextError, parse_size
from archsim.yamlio import load_yaml_file

from archsim.filecache import cached_load

MODELS_FILE = Path(__file__).parent / "models.yaml"
FIELDS = ("B", "D", "E", "F", "H", "S")


class WorkloadError(InputError, ValueError):
    """A bad model or sequence length (names the file or value)."""


@dataclass(frozen=True)
class Workload:
    """One attention layer: batch B, heads H, head dims E/F, width D, FFN width S, seq_len tokens."""
    model: str
    B: int
    D: int
    E: int
    F: int
    H: int
    S: int
    seq_len: int

    @property
    def heads(self) -> int:
        """Independent (batch, head) pairs: B * H."""
        return self.B * self.H


def load_models(path: Path = MODELS_FILE) -> dict[str, dict[str, int]]:
    """Model name -> sizes (FIELDS, each a positive integer) from a YAML file (read once per process)."""
    return cached_load(path, lambda: _read_models(path), "models")


def _read_models(path: Path) -> dict[str, dict[str, int]]:
    data = load_yaml_file(path, "models file", WorkloadError)
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}: expected a mapping of model name -> sizes")
    for name, sizes in data.items():
        if not isinstance(sizes, dict):
            raise WorkloadError(f"{path}: {name}: expected a mapping of sizes ({', '.join(FIELDS)})")
        for f in FIELDS:
            v = sizes.get(f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise WorkloadError(f"{path}: {name}.{f}: must be a positive integer, got {v!r}")
    return data


def make_workload(model: str, seq_len: int) -> Workload:
    """The attention layer of `model` (models.yaml) at `seq_len` tokens."""
    models = load_models()
    if model not in models:
        raise WorkloadError(f"unknown model {model!r} (known: {', '.join(models)})")
    if seq_len <= 0:
        raise WorkloadError(f"sequence length must be positive, got {seq_len}")
    return Workload(model=model, seq_len=seq_len, **{f: models[model][f] for f in FIELDS})


def parse_length(text: str) -> int:
    """'1K' -> 1024, '1M' -> 1048576, '4096' -> 4096 (einsum_cascade.size_text's sizes)."""
    try:
        return parse_size(text)
    except SizeTextError:
        raise WorkloadError(f"bad sequence length {text!r} (use e.g. 1K, 64K, 1M or 4096)") from None


def format_length(n: int) -> str:
    """1048576 -> '1M', 1024 -> '1K', 1000 -> '1000' (the inverse of parse_length)."""
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)}M"
    if n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)
