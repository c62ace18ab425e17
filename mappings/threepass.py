"""Mappings of the 3-pass cascade on FLAT's hardware: `flat` and `unfused`.

`flat`: a block is one granule of query rows of one head (FLAT's dataflow choice per length,
mappings/flat_dataflow.yaml); QK and AV on the 2D array, GM, SN, SD, A (max, exp, sum,
divide) on the 1D array; AV of block b is issued after QK of block b+1 so the arrays overlap.
Score tensors QK and A (= SN, overwritten in place) live in the buffer when FLAT keeps them
on chip (a static reservation, less the spilled fraction f). SN and A each process the on-chip
(1 - f) of the scores first and the spilled f last, so the spilled part is re-read from DRAM
while the on-chip part is computed (the overlap the paper assumes); off chip they are written once and
read once each, and the 1D ops of consecutive granules are software-pipelined so that the
DRAM channel streams. Off-chip operands are re-streamed: K and V once per 256-row tile of queries
(output stationary) or once per granule (weight stationary: the K/V tile stays in the array
while the granule's rows stream through); Q once per 256-column tile of keys.

`unfused`: per head, QK, the softmax (GM, SN, SD, A) and AV run one after the other (each
stage waits for the previous one to finish), each stage in chunks of query rows whose
operands stream from and results go to DRAM (compulsory traffic), so each stage takes about
max(memory time, compute time).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from archsim.config import Architecture
from archsim.filecache import cached_load
from archsim.schedule import Schedule, Segment, TileOp
from mappings.base import Mapping, plan_einsums
from mappings.work import MappingError
from mappings.workload import Workload

FLAT_BINDING = {"QK": "array2d", "GM": "array1d", "SN": "array1d", "SD": "array1d", "A": "array1d",
                "AV": "array2d"}
DATAFLOW_FILE = Path(__file__).parent / "flat_dataflow.yaml"


def flat_dataflow(seq_len: int, E: int) -> dict:
    """FLAT's dataflow choice for a length in tokens (table keyed by K tokens) and head dim (e64 / e128):
    stationarity, granularity (query rows or "head"), onchip (tensor names), spilled (fraction)."""
    table = cached_load(DATAFLOW_FILE, lambda: yaml.safe_load(DATAFLOW_FILE.read_text()), "flat_dataflow")
    key = seq_len // 1024
    if seq_len % 1024 or key not in table:
        raise MappingError(f"flat: no dataflow in {DATAFLOW_FILE.name} for sequence length {seq_len} "
                           f"(known: {', '.join(f'{k}K' for k in table)})")
    row = table[key]
    dims = f"e{E}" if f"e{E}" in row else "e64" if E <= 64 else "e128"

    def field(data, name: str, where: str):
        if not isinstance(data, dict) or name not in data:
            raise MappingError(f"{DATAFLOW_FILE.name}: {where}: missing field {name!r}")
        return data[name]

    per = field(row, dims, str(key))
    try:
        return {"stationarity": field(row, "stationarity", str(key)),
                "granularity": field(row, "granularity", str(key)),
                "onchip": set(field(per, "onchip", f"{key}.{dims}")),
                "spilled": float(field(per, "spilled", f"{key}.{dims}"))}
    except (TypeError, ValueError) as err:
        raise MappingError(f"{DATAFLOW_FILE.name}: {key}.{dims}: {err}") from None


class FlatMapping(Mapping):
    name = "flat"
    cascade_name = "attention_3pass"
    default_arch = "flat-cloud"
    description = "FLAT: 3-pass cascade fused per granule of query rows"

    def __init__(self, dataflow: dict | None = None) -> None:
        self.dataflow = dataflow  # None: FLAT's own choice per length

    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        c = self.cascade()
        E, F, N = workload.E, workload.F, workload.seq_len
        df = self.dataflow or flat_dataflow(N, E)
        tile = arch.units["array2d"].cols
        rows = N if df["granularity"] == "head" else min(N, int(df["granularity"]))
        if N % rows or N % tile:
            raise MappingError(f"flat: granularity {rows} rows does not divide sequence length {N}")
        onchip, f = df["onchip"], df["spilled"]
        wb = arch.word_bytes
        restream_kv = rows // tile if df["stationarity"] == "output" else 1
        rq = 1 if "Q" in onchip else N // tile
        rv = 1 if "V" in onchip else restream_kv
        scores = rows * N * wb
        on_scores = "QK" in onchip
        spill = f * scores if on_scores else scores
        reserved = (1 - f) * scores if on_scores else 0.0
        reserved += (rows * E * wb if "Q" in onchip else 0) + (N * F * wb if "V" in onchip else 0) \
            + (rows * F * wb if "AV" in onchip else 0)
        if reserved > arch.buffer.capacity_bytes:
            raise MappingError(f"flat: on-chip tensors {sorted(onchip)} need {reserved:.0f} B, more than the "
                               f"{arch.buffer.capacity_bytes} B buffer of {arch.name}")
        sizes = {"E": E, "F": F, "M": N, "P": rows}
        plans = {p.name: p for p in plan_einsums(c, sizes, arch, FLAT_BINDING, mapping=self.name)}
        traffic = {
            "QK": dict(load_bytes=(rq * rows * E + restream_kv * N * E) * wb, store_bytes=spill,
                       buffer_bytes=(1 if "Q" in onchip else 2) * tile * E * wb),
            "SN": dict(load_bytes=spill, store_bytes=spill, load_after_deps=True,
                       buffer_bytes=0 if on_scores else 2 * tile * rows * wb),
            "A": dict(load_bytes=spill, load_after_deps=True,
                      buffer_bytes=0 if on_scores else 2 * tile * rows * wb),
            "AV": dict(load_bytes=rv * N * F * wb, store_bytes=rows * F * wb, buffer_bytes=tile * F * wb),
        }
        # software pipelining depth (in blocks): deeper when the scores stream through DRAM
        lags = {"AV": 1} if on_scores else {"SN": 1, "SD": 1, "A": 2, "AV": 3}
        ops = []
        for name, p in plans.items():
            if on_scores and 0 < f < 1 and name in ("SN", "A"):
                # the on-chip (1 - f) of the scores first, while the spilled f is fetched (prefetch)
                ops.append(TileOp(f"{name}.onchip", p.unit, (1 - f) * p.cycles, name, tuple(p.deps),
                                  lag=lags.get(name, 0), actions={k: (1 - f) * v for k, v in p.actions.items()}))
                ops.append(TileOp(name, p.unit, f * p.cycles, name, tuple(p.deps), lag=lags.get(name, 0),
                                  actions={k: f * v for k, v in p.actions.items()}, **traffic.get(name, {})))
                continue
            ops.append(TileOp(name, p.unit, p.cycles, name, tuple(p.deps), lag=lags.get(name, 0),
                              actions=p.actions, **traffic.get(name, {})))
        return Schedule(
            name=f"{self.name}:{workload.model}:{N}", blocks=workload.heads * (N // rows),
            segments=(Segment("granule", 1, tuple(ops)),), reserved_buffer_bytes=reserved,
            notes=(f"{workload.heads} heads x {N // rows} granules of {rows} query rows; {df['stationarity']} "
                   f"stationary; on chip {sorted(onchip)}, spilled {f:.4g}; scores reserved statically",))


class UnfusedMapping(Mapping):
    name = "unfused"
    cascade_name = "attention_3pass"
    default_arch = "flat-cloud"
    description = "QK, softmax and AV one after another, every intermediate through DRAM"

    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        c = self.cascade()
        E, F, N = workload.E, workload.F, workload.seq_len
        wb = arch.word_bytes
        # the largest power of two dividing N that gives at least 16 chunks whose scores fit a quarter
        # of the buffer
        rows = 1
        while rows * 2 <= max(1, N // 16) and N % (rows * 2) == 0 and \
                2 * rows * 2 * N * wb <= arch.buffer.capacity_bytes // 2:
            rows *= 2
        chunks = N // rows
        sizes = {"E": E, "F": F, "M": N, "P": rows}
        plans = {p.name: p for p in plan_einsums(c, sizes, arch, FLAT_BINDING, mapping=self.name)}
        chunk_scores = rows * N * wb

        def op(name, **kw):
            p = plans[name]
            return TileOp(name, p.unit, p.cycles, name, tuple(p.deps), actions=p.actions, **kw)

        qk = op("QK", load_bytes=(rows * E + N * E / chunks) * wb, store_bytes=chunk_scores,
                buffer_bytes=chunk_scores)
        softmax = (op("GM", load_bytes=chunk_scores, buffer_bytes=chunk_scores, hold_until="A",
                      load_after_deps=True),
                   op("SN"), op("SD"), op("A", store_bytes=chunk_scores))
        av = op("AV", load_bytes=chunk_scores + N * F / chunks * wb, store_bytes=rows * F * wb,
                buffer_bytes=chunk_scores, load_after_deps=True)
        # each stage waits for the whole previous stage: GM depends on the last QK, AV on the last A
        return Schedule(
            name=f"{self.name}:{workload.model}:{N}", blocks=workload.heads,
            segments=(Segment("qk", chunks, (qk,)), Segment("softmax", chunks, softmax),
                      Segment("av", chunks, (av,))),
            notes=(f"{workload.heads} heads; each stage in {chunks} chunks of {rows} query rows",))
