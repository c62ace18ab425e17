"""Study: every library cascade on fusemax-cloud and flat-cloud with the auto mapping.

Each cascade at 4K, 16K and 64K tokens with BERT's attention shapes (E = F = 64, batch x heads =
64 x 12), mapped by the mapper (`mapping: auto`, latency) and simulated. Each finished point is
appended to points.jsonl (an interrupted run resumes; a point is reused while the model's
fingerprint is unchanged). Writes results.csv, results.json, report.md and figures (latency,
energy, bounding unit, passes). Cascades that no mapping can honour are listed with the reason.
Every sentence of the report that states a number is computed from the results.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from studies.progress import progress as progress_bar  # noqa: E402  (tqdm on a terminal, lines in a log)

import einsum_cascade as ec  # noqa: E402
from mappings.scheduler import tensor_words  # noqa: E402
from mappings.simulation import simulate  # noqa: E402
from mappings.workload import make_workload, parse_length  # noqa: E402
from studies.checked import require_finite  # noqa: E402
from studies.errors import UsageError  # noqa: E402
from studies.outcome import attempt  # noqa: E402
from studies.sweep.journal import Journal, code_fingerprint, exclusive, journal_key  # noqa: E402

ARCHS = ["fusemax-cloud", "flat-cloud"]
LENGTHS = ["4K", "16K", "64K"]
MODEL = "BERT"
# sizes the cascades need besides the sequence and head dimensions (their sources):
EXTRA_SIZES = {
    "attention_sliding_window": {"W": 512},  # Longformer's window of 512 tokens (Beltagy et al., 2020)
    "attention_sliding_window_1pass": {"W": 512},  # the same window, the one-pass form
    "based_attention": {"W": 64},  # BASED's sliding-window size of 64 (Arora et al., 2024)
    "agent_attention": {"N": 256},  # 256 agent tokens, the largest of Agent Attention (Han et al., 2024)
    "lightning_attention": {"G": 1, "P0": 256, "M0": 256},  # no decay; blocks of 256 queries and keys (M0 = P0)
    "sigmoid_attention": {"B": 0},  # the bias value does not change the work
    # 4 sink tokens and a 1,024-token cache as in StreamingLLM (Xiao et al., 2024)
    "attention_sinks": {"S": 4, "W": 1020},
    # lambda of differential attention (Ye et al., 2025: lambda_init 0.2-0.8); the value does not change the work
    "differential_attention": {"LAM": 0.8},
    "diff_attention_3pass": {"L": 0.8},
    # Mamba's state size N = 16 (Gu and Dao, 2023), one channel per head dimension (D = 64)
    "selective_scan": {"D": 64, "N": 16},
    # thresholds and k: illustrative; the data-dependent masks are counted as upper bounds
    "threshold_attention_refused": {"W": 5.0},
    "topk_attention": {"KK": 256},
    # issue 19/21 variants (branch variants): ALiBi's slope of head 1 of 12 (2^(-8/12), Press et al., 2022);
    # RetNet's smallest decay 1 - 2^-5 (Sun et al., 2023); Mamba-2's A = -1 (its init range is [-16, -1]);
    # blocks of 256 keys (the FuseMax tile, Landmark/chunk/block sizes of the algorithm), 4 kept
    # blocks for block-sparse; Hedgehog's feature map of D = 64; DeepSeek-V2's KV rank 512, RoPE 64;
    # heads inside a cascade take the place of the study's 12 (MQA: 12 query heads; GQA: 3 groups of 4)
    "alibi_attention": {"SL": 2 ** (-8 / 12)},
    "retention": {"G": 1 - 2 ** -5},
    "mamba2_ssd": {"AA": -1.0},
    "landmark_attention": {"M0": 256},
    "chunked_attention": {"M0": 256},
    "block_sparse_attention": {"M0": 256, "NB": 4},
    "hedgehog_attention": {"D": 64},
    "mqa_attention": {"H": 12},
    "gqa_causal_prefill": {"H": 4, "G": 3},
    "gqa_decode": {"H": 4, "G": 3, "P": 1},  # decode: one query per step against the n-token cache
    "mla_decode": {"C": 512, "R": 64, "H": 12, "P": 1},
    # a square grid of sqrt(n) x sqrt(n) tokens, radius 3 (NAT's 7 x 7 neighbourhood, Hassani et al., 2023)
    "neighborhood_attention_2d_tokens": lambda n: {**dict.fromkeys(("MX", "MY", "PX", "PY"), round(n ** 0.5)), "WR": 3},
    # the same grid over separate key (M x N) and query (P x R) ranks; its radius W = 3 is the cascade's default
    "neighborhood_attention_2d": lambda n: dict.fromkeys(("M", "N", "P", "R"), round(n ** 0.5)),
}
HEAD_RANKS = ("H", "G")  # ranks of a cascade's own heads: the study's heads are divided by their sizes
COLUMNS = ["cascade", "arch", "seq_len", "status", "passes", "latency_s", "energy_j", "dram_bytes", "bounding_unit",
           "util_2d", "util_1d", "candidates", "reason"]


def study_sizes(c: ec.Cascade, n: int) -> dict:
    """BERT's attention shapes at n tokens for cascade `c` (plus EXTRA_SIZES)."""
    w = make_workload(MODEL, n)
    extra = EXTRA_SIZES.get(c.name, {})
    sizes = {"M": n, "P": n, "E": w.E, "F": w.F, **(extra(n) if callable(extra) else extra)}
    return {k: v for k, v in sizes.items() if k in c.size_names or k in c.params}


def _simulate_point(c: ec.Cascade, arch: str, n: int):
    """(the auto-mapped result, query heads per cascade instance) at the study's sizes."""
    w = make_workload(MODEL, n)
    sizes = study_sizes(c, n)
    heads = w.H // math.prod(int(sizes[rank]) for rank in HEAD_RANKS if rank in c.ranks)
    return simulate(c, arch, sizes, mapping="auto", batch=w.B, heads=heads), heads


def cascade_point(name: str, arch: str, length: str) -> dict:
    """One (cascade, architecture, length) point: a row of results.csv (units: s, J, bytes; util 0..1)."""
    c = ec.load_library(name)
    n = parse_length(length)
    w = make_workload(MODEL, n)
    passes = ec.passes(c, "M").passes if "M" in c.ranks else None
    row = {"cascade": name, "arch": arch, "seq_len": length, "passes": passes}
    done, reason = attempt(_simulate_point, c, arch, n)
    if reason is not None:
        return {**row, "status": "unmapped", "reason": reason}
    r, heads = done
    known = _with_parts(c, r.sizes)
    compulsory = w.B * heads * 2 * sum(tensor_words(c, t, known) for t in [*c.inputs, *c.outputs])  # 2-byte words
    return {**row, "status": "ok", "latency_s": r.latency_s, "energy_j": r.energy_j,
            "dram_bytes": r.dram_bytes, "compulsory_bytes": compulsory, "bounding_unit": r.bounding_unit,
            "util_2d": r.util.get("array2d"), "util_1d": r.util.get("array1d"), "candidates": r.candidates_evaluated,
            "mapping": r.mapping, "energy_by_component": r.energy_by_component, "reason": "",
            "buffer_mib": r.result and _buffer_mib(arch)}


def _with_parts(c: ec.Cascade, sizes: dict) -> dict:
    """`sizes` with the outer part of each split rank (M1 = M / M0) where only the inner one is given."""
    out = dict(sizes)
    for rank in c.ranks.values():
        if len(rank.parts) == 2 and rank.name in out and rank.parts[1] in out and rank.parts[0] not in out:
            out[rank.parts[0]] = out[rank.name] // out[rank.parts[1]]
    return out


def _buffer_mib(arch: str) -> int:
    from archsim.config import load_architecture
    return load_architecture(arch).buffer.capacity_bytes >> 20


def fingerprint() -> str:
    """The model's fingerprint and this module's source (16 hex digits)."""
    return code_fingerprint(Path(__file__))


def check_point(p: dict) -> str | None:
    """The problem of a journalled point (None if sound): its identity and status, and for a mapped
    point finite, positive latency and energy and non-negative DRAM bytes."""
    for f in ("cascade", "arch", "seq_len"):
        if not isinstance(p.get(f), str):
            return f"{f}: expected a name, got {p.get(f)!r}"
    if p.get("status") not in ("ok", "unmapped"):
        return f"status: expected ok or unmapped, got {p.get('status')!r}"
    if p["status"] == "unmapped":
        return None if isinstance(p.get("reason"), str) else "reason: expected the reason"
    for f, positive in (("latency_s", True), ("energy_j", True), ("dram_bytes", False), ("compulsory_bytes", False)):
        v = p.get(f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0):
            return f"{f}: expected a {'positive' if positive else 'non-negative'} number, got {v!r}"
    if not isinstance(p.get("mapping"), dict):
        return "mapping: expected the mapping used"
    return None


def run_study(out: Path, cascades: list[str] | None = None, archs: list[str] | None = None,
              lengths: list[str] | None = None, progress: bool = True) -> list[dict]:
    """Simulate every missing point (resuming from out/points.jsonl) and write the report."""
    names = cascades or ec.library_names()
    for n in names:
        if n not in ec.library_names():
            raise UsageError(f"--cascades: unknown library cascade {n!r}")
    archs, lengths = archs or ARCHS, lengths or LENGTHS
    for n in lengths:
        parse_length(n)
    with exclusive(out, "cascades study"):
        journal, fp = Journal(out / "points.jsonl", check_point), fingerprint()
        todo = [(c, a, n) for c in names for a in archs for n in lengths]
        rows = journal.load()
        done = {}
        for key in todo:
            p = rows.get(journal_key(fp, json.dumps(list(key))))
            if p is not None and (p["cascade"], p["arch"], p["seq_len"]) == key:
                done[key] = p
        try:
            for key in progress_bar(todo, desc="cascades", disable=not progress):
                if key in done:
                    continue
                p = cascade_point(*key)
                require_finite(p, f"cascades point {' '.join(key)}")
                p["fingerprint"] = fp
                done[key] = p
                journal.append(journal_key(fp, json.dumps(list(key))), p)
        finally:
            journal.close()
        points = [done[k] for k in todo]
        write_outputs(out, points, names, archs, lengths)
    return points


def _bars(path: Path, title: str, ylabel: str, points: list[dict], field: str, archs, lengths, log=True) -> None:
    names = sorted({p["cascade"] for p in points})
    fig, ax = plt.subplots(figsize=(11, 4))
    series = [(a, n) for a in archs for n in lengths]
    width = 0.8 / len(series)
    by = {(p["cascade"], p["arch"], p["seq_len"]): p for p in points}
    for i, (a, n) in enumerate(series):
        vals = [by.get((c, a, n), {}).get(field) or 0 for c in names]  # no bar where a point has no number
        ax.bar([x + i * width for x in range(len(names))], vals, width, label=f"{a} {n}")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names, rotation=60, ha="right", fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def findings(points: list[dict], lengths: list[str]) -> list[str]:
    """Report sentences computed from the points: what the pass analysis predicts, and what surprised."""
    ok = [p for p in points if p["status"] == "ok"]
    lines = []
    longest = lengths[-1]
    at = [p for p in ok if p["seq_len"] == longest]
    multi = [p for p in at if (p["passes"] or 0) >= 2]
    single = [p for p in at if p["passes"] == 1]
    if multi and single:
        rm = [p["dram_bytes"] / p["compulsory_bytes"] for p in multi]
        rs = [p["dram_bytes"] / p["compulsory_bytes"] for p in single]
        spilled = sorted({p["cascade"] for p in multi if any(v > 0 for v in (p["mapping"].get("spill") or {}).values())})
        follows = statistics.median(rm) > statistics.median(rs)
        n = parse_length(longest)
        live_mb = n * n * 2 / 2**20
        grouped = sorted({p["cascade"] for p in multi if isinstance(p["mapping"].get("query_group"), int)
                          and p["mapping"]["query_group"] < n})
        lines.append(
            f"- Pass analysis: a cascade with 2 or more passes over M keeps its live tensors between passes, "
            f"P x M words a head: {live_mb:.0f} MiB at {longest}, against buffers of "
            f"{', '.join(sorted({str(p['buffer_mib']) for p in at}))} MiB, so the mapper must spill them or use query "
            f"groups of fewer rows (re-reading K and V once per group). Multi-pass cascades move a median {statistics.median(rm):.1f}x their "
            f"compulsory DRAM traffic (range {min(rm):.1f}-{max(rm):.1f}x) against {statistics.median(rs):.1f}x "
            f"for 1-pass ones ({min(rs):.1f}-{max(rs):.1f}x): "
            + ("this follows from the pass analysis." if follows else "contrary to the pass analysis (a surprise).")
            + (f" Mappings that spill live tensors at {longest}: {', '.join(spilled)}." if spilled else
               f" No mapping spills at {longest}.")
            + (f" Multi-pass cascades mapped with query groups smaller than P: {', '.join(grouped)}." if grouped else ""))
    for arch in sorted({p["arch"] for p in ok}):
        for n in lengths:
            fam = {p["cascade"]: p for p in ok if p["arch"] == arch and p["seq_len"] == n and
                   p["cascade"] in ("attention_1pass", "attention_2pass", "attention_3pass")}
            if len(fam) < 3:
                continue
            order = sorted(fam, key=lambda c: fam[c]["latency_s"])
            fastest = order[0]
            expected = fastest == "attention_1pass"
            ranking = " < ".join(f"{c} {fam[c]['latency_s'] * 1e3:.3g} ms" for c in order)
            lines.append(
                f"- Softmax attention on {arch} at {n}: {ranking}; "
                + ("fewer passes are faster, as the pass analysis suggests." if expected and order[1] == "attention_2pass"
                   else f"a surprise: fewer passes are not faster here; the fastest, {fastest}, is bound by "
                        f"{fam[fastest]['bounding_unit']} (busy 2D {fam[fastest]['util_2d']:.2f}, 1D "
                        f"{fam[fastest]['util_1d']:.2f}): compute on that unit, not the traffic passes add, decides.")
            )
    bound = {}
    for p in ok:
        bound.setdefault(p["bounding_unit"], set()).add(p["cascade"])
    lines.append("- Bounding units over all points: " + "; ".join(
        f"{u}: {len(cs)} cascade(s)" for u, cs in sorted(bound.items())) + ".")
    for arch in sorted({p["arch"] for p in ok}):
        causal = {p["cascade"]: p for p in ok if p["arch"] == arch and p["seq_len"] == longest}
        pairs = [(a, b) for a, b in (("attention_1pass", "attention_1pass_causal"),
                                     ("attention_2pass", "attention_2pass_causal"),
                                     ("attention_3pass", "attention_3pass_causal")) if a in causal and b in causal]
        if pairs:
            sp = [causal[a]["latency_s"] / causal[b]["latency_s"] for a, b in pairs]
            lines.append(f"- Causal masks on {arch} at {longest}: the causal cascades run {min(sp):.2f}-{max(sp):.2f}x "
                         "faster than their non-causal forms (about 2x is expected from skipping half the key tiles"
                         + ("" if min(sp) > 1.6 else "; less where the bound is not the masked work") + ").")
    return lines


def write_outputs(out: Path, points: list[dict], names, archs, lengths) -> None:
    """results.csv, results.json, report.md and the figures."""
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for p in points:
            w.writerow(p)
    (out / "results.json").write_text(json.dumps({"points": points}, indent=1))
    ok = [p for p in points if p["status"] == "ok"]
    _bars(out / "latency.png", "Latency (auto mapping)", "seconds", ok, "latency_s", archs, lengths)
    _bars(out / "energy.png", "Energy (auto mapping)", "joules", ok, "energy_j", archs, lengths)
    _bars(out / "passes.png", "Passes over M", "passes", points, "passes", archs[:1], lengths[:1], log=False)
    units = sorted({p["bounding_unit"] for p in ok})
    fig, ax = plt.subplots(figsize=(11, 4))
    cs = sorted({p["cascade"] for p in ok})
    series = [(a, n) for a in archs for n in lengths]
    by = {(p["cascade"], p["arch"], p["seq_len"]): p for p in ok}
    for j, (a, n) in enumerate(series):
        xs = [i for i, c in enumerate(cs) if (c, a, n) in by]
        ys = [units.index(by[(cs[i], a, n)]["bounding_unit"]) + (j - len(series) / 2) * 0.05 for i in xs]
        ax.scatter(xs, ys, s=12, label=f"{a} {n}")
    ax.set_yticks(range(len(units)), units)
    ax.set_xticks(range(len(cs)), cs, rotation=60, ha="right", fontsize=7)
    ax.set_title("Bounding unit (the busiest unit, or DRAM)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "bounding_unit.png", dpi=110)
    plt.close(fig)
    lines = ["# Every library cascade on fusemax-cloud and flat-cloud (auto mapping)", "",
             f"{len(names)} library cascades x {', '.join(lengths)} tokens x {', '.join(archs)}; BERT's attention "
             "shapes (E = F = 64, batch 64 x 12 heads); each point mapped by `mapping: auto` (latency) and "
             f"simulated. {len(ok)} of {len(points)} points mapped.", "",
             "| cascade | passes | arch | length | latency (ms) | energy (J) | DRAM (GB) | bound by | candidates |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in ok:
        lines.append(f"| {p['cascade']} | {p['passes']} | {p['arch']} | {p['seq_len']} | {p['latency_s'] * 1e3:.4g} | "
                     f"{p['energy_j']:.4g} | {p['dram_bytes'] / 1e9:.4g} | {p['bounding_unit']} | {p['candidates']} |")
    lines += ["", "![latency](latency.png)", "![energy](energy.png)", "![bound](bounding_unit.png)",
              "![passes](passes.png)", "", "## Findings", ""] + findings(points, lengths)
    bad = {}
    for p in points:
        if p["status"] != "ok":
            bad.setdefault(p["cascade"], p["reason"])
    lines += ["", "## Cascades no mapping can honour", ""]
    lines += [f"- {c}: {r}" for c, r in sorted(bad.items())] or ["- none"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def write_report(out_root: Path) -> None:
    """`make report` job: the study under out_root/cascades/."""
    run_study(out_root / "cascades")


def register_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cascades", nargs="+", help="library cascades (default: all)")
    parser.add_argument("--archs", nargs="+", default=ARCHS, help="architectures (default: fusemax-cloud flat-cloud)")
    parser.add_argument("--lengths", nargs="+", default=LENGTHS, help="sequence lengths (default 4K 16K 64K)")
    parser.add_argument("--out", type=Path, default=Path("reports/cascades"), help="output folder")


def main(args: argparse.Namespace) -> int:
    points = run_study(args.out, args.cascades, args.archs, args.lengths)
    print(f"{sum(p['status'] == 'ok' for p in points)} of {len(points)} points mapped; wrote {args.out}/report.md")
    return 0
