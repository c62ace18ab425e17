"""The taxonomy report: every library cascade with its passes over M, live tensors and
per-query operation counts (symbolic and at M = 4096), like the FuseMax paper's table; from
`cascadesim fuse`, the fewest passes found and the operation overhead of the rewrite; and the
simulated latency on fusemax-cloud at 64K tokens before and after fusion (generic mapper)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sympy

import einsum_cascade as ec
from einsum_cascade.ast import size_symbol
from einsum_cascade.cost import closed_form, simplify_count
from einsum_cascade.fuse import FuseResult, fuse

# Sizes of the numeric column: the FuseMax paper's head dims at 4K tokens (section 1 of the
# reference), 256-wide tiles, and library-specific ranks at typical values.
# Params (W window, S sinks, B bias, G gain, L and LAM the differential lambda) are illustrative
# values; they do not change a cascade's passes.
TAXONOMY_SIZES = {"E": 64, "F": 64, "M": 4096, "P": 4096, "M0": 256, "P0": 256, "N": 64, "W": 256,
                  "B": 0.0, "G": 1.0, "L": 0.5, "LAM": 0.5, "S": 4, "D": 64, "KK": 256,
                  # issue 19/21 variants: ALiBi slope SL, Mamba-2's AA, kept blocks NB, 2D grid
                  # 64 x 64 with radius WR, query heads H per KV group, MLA's latent C (its RoPE dim R unset)
                  "SL": 0.5, "AA": -1.0, "NB": 4, "MX": 64, "MY": 64, "PX": 64, "PY": 64, "WR": 3,
                  "H": 4, "C": 512}

# The latency columns: BERT-base heads (E = F = 64) at 64K tokens (M = P = 65,536) on the
# fusemax-cloud architecture, the generic mapper's `auto` mapping (objective latency), one
# (batch, head) pair; other ranks and params as in TAXONOMY_SIZES.
LATENCY_ARCH = "fusemax-cloud"
LATENCY_SIZES = {"M": 65536, "P": 65536, "E": 64, "F": 64}
LATENCY_HEADS = 1


def _sizes_for(cascade: ec.Cascade) -> dict[str, float]:
    names = set(cascade.size_names) | set(cascade.params)
    return {k: v for k, v in TAXONOMY_SIZES.items() if k in names}


def taxonomy_rows() -> list[dict]:
    """One row per library cascade."""
    rows = []
    for stem in ec.library_names():
        cascade = ec.load_library(stem)
        report = ec.passes(cascade, "M") if "M" in cascade.ranks else None
        cost = ec.cost(cascade)
        self_attention = {size_symbol("P"): size_symbol("M"), size_symbol("P0"): size_symbol("M0")}
        per_query = {op: simplify_count(closed_form(v.subs(self_attention), cascade) / size_symbol("M"))
                     for op, v in cost.total.items()}
        try:
            numeric = cost.at(_sizes_for(cascade))
            at = {op: v / TAXONOMY_SIZES["P"] for op, v in numeric.total.items()}
        except ec.CascadeError as err:  # the message without the file's path (the row names the cascade)
            at = {"unbound": err.message}
        rows.append({
            "stem": stem,
            "name": cascade.name,
            "passes": report.passes if report else None,
            "live": report.live_across_passes if report else [],
            "per_query": per_query,
            "per_query_at": at,
            **(fusion_columns(cascade) if report else {"fewest": None, "overhead": "-"}),
        })
    return rows


def fusion_columns(cascade: ec.Cascade) -> dict:
    """"fewest passes found" and "overhead" (per query at TAXONOMY_SIZES, tiles of M0) of
    `cascadesim fuse` over M; a refusal shows its first reason."""
    result = fuse(cascade, "M")
    if result.status == "minimal":
        return {"fewest": result.passes_after, "overhead": "already minimal"}
    if result.status == "refused":
        why = next(iter(result.reasons.values()))
        return {"fewest": result.passes_before, "overhead": f"refused: {why}"}
    sizes = dict(_sizes_for(cascade), M0=TAXONOMY_SIZES["M0"])
    try:
        ops = result.overhead_at(sizes)
    except ec.CascadeError as err:  # a size the taxonomy does not set (a 2-D window's R)
        return {"fewest": result.passes_after, "overhead": f"{', '.join(result.rules)}: {err.message}"}
    per_query = {op: v / TAXONOMY_SIZES["P"] for op, v in ops.items()}
    text = ", ".join(f"{op} {v:+,.0f}" if v == int(v) else f"{op} {v:+,.3g}"
                     for op, v in per_query.items()) or "none"
    return {"fewest": result.passes_after, "overhead": f"{', '.join(result.rules)}: {text}"}


def fusemax_cloud_latency(cascade: ec.Cascade) -> float:
    """Simulated latency (seconds) of `cascade` on fusemax-cloud at LATENCY_SIZES, auto mapping
    optimising latency, LATENCY_HEADS (batch, head) pair. Raises MappingError (with the mapper's
    reason) where the cascade cannot be mapped."""
    from mappings import simulate

    names = set(cascade.size_names) | set(cascade.params)
    sizes = {k: v for k, v in {**TAXONOMY_SIZES, **LATENCY_SIZES}.items()
             if k in names and k not in ("M0", "P0")}  # tiles: the mapping's choice
    return simulate(cascade, LATENCY_ARCH, sizes, mapping="auto", objective="latency",
                    batch=1, heads=LATENCY_HEADS).latency_s


def fusion_latency_rows(simulate: Callable[[ec.Cascade], float] | None = None,
                        stems: list[str] | None = None, progress: bool = False) -> list[dict]:
    """Simulated latency before and after fusion, for the report's latency table.

    `simulate(cascade) -> seconds` (default `fusemax_cloud_latency`) is called on the library
    cascade and on its fused form, for the cascades `fuse` reduces over M (the others have no
    "after"). A cascade the simulator gives no number for (studies.outcome.attempt) gets its reason
    in `reason_before` / `reason_after` and no number.
    """
    from studies.outcome import attempt

    simulate = simulate or fusemax_cloud_latency
    stems = list(stems or ec.library_names())
    if progress:
        from studies.progress import progress as progress_bar
        stems = progress_bar(stems, desc="latency before/after fusion")
    rows = []
    for stem in stems:
        cascade = ec.load_library(stem)
        if "M" not in cascade.ranks:
            continue
        result: FuseResult = fuse(cascade, "M")
        if result.status != "reduced":
            continue
        row = {"stem": stem, "passes_before": result.passes_before, "passes_after": result.passes_after}
        for side, c in (("before", cascade), ("after", result.cascade)):
            row[f"latency_{side}_s"], row[f"reason_{side}"] = attempt(simulate, c)
        both = row["latency_before_s"] is not None and row["latency_after_s"] is not None
        row["speedup"] = row["latency_before_s"] / row["latency_after_s"] if both else None
        rows.append(row)
    return rows


def render_latency(rows: list[dict]) -> str:
    """The latency section: a table and sentences whose numbers come from `rows`."""
    sizes = ", ".join(f"{k} = {v:,}" for k, v in LATENCY_SIZES.items())
    lines = [
        f"## Simulated latency on {LATENCY_ARCH} before and after fusion",
        "",
        f"Each cascade that `fuse` reduces over M, as written and fused, simulated on `{LATENCY_ARCH}` with",
        "the generic mapper (`mappings.simulate`, `mapping=\"auto\"`, objective latency; `docs/mapping.md`) at",
        f"BERT-base head sizes and 64K tokens ({sizes}), {LATENCY_HEADS} (batch, head) pair (latency of one",
        "head; heads are independent and scale it), other params as above. A cascade the mapper cannot map",
        "shows the mapper's reason instead of a number.",
        "",
        "| cascade | passes as written -> fused | latency as written (ms) | latency fused (ms) | speedup |",
        "|---|---|---|---|---|",
    ]

    def cell(row, side):
        value = row[f"latency_{side}_s"]
        if value is None:
            return "not mapped: " + row[f"reason_{side}"].replace("|", "/")
        return f"{value * 1e3:,.4g}"

    for row in rows:
        speed = f"{row['speedup']:.2f}x" if row["speedup"] is not None else "-"
        lines.append(f"| {row['stem']} | {row['passes_before']} -> {row['passes_after']} | "
                     f"{cell(row, 'before')} | {cell(row, 'after')} | {speed} |")
    both = [r for r in rows if r["speedup"] is not None]
    lines.append("")
    lines.append(f"{len(rows)} cascades are reduced by `fuse`; {len(both)} of them are mapped both as "
                 f"written and fused, {len(rows) - len(both)} are not (reason in the table).")
    if both:
        best = max(both, key=lambda r: r["speedup"])
        worst = min(both, key=lambda r: r["speedup"])
        faster = [r for r in both if r["speedup"] > 1.0]
        speedups = sorted(r["speedup"] for r in both)
        median = (speedups[(len(speedups) - 1) // 2] + speedups[len(speedups) // 2]) / 2
        lines.append(f"Fusion is faster for {len(faster)} of the {len(both)}; speedups range from "
                     f"{worst['speedup']:.2f}x ({worst['stem']}) to {best['speedup']:.2f}x ({best['stem']}), "
                     f"median {median:.2f}x.")
        slower = [r for r in both if r["speedup"] < 1.0]
        if slower:
            lines.append("Slower after fusion: " + ", ".join(
                f"{r['stem']} ({(1 / r['speedup'] - 1) * 100:.1f}% more time)" for r in slower)
                + ".")
    return "\n".join(lines) + "\n"


def _ops(ops: dict, fmt) -> str:
    return "<br>".join(f"{op}: {fmt(v)}" for op, v in ops.items())


def render(rows: list[dict]) -> str:
    lines = [
        "# Taxonomy of the attention library",
        "",
        "Generated by `cascadesim report` from `einsum_cascade/library/*.cascade`. Passes are the lower",
        "bound over the key/value rank M (`docs/cascade-language.md`); live tensors are the",
        "streamed tensors produced in one pass and read in a later one (they grow with M and must be",
        "buffered, spilled or recomputed). Operation counts are per query (total / P) for",
        "self-attention (P = M, query blocks P0 = key blocks M0), counting every operator once per point",
        "of its iteration space (a MAC = multiply + add); masked points (causal, windows) are not counted.",
        f"Numeric column: {', '.join(f'{k} = {v:g}' for k, v in TAXONOMY_SIZES.items())}"
        " (where the cascade has that size).",
        "",
        "Fewest passes found and overhead: `cascadesim fuse` over M (`docs/fuse.md`); the overhead",
        "is the change of the operation counts per query at the sizes above (tiles of M0 = 256),",
        "certified rewrites only; a refusal gives the rule's reason.",
        "",
        "| cascade | passes as written | live across passes | fewest passes found | overhead (fuse, per query at M = 4096) "
        "| ops per query (symbolic) | ops per query at M = 4096 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        symbolic = _ops(row["per_query"], lambda v: f"`{sympy.sstr(v)}`")
        numeric = _ops(row["per_query_at"], lambda v: f"{v:,.0f}" if isinstance(v, (int, float)) else str(v))
        overhead = row["overhead"].replace("|", "/")
        lines.append(f"| {row['stem']} | {row['passes']} | {', '.join(row['live']) or '-'} | "
                     f"{row['fewest']} | {overhead} | {symbolic} | {numeric} |")
    return "\n".join(lines) + "\n"


def write_report(out_root: Path, latency: bool = True) -> Path:
    """Write `out_root/taxonomy/report.md` (with the latency section unless `latency` is False);
    returns its path."""
    out = Path(out_root) / "taxonomy"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    text = render(taxonomy_rows())
    if latency:
        text += "\n" + render_latency(fusion_latency_rows(progress=True))
    path.write_text(text)
    print(f"wrote {path}")
    return path
