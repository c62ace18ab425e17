"""Decode attention of the study's models against published decode measurements (issue 25, item 4).

The published rows are archsim/gpu/data/gpu-published-variants.json (a copy of the shared data
set, each row with its source), read through the GPU model's loader
(`mappings.gpu_observations.load_variants`: the row's GPU, kernel profile, element type and shape).
A row is used when it is a one-token decode (one query per sequence) whose attention shape is a
layer kind of a model: query heads, KV heads and key/value head dims equal (GQA; MLA in its
absorbed form: 128 heads over one latent head of 576/512; a Gated DeltaNet layer: value heads,
key heads and head dims). For each row the model's decode attention operation at the row's
context and batch (mappings/llm/phases.py) is simulated on the row's GPU, with the row's kernel
profile and element type, through the same path as the study (`studies.llm_study.simulate_op`).

The GPU model's kernel parameters (archsim/gpu/fitted.yaml) were fitted on every undisputed
published row, these included: that error is in-sample. The held-out error refits the row's kernel
without the row's source (leave-one-source-out, `mappings.gpu_calibration.calibrate` as the GPU
cross-validation does) and predicts the row with it (`Predictor.predict`, the GPU model at the
row's shape).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from mappings.llm.model import DenseAttention, GatedDeltaRule, LatentAttention, load_model
from mappings.llm.phases import phase_ops

COLUMNS = ["model", "layer", "row", "source", "gpu", "kernel", "dtype", "batch", "heads", "kv_heads", "context",
           "head_dim", "head_dim_v", "published_s", "predicted_s", "error_pct", "held_out_s", "held_out_error_pct",
           "status", "reason"]


def attention_shape(a) -> tuple[int, int, int, int]:
    """(query heads, KV heads, key head dim, value head dim) of a decode attention layer kind, as the
    published rows state them (MLA absorbed: one latent head; Gated DeltaNet: value heads, key heads)."""
    if isinstance(a, DenseAttention):
        return a.heads, a.kv_heads, a.head_dim, a.v_dim
    if isinstance(a, LatentAttention):
        return a.heads, 1, a.kv_lora_rank + a.qk_rope_head_dim, a.kv_lora_rank
    if isinstance(a, GatedDeltaRule):
        return a.value_heads, a.key_heads, a.key_head_dim, a.value_head_dim
    raise TypeError(f"unknown attention {a!r}")


def matching_rows(models: list[str], observations=None) -> list[tuple[str, str, object]]:
    """(model file, attention name, Observation) of every published decode row (one or several
    query tokens per sequence) whose shape is one of the models' attention layer kinds."""
    from mappings.gpu_observations import load_variants
    obs = observations if observations is not None else load_variants()[0]
    out = []
    for name in models:
        m = load_model(name)
        for att_name, a in m.attentions.items():
            want = attention_shape(a)
            linear = isinstance(a, GatedDeltaRule)
            for o in obs:
                s = o.shape
                if (s.heads, s.hkv, s.head_dim, s.dv) != want:
                    continue
                if linear != (o.group == "linear") or (not linear and o.group != "decode"):
                    continue
                out.append((name, att_name, o))
    return out


def _held_out(rows: list[tuple[str, str, object]]) -> dict[str, float]:
    """Row -> seconds predicted with its kernel refitted without its source."""
    from mappings.gpu_calibration import Predictor, calibrate
    from mappings.gpu_observations import load_all
    if not rows:
        return {}
    everything = [r for r in load_all()[0] if not r.disputed]
    predictor = Predictor()
    full = calibrate(predictor, everything)
    out: dict[str, float] = {}
    for source in sorted({o.source for _, _, o in rows}):
        held = [o for _, _, o in rows if o.source == source]
        cal = calibrate(predictor, [r for r in everything if r.source != source], reuse=full,
                        refit={o.kernel for o in held})
        for o in held:
            out[o.row] = predictor.predict(o, cal.profile(predictor, o.kernel))[0]
    return out


def decode_check(models: list[str], observations=None, held_out: bool = True) -> list[dict]:
    """One row per matching published decode row (module docstring); units: seconds, percent.
    `observations`: the rows to match (default: the whole variants data set); `held_out`: also
    the leave-one-source-out prediction."""
    from studies.llm_study import simulate_op
    found = matching_rows(models, observations)
    rows = [(n, a, o) for n, a, o in found if o.shape.q_len == 1]
    held = _held_out(rows) if held_out else {}
    out = [{"model": load_model(n).name, "layer": a, "row": o.row, "source": o.source, "gpu": o.gpu, "kernel": o.kernel,
            "dtype": o.dtype, "batch": o.shape.batch, "heads": o.shape.heads, "kv_heads": o.shape.hkv,
            "context": o.shape.kv_len, "head_dim": o.shape.head_dim, "head_dim_v": o.shape.dv, "published_s": o.time_s,
            "status": "multi-token", "reason": f"{o.shape.q_len} query tokens per sequence (multi-token "
            "prediction); the study's decode step is one token"} for n, a, o in found if o.shape.q_len != 1]
    for name, att_name, o in rows:
        m = load_model(name)
        s = o.shape
        context = s.kv_len if s.kv_len else 1
        op = next(op for op in phase_ops(m, "decode", context, s.batch)
                  if op.role == "attention" and op.layer.startswith(f"{att_name}+"))
        res = simulate_op(dataclasses.replace(op, dtype=o.dtype), o.gpu, kernel=o.kernel)
        row = {"model": m.name, "layer": att_name, "row": o.row, "source": o.source, "gpu": o.gpu,
               "kernel": o.kernel, "dtype": o.dtype, "batch": s.batch, "heads": s.heads, "kv_heads": s.hkv,
               "context": context, "head_dim": s.head_dim, "head_dim_v": s.dv, "published_s": o.time_s,
               "status": res["status"], "reason": res.get("reason", "")}
        if res["status"] == "ok":
            row["predicted_s"] = res["latency_s"]
            row["error_pct"] = 100.0 * (res["latency_s"] - o.time_s) / o.time_s
        if o.row in held:
            row["held_out_s"] = held[o.row]
            row["held_out_error_pct"] = 100.0 * (held[o.row] - o.time_s) / o.time_s
        out.append(row)
    return out


def compared(rows: list[dict]) -> list[dict]:
    """The rows with a prediction (one-token decode, simulated)."""
    return [r for r in rows if r["status"] == "ok"]


def mape(rows: list[dict], field: str = "error_pct") -> float | None:
    """Mean absolute percentage error of `field` over the rows that have it (None if none)."""
    errs = [abs(r[field]) for r in rows if r.get(field) is not None]
    return float(np.mean(errs)) if errs else None


def write_csv(path: Path, rows: list[dict]) -> None:
    """decode_check.csv: one line per checked published row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def report_lines(rows: list[dict], models: list[str] | None = None) -> list[str]:
    """The report's section: per model MAPE, then every row (numbers computed from `rows`);
    `models`: the models' names, to say which had no row."""
    lines = ["", "## Decode attention against published measurements (GPU model)", "",
             "Published one-token decode rows (archsim/gpu/data/gpu-published-variants.json) whose attention "
             "shape (query heads, KV heads, head dims) is a layer kind of a model, simulated as the study's "
             "decode attention operation at the row's context and batch on the row's GPU, kernel profile and "
             "element type (studies/llm_decode_check.py). In-sample: the GPU model's shipped fit, which "
             "used these rows; held out: the row's kernel refitted without the row's source.", ""]
    multi = [r for r in rows if r["status"] == "multi-token"]
    failed = [r for r in rows if r["status"] not in ("ok", "multi-token")]
    rows = compared(rows)
    if multi:
        per_model = ", ".join(f"{m}: {sum(r['model'] == m for r in multi)}" for m in sorted({r["model"] for r in multi}))
        lines += [f"Not compared: {len(multi)} published rows of a model's shape run several query tokens per "
                  f"sequence (multi-token prediction), the study's decode step one ({per_model}).", ""]
    if failed:
        lines += [f"Not simulated: {len(failed)} rows; the first, {failed[0]['row']}: {failed[0]['reason']}", ""]
    if not rows:
        return lines + ["No published one-token decode row has the attention shape of a model of this study.", ""]
    lines += ["| model | rows | MAPE in-sample | MAPE held out (source) |", "|---|---:|---:|---:|"]
    for model in sorted({r["model"] for r in rows}):
        sel = [r for r in rows if r["model"] == model]
        lines.append(f"| {model} | {len(sel)} | {pct(mape(sel))} | {pct(mape(sel, 'held_out_error_pct'))} |")
    lines.append(f"| all | {len(rows)} | {pct(mape(rows))} | {pct(mape(rows, 'held_out_error_pct'))} |")
    if models:
        shown = {r["model"] for r in rows}
        missing = [n for n in models if n not in shown]
        if missing:
            lines += ["", f"No published one-token decode row has the attention shape of: {', '.join(missing)}."]
    lines += ["", "| model | row | GPU | kernel | dtype | batch | heads/KV | context | published | predicted | error "
              "| held out | error |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        pred = f"{r['predicted_s'] * 1e6:.1f} us" if r.get("predicted_s") else r["reason"]
        held = f"{r['held_out_s'] * 1e6:.1f} us" if r.get("held_out_s") else "-"
        lines.append(f"| {r['model']} | {r['row']} | {r['gpu']} | {r['kernel']} | {r['dtype']} | {r['batch']} | "
                     f"{r['heads']}/{r['kv_heads']} | {r['context']} | {r['published_s'] * 1e6:.1f} us | {pred} | "
                     f"{pct(r.get('error_pct'))} | {held} | {pct(r.get('held_out_error_pct'))} |")
    return lines + [""]
