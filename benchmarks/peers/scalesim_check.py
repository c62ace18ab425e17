"""Compare archsim's systolic timing with SCALE-Sim itself on GEMMs (`make validate`).

Installs SCALE-Sim (`scalesim`, with numpy < 2.4; docs/references/reference-peers.md) into benchmarks/peers/.venv
(git-ignored) and runs it, through its Python API and without trace dumps, on every GEMM shape of
SHAPES on 32x32 and 256x256 arrays for the output-, weight- and input-stationary dataflows: one
SCALE-Sim run per (array, dataflow) with one topology layer per shape. The "Total Cycles" column of
the COMPUTE_REPORT.csv it writes is compared with archsim.systolic.scalesim_cycles, which must agree
exactly; its "Stall Cycles" column must be 0 (the check compares compute timing, not memory stalls).
Prints a table and "N/N shapes agree"; exits 1 on any disagreement, 2 if SCALE-Sim cannot be run.
"""
from __future__ import annotations

import csv
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = HERE / ".venv"
WORK = HERE / "work"
ARRAYS = (32, 256)
DATAFLOWS = ("os", "ws", "is")
# GEMM (M, N, K): ifmap M x K, filter K x N, output M x N. Shapes exercise exact multiples of the
# array, one more and one less than it, primes, 1-wide and long-streamed operands.
SHAPES = [(1, 1, 1), (17, 19, 23), (31, 33, 600), (32, 32, 32), (33, 257, 31), (64, 64, 64),
          (96, 96, 96), (100, 300, 70), (129, 129, 129), (255, 257, 129), (256, 256, 256),
          (300, 200, 100), (128, 512, 96), (512, 64, 1000), (640, 320, 160), (64, 1024, 64),
          (1000, 10, 10), (10, 1000, 10), (10, 10, 1000), (768, 768, 64), (1024, 1024, 64),
          (2048, 64, 128), (512, 512, 512), (1024, 64, 1024)]

CONFIG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight : {d}
ArrayWidth : {d}
IfmapSramSzkB : 65536
FilterSramSzkB : 65536
OfmapSramSzkB : 65536
IfmapOffset : 0
FilterOffset : 100000000
OfmapOffset : 200000000
Dataflow : {df}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""
LAYOUT_HEADER = ("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height "
                 "Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, Num Filter "
                 "Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, Channel "
                 "Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, Channel "
                 "Interline Order,\n")
RUNNER = """import sys
from scalesim.scale_sim import scalesim
config, topology, layout, top = sys.argv[1:5]
s = scalesim(save_disk_space=True, verbose=False, config=config, topology=topology, layout=layout,
             input_type_gemm=True)
s.run_scale(top_path=top)
"""


def ensure_venv() -> Path:
    """The peers venv's python, with scalesim installed (installs it on first use)."""
    py = VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import scalesim.scale_sim"],
                                        capture_output=True, check=False).returncode == 0
    if not ok:
        print(f"installing scalesim into {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "scalesim", "numpy<2.4"], check=True)
    return py


def run_scalesim(py: Path, d: int, df: str, shapes: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """(Total Cycles, Stall Cycles) of each shape, from SCALE-Sim's COMPUTE_REPORT.csv."""
    name = f"gemm_{d}x{d}_{df}"
    WORK.mkdir(exist_ok=True)
    config, topology, layout = WORK / f"{name}.cfg", WORK / f"{name}.csv", WORK / f"{name}_layout.csv"
    config.write_text(CONFIG.format(name=name, d=d, df=df))
    topology.write_text("Layer, M, N, K,\n" + "".join(f"g{i}, {M}, {N}, {K},\n" for i, (M, N, K) in enumerate(shapes)))
    layout.write_text(LAYOUT_HEADER + "".join(f"g{i}, 1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2,\n"
                                              for i in range(len(shapes))))
    top = WORK / "out"
    proc = subprocess.run([str(py), "-c", RUNNER, str(config), str(topology), str(layout), str(top)],
                          capture_output=True, text=True, check=False)
    report = top / name / "COMPUTE_REPORT.csv"
    if proc.returncode or not report.exists():
        raise RuntimeError(f"SCALE-Sim failed on {name}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    with report.open() as f:
        rows = [{k.strip(): v.strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    if len(rows) != len(shapes):
        raise RuntimeError(f"{report}: {len(rows)} layers reported, {len(shapes)} expected")
    return [(int(r["Total Cycles"]), int(r["Stall Cycles"])) for r in rows]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from archsim.systolic import folds_and_cycles_per_fold, scalesim_cycles

    try:
        py = ensure_venv()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"scalesim_check: cannot install scalesim into {VENV}: {e}", file=sys.stderr)
        return 2
    print(f"{'array':>7} {'df':>3} {'M':>5} {'N':>5} {'K':>5} {'folds':>6} {'per fold':>8} "
          f"{'SCALE-Sim':>10} {'archsim':>10}  result")
    agree = total = 0
    for d in ARRAYS:
        for df in DATAFLOWS:
            try:
                theirs = run_scalesim(py, d, df, SHAPES)
            except RuntimeError as e:
                print(f"scalesim_check: {e}", file=sys.stderr)
                return 2
            for (M, N, K), (cycles, stalls) in zip(SHAPES, theirs):
                ours = scalesim_cycles(M, N, K, d, d, df)
                folds, per_fold = folds_and_cycles_per_fold(M, N, K, d, d, df)
                ok = cycles == ours and stalls == 0
                agree += ok
                total += 1
                note = "ok" if ok else ("STALLS" if stalls else "MISMATCH")
                print(f"{d:>3}x{d:<3} {df:>3} {M:>5} {N:>5} {K:>5} {folds:>6} {per_fold:>8} "
                      f"{cycles:>10} {ours:>10}  {note}", flush=True)
    print(f"{agree}/{total} shapes agree ({len(SHAPES)} GEMM shapes x {len(ARRAYS)} arrays x "
          f"{len(DATAFLOWS)} dataflows; SCALE-Sim 'Total Cycles' vs archsim.systolic.scalesim_cycles)")
    return 0 if agree == total else 1


if __name__ == "__main__":
    sys.exit(main())
