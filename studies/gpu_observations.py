"""Measured attention kernel times as observations the GPU model can predict.

Two inputs:

- the published data set `studies/data/gpu-published-attention.json` (100 forward-pass
  measurements from four public sources, each row with its source, GPU, dtype, shape, kernel and
  measured value; copied from the project's reference data with every field kept);
- benchmark files of `gpu_ref.bench` (schema `cascadesim-gpu-bench/1`) in `gpu_ref/results/`.

Each row becomes an `Observation`: the GPU description and clock, the kernel profile, the dtype,
the shape and the measured seconds. The rules that map a published row's free-text GPU and
kernel to a GPU file and a profile are the tables below (first match wins).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from archsim.gpu_specs import DTYPE_ALIASES, DTYPES
from archsim.yamlio import YamlFileError, finite_number, load_yaml_file
from mappings.gpu_mapping import AttentionShape
from studies.errors import UsageError

PUBLISHED = Path(__file__).resolve().parent / "data" / "gpu-published-attention.json"
RESULTS_DIR = Path(__file__).resolve().parent.parent / "gpu_ref" / "results"
BENCH_SCHEMA = "cascadesim-gpu-bench/1"

# Published row's kernel text -> kernel profile (first matching regular expression).
KERNEL_RULES = (
    (r"^Triton tutorial", "triton-tutorial"),
    (r"^FlashAttention-3", "flash3"),
    (r"^Flash-?2", "flash2"),
    (r"^xformers", "xformers"),
    (r"^Lightning2NoDecay", "lightning2"),
    (r"^Lightning2 \(", "lightning2-decay"),
)
# Published row's GPU text -> GPU description (the tritonbench H100's SKU is not printed: SXM assumed).
GPU_RULES = ((r"^A100", "a100"), (r"^H100 ?PCIe", "h100-pcie"), (r"^H100", "h100-sxm"), (r"^H200", "h200"),
             (r"^H20\b", "h20"), (r"^B200", "b200"))
# Source text -> short label (one per publication).
SOURCE_RULES = ((r"06-fused-attention", "Triton tutorial docs (A100)"),
                (r"lightning-attention", "Lightning Attention repo (A100)"),
                (r"pytorch/benchmark", "tritonbench PR 2391 (H100)"),
                (r"Triton-to-tile-IR", "Triton tile-IR note (B200)"))
# gpu_ref benchmark kernel -> profile.
BENCH_KERNELS = {"attention_1pass": "attention_1pass", "attention_2pass": "attention_2pass",
                 "attention_3pass": "attention_3pass", "linear_attention_causal": "linear_attention"}
TILE_FIELDS = ("BLOCK_M", "BLOCK_N", "BLOCK_E", "num_warps", "num_stages")


class MeasurementError(UsageError):
    """A measurement file that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Observation:
    """One measured forward call. `row` names where it came from (file and index)."""

    row: str
    source: str
    gpu: str
    clock_hz: float | None
    kernel: str
    dtype: str
    shape: AttentionShape
    time_s: float
    tiles: tuple = ()

    @property
    def series(self) -> tuple:
        """Rows that differ only in sequence length (and batch where a source keeps B*N fixed)."""
        return (self.source, self.gpu, self.kernel, self.dtype, self.shape.head_dim, self.shape.causal)

    @property
    def label(self) -> str:
        s = self.shape
        return (f"{self.gpu} {self.kernel} {self.dtype} B={s.batch} H={s.heads} N={s.seq_len} D={s.head_dim}"
                f"{' causal' if s.causal else ''}")


def _match(rules: tuple, text: str, where: str, what: str) -> str:
    for pattern, name in rules:
        if re.search(pattern, text):
            return name
    raise MeasurementError(f"{where}: no {what} rule matches {text!r}")


def _int_field(r: dict, name: str, where: str) -> int:
    value = r.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MeasurementError(f"{where}.{name} must be a positive integer, got {value!r}")
    return value


def _bool_field(r: dict, name: str, where: str) -> bool:
    value = r.get(name)
    if not isinstance(value, bool):
        raise MeasurementError(f"{where}.{name} must be true or false, got {value!r}")
    return value


def _dtype_field(r: dict, where: str) -> str:
    value = r.get("dtype")
    name = DTYPE_ALIASES.get(value, value) if isinstance(value, str) else None
    if name not in DTYPES:
        raise MeasurementError(f"{where}.dtype must be one of {', '.join(sorted(set(DTYPE_ALIASES) | set(DTYPES)))}, "
                               f"got {value!r}")
    return name


def _positive(r: dict, name: str, where: str) -> float:
    try:
        return finite_number(r.get(name), f"{where}.{name}", positive=True)
    except YamlFileError as err:
        raise MeasurementError(str(err)) from None


def _read(path: Path) -> object:
    try:
        return load_yaml_file(path, "measurement file")
    except YamlFileError as err:
        raise MeasurementError(str(err)) from None


def load_published(path: Path = PUBLISHED) -> list[Observation]:
    """Every row of the published data set as an Observation (time from `time_ms`)."""
    data = _read(path)
    if not isinstance(data, list):
        raise MeasurementError(f"{path}: expected a list of measurement rows")
    out = []
    for i, r in enumerate(data):
        where = f"{path}: [{i}]"
        if not isinstance(r, dict):
            raise MeasurementError(f"{where} must be an object")
        for name in ("source", "gpu", "kernel"):
            if not isinstance(r.get(name), str):
                raise MeasurementError(f"{where}.{name} must be a string")
        gpu = _match(GPU_RULES, r["gpu"], f"{where}.gpu", "GPU")
        clock = re.search(r"@(\d+)\s*MHz", r["gpu"])
        shape = AttentionShape(_int_field(r, "batch", where), _int_field(r, "heads", where),
                               _int_field(r, "seq_len", where), _int_field(r, "head_dim", where),
                               _bool_field(r, "causal", where))
        out.append(Observation(f"published[{i}]", _match(SOURCE_RULES, r["source"], f"{where}.source", "source"),
                               gpu, float(clock.group(1)) * 1e6 if clock else None,
                               _match(KERNEL_RULES, r["kernel"], f"{where}.kernel", "kernel"),
                               _dtype_field(r, where), shape, _positive(r, "time_ms", where) * 1e-3))
    return out


def gpu_for_device(device: str) -> str | None:
    """The GPU description for a device name such as 'NVIDIA H200' (None if none matches)."""
    text = device.upper().replace("NVIDIA", "").strip()
    for pattern, name in GPU_RULES:
        if re.search(pattern, text):
            return name
    return None


def load_bench(paths: list[Path], gpu: str | None = None) -> list[Observation]:
    """Records of gpu_ref's kernels from benchmark files (the torch baseline has no profile).

    `gpu`: the GPU description to use; default: the one matching each file's `gpu` field.
    """
    out = []
    for path in paths:
        data = _read(path)
        if not isinstance(data, dict) or data.get("schema") != BENCH_SCHEMA:
            raise MeasurementError(f"{path}: field 'schema' must be {BENCH_SCHEMA!r}")
        if not isinstance(data.get("records"), list):
            raise MeasurementError(f"{path}: field 'records' must be a list")
        name = gpu or gpu_for_device(str(data.get("gpu") or ""))
        if name is None:
            raise MeasurementError(f"{path}: field 'gpu' ({data.get('gpu')!r}) matches no GPU description; "
                                   "give one with --gpu")
        for i, r in enumerate(data["records"]):
            where = f"{path}: records[{i}]"
            if not isinstance(r, dict):
                raise MeasurementError(f"{where} must be an object")
            for field_name in ("kernel", "batch", "heads", "seq_len", "head_dim", "causal", "dtype", "median_ms"):
                if field_name not in r:
                    raise MeasurementError(f"{where}: missing field {field_name!r}")
            shape = AttentionShape(_int_field(r, "batch", where), _int_field(r, "heads", where),
                                   _int_field(r, "seq_len", where), _int_field(r, "head_dim", where),
                                   _bool_field(r, "causal", where))
            dtype = _dtype_field(r, where)
            median = _positive(r, "median_ms", where)
            if r["kernel"] not in BENCH_KERNELS:
                continue
            tiles = r.get("tiles") or {}
            if not isinstance(tiles, dict):
                raise MeasurementError(f"{where}.tiles must be an object of launch settings")
            needed = ("BLOCK_N", "BLOCK_E") if r["kernel"] == "linear_attention_causal" else ("BLOCK_M", "BLOCK_N")
            if tiles:
                for key in (*needed, "num_warps", "num_stages"):
                    value = tiles.get(key)
                    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                        raise MeasurementError(f"{where}.tiles.{key} must be a positive integer, got {value!r}")
            kept = tuple(sorted((k, v) for k, v in tiles.items() if k in TILE_FIELDS))
            out.append(Observation(f"{path.name}: records[{i}]", f"gpu_ref bench ({path.name})", name, None,
                                   BENCH_KERNELS[r["kernel"]], dtype, shape, median * 1e-3, kept))
    return out


def default_bench_files() -> list[Path]:
    """Every JSON file in gpu_ref/results/, sorted."""
    return sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir() else []
