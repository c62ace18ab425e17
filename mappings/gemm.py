"""GEMMs on the 2D array, and the six GEMMs of a transformer layer (end to end).

A GEMM (M rows, N columns, K reduction) is a schedule of folds on the 2D array. Timing
`paper` (default): each fold's cycles = its MACs / PEs, the operands' compulsory DRAM traffic
(inputs, weights, outputs once each) spread over the folds, so the DES gives about
max(traffic / bandwidth, MACs / PEs). Timing `systolic`: SCALE-Sim's per-fold fill + stream
+ drain for dataflow os, ws or is (archsim.systolic).
"""
from __future__ import annotations

from archsim.config import Architecture
from archsim.result import Result, run
from archsim.schedule import Schedule, Segment, TileOp
from archsim.systolic import folds_and_cycles_per_fold
from mappings.work import cost_on_unit
from mappings.workload import Workload


def gemm_schedule(name: str, M: int, N: int, K: int, arch: Architecture, timing: str = "paper",
                  dataflow: str = "os") -> Schedule:
    """Schedule of one GEMM (M x K times K x N) on `arch`'s 2D array: one op per fold, with its
    cycles (`timing` "paper" or "systolic"), DRAM bytes and buffer words."""
    unit = arch.units["array2d"]
    wb = arch.word_bytes
    folds, per_fold = folds_and_cycles_per_fold(M, N, K, unit.rows, unit.cols, dataflow)
    macs = float(M) * N * K
    paper_cycles, actions = cost_on_unit(unit, {"mac": macs / folds}, f"GEMM {name}")
    if timing == "paper":
        cycles = paper_cycles
    elif timing == "systolic":
        cycles = float(per_fold)
    else:
        raise ValueError(f"unknown array timing {timing!r} (paper or systolic)")
    actions["buffer.read_words"] = (unit.rows + unit.cols) * K * 1.0
    actions["buffer.write_words"] = float(M) * N / folds
    op = TileOp("GEMM", "array2d", cycles, name, ("prev:GEMM",), load_bytes=(M * K + K * N) * wb / folds,
                store_bytes=M * N * wb / folds, buffer_bytes=(unit.rows + unit.cols) * K * wb,
                actions=actions)
    return Schedule(name=f"gemm:{name}", blocks=1, segments=(Segment("folds", folds, (op,)),),
                    notes=(f"{folds} folds of {cycles:.0f} cycles ({timing} timing)",))


def layer_gemms(w: Workload) -> list[tuple[str, int, int, int]]:
    """The six GEMMs (name, M, N, K) of one layer, R = B*P rows (docs/references/reference-fusemax.md section 5)."""
    R, EH = w.B * w.seq_len, w.E * w.H
    return [("Q", R, EH, w.D), ("K", R, EH, w.D), ("V", R, w.F * w.H, w.D), ("O", R, w.D, w.F * w.H),
            ("FFN1", R, w.S, w.D), ("FFN2", R, w.D, w.S)]


def run_layer_gemms(w: Workload, arch: Architecture, mode: str = "steady") -> list[Result]:
    """Simulated results (cycles, seconds, joules, bytes) of the layer's six GEMMs, in layer_gemms order."""
    return [run(gemm_schedule(n, M, N, K, arch), arch, mode) for n, M, N, K in layer_gemms(w)]
