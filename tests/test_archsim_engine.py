"""The simpy engine: dependencies, DRAM bandwidth, buffer capacity, steady vs exact, systolic timing."""
import pytest

from archsim.config import load_architecture
from archsim.engine import simulate
from archsim.result import run
from archsim.schedule import Schedule, Segment, TileOp
from archsim.systolic import scalesim_cycles
from mappings import get_mapping
from mappings.gemm import gemm_schedule
from mappings.workload import Workload

ARCH = load_architecture("fusemax-cloud")
BPC = ARCH.dram_bytes_per_cycle


def test_two_units_pipeline_hand_derived():
    # per iteration: A (2D, 10 cycles) then B (1D, 30 cycles, needs A): 1D bound -> 10 + 5 * 30
    ops = (TileOp("A", "array2d", 10.0), TileOp("B", "array1d", 30.0, deps=("A",)))
    s = Schedule("t", 1, (Segment("s", 5, ops),))
    assert simulate(s, ARCH, "exact")[0] == pytest.approx(160.0)


def test_recurrence_serialises():
    ops = (TileOp("A", "array2d", 10.0, deps=("prev:B",)), TileOp("B", "array1d", 30.0, deps=("A",)))
    s = Schedule("t", 1, (Segment("s", 5, ops),))
    assert simulate(s, ARCH, "exact")[0] == pytest.approx(5 * 40.0)


def test_dram_bound_and_buffer_limit():
    load = 1000 * BPC  # 1000 cycles of transfer per op, 1 cycle of compute
    ops = (TileOp("A", "array2d", 1.0, load_bytes=load, buffer_bytes=1.0),)
    s = Schedule("t", 1, (Segment("s", 8, ops),))
    assert simulate(s, ARCH, "exact")[0] == pytest.approx(8000 + 1)
    big = ARCH.buffer.capacity_bytes * 0.6  # only one fits: loads cannot run ahead
    ops = (TileOp("A", "array2d", 500.0, load_bytes=load, buffer_bytes=big),)
    s = Schedule("t", 1, (Segment("s", 4, ops),))
    assert simulate(s, ARCH, "exact")[0] == pytest.approx(4 * 1500.0)


def test_op_larger_than_buffer_is_an_error():
    from archsim.errors import ScheduleError
    s = Schedule("t", 1, (Segment("s", 1, (TileOp("A", "array2d", 1.0, buffer_bytes=1e12),)),))
    with pytest.raises(ScheduleError, match="needs"):
        simulate(s, ARCH)


@pytest.mark.parametrize("config", ["fusemax", "flat", "arch", "unfused"])
def test_steady_state_matches_exact(config):
    w = Workload("mid", B=1, D=256, E=64, F=64, H=12, S=1024, seq_len=4096)
    m = get_mapping(config)
    arch = load_architecture(m.default_arch)
    s = m.schedule(w, arch)
    exact, steady = run(s, arch, "exact"), run(s, arch, "steady")
    assert steady.cycles == pytest.approx(exact.cycles, rel=0.01)
    assert steady.joules == pytest.approx(exact.joules) and steady.dram_bytes == exact.dram_bytes


def _scalesim_rows() -> list[dict]:
    """SCALE-Sim 3.0.0's own Total Cycles for 144 GEMMs (tests/data/scalesim_cycles.csv, with its provenance)."""
    import csv
    from pathlib import Path

    path = Path(__file__).parent / "data" / "scalesim_cycles.csv"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return [{k: (v if k == "dataflow" else int(v)) for k, v in row.items()} for row in csv.DictReader(lines)]


def test_systolic_timing_matches_stored_scalesim_outputs():
    rows = _scalesim_rows()
    assert len(rows) == 144
    wrong = [(r["array"], r["dataflow"], r["M"], r["N"], r["K"], r["total_cycles"])
             for r in rows
             if scalesim_cycles(r["M"], r["N"], r["K"], r["array"], r["array"], r["dataflow"]) != r["total_cycles"]]
    assert not wrong


@pytest.mark.parametrize("M, N, K, df", [(100, 300, 70, "os"), (512, 64, 1000, "ws"), (33, 257, 31, "is")])
def test_systolic_schedule_runs_scalesims_cycles(M, N, K, df):
    """A compute-bound GEMM on a 32 x 32 array takes SCALE-Sim's cycles (stored) plus one (SCALE-Sim
    counts from 0), plus the first fold's loads before it and the last fold's stores after it."""
    a = load_architecture("fusemax-template", {"d": 32})
    theirs = next(r["total_cycles"] for r in _scalesim_rows()
                  if (r["array"], r["dataflow"], r["M"], r["N"], r["K"]) == (32, df, M, N, K))
    s = gemm_schedule("g", M, N, K, a, timing="systolic", dataflow=df)
    folds = s.segments[0].iterations
    # traffic of the first fold's operands and the last fold's outputs (2-byte words, the compulsory
    # traffic spread evenly over the folds); compute-bound: less than one fold's cycles
    first_load, last_store = (M * K + K * N) * 2 / folds, M * N * 2 / folds
    assert (first_load + last_store) / a.dram_bytes_per_cycle < (theirs + 1) / folds
    assert run(s, a, "exact").cycles == pytest.approx(theirs + 1 + (first_load + last_store) / a.dram_bytes_per_cycle,
                                                      rel=1e-12)


def test_hold_until_an_earlier_op_is_an_error():
    from archsim.errors import ScheduleError
    # B's bytes would be "released" when A ends, possibly before they are reserved: never held at all
    ops = (TileOp("A", "array2d", 10.0), TileOp("B", "array1d", 10.0, buffer_bytes=1e6, hold_until="A"))
    with pytest.raises(ScheduleError, match="'B' holds .* until 'A', which is issued before it"):
        simulate(Schedule("t", 1, (Segment("s", 3, ops),)), ARCH, "exact")
    # held until a later op it is fine: 3 x (A then B), B after A on another unit
    ops = (TileOp("A", "array2d", 10.0, buffer_bytes=1e6, hold_until="B"), TileOp("B", "array1d", 10.0, deps=("A",)))
    cycles, peak = simulate(Schedule("t", 1, (Segment("s", 3, ops),)), ARCH, "exact")
    # the loader reserves in program order as soon as the bytes fit: all three at once
    assert cycles == pytest.approx(40.0) and peak == pytest.approx(3e6)


def test_dependency_references_are_resolved_or_refused_by_one_rule():
    from archsim.errors import ScheduleError
    from archsim.schedule import resolve_dep

    seg_of = {"a": 0, "b": 1}
    assert resolve_dep("s", seg_of, 1, "a", "b") == (False, "a", 0)  # an earlier segment
    assert resolve_dep("s", seg_of, 1, "prev:b", "b") == (True, "b", 1)
    for ref, si, message in (("c", 0, "s: op 'x' depends on unknown op 'c'"),
                             ("prev:a", 1, "s: 'x': 'prev:a' must name an op of the same segment"),
                             ("b", 0, "s: op 'x' depends on 'b' of a later segment")):
        with pytest.raises(ScheduleError, match=message):
            resolve_dep("s", seg_of, si, ref, "x")
