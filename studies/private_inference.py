"""The private-inference study: the Entropy-Guided paper's tables against the cost model, and the
library's attention cascades under two-party computation next to their accelerator cost.

`cascadesim study private-inference` and `make report` (job in studies/cli/report.py) write
`<out>/private-inference/` : report.md, results.json and comm_by_class.png.
The study only reads the `paper-fit` profile; `make calibrate-pi`
(mappings/targets/private_inference/calibration.py) refits and rewrites it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import einsum_cascade as ec
from mappings.targets.private_inference.calibration import PAPER, PAPER_T128, PAPER_T512, paper_config, paper_network
from mappings.targets.private_inference.profiles import BackendProfile, Network, load_network, load_profile
from mappings.targets.private_inference.protocol import map_cascade
from mappings.targets.private_inference.decoder import ModelCost, attention_sizes, model_cost
from mappings.workload import make_workload
from studies.fusemax_vs_flat import attention_point
from studies.outcome import attempt

BASELINE = "SM+LN+G"
HEADLINE = "SM+ScFuFFN"

ATTENTION_CASCADES = ["attention_3pass", "attention_2pass", "attention_1pass", "sigmoid_attention",
                      "softplus_attention", "linear_attention", "relu_attention"]
CONTEXTS = [128, 256, 512, 1024, 2048, 4096]
HEAD_DIM = 64
TILE = 64


def paper_comparison(profile: BackendProfile, network: Network) -> list[dict]:
    """Rows of the paper's two tables next to the model: comm, latency and the savings over the baseline."""
    rows = []
    for context, table in ((128, PAPER_T128), (512, PAPER_T512)):
        costs: dict[str, ModelCost] = {v: model_cost(paper_config(v, context), profile) for v in table}
        base = costs[BASELINE]
        for variant, (paper_gb, paper_min) in table.items():
            cost = costs[variant]
            rows.append({
                "context": context, "variant": variant,
                "paper_comm_gb": paper_gb, "model_comm_gb": cost.comm_bytes / 1e9,
                "comm_error": cost.comm_bytes / 1e9 / paper_gb - 1.0,
                "paper_latency_min": paper_min, "model_latency_min": cost.latency_s(network) / 60.0,
                "paper_comm_saving": table[BASELINE][0] / paper_gb,
                "model_comm_saving": base.comm_bytes / cost.comm_bytes,
                "paper_latency_saving": table[BASELINE][1] / paper_min,
                "model_latency_saving": base.latency_s(network) / cost.latency_s(network),
                "by_class": cost.by_class,
            })
    return rows


def attention_head_sizes(c: ec.Cascade, context: int) -> dict[str, float]:
    """One head: E = F = 64, M = P = context, tile M0 = 64 (or the context if shorter)."""
    return attention_sizes(c, HEAD_DIM, context, TILE)


ACCELERATOR_CONFIGS = {"attention_3pass": "unfused", "attention_1pass": "fusemax"}
ACCELERATOR_MODEL = "BERT"  # d = 768, H = 12, E = F = 64: the GPT-2 attention shape


def accelerator_seconds_per_query(name: str, context: int) -> float | None:
    """Seconds per query token of the simulated accelerator (archsim, FuseMax's configurations) for
    the cascades it has a mapping of: attention_3pass (unfused), attention_1pass (FuseMax).
    None where no mapping exists or the mapping does not support the length."""
    config = ACCELERATOR_CONFIGS.get(name)
    if config is None:
        return None
    point, _ = attempt(attention_point, ACCELERATOR_MODEL, str(context), config)
    if point is None:  # the mapping does not support this length (not a tile multiple, or a tile
        return None    # larger than the buffer)
    batch = make_workload(ACCELERATOR_MODEL, context).B
    return point["latency_s"] / (batch * context)


def accelerator_proxy(c: ec.Cascade, sizes: dict[str, float]) -> dict:
    """Symbolic accelerator-side cost: passes over M and operation counts (ec.cost), per query, one head."""
    counts = ec.cost(c).at({k: v for k, v in sizes.items() if k in c.size_names or k in c.params}).total
    passes = ec.passes(c, rank="M").passes
    return {"passes_over_M": passes, "ops_per_query": float(sum(counts.values())) / sizes["P"],
            "ops": {k: float(v) for k, v in counts.items()}}


def attention_comparison(profile: BackendProfile, networks: list[Network],
                         contexts: list[int] = CONTEXTS) -> list[dict]:
    """Per query (per token of a T-token prompt), one head: bytes, rounds and latency on each network."""
    from studies.progress import progress

    rows = []
    for name in progress(ATTENTION_CASCADES, desc="attention cascades"):
        c = ec.load_library(name)
        for context in contexts:
            sizes = attention_head_sizes(c, context)
            cost = map_cascade(c, sizes, profile)
            rows.append({
                "cascade": name, "context": context,
                "comm_bytes_per_query": cost.comm_bytes / context, "rounds": cost.rounds,
                "latency_s_per_query": {n.name: cost.latency_s(n) / context for n in networks},
                "accelerator": accelerator_proxy(c, sizes)
                | {"simulated_s_per_query": accelerator_seconds_per_query(name, context)},
            })
    return rows


def _stacked_bars(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({k for r in rows for k in r["by_class"]})
    labels = [f"{r['variant']}\nT={r['context']}" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    bottom = np.zeros(len(rows))
    for cls in classes:
        values = np.array([r["by_class"].get(cls, 0.0) / 1e9 for r in rows])
        ax.bar(labels, values, bottom=bottom, label=cls)
        bottom += values
    ax.scatter(labels, [r["paper_comm_gb"] for r in rows], color="black", marker="_", s=400, zorder=3,
               label="paper (total)")
    ax.set_ylabel("communication (GB)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _paper_table(rows: list[dict]) -> list[str]:
    lines = ["| T | variant | paper GB | model GB | error | paper comm saving | model comm saving "
             "| paper latency saving | model latency saving |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['context']} | {r['variant']} | {r['paper_comm_gb']:.2f} | {r['model_comm_gb']:.2f} "
                     f"| {r['comm_error']:+.1%} | {r['paper_comm_saving']:.2f}x | {r['model_comm_saving']:.2f}x "
                     f"| {r['paper_latency_saving']:.2f}x | {r['model_latency_saving']:.2f}x |")
    return lines


def _attention_table(rows: list[dict], networks: list[Network]) -> list[str]:
    head = "| cascade | T | KB / query | rounds (whole head) | " + " | ".join(f"{n.name} ms / query" for n in networks) + \
        " | passes over M | accel. ops / query | simulated accel. ns / query |"
    lines = [head, "|" + "---|" * (7 + len(networks))]
    for r in rows:
        lat = " | ".join(f"{r['latency_s_per_query'][n.name] * 1e3:.2f}" for n in networks)
        acc = r["accelerator"]
        sim = acc.get("simulated_s_per_query")
        sim_text = f"{sim * 1e9:.3g}" if sim is not None else "-"
        lines.append(f"| {r['cascade']} | {r['context']} | {r['comm_bytes_per_query'] / 1e3:.1f} | {r['rounds']} "
                     f"| {lat} | {acc['passes_over_M']} | {acc['ops_per_query']:.3g} | {sim_text} |")
    return lines


def _best(rows: list[dict], context: int, key) -> str:
    candidates = [r for r in rows if r["context"] == context]
    return min(candidates, key=key)["cascade"]


def write_report(out_root: Path) -> None:
    """The `make report` job: the study under out_root/private-inference/."""
    write_study(Path(out_root) / "private-inference")


def write_study(out: Path, contexts: list[int] = CONTEXTS) -> None:
    """Write report.md, results.json and the figures into folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    spu = load_profile("spu-cheetah")
    fit = load_profile("paper-fit")
    lan, wan = load_network("lan"), load_network("wan100")
    results = {"paper": PAPER,
               "paper_fit": paper_comparison(fit, paper_network(fit)),
               "spu_cheetah": paper_comparison(spu, wan)}
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))  # partial, resumable
    results["attention"] = attention_comparison(spu, [lan, wan], contexts)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    _stacked_bars(results["spu_cheetah"], out / "comm_by_class.png",
                  "GPT-2 (L=12) communication by operator class, spu-cheetah profile")
    _stacked_bars(results["paper_fit"], out / "comm_by_class_paper_fit.png",
                  "GPT-2 (L=12) communication by operator class, paper-fit profile")
    att = results["attention"]
    lines = [
        "# Private inference: the cost model against the Entropy-Guided paper, and attention cascades under 2PC",
        "",
        f"Paper: {PAPER}. GPT-2, d = 768, H = 12, FFN 3072, L = 12; vocabulary 50,257 at T = 128 and "
        "16,384 at T = 512. Attention: 3-pass softmax cascade, all T x T scores (as SPU computes them).",
        "",
        "## 1. paper-fit profile (fitted on the T = 128 rows only; T = 512 is a prediction)",
        "",
        f"Fitted: {json.dumps(fit.extra.get('fitted', {}))}. Latency on the fitted effective network "
        f"({paper_network(fit).bandwidth_bps / 1e6:.0f} Mbit/s, plus {fit.fixed.seconds:.0f} s per run).",
        "",
        *_paper_table(results["paper_fit"]),
        "",
        "## 2. spu-cheetah profile (measured with benchmarks/pi/measure_spu.py), latency on wan100",
        "",
        *_paper_table(results["spu_cheetah"]),
        "",
        "## 3. Communication by operator class",
        "",
        "![communication by class](comm_by_class.png)  ![paper-fit](comm_by_class_paper_fit.png)",
        "",
        "## 4. Attention cascades per query (one head, E = F = 64, spu-cheetah), next to the accelerator side",
        "",
        "Private inference: bytes, rounds and latency per query token for one head (E = F = 64), "
        "spu-cheetah, on LAN (3 Gbps, 0.8 ms) and WAN (100 Mbps, 80 ms). Accelerator side: passes "
        "over M (`ec.passes`) and operation counts (`ec.cost`) per query for every cascade, and the "
        "simulated FuseMax-class accelerator (archsim; BERT-shaped layer, batch 64, all 12 heads) per "
        "query token where a mapping exists (3-pass: unfused; 1-pass: FuseMax; '-' elsewhere).",
        "",
        *_attention_table(att, [lan, wan]),
        "",
    ]
    for context in sorted({contexts[0], contexts[-1]}):
        best_pi = _best(att, context, lambda r: r["latency_s_per_query"][wan.name])
        best_lan = _best(att, context, lambda r: r["latency_s_per_query"][lan.name])
        best_acc = _best(att, context, lambda r: (r["accelerator"]["passes_over_M"], r["accelerator"]["ops_per_query"]))
        softmax = [r for r in att if r["context"] == context and r["cascade"].startswith("attention_")]
        best_softmax_pi = min(softmax, key=lambda r: r["latency_s_per_query"][wan.name])["cascade"]
        best_softmax_acc = min(softmax, key=lambda r: (r["accelerator"]["passes_over_M"],
                                                       r["accelerator"]["ops_per_query"]))["cascade"]
        lines.append(f"- T = {context}: best for private inference: {best_pi} (WAN), {best_lan} (LAN); "
                     f"among the softmax cascades {best_softmax_pi}. Best for an accelerator (fewest passes, "
                     f"then fewest operations): {best_acc}; among the softmax cascades {best_softmax_acc}.")
    lines.append("")
    validation = Path(__file__).resolve().parent.parent / "benchmarks" / "pi" / "validation.json"
    if validation.exists():
        lines += ["## Validation against SPU (`make validate-pi`, last run)", "",
                  "| cascade | measured MB | predicted MB | error |", "|---|---|---|---|"]
        for r in json.loads(validation.read_text()):
            lines.append(f"| {r['cascade']} (T {r['contexts'][0]} -> {r['contexts'][1]}, E = {r['E']}) "
                         f"| {r['measured_bytes'] / 1e6:.2f} | {r['predicted_bytes'] / 1e6:.2f} | {r['error']:+.1%} |")
        lines.append("")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'}")


def register_args(parser: argparse.ArgumentParser) -> None:
    """Options of `cascadesim study private-inference`."""
    parser.add_argument("--out", type=Path, default=Path("reports/private-inference"), help="output folder")
    parser.add_argument("--contexts", type=int, nargs="+", default=CONTEXTS,
                        help="context lengths of the attention comparison (default 128 ... 4096)")


def main(args: argparse.Namespace) -> int:
    from studies.errors import UsageError

    if any(t < 1 for t in args.contexts):
        raise UsageError("--contexts: lengths must be positive integers")
    untiled = sorted({t for t in args.contexts if t > TILE and t % TILE})
    if untiled:
        raise UsageError(f"--contexts {' '.join(map(str, untiled))}: the tiled cascades (attention_1pass, ...) "
                         f"split the context into tiles of {TILE}: give multiples of {TILE} (or lengths up to {TILE})")
    write_study(args.out, sorted(set(args.contexts)))
    return 0
