"""Study: prefill and decode of current LLMs on the spatial accelerators, the GPU model and under
private inference (`cascadesim study llm`).

For each model (mappings/llm/models/), target, context and batch, the phase's operations
(mappings/llm/phases.py) are simulated one by one through `mappings.simulate` (the accelerators with
the auto mapper, the GPU model, the private-inference profile) and summed, count x latency: the
prefill time of `batch` sequences of `context` tokens, and the time of one decode step (one token
per sequence; time per output token). Each operation's result is journalled (points.jsonl, keyed by
the operation and the model fingerprint), so an interrupted run resumes. Outputs under --out:
results.csv (one row per model x target x phase x context x batch), ops.csv (per operation),
results.json, report.md and figures. Every sentence of the report that states a number is computed
from the results.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path

from mappings.llm.model import load_model, model_names, parameter_count
from mappings.llm.phases import PHASES, Op, cascade_source, kv_cache_bytes, phase_ops
from mappings.targets.private_inference import KEY_TILE

ACCELERATORS = ["fusemax-cloud", "flat-cloud"]
GPUS = ["h100-sxm", "h200"]
PI_PROFILE = "spu-cheetah"
CONTEXTS = [4096, 32768, 131072]
BATCHES = [1, 16, 64]
# private inference prices the dense models at the shortest context and batch 1 only: 2PC of a
# 7-8B model is already days per token beyond that, and MoE routing is data-dependent.
PI_MODELS = ("llama-3-8b", "mistral-7b")
COLUMNS = ["model", "target", "phase", "context", "batch", "latency_s", "per_token_s", "energy_j", "dram_bytes",
           "attention_share", "bound", "kv_cache_bytes", "weight_bytes", "weights_dtype", "kv_dtype", "status", "reason"]


def op_key(op: Op, target: str, mapping: str = "auto") -> str:
    """Identity of one simulated operation (cascade, sizes, pairs, KV heads, element type, GPU form,
    target, mapping), 24 hex digits."""
    ident = json.dumps([op.cascade, sorted(op.sizes.items()), op.batch, op.heads, op.kv_heads, op.dtype,
                        op.gpu_form if is_gpu(target) else None, target, mapping])
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def is_gpu(target: str) -> bool:
    """Whether `target` names a shipped GPU description."""
    from archsim.gpu.specs import known_gpus
    return target in GPUS or target in known_gpus()


def accelerator_at(name: str, dtype: str):
    """The accelerator `name` with its element (word) width set to `dtype`'s bytes: the same PEs,
    buffer bytes and DRAM bandwidth, each word of the schedule `dtype`-wide (an override of the
    architecture data, named `name-dtype`)."""
    from archsim.config import load_architecture
    from mappings.llm.model import ELEMENT_BYTES
    arch = load_architecture(name)
    width = ELEMENT_BYTES[dtype]
    return arch if arch.word_bytes == width else dataclasses.replace(arch, word_bytes=width, name=f"{arch.name}-{dtype}")


def simulate_op(op: Op, target: str, mapping: str = "auto", kernel: str | None = None) -> dict:
    """One operation on `target` at the operation's element type (units: seconds, joules, bytes),
    or its reason for failing. Accelerators: `accelerator_at`; GPUs: `dtype` and the op's GPU form;
    private inference prices ring elements, which the element type does not change. `kernel`: a
    GPU kernel profile in place of the GPU target's default."""
    from mappings.simulation import simulate
    from studies.outcome import attempt
    kwargs = dict(batch=op.batch, heads=op.heads, kv_heads=op.kv_heads)
    sizes = dict(op.sizes)
    cascade, arch = cascade_source(op.cascade), target
    if is_gpu(target):
        kwargs["dtype"] = op.dtype
        if op.gpu_form is not None:
            gpu_cascade, gpu_sizes, kwargs["kv_heads"], kwargs["kernel"] = op.gpu_form
            cascade, sizes = cascade_source(gpu_cascade), dict(gpu_sizes)
        kwargs["kernel"] = kernel or kwargs.get("kernel")
    elif target in ACCELERATORS:
        arch = accelerator_at(target, op.dtype)
    if target == PI_PROFILE:
        # two-party computation prices every query head's scores and softmax whether or not heads
        # share K and V (sharing saves only storage), so K/V sharing does not change its cost
        kwargs["kv_heads"] = None
        if op.cascade == "blocks/matmul":
            kwargs["plaintext"] = frozenset({"W"})  # the server's weights
        if op.cascade in UNFUSED:  # a split key rank: keys per tile as mappings/secure_transformer.py
            sizes["M0"] = min(KEY_TILE, sizes["M"])
            sizes["M1"] = -(-sizes["M"] // sizes["M0"])
            sizes["M"] = sizes["M0"] * sizes["M1"]
    r, reason = attempt(simulate, cascade, arch, sizes, mapping=mapping, **kwargs)
    if reason is not None:  # no mapping, or a simulator defect the certificate caught: never a number
        return {"status": "failed", "reason": reason}
    return {"status": "ok", "latency_s": r.latency_s, "energy_j": r.energy_j, "dram_bytes": r.dram_bytes,
            "bound": r.bounding_unit}


def check_op_row(row: dict) -> str | None:
    """The problem of a journalled operation result (None if sound)."""
    if row.get("status") == "failed":
        return None if isinstance(row.get("reason"), str) else "reason: expected the reason"
    if row.get("status") != "ok":
        return f"status: expected ok or failed, got {row.get('status')!r}"
    v = row.get("latency_s")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        return f"latency_s: expected a positive number, got {v!r}"
    for f in ("energy_j", "dram_bytes"):
        v = row.get(f)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            return f"{f}: expected a non-negative number or null, got {v!r}"
    return None


def phase_row(model: str, target: str, phase: str, context: int, batch: int, results: dict[str, dict]) -> dict:
    """The phase's totals from its operations' results (`results`: op_key -> simulate_op row)."""
    m = load_model(model)
    ops = phase_ops(m, phase, context, batch)
    row = {"model": m.name, "target": target, "phase": phase, "context": context, "batch": batch,
           "kv_cache_bytes": kv_cache_bytes(m, context, batch) if phase == "decode" else 0.0,
           "weight_bytes": parameter_count(m) * m.weight_bytes, "weights_dtype": m.dtypes.weights,
           "kv_dtype": m.dtypes.kv_cache}
    failed = [(op, results[op_key(op, target)]) for op in ops if results[op_key(op, target)]["status"] != "ok"]
    if failed:
        op, res = failed[0]
        return {**row, "status": "failed", "reason": f"{op.layer} {op.name} ({op.cascade}): {res['reason']}"}
    latency = energy = dram = attention = 0.0
    by_bound: dict[str, float] = defaultdict(float)
    for op in ops:
        res = results[op_key(op, target)]
        t = op.count * res["latency_s"]
        latency += t
        attention += t if op.role == "attention" else 0.0
        energy = None if res["energy_j"] is None or energy is None else energy + op.count * res["energy_j"]
        dram = None if res["dram_bytes"] is None or dram is None else dram + op.count * res["dram_bytes"]
        by_bound[res["bound"] or "-"] += t
    return {**row, "status": "ok", "latency_s": latency,
            "per_token_s": latency if phase == "decode" else latency / (batch * context),
            "energy_j": energy, "dram_bytes": dram, "attention_share": attention / latency,
            "bound": max(by_bound, key=by_bound.get)}

# the as-written (3-pass) counterparts of the fused attention cascades the phases use, mapped as the
# FuseMax paper's unfused baseline (mappings/specs/unfused.yaml: each Einsum on its own, tensors
# between them through DRAM)
UNFUSED = {"attention_1pass_causal": "attention_3pass_causal", "attention_1pass": "attention_3pass"}
UNFUSED_MAPPING = "unfused"
FUSION_BATCH = 16


def cells(models: list[str], contexts: list[int], batches: list[int],
          targets: list[str] | None = None) -> list[tuple]:
    """(model, target, phase, context, batch) of the study, private inference on its subset only."""
    targets = targets or ACCELERATORS + GPUS + [PI_PROFILE]
    out = []
    for model in models:
        for phase in PHASES:
            for context in contexts:
                for batch in batches:
                    out += [(model, t, phase, context, batch) for t in targets if t != PI_PROFILE]
                    if PI_PROFILE in targets and model in PI_MODELS and context == min(contexts) and batch == 1:
                        out.append((model, PI_PROFILE, phase, context, batch))
    return out


def fusion_ops(models: list[str], contexts: list[int]) -> list[tuple[Op, Op, tuple]]:
    """(fused op, unfused op, (model, phase, context)) for the attention of every dense layer kind."""
    out = []
    for model in models:
        m = load_model(model)
        for phase in PHASES:
            for context in contexts:
                for op in phase_ops(m, phase, context, FUSION_BATCH):
                    if op.role == "attention" and op.cascade in UNFUSED:
                        unfused = dataclasses.replace(op, cascade=UNFUSED[op.cascade], sizes=dict(op.sizes))
                        out.append((op, unfused, (m.name, phase, context)))
    return out


def run_study(out: Path, models: list[str] | None = None, contexts: list[int] | None = None,
              batches: list[int] | None = None, targets: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """Simulate every operation the study needs (journalled), then the phase rows and the fusion rows."""
    from studies.progress import progress
    from studies.sweep.journal import Journal, code_fingerprint, exclusive, journal_key
    models = models or model_names()
    contexts = contexts or CONTEXTS
    batches = batches or BATCHES
    grid = cells(models, contexts, batches, targets)
    todo: dict[str, tuple[Op, str, str]] = {}
    for model, target, phase, context, batch in grid:
        for op in phase_ops(load_model(model), phase, context, batch):
            todo.setdefault(op_key(op, target), (op, target, "auto"))
    fusion = fusion_ops(models, contexts) if targets is None or ACCELERATORS[0] in targets else []
    for fused, unfused, _ in fusion:
        todo.setdefault(op_key(fused, ACCELERATORS[0]), (fused, ACCELERATORS[0], "auto"))
        todo.setdefault(op_key(unfused, ACCELERATORS[0], UNFUSED_MAPPING), (unfused, ACCELERATORS[0], UNFUSED_MAPPING))
    fp = code_fingerprint(Path(__file__))
    with exclusive(out, "llm study"):
        journal = Journal(out / "points.jsonl", check_op_row)
        done = journal.load()
        results: dict[str, dict] = {}
        pending = []
        for key, item in sorted(todo.items()):
            jkey = journal_key(fp, key)
            if jkey in done:
                results[key] = done[jkey]
            else:
                pending.append((key, jkey, item))
        try:
            for key, jkey, (op, target, mapping) in progress(pending, desc="llm study operations"):
                results[key] = simulate_op(op, target, mapping)
                journal.append(jkey, results[key])
        finally:
            journal.close()
    rows = [phase_row(*cell, results) for cell in grid]
    fusion_rows = []
    for fused, unfused, (model, phase, context) in fusion:
        a, b = results[op_key(fused, ACCELERATORS[0])], results[op_key(unfused, ACCELERATORS[0], UNFUSED_MAPPING)]
        if a["status"] == "ok" and b["status"] == "ok":
            fusion_rows.append({"model": model, "phase": phase, "context": context, "layer": fused.layer,
                                "fused_s": fused.count * a["latency_s"], "unfused_s": unfused.count * b["latency_s"],
                                "speedup": b["latency_s"] / a["latency_s"], "fused_bound": a["bound"],
                                "unfused_bound": b["bound"]})
    return rows, fusion_rows


def _fmt_s(x: float) -> str:
    """Seconds with a unit a reader can compare (us, ms, s)."""
    return f"{x * 1e6:.1f} us" if x < 1e-3 else f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"


def findings(rows: list[dict], fusion_rows: list[dict], check_rows: list[dict] | None = None) -> list[str]:
    """Sentences stating numbers computed from the rows (`check_rows`: studies/llm_decode_check.py)."""
    from studies.llm_decode_check import compared, mape, pct
    ok = [r for r in rows if r["status"] == "ok"]
    lines = []
    dec = [r for r in ok if r["phase"] == "decode" and r["target"] in ACCELERATORS + GPUS]
    if dec:
        dram_bound = sum(r["bound"] in ("dram", "memory", "hbm", "bandwidth") for r in dec)
        lines.append(f"- Decode steps: {dram_bound} of {len(dec)} (model, target, context, batch) points are "
                     f"bound by memory bandwidth.")
    for target in ACCELERATORS + GPUS:
        pts = [r for r in ok if r["target"] == target and r["phase"] == "decode" and r["batch"] == 16
               and r["context"] == 32768]
        if pts:
            best = min(pts, key=lambda r: r["per_token_s"])
            lines.append(f"- {target}, decode at 32K context, batch 16: fastest per token is {best['model']} "
                         f"({_fmt_s(best['per_token_s'])} per step); attention is "
                         f"{100 * best['attention_share']:.0f}% of its step.")
    if fusion_rows:
        pre = [f for f in fusion_rows if f["phase"] == "prefill"]
        dec_f = [f for f in fusion_rows if f["phase"] == "decode"]
        if pre:
            top = max(pre, key=lambda f: f["speedup"])
            lines.append(f"- FuseMax-style fusion (the 1-pass cascade auto-mapped vs the 3-pass cascade unfused on {ACCELERATORS[0]}): prefill "
                         f"speed-ups {min(f['speedup'] for f in pre):.2f}x to {top['speedup']:.2f}x "
                         f"(largest: {top['model']} at {top['context']} tokens).")
        if dec_f:
            lines.append(f"- In decode the same fusion gives {min(f['speedup'] for f in dec_f):.2f}x to "
                         f"{max(f['speedup'] for f in dec_f):.2f}x, both forms bound by "
                         f"{', '.join(sorted({f['fused_bound'] for f in dec_f} | {f['unfused_bound'] for f in dec_f}))}: "
                         "the unfused mapping also moves its score tensors through DRAM.")
    for model in sorted({r["model"] for r in ok if r["weights_dtype"] != "bf16" or r["kv_dtype"] != "bf16"}):
        r = next(r for r in ok if r["model"] == model)
        lines.append(f"- {model} is priced at its element types on the accelerators and GPUs: weights "
                     f"{r['weights_dtype']} ({r['weight_bytes'] / 1e9:.0f} GB in all), KV cache {r['kv_dtype']}.")
    for r in ok:  # the hybrid model's decode: its linear-recurrent layers simulated on every target
        if (r["phase"], r["context"], r["batch"]) == ("decode", 32768, 16) and r["model"].startswith("Qwen3-Next"):
            lines.append(f"- {r['model']} decode at 32K context, batch 16, on {r['target']}: "
                         f"{_fmt_s(r['latency_s'])} per step, attention and state updates "
                         f"{100 * r['attention_share']:.0f}% of it, bound by {r['bound']}.")
    used = compared(check_rows or [])
    if used:
        models = sorted({r["model"] for r in used})
        lines.append(f"- Decode attention against {len(used)} published one-token decode measurements "
                     f"({', '.join(models)}) through the GPU model: MAPE {pct(mape(used))} with the shipped "
                     f"fit (in-sample), {pct(mape(used, 'held_out_error_pct'))} with each row's kernel refitted "
                     "without its source.")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines.append(f"- {len(failed)} of {len(rows)} points could not be simulated; the first reason: "
                     f"{failed[0]['model']} on {failed[0]['target']}: {failed[0]['reason']}")
    return lines


def write_outputs(out: Path, rows: list[dict], fusion_rows: list[dict], check_rows: list[dict] | None = None) -> None:
    """results.csv, fusion.csv, results.json, report.md and the figures under `out`; `check_rows`:
    the decode attention checked against published measurements (studies/llm_decode_check.py),
    also decode_check.csv."""
    from studies.llm_decode_check import report_lines, write_csv
    check_rows = check_rows or []
    write_csv(out / "decode_check.csv", check_rows)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    with (out / "fusion.csv").open("w", newline="") as f:
        fields = ["model", "phase", "context", "layer", "fused_s", "unfused_s", "speedup", "fused_bound",
                  "unfused_bound"]
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in fusion_rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    (out / "results.json").write_text(json.dumps({"rows": rows, "fusion": fusion_rows, "decode_check": check_rows},
                                                 indent=1, sort_keys=True) + "\n")
    _figures(out, rows)
    lines = ["# LLM inference: prefill and decode on the spatial accelerators, GPUs and private inference", "",
             "Generated by `cascadesim study llm` (studies/llm_study.py). Models: mappings/llm/models/ (each "
             "figure from the model's published configuration); operations per phase: mappings/llm/phases.py; "
             "every operation simulated through `mappings.simulate`. Prefill: `batch` sequences of `context` "
             "tokens; decode: one step (one new token per sequence) at `context` tokens of KV cache.", "",
             "## Findings", "", *findings(rows, fusion_rows, check_rows), "",
             "## Decode: time per step (batch x one token)", "",
             "![decode](decode_per_token.png)", "", "![prefill](prefill_time.png)", "",
             "| model | target | context | batch | step | attention share | bound | KV bytes |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if r["phase"] == "decode" and r["status"] == "ok":
            lines.append(f"| {r['model']} | {r['target']} | {r['context']} | {r['batch']} | {_fmt_s(r['latency_s'])} "
                         f"| {100 * r['attention_share']:.0f}% | {r['bound']} | {r['kv_cache_bytes']:.3g} |")
    lines += ["", "## Prefill", "", "| model | target | context | batch | time | energy (J) | attention share | bound |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["phase"] == "prefill" and r["status"] == "ok":
            energy = "-" if r["energy_j"] is None else f"{r['energy_j']:.3g}"
            lines.append(f"| {r['model']} | {r['target']} | {r['context']} | {r['batch']} | {_fmt_s(r['latency_s'])} "
                         f"| {energy} | {100 * r['attention_share']:.0f}% | {r['bound']} |")
    lines += ["", f"## Where fusion matters ({ACCELERATORS[0]}, batch {FUSION_BATCH})", "",
              "| model | phase | context | layers | 1-pass | 3-pass | speed-up | bound (1-pass / 3-pass) |",
              "|---|---|---:|---|---:|---:|---:|---|"]
    for f in fusion_rows:
        lines.append(f"| {f['model']} | {f['phase']} | {f['context']} | {f['layer']} | {_fmt_s(f['fused_s'])} | "
                     f"{_fmt_s(f['unfused_s'])} | {f['speedup']:.2f}x | {f['fused_bound']} / {f['unfused_bound']} |")
    lines += report_lines(check_rows, sorted({r["model"] for r in rows}))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Not simulated", "", "| model | target | phase | context | batch | reason |",
                  "|---|---|---|---:|---:|---|"]
        lines += [f"| {r['model']} | {r['target']} | {r['phase']} | {r['context']} | {r['batch']} | {r['reason']} |"
                  for r in failed]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _figures(out: Path, rows: list[dict]) -> None:
    """decode_per_token.png and prefill_time.png: latency against context per model, one panel per target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    targets = [t for t in ACCELERATORS + GPUS if any(r["target"] == t for r in rows)]
    if not targets:
        return
    batches = sorted({r["batch"] for r in rows})
    for phase, name, batch in (("decode", "decode_per_token.png", 16 if 16 in batches else batches[-1]),
                               ("prefill", "prefill_time.png", batches[0])):
        ylabel = f"{'decode step' if phase == 'decode' else 'prefill time'} (s), batch {batch}"
        fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.6), sharey=True, squeeze=False)
        axes = axes[0]
        for ax, target in zip(axes, targets):
            for model in sorted({r["model"] for r in rows}):
                pts = sorted((r["context"], r["latency_s"]) for r in rows if r["status"] == "ok"
                             and r["model"] == model and r["target"] == target and r["phase"] == phase
                             and r["batch"] == batch)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=model)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(target)
            ax.set_xlabel("context (tokens)")
        axes[0].set_ylabel(ylabel)
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)


def write_report(out_root: Path) -> None:
    """The study's default grid into `out_root`/llm (the job of `make report`)."""
    from studies.llm_decode_check import decode_check
    rows, fusion_rows = run_study(out_root / "llm")
    write_outputs(out_root / "llm", rows, fusion_rows, decode_check(model_names()))


def register_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports/llm"), help="output folder (default reports/llm)")
    parser.add_argument("--models", nargs="+", choices=model_names(), help="models (default: all)")
    parser.add_argument("--contexts", nargs="+", type=int, help=f"contexts in tokens (default {CONTEXTS})")
    parser.add_argument("--batches", nargs="+", type=int, help=f"batch sizes (default {BATCHES})")


def main(args: argparse.Namespace) -> int:
    from studies.llm_decode_check import decode_check
    rows, fusion_rows = run_study(args.out, args.models, args.contexts, args.batches)
    write_outputs(args.out, rows, fusion_rows, decode_check(args.models or model_names()))
    print(f"wrote {args.out}/results.csv, fusion.csv, decode_check.csv, results.json, report.md")
    return 0
