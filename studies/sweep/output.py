"""The outputs of a sweep: the results table, results.parquet/.csv, pareto.png and report.md.

The table has one row per point in spec order: `point` (index), the varied values, `cascade`,
`mapping` (the mapping used), the sizes, `heads`, `batch`, `latency_s` (s), `energy_j` (J),
`area_mm2` (mm^2), `dram_bytes`, `cycles`, `util_<unit>` (busy fraction), `bound`, `status`,
`error`, and `front_latency_energy` / `front_latency_area`: on the Pareto front of its workload
(the `front_by` columns: by default cascade, sizes, heads and batch) among feasible points.
Every file is a function of the table alone, written deterministically (byte-identical for
the same rows) and atomically (a temporary file renamed).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from studies.sweep.area import AREA_NOTES  # noqa: E402
from studies.sweep.pareto import pareto_mask  # noqa: E402
from studies.sweep.spec import Sweep  # noqa: E402

METRICS = ["latency_s", "energy_j", "area_mm2", "dram_bytes", "cycles"]
MAX_TABLE_ROWS = 50  # rows of a front shown in report.md (all are in the results files)


def _column(values: list) -> pd.Series:
    """A column of one type: numbers stay numbers; a column mixing kinds becomes strings."""
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int}:
        return pd.Series(values, dtype="int64") if None not in values else pd.Series(values, dtype="float64")
    if kinds and kinds <= {int, float}:
        return pd.Series(values, dtype="float64")
    if kinds and kinds <= {bool}:
        return pd.Series(values, dtype="bool")
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")  # missing: NaN


def build_table(sweep: Sweep, rows: dict[int, dict]) -> pd.DataFrame:
    """The results table (module docstring) from the rows of every point, by point index."""
    points = sweep.points
    units = sorted({u for r in rows.values() for u in r.get("util", {})})
    cols: dict[str, pd.Series] = {"point": _column([p["index"] for p in points])}
    for key in sweep.vary_keys:
        cols[key] = _column([p["values"][key] for p in points])
    cols["cascade"] = _column([p["cascade"]["label"] for p in points])
    cols["mapping"] = _column([rows[p["index"]]["mapping"] for p in points])
    for rank in sweep.size_ranks:
        cols[rank] = _column([p["sizes"].get(rank) for p in points])  # None: not a size of that cascade
    cols["heads"] = _column([p["heads"] for p in points])
    cols["batch"] = _column([p["batch"] for p in points])
    for m in METRICS:
        cols[m] = pd.Series([rows[p["index"]][m] for p in points], dtype="float64")
    for u in units:
        cols[f"util_{u}"] = pd.Series([rows[p["index"]]["util"].get(u) for p in points], dtype="float64")
    for f in ("bound", "status", "error"):
        cols[f] = _column([rows[p["index"]][f] for p in points])
    df = pd.DataFrame(cols)
    df["front_latency_energy"] = front_flags(df, "energy_j", sweep.front_by)
    df["front_latency_area"] = front_flags(df, "area_mm2", sweep.front_by)
    return df


def front_flags(df: pd.DataFrame, other: str, front_by: list[str]) -> pd.Series:
    """Whether each feasible row is on the (latency_s, `other`) front of its `front_by` group."""
    flags = np.zeros(len(df), dtype=bool)
    ok = df["status"] == "ok"
    for _, idx in _groups(df[ok], front_by):
        flags[idx] = pareto_mask(df.loc[idx, "latency_s"].to_numpy(), df.loc[idx, other].to_numpy())
    return pd.Series(flags, index=df.index, dtype="bool")


def _groups(df: pd.DataFrame, by: list[str]) -> list[tuple[tuple, list[int]]]:
    """(key, row labels) of each group of `df` by `by`, in order of first appearance."""
    if not by:
        return [((), list(df.index))] if len(df) else []
    groups: dict[tuple, list[int]] = {}
    for label, key in zip(df.index, df[by].itertuples(index=False, name=None)):
        key = tuple(None if isinstance(v, float) and v != v else v for v in key)  # NaN (no such size): one key
        groups.setdefault(key, []).append(label)
    return list(groups.items())


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_tables(out: Path, df: pd.DataFrame) -> None:
    """results.csv and results.parquet (pyarrow, no index, deterministic bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    _atomic(out / "results.csv", lambda p: df.to_csv(p, index=False, lineterminator="\n"))
    table = pa.Table.from_pandas(df, preserve_index=False)
    _atomic(out / "results.parquet", lambda p: pq.write_table(table, p, compression="zstd"))


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _label(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={_fmt(row[k])}" for k in keys) or "-"


def _log_ticks(axis, span: float) -> None:
    """Readable ticks on a log axis: decades labelled, and 2 and 5 between them (labelled only when
    the axis spans under two decades, where there are few decades); the default labels of every
    minor tick overlap."""
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e"))
                             if span < 100 else NullFormatter())


def write_figure(out: Path, df: pd.DataFrame, front_by: list[str]) -> None:
    """pareto.png: latency vs energy and latency vs area of the feasible points, fronts highlighted."""
    ok = df[df["status"] == "ok"]
    groups = _groups(ok, front_by)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    # a group's label names only the front_by columns that differ between groups
    differ = [i for i in range(len(front_by)) if len({k[i] for k, _ in groups}) > 1]
    for ax, other, flag, label in ((axes[0], "energy_j", "front_latency_energy", "energy (J)"),
                                   (axes[1], "area_mm2", "front_latency_area", "area (mm$^2$)")):
        for n, (key, idx) in enumerate(groups):
            g = ok.loc[idx]
            colour = colours(n % colours.N)
            name = ", ".join(f"{front_by[i]}={_fmt(key[i])}" for i in differ if key[i] is not None) or "all points"
            ax.scatter(g["latency_s"], g[other], s=10, color=colour, alpha=0.35, linewidths=0)
            front = g[g[flag]].sort_values(["latency_s", other], kind="stable")
            ax.plot(front["latency_s"], front[other], "o-", color=colour, markersize=5, label=name)
        if len(ok):
            for axis, values in (("x", ok["latency_s"]), ("y", ok[other])):
                if values.min() > 0 and values.max() > 10 * values.min():
                    getattr(ax, f"set_{axis}scale")("log")
                    _log_ticks(getattr(ax, f"{axis}axis"), values.max() / values.min())
        ax.set_xlabel("latency (s)")
        ax.set_ylabel(label)
        ax.set_title(f"latency vs {label.split(' ')[0]} (front: line)")
        ax.grid(True, which="major", alpha=0.3)
    if groups and len(groups) <= 10:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(len(names), 3), frameon=False)
        fig.tight_layout(rect=(0, 0.06 * ((len(names) + 2) // 3), 1, 1))
    else:
        fig.tight_layout()
    if not len(ok):
        for ax in axes:
            ax.text(0.5, 0.5, "no feasible point", ha="center", va="center", transform=ax.transAxes)
    _atomic(out / "pareto.png", lambda p: fig.savefig(p, dpi=100, format="png", metadata={"Software": None}))
    plt.close(fig)


def report_text(sweep: Sweep, df: pd.DataFrame) -> str:
    """report.md: what was swept, how many points were feasible and why not, and each front."""
    spec = sweep.spec
    n = len(df)
    status = Counter(df["status"])
    shape = " x ".join([f"{k} ({len(set(map(str, df[k])))})" for k in sweep.vary_keys] +
                       [f"cascades ({df['cascade'].nunique()})"] +
                       [f"{r} ({df[r].nunique()})" for r in sweep.size_ranks
                        if df[r].nunique() > 1 and r not in sweep.ties] +
                       [f"{c} ({df[c].nunique()})" for c in ("heads", "batch") if df[c].nunique() > 1])
    used = Counter(df["mapping"].dropna())
    lines = [f"# Sweep {spec.name}", "",
             f"Spec `{sweep.source}`: architecture `{spec.arch}`, mapping `{spec.mapping}`, objective "
             f"`{spec.objective}`. {n} points: {shape}.",
             f"{status.get('ok', 0)} feasible, {status.get('infeasible', 0)} infeasible, "
             f"{status.get('error', 0)} failed with an error."]
    if used:
        lines.append("Mappings used: " + ", ".join(f"{m} ({c} points)" for m, c in sorted(used.items())) + ".")
    lines += ["", AREA_NOTES]
    bad = Counter(df.loc[df["status"] != "ok", "error"])
    if bad:
        lines += ["", "## Points not simulated", "", "| points | reason |", "|---|---|"]
        lines += [f"| {c} | {str(reason).replace('|', '/')} |" for reason, c in bad.most_common(10)]
        if len(bad) > 10:
            lines.append(f"| {sum(bad.values()) - sum(c for _, c in bad.most_common(10))} | "
                         f"({len(bad) - 10} other reasons, see results.csv) |")
    ok = df[df["status"] == "ok"]
    keys = list(sweep.vary_keys) + [c for c in ("cascade",) if c not in sweep.front_by]
    for key, idx in _groups(ok, sweep.front_by):
        g = ok.loc[idx]
        title = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(sweep.front_by, key)) or "all points"
        fast, frugal, small = (g.loc[g[c].idxmin()] for c in ("latency_s", "energy_j", "area_mm2"))
        front = g[g["front_latency_energy"]].sort_values("latency_s", kind="stable")
        lines += ["", f"## {title}", "",
                  f"{_count(len(g), 'feasible point')}. Latency ranges from {_fmt(g['latency_s'].min())} s to "
                  f"{_fmt(g['latency_s'].max())} s ({_fmt(g['latency_s'].max() / g['latency_s'].min())}x), "
                  f"energy from {_fmt(g['energy_j'].min())} J to {_fmt(g['energy_j'].max())} J, area from "
                  f"{_fmt(g['area_mm2'].min())} to {_fmt(g['area_mm2'].max())} mm^2.",
                  f"Fastest: point {fast['point']} ({_label(fast, keys)}), {_fmt(fast['latency_s'])} s, "
                  f"{_fmt(fast['energy_j'])} J, {_fmt(fast['area_mm2'])} mm^2, bound by {fast['bound']}. "
                  f"Least energy: point {frugal['point']} ({_label(frugal, keys)}), {_fmt(frugal['energy_j'])} J "
                  f"at {_fmt(frugal['latency_s'])} s. Smallest: point {small['point']} ({_label(small, keys)}), "
                  f"{_fmt(small['area_mm2'])} mm^2 at {_fmt(small['latency_s'])} s.",
                  f"{_count(len(front), 'point')} on the latency-energy front, "
                  f"{_count(int(g['front_latency_area'].sum()), 'point')} on the latency-area front.", "",
                  "Latency-energy front:", "",
                  "| point | " + " | ".join(keys) + " | latency (s) | energy (J) | area (mm^2) | bound | "
                  "on latency-area front |",
                  "|---" * (len(keys) + 6) + "|"]
        for _, r in front.head(MAX_TABLE_ROWS).iterrows():
            lines.append(f"| {r['point']} | " + " | ".join(_fmt(r[k]) for k in keys) +
                         f" | {_fmt(r['latency_s'])} | {_fmt(r['energy_j'])} | {_fmt(r['area_mm2'])} | "
                         f"{r['bound']} | {'yes' if r['front_latency_area'] else 'no'} |")
        if len(front) > MAX_TABLE_ROWS:
            lines.append(f"\n({len(front) - MAX_TABLE_ROWS} more front points in results.csv)")
    lines += ["", "![latency vs energy and area](pareto.png)", ""]
    return "\n".join(lines)


def write_outputs(out: Path, sweep: Sweep, df: pd.DataFrame) -> None:
    """results.parquet, results.csv, pareto.png and report.md under `out`."""
    write_tables(out, df)
    write_figure(out, df, sweep.front_by)
    text = report_text(sweep, df)
    _atomic(out / "report.md", lambda p: p.write_text(text))
