"""`cascadesim study gpu-crossval`: the GPU model against measured attention kernel times.

Reads the published data set (studies/data/gpu-published-attention.json: A100, H100, B200 rows
from four public sources) and, when present, gpu_ref benchmark files (gpu_ref/results/*.json).
Splits the rows (studies/gpu_calibration.py: every second length of each series calibrates),
fits each kernel profile's parameters on its calibration rows only, predicts every row, and
reports on the held-out validation rows: MAPE, median / p90 / max error and bias per source and
per kernel, Spearman rank correlation (scipy.stats.spearmanr) of time and of TFLOP/s within
each source, the largest misses with their bound, speedup ratios between kernels measured at
the same shape, and the length where Lightning-2 overtakes FlashAttention-2 on the A100
(measured vs predicted). Writes report.md, crossval.json and predicted_vs_measured.png;
`--write-fitted` also writes the fitted parameters to archsim/configs/gpu-kernels-fitted.yaml,
which `cascadesim gpu predict` uses.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from studies.errors import UsageError
from studies.gpu_observations import (PUBLISHED, Observation, default_bench_files, load_bench,
                                      load_published)

FLASH_TARGET_MAPE = 15.0    # %: flash-style (softmax) kernels, validation rows
LINEAR_TARGET_MAPE = 25.0   # %: linear attention kernels, validation rows
SPEARMAN_TARGET = 0.8       # TFLOP/s rank correlation within each source
CROSSOVER_TARGET = 30.0     # %: predicted vs measured crossover length
LARGEST_MISSES = 10
CROSSOVER_PAIRS = (("lightning2", "flash2"), ("lightning2-decay", "flash2"))


# -- metrics (pure functions, hand-checked in tests) -----------------------------------------
def percentage_errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Signed % errors 100 * (predicted - measured) / measured."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    return 100.0 * (predicted - measured) / measured


def error_summary(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """MAPE, median, p90 and max absolute % error, and bias (mean signed % error)."""
    signed = percentage_errors(predicted, measured)
    absolute = np.abs(signed)
    return {"mape": float(absolute.mean()), "median_ape": float(np.median(absolute)),
            "p90_ape": float(np.percentile(absolute, 90)), "max_ape": float(absolute.max()),
            "bias_pct": float(signed.mean())}


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (scipy.stats.spearmanr); None with fewer than 3 rows or no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(spearmanr(a, b).statistic)


def speedup_ratio_errors(rows: list[dict]) -> list[dict]:
    """For each shape and each pair of kernels measured there: predicted vs measured time ratio.

    rows: dicts with shape (hashable), kernel, predicted_s, measured_s.
    """
    by_shape: dict = {}
    for r in rows:
        by_shape.setdefault(r["shape"], {})[r["kernel"]] = r
    out = []
    for shape, kernels in sorted(by_shape.items(), key=lambda kv: str(kv[0])):
        for a, b in itertools.combinations(sorted(kernels), 2):
            measured = kernels[a]["measured_s"] / kernels[b]["measured_s"]
            predicted = kernels[a]["predicted_s"] / kernels[b]["predicted_s"]
            out.append({"shape": shape, "pair": f"{a}/{b}", "measured": measured, "predicted": predicted,
                        "error_pct": 100.0 * (predicted - measured) / measured})
    return out


def fastest_agreement(rows: list[dict]) -> list[dict]:
    """Per shape with at least two kernels: the measured and the predicted fastest kernel."""
    by_shape: dict = {}
    for r in rows:
        by_shape.setdefault(r["shape"], []).append(r)
    out = []
    for shape, group in sorted(by_shape.items(), key=lambda kv: str(kv[0])):
        if len(group) < 2:
            continue
        measured = min(group, key=lambda r: r["measured_s"])["kernel"]
        predicted = min(group, key=lambda r: r["predicted_s"])["kernel"]
        out.append({"shape": shape, "measured": measured, "predicted": predicted, "agree": measured == predicted})
    return out


def crossover_length(seq_lens: list[int], first_s: list[float], second_s: list[float]) -> float | None:
    """Sequence length where `first` becomes faster than `second` (log-log interpolation).

    Returns the first crossing from slower to faster between adjacent lengths (the log of the
    time ratio interpolated linearly in log2 of the length), or None when there is no such
    crossing inside the range (`crossover_note` says why).
    """
    order = np.argsort(seq_lens)
    n = np.asarray(seq_lens, float)[order]
    gap = np.log(np.asarray(first_s, float)[order] / np.asarray(second_s, float)[order])  # > 0: first slower
    for i in range(len(n) - 1):
        if gap[i] > 0 >= gap[i + 1]:
            x0, x1 = math.log2(n[i]), math.log2(n[i + 1])
            x = x0 + (x1 - x0) * gap[i] / (gap[i] - gap[i + 1])
            return float(2.0 ** x)
    return None


def crossover_note(seq_lens: list[int], first_s: list[float], second_s: list[float]) -> str:
    """Where the crossover lies, in words, when `crossover_length` finds none inside the range."""
    faster = [f < s for f, s in zip(first_s, second_s)]
    if all(faster):
        return f"faster at every length (crossover below {min(seq_lens)})"
    if not any(faster):
        return f"slower at every length (crossover above {max(seq_lens)})"
    return "no single crossing (alternates)"


def group_metrics(rows: list[dict]) -> dict:
    """Error summary, Spearman of time and of TFLOP/s, and the row count of `rows`."""
    pred = np.array([r["predicted_s"] for r in rows])
    meas = np.array([r["measured_s"] for r in rows])
    return {"n": len(rows), **error_summary(pred, meas), "spearman_time": spearman(pred, meas),
            "spearman_tflops": spearman([r["predicted_tflops"] for r in rows], [r["measured_tflops"] for r in rows])}


# -- the study ---------------------------------------------------------------------------------
def _row(obs: Observation, group: str, predictor, profile) -> dict:
    predicted, bound = predictor.predict(obs, profile)
    s = obs.shape
    return {"row": obs.row, "set": group, "source": obs.source, "gpu": obs.gpu, "clock_hz": obs.clock_hz,
            "kernel": obs.kernel, "family": "linear" if profile.algorithm == "linear" else "softmax",
            "dtype": obs.dtype, "batch": s.batch, "heads": s.heads, "seq_len": s.seq_len, "head_dim": s.head_dim,
            "causal": s.causal, "measured_s": obs.time_s, "predicted_s": predicted, "bound": bound,
            "error_pct": 100.0 * (predicted - obs.time_s) / obs.time_s,
            "measured_tflops": predictor.tflops(obs, obs.time_s), "predicted_tflops": predictor.tflops(obs, predicted),
            "shape": (obs.source, obs.gpu, obs.dtype, s.batch, s.heads, s.seq_len, s.head_dim, s.causal)}


def _crossovers(rows: list[dict], predictor, profiles: dict) -> list[dict]:
    """Where each linear kernel overtakes flash2 at the shapes both were measured (A100 source)."""
    from mappings.gpu_mapping import AttentionShape
    from studies.gpu_observations import Observation as Obs

    out = []
    for linear, softmax in CROSSOVER_PAIRS:
        if linear not in profiles or softmax not in profiles:
            continue
        series: dict = {}
        for r in rows:
            if r["kernel"] in (linear, softmax):
                key = (r["source"], r["gpu"], r["dtype"], r["batch"], r["heads"], r["head_dim"], r["causal"])
                series.setdefault(key, {}).setdefault(r["seq_len"], {})[r["kernel"]] = r
        for key, by_len in sorted(series.items()):
            lens = sorted(n for n, k in by_len.items() if len(k) == 2)
            if len(lens) < 2:
                continue
            source, gpu, dtype, b, h, d, causal = key
            measured = crossover_length(lens, [by_len[n][linear]["measured_s"] for n in lens],
                                        [by_len[n][softmax]["measured_s"] for n in lens])
            grid = sorted({int(round(2 ** x)) for x in np.arange(math.log2(lens[0]), math.log2(lens[-1]) + 1e-9, 1 / 16)})
            clock = by_len[lens[0]][linear]["clock_hz"]
            times = {k: [predictor.predict(Obs(f"grid:{n}", source, gpu, clock, k, dtype,
                                               AttentionShape(b, h, n, d, causal), 1.0), profiles[k])[0]
                         for n in grid] for k in (linear, softmax)}
            predicted = crossover_length(grid, times[linear], times[softmax])
            error = None if measured is None or predicted is None else 100.0 * (predicted - measured) / measured
            out.append({"linear": linear, "softmax": softmax, "source": source, "gpu": gpu, "dtype": dtype,
                        "batch": b, "heads": h, "head_dim": d, "measured_lengths": lens,
                        "measured": measured, "measured_note": None if measured else crossover_note(
                            lens, [by_len[n][linear]["measured_s"] for n in lens],
                            [by_len[n][softmax]["measured_s"] for n in lens]),
                        "predicted": predicted, "predicted_note": None if predicted else crossover_note(
                            grid, times[linear], times[softmax]),
                        "error_pct": error})
    return out


def leave_one_source_out(predictor, calibration: list[Observation], validation: list[Observation]) -> list[dict]:
    """For each source: refit the profiles it measures on the other sources' calibration rows only,
    and report the error on its validation rows: how the model carries over to a new GPU or harness.
    A profile (or architecture) no other source measures falls back to its starting values."""
    from studies.gpu_calibration import calibrate

    out = []
    for source in sorted({o.source for o in validation}):
        held = [o for o in validation if o.source == source]
        kernels = {o.kernel for o in held}
        others = [o for o in calibration if o.source != source and o.kernel in kernels]
        profiles, _ = calibrate(predictor, others)
        rows = [_row(o, "validation", predictor, profiles.get(o.kernel) or predictor.profile(o.kernel)) for o in held]
        m = group_metrics(rows)
        out.append({"source": source, "n": m["n"], "mape": m["mape"], "bias_pct": m["bias_pct"],
                    "spearman_tflops": m["spearman_tflops"], "fitted_from": sorted({o.source for o in others}),
                    "unfitted_kernels": sorted(kernels - set(profiles))})
    return out


def _targets(res: dict) -> list[dict]:
    """Each target of the issue on the validation rows: the value reached and whether it is met."""
    out = []
    for family, target in (("softmax", FLASH_TARGET_MAPE), ("linear", LINEAR_TARGET_MAPE)):
        m = res["by_family"].get(family)
        if m:
            out.append({"target": f"MAPE of {family} kernels <= {target:g} %", "value": m["mape"],
                        "met": m["mape"] <= target})
    for source, m in res["by_source"].items():
        value = m["spearman_tflops"]
        out.append({"target": f"Spearman of TFLOP/s >= {SPEARMAN_TARGET:g} within {source}", "value": value,
                    "met": value is not None and value >= SPEARMAN_TARGET})
    for c in res["crossovers"]:
        value = c["error_pct"]
        out.append({"target": f"{c['linear']} vs {c['softmax']} crossover on {c['gpu']} within {CROSSOVER_TARGET:g} %",
                    "value": value, "met": value is not None and abs(value) <= CROSSOVER_TARGET})
    return out


def run_study(out: Path, bench_paths: list[Path] | None = None, published: Path | None = PUBLISHED,
              gpu: str | None = None, write_fitted: Path | None = None) -> dict:
    """Run the cross-validation; write out/report.md, crossval.json, predicted_vs_measured.png."""
    from archsim.gpu_specs import known_gpus, known_kernels
    from studies.gpu_calibration import Predictor, calibrate, split

    if gpu is not None:
        from archsim.gpu_specs import load_gpu
        load_gpu(gpu)  # an unknown name or a bad file: one line, exit 2
    bench_paths = default_bench_files() if bench_paths is None else bench_paths
    observations = (load_published(published) if published else []) + load_bench(bench_paths, gpu)
    out.mkdir(parents=True, exist_ok=True)
    if not observations:
        raise UsageError("gpu-crossval: no measurement rows (no published data set and no benchmark file)")
    calibration, validation = split(observations)
    predictor = Predictor(fitted=False)
    profiles, fits = calibrate(predictor, calibration)
    evaluated_in_fit = sorted(predictor.seen)  # every row the fit predicted (an audit: calibration rows only)
    for obs in validation:
        profiles.setdefault(obs.kernel, predictor.profile(obs.kernel))
    rows = [_row(o, "calibration", predictor, profiles[o.kernel]) for o in calibration]
    rows += [_row(o, "validation", predictor, profiles[o.kernel]) for o in validation]
    val = [r for r in rows if r["set"] == "validation"]

    def by(key: str) -> dict:
        groups: dict = {}
        for r in val:
            groups.setdefault(r[key], []).append(r)
        return {k: group_metrics(v) for k, v in sorted(groups.items())}

    ratios = speedup_ratio_errors(val)
    fastest = fastest_agreement(val)
    transfer = leave_one_source_out(Predictor(fitted=False), calibration, validation)
    result = {
        "status": "ok", "published": str(published.name) if published else None,
        "bench_files": [str(p) for p in bench_paths],
        "split_rule": "within each series (source, GPU, kernel, dtype, head dim, causal) sorted by sequence length, "
                      "the 2nd, 4th, ... lengths calibrate; the 1st, 3rd, 5th, ... are validation",
        "n_rows": len(rows), "n_calibration": len(calibration), "n_validation": len(val),
        "calibration_rows": sorted(o.row for o in calibration), "validation_rows": sorted(o.row for o in validation),
        "rows_evaluated_in_fit": evaluated_in_fit, "fits": fits, "overall": group_metrics(val), "by_source": by("source"), "by_kernel": by("kernel"),
        "by_family": by("family"), "by_gpu": by("gpu"),
        "largest_misses": sorted(val, key=lambda r: -abs(r["error_pct"]))[:LARGEST_MISSES],
        "speedup_ratio_mape": float(np.mean([abs(x["error_pct"]) for x in ratios])) if ratios else None,
        "fastest_agreement": (sum(f["agree"] for f in fastest) / len(fastest)) if fastest else None,
        "n_fastest_shapes": len(fastest),
        "crossovers": _crossovers(rows, predictor, profiles),
        "leave_one_source_out": transfer,
        "unmeasured_kernels": sorted(set(known_kernels()) - {o.kernel for o in observations}),
        "unmeasured_gpus": sorted(set(known_gpus()) - {o.gpu for o in observations}),
        "device_run": "no GPU was lent to this task (device tool: not drawn); gpu_ref/run_device.sh was not run",
        "records": rows,
    }
    result["targets"] = _targets(result)
    text = json.dumps(result, indent=1, default=str) + "\n"
    (out / "crossval.json").write_text(text)
    (out / "report.md").write_text(render_report(result))
    _figure(out, rows)
    if write_fitted is not None:
        write_fitted_file(write_fitted, fits)
    return result


def write_fitted_file(path: Path, fits: dict) -> None:
    """The fitted parameters as archsim.gpu_specs.load_profile reads them (with the rows used)."""
    import yaml

    lines = ["# Kernel-profile parameters fitted by `cascadesim study gpu-crossval --write-fitted` on the",
             "# calibration rows of studies/data/gpu-published-attention.json (split rule in",
             "# studies/gpu_calibration.py). archsim.gpu_specs.load_profile applies them over each profile's",
             "# starting values. Generated: do not edit by hand.", ""]
    body = {"profiles": {k: v["parameters"] for k, v in sorted(fits.items())},
            "calibration_rows": {k: v["rows"] for k, v in sorted(fits.items())}}
    path.write_text("\n".join(lines) + yaml.safe_dump(body, sort_keys=True, width=100))


def _fmt(x, spec: str = ".1f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _metrics_table(title: str, groups: dict) -> list[str]:
    lines = [f"| {title} | rows | MAPE % | median / p90 / max % | bias % | Spearman time | Spearman TFLOP/s |",
             "|---|---|---|---|---|---|---|"]
    for name, m in groups.items():
        lines.append(f"| {name} | {m['n']} | {_fmt(m['mape'])} | {_fmt(m['median_ape'])} / {_fmt(m['p90_ape'])} / "
                     f"{_fmt(m['max_ape'])} | {_fmt(m['bias_pct'], '+.1f')} | {_fmt(m['spearman_time'], '.3f')} | "
                     f"{_fmt(m['spearman_tflops'], '.3f')} |")
    return lines


def render_report(res: dict) -> str:
    """report.md: every number from `res`."""
    o = res["overall"]
    lines = [
        "# GPU model vs published attention kernel timings", "",
        f"{res['n_rows']} measured rows ({res['published']}"
        + (f" and {len(res['bench_files'])} gpu_ref benchmark file(s)" if res["bench_files"] else
           "; no gpu_ref benchmark file: no GPU has been lent to this project") + "). "
        f"Split rule: {res['split_rule']}. {res['n_calibration']} rows calibrate, {res['n_validation']} validate; "
        "every error below is on validation rows only, with parameters fitted on calibration rows only "
        "(scipy.optimize.least_squares on log errors).", "",
        f"Over all {o['n']} validation rows: MAPE {_fmt(o['mape'])} %, median {_fmt(o['median_ape'])} %, "
        f"p90 {_fmt(o['p90_ape'])} %, max {_fmt(o['max_ape'])} %, bias {_fmt(o['bias_pct'], '+.1f')} %, "
        f"Spearman of time {_fmt(o['spearman_time'], '.3f')}, of TFLOP/s {_fmt(o['spearman_tflops'], '.3f')}.",
        "", "TFLOP/s use the published convention 4 B H N^2 D, halved when causal (also for linear attention, "
        "whose own work is lower).", "", "## Targets (validation rows)", "", "| target | value | met |", "|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.3g')} | {'yes' if t['met'] else 'NO'} |")
    lines += ["", "## Per source", ""] + _metrics_table("source", res["by_source"])
    lines += ["", "## Per kernel", ""] + _metrics_table("kernel", res["by_kernel"])
    lines += ["", "## Per GPU", ""] + _metrics_table("GPU", res["by_gpu"])
    lines += ["", "## Fitted parameters (per profile, on its calibration rows)", "",
              "| kernel | calibration rows | parameters fitted | values | rms log error |", "|---|---|---|---|---|"]
    for name, f in res["fits"].items():
        values = ", ".join(
            (f"{k} " + "/".join(f"{a} {v:.3g}" for a, v in val.items())) if isinstance(val, dict) else f"{k} {val:.3g}"
            for k, val in f["parameters"].items())
        count = sum(len(v) if isinstance(v, dict) else 1 for v in f["parameters"].values())
        lines.append(f"| {name} | {len(f['rows'])} | {count} | {values} | {_fmt(f['rms_log_error'], '.3f')} |")
    lines += ["", f"No row measures the kernel profiles {', '.join(res['unmeasured_kernels'])} or the GPUs "
              f"{', '.join(res['unmeasured_gpus'])}: predictions for them use the profiles' starting values "
              "and the GPUs' datasheet figures, and are not validated here. Likewise a profile's per-architecture "
              "MMA efficiency is fitted only for the architectures its calibration rows cover.",
              "", "## Crossover: linear attention overtakes FlashAttention-2", "",
              "| linear | vs | GPU | measured length | predicted length | error % |", "|---|---|---|---|---|---|"]
    for c in res["crossovers"]:
        m = _fmt(c["measured"], ".0f") if c["measured"] else c["measured_note"]
        p = _fmt(c["predicted"], ".0f") if c["predicted"] else c["predicted_note"]
        lines.append(f"| {c['linear']} | {c['softmax']} | {c['gpu']} | {m} | {p} | {_fmt(c['error_pct'], '+.1f')} |")
    lines += ["", "## Leave one source out (a harder check: a new GPU or benchmark harness)", "",
              "Each source's validation rows predicted with the profiles refitted on the other sources' "
              "calibration rows only (a profile or architecture no other source measures keeps its starting "
              "values). Not a target of the issue; it says how far the fitted parameters carry over.", "",
              "| held-out source | rows | MAPE % | bias % | Spearman TFLOP/s | fitted from | kernels with no other source |",
              "|---|---|---|---|---|---|---|"]
    for t in res["leave_one_source_out"]:
        lines.append(f"| {t['source']} | {t['n']} | {_fmt(t['mape'])} | {_fmt(t['bias_pct'], '+.1f')} | "
                     f"{_fmt(t['spearman_tflops'], '.3f')} | {', '.join(t['fitted_from']) or 'none'} | "
                     f"{', '.join(t['unfitted_kernels']) or '-'} |")
    fa = res["fastest_agreement"]
    lines += ["", f"Kernels measured at the same shape (validation): speedup-ratio error {_fmt(res['speedup_ratio_mape'])} % "
              f"on average; the predicted fastest kernel is the measured one at "
              f"{_fmt(None if fa is None else 100 * fa, '.0f')} % of {res['n_fastest_shapes']} shapes.", "",
              f"## Largest misses (validation, top {len(res['largest_misses'])})", "",
              "| row | GPU | kernel | dtype | B | H | N | D | causal | measured ms | predicted ms | error % | bound |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["largest_misses"]:
        lines.append(f"| {r['row']} | {r['gpu']} | {r['kernel']} | {r['dtype']} | {r['batch']} | {r['heads']} | "
                     f"{r['seq_len']} | {r['head_dim']} | {r['causal']} | {r['measured_s'] * 1e3:.3f} | "
                     f"{r['predicted_s'] * 1e3:.3f} | {r['error_pct']:+.1f} | {r['bound']} |")
    lines += ["", "## Device", "", res["device_run"] + ".", "",
              "![predicted vs measured](predicted_vs_measured.png)", ""]
    return "\n".join(lines)


def _figure(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    gpus = sorted({r["gpu"] for r in rows})
    colours = dict(zip(gpus, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for gpu in gpus:
        for group, marker in (("calibration", "x"), ("validation", "o")):
            sel = [r for r in rows if r["gpu"] == gpu and r["set"] == group]
            if sel:
                ax.scatter([r["measured_s"] * 1e3 for r in sel], [r["predicted_s"] * 1e3 for r in sel],
                           marker=marker, color=colours[gpu], label=f"{gpu} ({group})",
                           facecolors="none" if marker == "o" else None)
    values = [r["measured_s"] * 1e3 for r in rows] + [r["predicted_s"] * 1e3 for r in rows]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)",
           title="Attention forward: predicted vs measured")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_measured.png", dpi=120, metadata={"Software": None})
    plt.close(fig)


def register_args(parser: argparse.ArgumentParser) -> None:
    """Options of `cascadesim study gpu-crossval`."""
    parser.add_argument("--measurements", type=Path, nargs="+", default=None,
                        help="gpu_ref benchmark JSON files (default: every JSON in gpu_ref/results/)")
    parser.add_argument("--published", type=Path, default=PUBLISHED,
                        help="published measurements (default: studies/data/gpu-published-attention.json)")
    parser.add_argument("--no-published", action="store_true", help="use the benchmark files only")
    parser.add_argument("--gpu", default=None,
                        help="GPU description for the benchmark files (default: from each file's gpu field)")
    parser.add_argument("--out", type=Path, default=Path("reports/gpu-crossval"), help="output folder")
    parser.add_argument("--write-fitted", action="store_true",
                        help="also write the fitted parameters to archsim/configs/gpu-kernels-fitted.yaml")


def main(args: argparse.Namespace) -> int:
    """`cascadesim study gpu-crossval`."""
    from archsim.gpu_specs import FITTED_FILE

    for p in args.measurements or []:
        if not p.is_file():
            raise UsageError(f"--measurements: no such file: {p}")
    result = run_study(args.out, args.measurements, None if args.no_published else args.published, args.gpu,
                       FITTED_FILE if args.write_fitted else None)
    o = result["overall"]
    print(f"validation rows {o['n']}: MAPE {o['mape']:.1f} %, Spearman TFLOP/s {_fmt(o['spearman_tflops'], '.3f')}; "
          f"targets met {sum(t['met'] for t in result['targets'])}/{len(result['targets'])}; wrote {args.out}/report.md")
    return 0


def write_report(out_root: Path) -> None:
    """`make report` job: the cross-validation under out_root/gpu-crossval/."""
    result = run_study(out_root / "gpu-crossval")
    o = result["overall"]
    print(f"gpu-crossval: validation MAPE {o['mape']:.1f} % over {o['n']} rows")
