"""Study: FuseMax at 256K tokens over array sizes d x d, d in {16, ..., 512}: latency vs area.

The buffer is the smallest power of two (at least 1 MiB) whose simulated latency is within
1% of the compute bound (the 1D array's busy cycles), i.e. that keeps the design compute-bound.
Its area scales with capacity from the 16 MiB figure.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from archsim.config import load_architecture  # noqa: E402
from archsim.energy import area_um2  # noqa: E402
from archsim.result import run  # noqa: E402
from mappings import get_mapping  # noqa: E402
from mappings.workload import make_workload  # noqa: E402

DS = [16, 32, 64, 128, 256, 512]
BUFFER_16MIB_AREA_UM2 = 47000000.0


def design_point(d: int, model: str = "BERT", seq_len: int = 256 * 1024) -> dict:
    w = make_workload(model, seq_len)
    cap = 1 << 20
    while True:
        arch = load_architecture("fusemax-template", {"d": d, "buffer_bytes": cap,
                                                      "buffer_area_um2": BUFFER_16MIB_AREA_UM2 * cap / (16 << 20)})
        try:
            r = run(get_mapping("fusemax").schedule(w, arch), arch)
        except ValueError:
            r = None
        if r is not None and r.cycles <= 1.01 * max(r.busy_cycles.values()) or cap >= 1 << 32:
            break
        cap *= 2
    area = area_um2(arch)
    return {"d": d, "buffer_bytes": cap, "latency_s": r.seconds, "energy_j": r.joules,
            "area_mm2": sum(area.values()) / 1e6, "area_2d_fraction": area["array2d"] / sum(area.values())}


def run_pareto(out: Path, ds=DS) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = [design_point(d) for d in tqdm(ds, desc="pareto")]
    (out / "pareto.json").write_text(json.dumps(rows, indent=1))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog([r["area_mm2"] for r in rows], [r["latency_s"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"d={r['d']}", (r["area_mm2"], r["latency_s"]), fontsize=7)
    ax.set_xlabel("area (mm^2)")
    ax.set_ylabel("latency of one BERT layer's attention at 256K (s)")
    ax.set_title("FuseMax design space (paper fig. 12)")
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=110)
    plt.close(fig)
    lines = ["# FuseMax Pareto sweep (256K tokens)", "", "| d | buffer | latency (s) | area (mm^2) | 2D share of area |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['d']} | {r['buffer_bytes'] >> 20} MiB | {r['latency_s']:.4g} | {r['area_mm2']:.4g} | "
              f"{100 * r['area_2d_fraction']:.1f}% |" for r in rows]
    lines += ["", "![pareto](pareto.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return rows


def write_report(out_root: Path) -> None:
    run_pareto(out_root / "pareto")


def register_args(parser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports/pareto"), help="output folder")


def main(args) -> int:
    for r in run_pareto(args.out):
        print(f"d={r['d']}: {r['latency_s']:.4g} s, {r['area_mm2']:.4g} mm^2, buffer {r['buffer_bytes'] >> 20} MiB")
    return 0
