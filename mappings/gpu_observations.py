"""Published GPU kernel measurements as observations the GPU model can predict.

Inputs (copied from the project's reference data with every field kept; each row names its source):

- `archsim/gpu/data/gpu-published-attention.json`: 100 dense softmax forward rows (A100, H100, B200);
- `archsim/gpu/data/gpu-published-variants.json`: 1,232 rows of decode (GQA, MLA, paged KV),
  linear/recurrent prefill and decode, Mamba2 SSD, sliding-window and block-sparse attention,
  FlexAttention and the dense baselines of the same tables;
- benchmark files of `gpu_ref.bench` (schema `cascadesim-gpu-bench/1`) in `gpu_ref/results/`.

Each row becomes an `Observation` (GPU description and clock, kernel profile, dtype, shape,
measured seconds, source, kernel family, whether the data set marks it disputed) or a `Skipped`
row with the reason (backward passes, kernels without a profile, rows without a time). The
rules that map a row's free-text GPU and kernel to a GPU file and a profile are the tables below
(first match wins). Rows whose notes say DOUBT, and the table the data's README says to treat
with care (pytorch PR 137036), are `disputed`: reported apart, never fitted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from archsim.gpu.specs import DTYPE_ALIASES, DTYPES
from archsim.yamlio import YamlFileError, finite_number, load_yaml_file
from mappings.gpu_kernels import AttentionShape
from mappings.work import MappingError

DATA_DIR = Path(__file__).resolve().parent.parent / "archsim" / "gpu" / "data"
PUBLISHED = DATA_DIR / "gpu-published-attention.json"
VARIANTS = DATA_DIR / "gpu-published-variants.json"
RESULTS_DIR = Path(__file__).resolve().parent.parent / "gpu_ref" / "results"
BENCH_SCHEMA = "cascadesim-gpu-bench/1"

# Kernel family groups of the report (and of the targets: dense, decode, sliding window <= 15 %,
# linear / recurrent and SSM <= 25 %).
GROUP_OF_FAMILY = {"dense_baseline": "dense", "dense": "dense", "flex_attention": "dense", "decode": "decode",
                   "sliding_window": "sliding-window", "linear_attention": "linear", "linear_attention_decode": "linear",
                   "ssm_mamba2": "ssm"}

# Dense file: kernel text -> profile.
KERNEL_RULES = (
    (r"^Triton tutorial", "triton-tutorial"),
    (r"^FlashAttention-3", "flash3"),
    (r"^Flash-?2", "flash2"),
    (r"^xformers", "xformers"),
    (r"^Lightning2NoDecay", "lightning2"),
    (r"^Lightning2 \(", "lightning2-decay"),
)
# Variants file: (family regex, kernel regex) -> profile (None: no profile, the reason given).
VARIANT_RULES = (
    ("decode", r"^flash-attention 2\.0\.9", "flash2"),
    ("decode", r"flash\.FwOp", "flash-decoding"),
    ("decode", r"triton_splitK", "triton-splitk"),
    ("decode", r"FlashMLA sparse", None),
    ("decode", r"MLA decode trtllm-gen|MLAPaged.*trtllm", "trtllm-gen-mla"),
    ("decode", r"MLA decode cute-dsl", "cute-dsl-mla"),
    ("decode", r"MLAPaged.*backend=fa2", "flashinfer-mla"),
    ("decode", r"backend=fa2_tc", "flashinfer-decode-tc"),
    ("decode", r"backend=fa2|^FlashInfer paged decode", "flashinfer-decode"),
    ("decode", r"backend=trtllm-gen-native", "xqa-decode"),
    ("decode", r"backend=trtllm", "trtllm-gen-decode"),
    ("decode", r"backend=cute-dsl", "cute-dsl-decode"),
    ("decode", r"backend=cudnn", "cudnn-decode"),
    ("decode", r"^FlashAttention-3 flash_attn_with_kvcache", "fa3-decode"),
    ("decode", r"^TileOPs", "tileops-decode"),
    ("dense_baseline|sliding_window", r"trtllm-gen prefill", "trtllm-gen-prefill"),
    ("dense_baseline|sliding_window", r"cute-dsl", "cute-dsl-prefill"),
    ("dense_baseline", r"^PyTorch eager", None),
    ("dense_baseline", r"materialized attn_mask", None),
    ("dense_baseline", r"SDPA cuDNN", "cudnn"),
    ("dense_baseline", r"SDPA mem-efficient", "xformers"),
    ("dense_baseline", r"SDPA math", "standard"),
    ("dense_baseline", r"^SDPA is_causal|FlashAttention-2|^flash_attn", "flash2"),
    ("flex_attention", r"FlexAttention", "flex-attention"),
    ("linear_attention", r"^(fla:|chunk_)(retention)", "fla-chunk-retention"),
    ("linear_attention", r"^(fla:|chunk_)(gla|full_gla)", "fla-chunk-gla"),
    ("linear_attention", r"^fla:simple_gla", "fla-chunk-simple-gla"),
    ("linear_attention", r"^fla:(vanilla_)?linear_attn", "fla-chunk-linear"),
    ("linear_attention", r"^fla:delta_rule", "fla-chunk-delta-rule"),
    ("linear_attention", r"^(fla:gated_delta_rule|chunk_gdn|FLA chunk_gated_delta_rule)", "fla-chunk-gdn"),
    ("linear_attention", r"^fla:kda", "fla-chunk-kda"),
    ("linear_attention", r"^helion:retention", "helion-chunk-retention"),
    ("linear_attention", r"^helion:full_gla", "helion-chunk-gla"),
    ("linear_attention", r"^helion:simple_gla", "helion-chunk-simple-gla"),
    ("linear_attention", r"^helion:(vanilla_)?linear_attn", "helion-chunk-linear"),
    ("linear_attention", r"^helion:delta_rule", "helion-chunk-delta-rule"),
    ("linear_attention", r"^helion:gated_delta_rule", "helion-chunk-gdn"),
    ("linear_attention", r"^helion:kda", "helion-chunk-kda"),
    ("linear_attention", r"^flashinfer GDN prefill SM(90|120)", "flashinfer-gdn-prefill-cp"),
    ("linear_attention", r"^flashinfer GDN prefill", "flashinfer-gdn-prefill"),
    ("linear_attention", r"FlashKDA", "flash-kda"),
    ("linear_attention", r"recurrent_kda prefill", "cake-kda"),
    ("linear_attention", r"^(fused_chunk_retention|parallel_based)", None),
    ("linear_attention_decode", r"bf16state", "flashinfer-gdn-decode-bf16"),
    ("linear_attention_decode", r"gated_delta_rule_mtp", "flashinfer-gdn-decode"),
    ("linear_attention_decode", r"kda_decode|recurrent_kda decode", "flashinfer-kda-decode"),
    ("linear_attention_decode", r"^FLA recurrent KDA", "fla-recurrent-kda"),
    ("ssm_mamba2", r"^Triton reference mamba", "mamba2-ssd-triton"),
    ("ssm_mamba2", r"SSDCombined", "flashinfer-ssd"),
)
# Kernels given grouped-query inputs (1 < kv_heads < heads) as K/V expanded to every query head
# (5-D BMGHK tensors in xformers' decoding benchmark, whose note says flash.FwOp is "~10x slower
# there (GQA path)"; MQA rows are not expanded): they read K and V once per query head, so such a
# row is modelled with kv_heads = heads.
EXPANDED_KV = ("flash-decoding",)
# Row's GPU text (or gpu_class) -> GPU description (tritonbench's H100 SKU is not printed: SXM assumed;
# "Blackwell SM100a (SKU n/s)" is taken as a B200).
GPU_RULES = ((r"^A100", "a100"), (r"H100 ?PCIe", "h100-pcie"), (r"^H100", "h100-sxm"), (r"^H200", "h200"),
             (r"^H800", "h800"), (r"^H20\b", "h20"), (r"^GB200", "gb200"), (r"^B300", "b300"), (r"^B200", "b200"),
             (r"^Blackwell SM100a", "b200"), (r"^RTX PRO 6000", "rtx-pro-6000"), (r"^RTX A6000", "rtx-a6000"),
             (r"^RTX 5090", "rtx-5090"), (r"^RTX 4090", "rtx-4090"), (r"^L40S", "l40s"), (r"^L4\b", "l4"))
# Dense file's source text -> short label (one per publication).
SOURCE_RULES = ((r"06-fused-attention", "Triton tutorial docs (A100)"),
                (r"lightning-attention", "Lightning Attention repo (A100)"),
                (r"pytorch/benchmark", "tritonbench PR 2391 (H100)"),
                (r"Triton-to-tile-IR", "Triton tile-IR note (B200)"))
BENCH_KERNELS = {"attention_1pass": "attention_1pass", "attention_2pass": "attention_2pass",
                 "attention_3pass": "attention_3pass", "linear_attention_causal": "linear_attention"}
TILE_FIELDS = ("BLOCK_M", "BLOCK_N", "BLOCK_E", "num_warps", "num_stages")
DISPUTED_SOURCES = (r"pytorch/pytorch PR #137036",)


class MeasurementError(MappingError):
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
    group: str = "dense"
    disputed: bool = False
    tiles: tuple = ()

    @property
    def series(self) -> tuple:
        """Rows that differ only in sequence length (and batch where a source keeps B*N fixed)."""
        return (self.source, self.gpu, self.kernel, self.dtype, self.shape.head_dim, self.shape.causal)

    @property
    def label(self) -> str:
        s = self.shape
        kv = f"/{s.hkv}" if s.hkv != s.heads else ""
        m = f"x{s.kv_len}" if s.kv_len != s.q_len else ""
        return (f"{self.gpu} {self.kernel} {self.dtype} B={s.batch} H={s.heads}{kv} N={s.q_len}{m} D={s.head_dim}"
                f"{' causal' if s.causal else ''}{f' w={s.window}' if s.window is not None else ''}")


@dataclass(frozen=True)
class Skipped:
    """A row the model does not predict, and why."""

    row: str
    source: str
    group: str
    reason: str


def _match(rules: tuple, text: str, where: str, what: str) -> str:
    for pattern, name in rules:
        if re.search(pattern, text):
            return name
    raise MeasurementError(f"{where}: no {what} rule matches {text!r}")


def _int_field(r: dict, name: str, where: str, default: int | None = None) -> int:
    value = r.get(name, default)
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MeasurementError(f"{where}.{name} must be a positive integer, got {value!r}")
    return value


def _bool_field(r: dict, name: str, where: str) -> bool:
    value = r.get(name)
    if not isinstance(value, bool):
        raise MeasurementError(f"{where}.{name} must be true or false, got {value!r}")
    return value


def _dtype_name(value: object) -> str | None:
    """The dtype of a row's dtype text (the K/V dtype of mixed rows; fp8 wherever fp8 K/V is named)."""
    if not isinstance(value, str):
        return None
    name = DTYPE_ALIASES.get(value, value)
    if name in DTYPES:
        return name
    if re.search(r"fp8 (kv|v)\b|fp8_e4m3 q|^fp8", value, re.I):
        return "fp8"
    if re.search(r"bf16", value):
        return "bf16"
    if re.search(r"fp16", value):
        return "fp16"
    return None


def _dtype_field(r: dict, where: str) -> str:
    name = _dtype_name(r.get("dtype"))
    if name is None:
        raise MeasurementError(f"{where}.dtype must be one of {', '.join(sorted(set(DTYPE_ALIASES) | set(DTYPES)))}, "
                               f"got {r.get('dtype')!r}")
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


def _read_json(path: Path) -> object:
    """A published data set (JSON, larger than the YAML loader's limit for input files)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MeasurementError(f"{path}: cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f":{err.lineno}:{err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise MeasurementError(f"{path}{where}: not valid JSON ({err.msg if hasattr(err, 'msg') else err})") from None


def _rows(path: Path) -> list[dict]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise MeasurementError(f"{path}: expected a list of measurement rows")
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise MeasurementError(f"{path}: [{i}] must be an object")
        for name in ("source", "gpu", "kernel"):
            if not isinstance(r.get(name), str):
                raise MeasurementError(f"{path}: [{i}].{name} must be a string")
    return data


def load_published(path: Path = PUBLISHED) -> list[Observation]:
    """Every row of the dense data set as an Observation (time from `time_ms`)."""
    out = []
    for i, r in enumerate(_rows(path)):
        where = f"{path}: [{i}]"
        gpu = _match(GPU_RULES, r["gpu"], f"{where}.gpu", "GPU")
        clock = re.search(r"@(\d+)\s*MHz", r["gpu"])
        shape = AttentionShape(_int_field(r, "batch", where), _int_field(r, "heads", where),
                               _int_field(r, "seq_len", where), _int_field(r, "head_dim", where),
                               _bool_field(r, "causal", where))
        kernel = _match(KERNEL_RULES, r["kernel"], f"{where}.kernel", "kernel")
        out.append(Observation(f"published[{i}]", _match(SOURCE_RULES, r["source"], f"{where}.source", "source"),
                               gpu, float(clock.group(1)) * 1e6 if clock else None, kernel,
                               _dtype_field(r, where), shape, _positive(r, "time_ms", where) * 1e-3,
                               "linear" if kernel.startswith("lightning") else "dense"))
    return out


def source_label(text: str) -> str:
    """A short name of one publication: repository and commit, file, PR or issue (hashes cut to 8)."""
    text = re.sub(r"\b([0-9a-f]{8})[0-9a-f]{32}\b", r"\1", text)
    m = re.match(r"^(\S+(?: \(then \S+\))? (?:commit \w+|\S+ @ \w+|PR #\d+|issue #\d+|file id \d+|\S+))", text)
    return (m.group(1) if m else text[:60]).replace(" (then sustcsonglin/flash-linear-attention)", "")


def _state_writes(variant: str, steps: int) -> int:
    """States written by a recurrent decode call: one per token when intermediate states are
    cached, none more when the final update is disabled."""
    writes = steps if re.search(r"cache_intermediate_states=ON", variant) else 0
    if not re.search(r"disable_state_update=True", variant):
        writes += 1
    return writes


def _variant_shape(r: dict, profile: str, where: str) -> AttentionShape:
    """The AttentionShape of a variants row (linear recurrences: heads = value heads, kv_heads =
    q/k heads; Mamba2: heads, D = d_state, Dv = headdim, kv_heads = groups)."""
    fam = r["family"]
    b, h, d = _int_field(r, "batch", where), _int_field(r, "heads", where), _int_field(r, "head_dim", where)
    q = _int_field(r, "seq_len_q", where)
    causal = bool(r.get("causal"))
    if fam == "ssm_mamba2":
        return AttentionShape(b, h, q, _int_field(r, "d_state", where), True,
                              kv_heads=_int_field(r, "n_groups", where), head_dim_v=d)
    if fam in ("linear_attention", "linear_attention_decode"):
        v_heads = r.get("v_heads") or h
        shape = AttentionShape(b, v_heads, q, d, True, kv_heads=h if v_heads % h == 0 else v_heads)
        if fam == "linear_attention_decode":
            shape = AttentionShape(b, v_heads, q, d, True, kv_heads=shape.kv_heads,
                                   state_writes=_state_writes(r.get("variant") or "", q))
        return shape
    m = r.get("seq_len_kv") or q
    kv = r.get("kv_heads") or h
    if profile in EXPANDED_KV and 1 < kv < h:
        kv = h
    mla = "MLA" in (r.get("variant") or "") or "MLA" in r["kernel"]
    window = r.get("window_left")
    density = 1.0
    if fam == "flex_attention" or r.get("block_mask_sparsity") is not None:
        density = 1.0  # the causal block mask is the causal mask already modelled
    return AttentionShape(b, h, q, d, causal if q > 1 or fam != "decode" else False, kv_heads=kv,
                          seq_len_kv=_int_field(r, "seq_len_kv", where, m), head_dim_v=r.get("head_dim_v"),
                          window=window if isinstance(window, int) else None, density=density,
                          page_size=r.get("page_size"), shared_kv=mla)


def load_variants(path: Path = VARIANTS) -> tuple[list[Observation], list[Skipped]]:
    """The variants data set as Observations, and the rows the model does not predict (with why)."""
    out, skipped = [], []
    for i, r in enumerate(_rows(path)):
        where = f"{path}: [{i}]"
        row = f"variants[{r.get('id', i)}]"
        source = source_label(r["source"])
        group = GROUP_OF_FAMILY.get(r.get("family"), "other")
        if r.get("direction") != "fwd":
            skipped.append(Skipped(row, source, group, f"direction {r.get('direction')} (forward passes only)"))
            continue
        if not isinstance(r.get("time_ms"), (int, float)) or isinstance(r.get("time_ms"), bool):
            skipped.append(Skipped(row, source, group, "no time printed (TFLOP/s only)"))
            continue
        profile = None
        for fam, pattern, name in VARIANT_RULES:
            if re.fullmatch(fam, r["family"]) and re.search(pattern, r["kernel"]):
                profile = name or ""
                break
        if not profile:
            skipped.append(Skipped(row, source, group, f"no kernel profile for {r['kernel']!r}"))
            continue
        if r.get("seq_lens") and len(set(r["seq_lens"])) > 1:
            skipped.append(Skipped(row, source, group, "variable-length batch"))
            continue
        if r.get("seq_len_kv_actual_mean") is not None:
            skipped.append(Skipped(row, source, group, "random per-request KV lengths (only their mean printed)"))
            continue
        gpu = _match(GPU_RULES, r.get("gpu_class") or r["gpu"], f"{where}.gpu_class", "GPU")
        dtype = _dtype_field(r, where) if r.get("dtype") is not None else "bf16"
        disputed = "DOUBT" in (r.get("notes") or "") or any(re.search(p, r["source"]) for p in DISPUTED_SOURCES)
        out.append(Observation(row, source, gpu, None, profile, dtype, _variant_shape(r, profile, where),
                               _positive(r, "time_ms", where) * 1e-3, group, disputed))
    return out, skipped


def gpu_for_device(device: str) -> str | None:
    """The GPU description for a device name such as 'NVIDIA H200' (None if none matches)."""
    text = device.upper().replace("NVIDIA", "").replace("GEFORCE", "").strip()
    for pattern, name in GPU_RULES:
        if re.search(pattern, text, re.I):
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
                                   BENCH_KERNELS[r["kernel"]], dtype, shape, median * 1e-3,
                                   "linear" if r["kernel"].startswith("linear") else "dense", False, kept))
    return out


def default_bench_files() -> list[Path]:
    """Every JSON file in gpu_ref/results/, sorted."""
    return sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir() else []


def load_all(bench: list[Path] | None = None) -> tuple[list[Observation], list[Skipped]]:
    """Every published row (both files) and gpu_ref benchmark row, and the rows skipped."""
    variants, skipped = load_variants()
    bench_rows = load_bench(default_bench_files() if bench is None else bench)
    return load_published() + variants + bench_rows, skipped
