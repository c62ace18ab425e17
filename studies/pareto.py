"""Study: FuseMax at 256K tokens over array sizes d x d, d in {16, ..., 512}: latency vs area.

Each design point is a d x d 2D array, a 1D array of d PEs and a global buffer "sized to the
smallest power of two that keeps the design compute-bound" (docs/references/reference-fusemax.md section 7).
The buffer holds one d-key block of K and of V plus the running state of P1 query blocks of d
rows (E + F + 2 words a row; the mapping takes the largest P1 that fits). K and V are
re-streamed from DRAM once per group of P1 blocks, so a small buffer (small P1) makes the
design DRAM-bound. The search tries powers of two from MIN_BUFFER_BYTES upward, skips sizes
where no mapping fits, simulates each with archsim, and keeps the first whose latency is within
COMPUTE_BOUND_TOLERANCE of the busiest unit's busy cycles. Buffer area scales with capacity
from the template's default buffer (fusemax-cloud's 16 MiB and its area).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from studies.progress import progress as tqdm  # noqa: E402  (tqdm on a terminal, lines in a log)

import einsum_cascade as ec  # noqa: E402
from archsim.config import Architecture, load_architecture  # noqa: E402
from archsim.energy import area_um2  # noqa: E402
from mappings import MappingError, load_spec, query_rows_per_group, simulate  # noqa: E402
from mappings.workload import make_workload  # noqa: E402
from studies.outcome import attempt  # noqa: E402

DS = [16, 32, 64, 128, 256, 512]
TEMPLATE = "fusemax-template"
MAPPING = "fusemax"  # the mapping spec (mappings/specs/) and, through it, the cascade
MIN_BUFFER_BYTES = 4 << 10
MAX_BUFFER_BYTES = 1 << 32
COMPUTE_BOUND_TOLERANCE = 0.01  # latency at most 1% above the busiest unit's busy cycles


def template_arch(d: int, buffer_bytes: int) -> Architecture:
    """fusemax-template with a d x d array and a buffer of `buffer_bytes` bytes (area in um2 pro
    rata of the template's default buffer)."""
    default = load_architecture(TEMPLATE).buffer
    return load_architecture(TEMPLATE, {
        "d": d, "buffer_bytes": buffer_bytes,
        "buffer_area_um2": default.area_um2 * buffer_bytes / default.capacity_bytes})


def design_point(d: int, model: str = "BERT", seq_len: int = 256 * 1024) -> dict:
    """The smallest power-of-two buffer that keeps a d x d FuseMax compute-bound, and its figures.

    Returns d, buffer_bytes, p1 (query blocks per group), latency_s (seconds), energy_j (joules),
    cycles, compute_cycles (the busiest unit's busy cycles), dram_bytes, area_mm2, area_2d_fraction
    and `tried`: (buffer bytes, latency / compute cycles) of every feasible smaller size.
    """
    w = make_workload(model, seq_len)
    spec = load_spec(MAPPING)
    cascade = ec.load_library(spec.cascade)
    sizes = {"E": w.E, "F": w.F, "M": w.seq_len, "P": w.seq_len}
    cap, tried = MIN_BUFFER_BYTES, []
    while True:
        if cap > MAX_BUFFER_BYTES:
            raise MappingError(f"pareto: no buffer up to {MAX_BUFFER_BYTES} B keeps d = {d} compute-bound")
        arch = template_arch(d, cap)
        sim, _ = attempt(simulate, cascade, arch, sizes, mapping=spec, batch=w.B, heads=w.H)
        if sim is None:
            cap *= 2  # not even one query block and one K/V block fit
            continue
        r = sim.result
        compute = max(r.busy_cycles.values())
        if r.cycles <= (1 + COMPUTE_BOUND_TOLERANCE) * compute:
            break
        tried.append((cap, r.cycles / compute))
        cap *= 2
    area = area_um2(arch)
    total = sum(area.values())
    p1 = query_rows_per_group(cascade, spec, arch, sizes) // arch.units["array2d"].cols
    return {"d": d, "buffer_bytes": cap, "p1": p1,
            "latency_s": r.seconds, "energy_j": r.joules, "cycles": r.cycles, "compute_cycles": compute,
            "dram_bytes": r.dram_bytes, "area_mm2": total / 1e6, "area_2d_fraction": area["array2d"] / total,
            "tried": tried}


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def run_pareto(out: Path, ds: list[int] = DS, progress: bool = True) -> list[dict]:
    """design_point of every d in `ds`; writes pareto.json, pareto.png and report.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [design_point(d) for d in tqdm(ds, desc="pareto", disable=not progress)]
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
    lines = ["# FuseMax Pareto sweep (BERT, 256K tokens)", "",
             "Buffer: the smallest power of two (from "
             f"{_size(MIN_BUFFER_BYTES)}) whose simulated latency is within {100 * COMPUTE_BOUND_TOLERANCE:g}% "
             "of the busiest unit's busy cycles. P1: query blocks of d rows per group (K and V are re-read "
             "once per group). Smaller feasible buffers that were DRAM-bound are listed with latency / compute.",
             "", "| d | buffer | P1 | smaller buffers tried (latency / compute) | latency (s) | area (mm^2) | "
             "2D share of area |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        tried = ", ".join(f"{_size(c)}: {x:.3f}" for c, x in r["tried"]) or "-"
        lines.append(f"| {r['d']} | {_size(r['buffer_bytes'])} | {r['p1']} | {tried} | {r['latency_s']:.4g} | "
                     f"{r['area_mm2']:.4g} | {100 * r['area_2d_fraction']:.1f}% |")
    lines += ["", "Paper (docs/references/reference-fusemax.md section 7): latency falls as 1/d^2 while area grows as d^2; "
              "the 2D array is about 87-99% of the area.", "", "![pareto](pareto.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return rows


def write_report(out_root: Path) -> None:
    """`make report` job: the sweep under out_root/pareto/."""
    run_pareto(out_root / "pareto")


def register_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports/pareto"), help="output folder")


def main(args: argparse.Namespace) -> int:
    for r in run_pareto(args.out):
        print(f"d={r['d']}: {r['latency_s']:.4g} s, {r['area_mm2']:.4g} mm^2, buffer {_size(r['buffer_bytes'])} "
              f"(P1 = {r['p1']}), 2D {100 * r['area_2d_fraction']:.1f}% of area")
    return 0
