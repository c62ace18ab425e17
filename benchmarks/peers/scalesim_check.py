"""Compare archsim's systolic timing with SCALE-Sim itself on GEMMs (`make validate`).

Installs scalesim (with numpy < 2.4, see reference-peers.md) into benchmarks/peers/.venv,
runs it on >= 20 GEMM shapes on 32x32 and 256x256 arrays for os/ws/is, and compares its
compute cycles with archsim.systolic.scalesim_cycles. Exit 1 on any mismatch.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).parent
VENV = HERE / ".venv"
WORK = HERE / "work"
SHAPES = [(64, 64, 64), (100, 300, 70), (256, 256, 256), (1024, 1024, 64), (33, 257, 31), (512, 64, 1000),
          (1, 1, 1), (17, 19, 23), (128, 512, 96), (300, 200, 100), (768, 768, 64), (64, 1024, 64),
          (1000, 10, 10), (10, 1000, 10), (10, 10, 1000), (255, 257, 129), (96, 96, 96), (640, 320, 160),
          (2048, 64, 128), (129, 129, 129), (512, 512, 512), (31, 33, 600)]
RUNNER = r'''
import json, sys
from scalesim.scale_sim import scalesim
cfg, topo, lay, top = sys.argv[1:5]
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=lay, input_type_gemm=True)
s.run_scale(top_path=top)
print(json.dumps(s.runner.single_layer_sim_object_list[0].get_compute_report_items()[0]))
'''


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "scalesim", "numpy<2.4"], check=True)
    return py


def run_scalesim(py: Path, M: int, N: int, K: int, d: int, df: str) -> int:
    WORK.mkdir(exist_ok=True)
    tag = f"{M}_{N}_{K}_{d}_{df}"
    cfg = WORK / f"{tag}.cfg"
    cfg.write_text(f"[general]\nrun_name = {tag}\n\n[architecture_presets]\nArrayHeight : {d}\nArrayWidth : {d}\n"
                   f"IfmapSRAMSzkB : 6144\nFilterSRAMSzkB : 6144\nOfmapSRAMSzkB : 2048\nIfmapOffset : 0\n"
                   f"FilterOffset : 10000000\nOfmapOffset : 20000000\nBandwidth : 10\nDataflow : {df}\n"
                   f"MemoryBanks : 1\n\n[layout]\nIfmapCustomLayout : False\nIfmapSRAMBankBandwidth : 10\n"
                   f"IfmapSRAMBankNum : 10\nIfmapSRAMBankPort : 2\nFilterCustomLayout : False\n"
                   f"FilterSRAMBankBandwidth : 10\nFilterSRAMBankNum : 10\nFilterSRAMBankPort : 2\n\n"
                   f"[run_presets]\nInterfaceBandwidth : CALC\n")
    topo = WORK / f"{tag}.csv"
    with topo.open("w", newline="") as f:
        csv.writer(f).writerows([["Layer", "M", "N", "K", ""], ["g", M, N, K, ""]])
    layout = WORK / f"{tag}_layout.csv"
    layout.write_text("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height "
                      "Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, Num Filter "
                      "Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, Channel "
                      "Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, Channel "
                      "Interline Order,\ng, 1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2,\n")
    out = subprocess.run([str(py), "-c", RUNNER, str(cfg), str(topo), str(layout), str(WORK / "out")],
                         capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])[0])


def main() -> int:
    sys.path.insert(0, str(HERE.parents[1]))
    from archsim.systolic import scalesim_cycles
    py = ensure_venv()
    bad = 0
    for d in (32, 256):
        for M, N, K in SHAPES:
            for df in ("os", "ws", "is"):
                theirs = run_scalesim(py, M, N, K, d, df)
                ours = scalesim_cycles(M, N, K, d, d, df)
                ok = theirs == ours
                bad += not ok
                print(f"{d}x{d} {df} M={M} N={N} K={K}: scalesim {theirs}, archsim {ours} {'ok' if ok else 'MISMATCH'}")
    print(f"{bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
