"""Which attention variants are fast on GPUs, which on the spatial array: every library cascade's
predicted time on H100 and H200 (the GPU target, mappings/targets/gpu.py) beside fusemax-cloud's
(the accelerator target with the mapper, `mapping="auto"`), at 4K / 16K / 64K prefill (P = M) and
32K decode (P = 1), batch 16, 32 query heads and 8 KV heads (the accelerator reads K/V per query
head: it has no GQA model). A cascade that does not map on a target says why in the table.
Parameters a cascade needs besides its ranks take the values of PARAMETERS.
"""
from __future__ import annotations

import math
from pathlib import Path

import einsum_cascade as ec

ROOT = Path(__file__).resolve().parents[1]

GPUS = ("h100-sxm", "h200")
ACCELERATOR = "fusemax-cloud"
SHAPES = (("prefill 4K", 4096, 4096), ("prefill 16K", 16384, 16384), ("prefill 64K", 65536, 65536),
          ("decode 32K", 1, 32768))
BATCH, HEADS, KV_HEADS, HEAD_DIM = 16, 32, 8, 128
# Values of cascade parameters (sliding window, sinks, top-k, block count, gates...).
PARAMETERS = {"W": 4096, "S": 4, "KK": 2048, "NB": 4, "G": 1, "B": 0, "AA": 1, "T": 1}


def _sizes(c: ec.Cascade, p: int, m: int) -> dict[str, int]:
    sizes = {"M": m, "P": p, "E": HEAD_DIM, "F": HEAD_DIM}
    for r in c.ranks:
        if r not in sizes and not any(r in (c.ranks[o].parts or ()) for o in c.ranks):
            sizes[r] = HEAD_DIM if r in ("N", "D", "C") else 64 if r == "R" else 1
    for name in c.params:
        if name in PARAMETERS:
            sizes[name] = PARAMETERS[name]
    return {k: v for k, v in sizes.items() if k in c.ranks or k in c.params}


def _one(c: ec.Cascade, arch: str, sizes: dict, gpu: bool) -> dict:
    from mappings.simulation import simulate
    try:
        r = simulate(c, arch, sizes, mapping="auto", batch=BATCH, heads=HEADS,
                     kv_heads=KV_HEADS if gpu else None)
        return checked({"latency_s": r.latency_s, "kernel": r.kernel, "bound": r.bound})
    except Exception as err:  # noqa: BLE001 - a cascade that does not map is reported, not fatal
        # the message names a library cascade's file relative to the checkout, not where it lives
        return {"error": str(err).replace(f"{ROOT}/", "").splitlines()[0][:160]}


def checked(cell: dict) -> dict:
    """`cell`, or an error cell when its latency is not a finite positive number (a target's
    defect: reported in the table, never printed as a time)."""
    t = cell.get("latency_s")
    if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
        return {"error": f"the target returned a latency of {t!r} s (not finite and positive: a defect of that target)"}
    return cell


def cascade_table(progress=print) -> list[dict]:
    """One row per library cascade and shape: the time on each GPU and on the accelerator."""
    rows = []
    for name in ec.library_names():
        c = ec.load_library(name)
        if "M" not in c.ranks:
            continue
        for label, p, m in SHAPES:
            sizes = _sizes(c, p if "P" in c.ranks else m, m)
            row = {"cascade": name, "shape": label, "sizes": sizes}
            for arch in GPUS:
                row[arch] = _one(c, arch, sizes, True)
            row[ACCELERATOR] = _one(c, ACCELERATOR, sizes, False)
            rows.append(row)
        if progress:
            progress(f"cascades: {name}")
    return rows


def _cell(x: dict) -> str:
    if "error" in x:
        return "does not map"
    return f"{x['latency_s'] * 1e3:.3g}"


def render_cascades(rows: list[dict]) -> list[str]:
    """Markdown section: times in ms, the GPU kernel, the faster target, and why a cell is empty."""
    lines = ["## Library cascades on GPUs and on the spatial array", "",
             f"Predicted ms per call, batch {BATCH}, {HEADS} query / {KV_HEADS} KV heads, head dim {HEAD_DIM}, bf16 on the "
             f"GPUs (kernel picked from the cascade's structure); {ACCELERATOR} with the mapper (K/V per query head).", "",
             "| cascade | shape | H100 ms | H200 ms | GPU kernel (bound) | fusemax-cloud ms | faster |", "|---|---|---|---|---|---|---|"]
    errors = {}
    for r in rows:
        h100, h200, acc = r["h100-sxm"], r["h200"], r[ACCELERATOR]
        kernel = f"{h200.get('kernel')} ({h200.get('bound')})" if "error" not in h200 else "-"
        faster = "-"
        if "error" not in h200 and "error" not in acc:
            faster = "GPU" if h200["latency_s"] < acc["latency_s"] else "array"
        for arch, x in (("H100/H200", h200), (ACCELERATOR, acc)):
            if "error" in x:
                errors[(r["cascade"], arch)] = x["error"]
        lines.append(f"| {r['cascade']} | {r['shape']} | {_cell(h100)} | {_cell(h200)} | {kernel} | {_cell(acc)} | {faster} |")
    if errors:
        lines += ["", "Why a cell says *does not map*:", ""]
        lines += [f"- {c} on {a}: {e}" for (c, a), e in sorted(errors.items())]
    lines += ["", "![cascades on GPUs and the spatial array](cascades_gpu_vs_array.png)", ""]
    return lines


def cascade_figure(out: Path, rows: list[dict]) -> None:
    """Bars of the 64K prefill and 32K decode times per cascade (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 1, figsize=(11, 8))
    for ax, shape in zip(axes, ("prefill 64K", "decode 32K")):
        sel = [r for r in rows if r["shape"] == shape]
        names = [r["cascade"] for r in sel]
        x = np.arange(len(sel))
        for i, (arch, label) in enumerate((("h100-sxm", "H100"), ("h200", "H200"), (ACCELERATOR, ACCELERATOR))):
            values = [r[arch].get("latency_s", np.nan) * 1e3 for r in sel]
            ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
        ax.set_xticks(x, names, rotation=70, ha="right", fontsize=7)
        ax.set(yscale="log", ylabel="ms per call", title=shape)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "cascades_gpu_vs_array.png", dpi=110, metadata={"Software": None})
    plt.close(fig)
