"""`cascadesim study gpu-crossval`: the simulator's GPU predictions against measured kernel times.

Reads benchmark files written by `gpu_ref.bench` (default: every JSON in gpu_ref/results/),
predicts each measured kernel's time with archsim's GPU model through mappings.gpu_mapping,
calibrates the model's efficiency figures on calibration shapes only (sequence lengths 2K and
8K by default) and reports the error on the other (evaluation) shapes: mean absolute
percentage error, median, 90th percentile and max error, bias, Spearman rank correlation,
the error of predicted speedup ratios between algorithms, whether the predicted fastest
kernel per shape is the measured one, and the predicted vs measured crossover length of
linear vs softmax (1-pass) attention. Writes report.md and crossval.json. With no
measurements it says so, writes a report saying so, and exits 0: it never invents numbers.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from archsim.yamlio import read_text_file
from studies.errors import UsageError

if TYPE_CHECKING:
    from archsim.gpu_model import GPUArchitecture

RESULTS_DIR = Path(__file__).resolve().parent.parent / "gpu_ref" / "results"
BENCH_SCHEMA = "cascadesim-gpu-bench/1"
CALIBRATION_SEQ_LENS = (2048, 8192)
SOFTMAX_REFERENCE = "attention_1pass"
LINEAR = "linear_attention_causal"
# Calibration grids (coordinate search, three rounds).
GRIDS = {
    "tensor_efficiency": tuple(np.round(np.linspace(0.25, 0.95, 15), 3)),
    "overlap": (0.0, 0.25, 0.5, 0.75, 1.0),
    "memory_efficiency": (0.6, 0.7, 0.8, 0.9, 1.0),
    "launch_overhead_s": (2e-6, 4e-6, 8e-6, 16e-6),
    "step_latency_s": (0.0, 0.25e-6, 0.5e-6, 1e-6, 2e-6, 4e-6),
}
# Searched jointly, a group at a time (their members trade off against each other).
GROUPS = (("tensor_efficiency", "overlap"), ("memory_efficiency", "launch_overhead_s"), ("step_latency_s",))


class MeasurementError(UsageError):
    """A measurement file that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Measurement:
    """One measured kernel call: the shape, the tile settings used and the median time (s)."""

    kernel: str
    batch: int
    heads: int
    seq_len: int
    head_dim: int
    causal: bool
    dtype: str
    time_s: float
    tiles: tuple = ()

    @property
    def shape_key(self) -> tuple:
        return (self.dtype, self.head_dim, self.causal, self.seq_len, self.batch, self.heads)


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


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        result[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denominator) if denominator else float("nan")


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
    crossing inside the measured range (`crossover_note` says why).
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
        return f"faster at every measured length (crossover below {min(seq_lens)})"
    if not any(faster):
        return f"slower at every measured length (crossover above {max(seq_lens)})"
    return "no single crossing (alternates)"


# -- measurements ----------------------------------------------------------------------------
_REQUIRED = ("kernel", "batch", "heads", "seq_len", "head_dim", "causal", "dtype", "median_ms")


def _measurement(r: object, where: str) -> Measurement | None:
    """One record checked field by field (errors name `where` and the field); None for unmapped kernels."""
    from mappings.gpu_mapping import DEFAULT_TILES, ELEMENT_BYTES, MAPPED_KERNELS

    if not isinstance(r, dict):
        raise MeasurementError(f"{where} must be an object")
    for field_name in _REQUIRED:
        if field_name not in r:
            raise MeasurementError(f"{where}: missing field {field_name!r}")
    for field_name in ("batch", "heads", "seq_len", "head_dim"):
        value = r[field_name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MeasurementError(f"{where}.{field_name} must be a positive integer, got {value!r}")
    if not isinstance(r["causal"], bool):
        raise MeasurementError(f"{where}.causal must be true or false, got {r['causal']!r}")
    if r["dtype"] not in ELEMENT_BYTES:
        raise MeasurementError(f"{where}.dtype must be one of {', '.join(ELEMENT_BYTES)}, got {r['dtype']!r}")
    median = r["median_ms"]
    if isinstance(median, bool) or not isinstance(median, (int, float)) or not median > 0:
        raise MeasurementError(f"{where}.median_ms must be a positive number")
    if r["kernel"] not in MAPPED_KERNELS:
        return None  # the torch baseline has no cascade mapping
    tiles = r.get("tiles") or {}
    if not isinstance(tiles, dict):
        raise MeasurementError(f"{where}.tiles must be an object of launch settings")
    if tiles:
        for name in DEFAULT_TILES[r["kernel"]][min(DEFAULT_TILES[r["kernel"]])]:
            value = tiles.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MeasurementError(f"{where}.tiles.{name} must be a positive integer, got {value!r}")
    return Measurement(r["kernel"], r["batch"], r["heads"], r["seq_len"], r["head_dim"], r["causal"],
                       r["dtype"], float(median) * 1e-3, tuple(sorted(tiles.items())))


def load_measurements(paths: list[Path]) -> tuple[list[Measurement], dict]:
    """Records of the mapped kernels from benchmark files, and the files' environment (gpu, ...)."""
    records: list[Measurement] = []
    env: dict = {}
    for path in paths:
        try:
            data = json.loads(read_text_file(path, "measurements file"))
        except json.JSONDecodeError as err:
            raise MeasurementError(f"{path}: not valid JSON ({err})") from None
        except RecursionError:
            raise MeasurementError(f"{path}: not valid JSON (nested too deeply)") from None
        if not isinstance(data, dict) or data.get("schema") != BENCH_SCHEMA:
            raise MeasurementError(f"{path}: field 'schema' must be {BENCH_SCHEMA!r}")
        if not isinstance(data.get("records"), list):
            raise MeasurementError(f"{path}: field 'records' must be a list")
        for key in ("gpu", "driver", "torch", "triton", "date"):
            env.setdefault(key, data.get(key))
        for i, r in enumerate(data["records"]):
            record = _measurement(r, f"{path}: records[{i}]")
            if record is not None:
                records.append(record)
    return records, env


def split(records: list[Measurement], calibration_lens: tuple[int, ...] = CALIBRATION_SEQ_LENS
          ) -> tuple[list[Measurement], list[Measurement]]:
    """(calibration, evaluation): by sequence length, so no evaluation shape is fitted.

    If none of `calibration_lens` was measured, every other measured length (from the second)
    calibrates instead.
    """
    lens = sorted({r.seq_len for r in records})
    chosen = set(calibration_lens) & set(lens)
    if not chosen:
        chosen = set(lens[1::2])
    return [r for r in records if r.seq_len in chosen], [r for r in records if r.seq_len not in chosen]


# -- prediction and calibration --------------------------------------------------------------
class Predictor:
    """Predicted seconds of measured records for GPU parameters (launches cached per record)."""

    def __init__(self, arch: "GPUArchitecture"):
        self.arch = arch
        self._launches: dict[Measurement, list] = {}

    def launches(self, r: Measurement) -> list:
        """The kernel launches (archsim.gpu_model.KernelLaunch) of measured record `r`."""
        from mappings.gpu_mapping import ELEMENT_BYTES, AttentionShape, kernel_launches

        if r not in self._launches:
            shape = AttentionShape(r.batch, r.heads, r.seq_len, r.head_dim, r.causal, ELEMENT_BYTES[r.dtype])
            self._launches[r] = kernel_launches(self.arch, r.kernel, shape, dict(r.tiles) or None)
        return self._launches[r]

    def predict(self, records: list[Measurement], arch: "GPUArchitecture | None" = None) -> np.ndarray:
        """Predicted seconds of each record with `arch` (default: the predictor's own)."""
        from archsim.gpu_model import predict_time_s

        arch = arch or self.arch
        return np.array([predict_time_s(arch, self.launches(r)) for r in records])


def calibrate(predictor: Predictor, records: list[Measurement], rounds: int = 6) -> tuple["GPUArchitecture", float]:
    """GPU parameters minimising the mean absolute log error on `records`: a grid search over
    each group of GROUPS in turn, repeated until a round improves nothing."""
    measured = np.array([r.time_s for r in records])
    arch = predictor.arch

    def loss(candidate) -> float:
        return float(np.mean(np.abs(np.log(predictor.predict(records, candidate) / measured))))

    def descend(arch):
        best = loss(arch)
        for _ in range(rounds):
            start = best
            for group in GROUPS:
                for values in itertools.product(*(GRIDS[name] for name in group)):
                    candidate = arch.with_params(**{name: float(v) for name, v in zip(group, values)})
                    value_loss = loss(candidate)
                    if value_loss < best - 1e-12:
                        arch, best = candidate, value_loss
            if best >= start - 1e-12:
                break
        return arch, best

    arch, best = descend(arch)
    return nelder_mead_refine(arch, loss, best)


BOUNDS = {"tensor_efficiency": (0.05, 1.0), "overlap": (0.0, 1.0), "memory_efficiency": (0.05, 1.0),
          "launch_overhead_s": (0.0, 50e-6), "step_latency_s": (0.0, 10e-6)}


def nelder_mead_refine(arch: "GPUArchitecture", loss: Callable[["GPUArchitecture"], float], best: float,
                       evaluations: int = 400) -> tuple["GPUArchitecture", float]:
    """Refine the calibrated parameters with a Nelder-Mead simplex in box-normalised coordinates."""
    names = list(BOUNDS)
    lo = np.array([BOUNDS[n][0] for n in names])
    span = np.array([BOUNDS[n][1] for n in names]) - lo

    def to_arch(u: np.ndarray):
        return arch.with_params(**{n: float(v) for n, v in zip(names, lo + span * np.clip(u, 0.0, 1.0))})

    start = (np.array([getattr(arch, n) for n in names]) - lo) / span
    simplex = [start] + [start + np.eye(len(names))[i] * (0.1 if start[i] < 0.9 else -0.1) for i in range(len(names))]
    values = [best] + [loss(to_arch(u)) for u in simplex[1:]]
    for _ in range(evaluations):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < 1e-12:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        reflected = centroid + (centroid - simplex[-1])
        f_r = loss(to_arch(reflected))
        if f_r < values[0]:
            expanded = centroid + 2.0 * (centroid - simplex[-1])
            f_e = loss(to_arch(expanded))
            simplex[-1], values[-1] = (expanded, f_e) if f_e < f_r else (reflected, f_r)
        elif f_r < values[-2]:
            simplex[-1], values[-1] = reflected, f_r
        else:
            contracted = centroid + 0.5 * (simplex[-1] - centroid)
            f_c = loss(to_arch(contracted))
            if f_c < values[-1]:
                simplex[-1], values[-1] = contracted, f_c
            else:  # shrink towards the best point
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (u - simplex[0]) for u in simplex[1:]]
                values = [values[0]] + [loss(to_arch(u)) for u in simplex[1:]]
    i = int(np.argmin(values))
    if values[i] < best:
        return to_arch(np.clip(simplex[i], 0.0, 1.0)), float(values[i])
    return arch, best


# -- the study ---------------------------------------------------------------------------------
def default_measurement_files() -> list[Path]:
    """Every JSON file in gpu_ref/results/, sorted."""
    return sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir() else []


def _shape_label(key: tuple) -> str:
    dtype, d, causal, n, b, h = key
    return f"{dtype} D={d} {'causal' if causal else 'full'} N={n} (B={b}, H={h})"


def _no_measurements(out: Path, paths: list[Path]) -> dict:
    where = ", ".join(str(p) for p in paths) if paths else str(RESULTS_DIR.relative_to(RESULTS_DIR.parents[1]))
    result = {"status": "no measurements", "gpu": None, "n_shapes": 0, "mape": None, "spearman": None,
              "files": [str(p) for p in paths]}
    (out / "crossval.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(
        "# GPU cross-validation\n\nNo GPU measurements found (looked in " + where + "), so there is nothing "
        "to compare the simulator with and no error is reported.\nRun `gpu_ref/run_device.sh` on a machine "
        "with a CUDA GPU, copy its JSON into `gpu_ref/results/`, then rerun "
        "`cascadesim study gpu-crossval`.\n")
    return result


def run_study(out: Path, paths: list[Path] | None = None, gpu: str = "h200",
              calibration_lens: tuple[int, ...] = CALIBRATION_SEQ_LENS) -> dict:
    """Run the cross-validation; write out/report.md and out/crossval.json; return the JSON dict."""
    from archsim.gpu_model import GPUConfigError, load_gpu

    out.mkdir(parents=True, exist_ok=True)
    paths = default_measurement_files() if paths is None else paths
    records, env = load_measurements(paths) if paths else ([], {})
    if not records:
        return _no_measurements(out, paths)
    try:
        arch = load_gpu(gpu)
    except GPUConfigError as err:
        raise UsageError(f"--gpu: {err}") from None
    predictor = Predictor(arch)
    calibration, evaluation = split(records, calibration_lens)
    if not calibration or not evaluation:
        raise UsageError("the measurements need at least two sequence lengths (one to calibrate, one to evaluate)")
    fitted, fit_loss = calibrate(predictor, calibration)
    rows = []
    for group, recs in (("calibration", calibration), ("evaluation", evaluation)):
        for r, p in zip(recs, predictor.predict(recs, fitted)):
            rows.append({"set": group, "shape": r.shape_key, "kernel": r.kernel, "seq_len": r.seq_len,
                         "head_dim": r.head_dim, "causal": r.causal, "dtype": r.dtype,
                         "measured_s": r.time_s, "predicted_s": float(p)})
    ev = [r for r in rows if r["set"] == "evaluation"]
    pred, meas = np.array([r["predicted_s"] for r in ev]), np.array([r["measured_s"] for r in ev])
    errors = error_summary(pred, meas)
    ratios = speedup_ratio_errors(ev)
    fastest = fastest_agreement(ev)
    crossovers = _crossovers(rows)
    result = {
        "status": "ok", "gpu": env.get("gpu"), "driver": env.get("driver"), "torch": env.get("torch"),
        "triton": env.get("triton"), "measured_on": env.get("date"), "files": [str(p) for p in paths],
        "model": gpu, "n_shapes": len({r["shape"] for r in ev}), "n_evaluation_records": len(ev),
        "n_calibration_records": len(rows) - len(ev),
        "calibration_seq_lens": sorted({r.seq_len for r in calibration}),
        "evaluation_seq_lens": sorted({r.seq_len for r in evaluation}),
        "calibrated": {name: getattr(fitted, name) for name in GRIDS}, "calibration_loss_mean_abs_log": fit_loss,
        **errors, "spearman": spearman(pred, meas),
        "speedup_ratio_mape": float(np.mean([abs(x["error_pct"]) for x in ratios])) if ratios else None,
        "speedup_ratio_max_ape": float(max(abs(x["error_pct"]) for x in ratios)) if ratios else None,
        "fastest_agreement": (sum(f["agree"] for f in fastest) / len(fastest)) if fastest else None,
        "fastest": [{**f, "shape": _shape_label(f["shape"])} for f in fastest],
        "speedup_ratios": [{**x, "shape": _shape_label(x["shape"])} for x in ratios],
        "crossovers": crossovers,
        "records": [{**r, "shape": _shape_label(r["shape"])} for r in rows],
    }
    (out / "crossval.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(render_report(result))
    _figure(out, rows)
    return result


def _crossovers(rows: list[dict]) -> list[dict]:
    """Linear vs 1-pass softmax attention (causal) per dtype and head dim: measured and predicted."""
    out = []
    groups: dict = {}
    for r in rows:
        if r["causal"] and r["kernel"] in (LINEAR, SOFTMAX_REFERENCE):
            groups.setdefault((r["dtype"], r["head_dim"]), {}).setdefault(r["shape"], {})[r["kernel"]] = r
    for (dtype, d), shapes in sorted(groups.items()):
        pairs = sorted((s[3], k[LINEAR], k[SOFTMAX_REFERENCE]) for s, k in shapes.items() if len(k) == 2)
        if len(pairs) < 2:
            continue
        lens = [p[0] for p in pairs]
        entry = {"dtype": dtype, "head_dim": d, "seq_lens": lens}
        for which in ("measured", "predicted"):
            lin = [p[1][f"{which}_s"] for p in pairs]
            soft = [p[2][f"{which}_s"] for p in pairs]
            entry[which] = crossover_length(lens, lin, soft)
            entry[f"{which}_note"] = None if entry[which] else crossover_note(lens, lin, soft)
        out.append(entry)
    return out


def _fmt(x, spec: str = ".1f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render_report(res: dict) -> str:
    lines = [
        "# GPU cross-validation: simulator vs measured kernels", "",
        f"Measured on **{res['gpu']}** (driver {res['driver']}, torch {res['torch']}, triton {res['triton']}, "
        f"{res['measured_on']}); model `archsim/configs/{res['model']}.yaml` through `mappings/gpu_mapping.py`.",
        "", f"Calibration lengths {res['calibration_seq_lens']} ({res['n_calibration_records']} records) fitted "
        f"{', '.join(f'{k} = {v:g}' for k, v in res['calibrated'].items())}; every error below is on the "
        f"evaluation lengths {res['evaluation_seq_lens']} only ({res['n_evaluation_records']} records, "
        f"{res['n_shapes']} shapes).", "",
        "| metric | value |", "|---|---|",
        f"| mean absolute % error (MAPE) | {_fmt(res['mape'])} % |",
        f"| median / p90 / max abs % error | {_fmt(res['median_ape'])} / {_fmt(res['p90_ape'])} / {_fmt(res['max_ape'])} % |",
        f"| bias (mean signed % error) | {_fmt(res['bias_pct'], '+.1f')} % |",
        f"| Spearman rank correlation of times | {_fmt(res['spearman'], '.3f')} |",
        f"| speedup-ratio error between algorithms, mean / max | {_fmt(res['speedup_ratio_mape'])} / "
        f"{_fmt(res['speedup_ratio_max_ape'])} % |",
        f"| predicted fastest kernel = measured fastest | {_fmt(None if res['fastest_agreement'] is None else 100 * res['fastest_agreement'], '.0f')} % of shapes |",
        "", "## Crossover of causal linear attention vs 1-pass softmax attention", "",
        "| dtype | D | measured | predicted |", "|---|---|---|---|"]
    for c in res["crossovers"]:
        m = _fmt(c["measured"], ".0f") if c["measured"] else c["measured_note"]
        p = _fmt(c["predicted"], ".0f") if c["predicted"] else c["predicted_note"]
        lines.append(f"| {c['dtype']} | {c['head_dim']} | {m} | {p} |")
    lines += ["", "## Fastest kernel per evaluation shape", "", "| shape | measured | predicted |", "|---|---|---|"]
    lines += [f"| {f['shape']} | {f['measured']} | {f['predicted']} |" for f in res["fastest"]]
    lines += ["", "## Every record", "", "| set | shape | kernel | measured ms | predicted ms | error % |",
              "|---|---|---|---|---|---|"]
    for r in res["records"]:
        err = 100 * (r["predicted_s"] - r["measured_s"]) / r["measured_s"]
        lines.append(f"| {r['set']} | {r['shape']} | {r['kernel']} | {r['measured_s'] * 1e3:.3f} | "
                     f"{r['predicted_s'] * 1e3:.3f} | {err:+.1f} |")
    lines.append("")
    return "\n".join(lines)


def _figure(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for group, marker in (("calibration", "x"), ("evaluation", "o")):
        sel = [r for r in rows if r["set"] == group]
        ax.scatter([r["measured_s"] * 1e3 for r in sel], [r["predicted_s"] * 1e3 for r in sel],
                   marker=marker, label=group)
    values = [r["measured_s"] * 1e3 for r in rows] + [r["predicted_s"] * 1e3 for r in rows]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)",
           title="GPU kernels: predicted vs measured")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_measured.png", dpi=120)
    plt.close(fig)


def register_args(parser: argparse.ArgumentParser) -> None:
    """Options of `cascadesim study gpu-crossval`."""
    parser.add_argument("--measurements", type=Path, nargs="+", default=None,
                        help="benchmark JSON files (default: every JSON in gpu_ref/results/)")
    parser.add_argument("--gpu", default="h200", help="GPU architecture: a name in archsim/configs or a YAML file")
    parser.add_argument("--out", type=Path, default=Path("reports/gpu-crossval"), help="output folder")


def main(args: argparse.Namespace) -> int:
    """`cascadesim study gpu-crossval`: run the study; 0 also when there are no measurements."""
    for p in args.measurements or []:
        if not p.is_file():
            raise UsageError(f"--measurements: no such file: {p}")
    result = run_study(args.out, args.measurements, args.gpu)
    if result["status"] != "ok":
        print(f"no GPU measurements found; wrote {args.out}/report.md saying so")
        return 0
    print(f"MAPE {result['mape']:.1f} %  Spearman {result['spearman']:.3f}  over {result['n_shapes']} shapes "
          f"on {result['gpu']}; wrote {args.out}/report.md, crossval.json")
    return 0


def write_report(out_root: Path) -> None:
    """`make report` job: the cross-validation (or the note that no measurements exist) under out_root/gpu-crossval/."""
    result = run_study(out_root / "gpu-crossval")
    print("gpu-crossval:", "no measurements" if result["status"] != "ok" else
          f"MAPE {result['mape']:.1f} %, Spearman {result['spearman']:.3f}")
