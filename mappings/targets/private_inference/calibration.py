"""Calibration of the private-inference model: the `paper-fit` profile, fitted to the
Entropy-Guided paper's GPT-2 L = 12, T = 128 table (T = 512 is left for checking the fit).

It writes package data (archsim/configs/pi/paper-fit.yaml), so it runs only on request:
`make calibrate-pi` (= `python -m mappings.targets.private_inference.calibration`). Studies read it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mappings.targets.private_inference.decoder import DecoderConfig, model_cost
from mappings.targets.private_inference.profiles import (CONFIG_DIR, BackendProfile, Network, load_network,
                                                         load_profile, parse_profile)

PAPER = "Jha and Reagen, \"Entropy-Guided Attention for Private LLMs\", 2025 (docs/references/reference-private-inference.md section 1)"
# GPT-2, d = 768, H = 12, FFN 3072, L = 12: variant -> (communication GB, latency minutes).
PAPER_T128 = {"SM+LN+G": (25.32, 8.21), "SM+LN+R": (9.44, 6.06), "SM+ScFFN": (6.95, 5.68), "SM+ScFuFFN": (6.43, 4.76)}
PAPER_T512 = {"SM+LN+G": (145.24, 30.74), "SM+LN+R": (81.71, 23.54), "SM+ScFFN": (71.76, 21.51),
              "SM+ScFuFFN": (69.68, 19.44)}
PAPER_VOCAB = {128: 50257, 512: 16384}

# Ops of the paper-fit profile fitted on the T = 128 table; the others are the measured spu-cheetah's.
FITTED_OPS = ("gelu_tanh", "layernorm", "matmul_plain")
PAPER_FIT_PATH = CONFIG_DIR / "paper-fit.yaml"


def paper_config(variant: str, context: int, layers: int = 12) -> DecoderConfig:
    """The paper's GPT-2 (d = 768, H = 12, FFN 3072) at context T with its vocabulary for that T."""
    return DecoderConfig(layers=layers, context=context, variant=variant, vocab=PAPER_VOCAB.get(context, 50257))


def _with_ops(profile: BackendProfile, updates: dict[str, float], fixed_bytes: float | None = None,
              name: str | None = None) -> BackendProfile:
    """A copy of `profile` with the bytes of some ops (and the fixed bytes) replaced."""
    doc = {"name": name or profile.name, "description": profile.description, "source": profile.source,
           "ops": {op: {"bytes_per_element": updates.get(op, c.bytes_per_element), "rounds": c.rounds,
                        "seconds_per_element": c.seconds_per_element} for op, c in profile.ops.items()},
           "fixed": {"bytes": profile.fixed.bytes if fixed_bytes is None else fixed_bytes,
                     "rounds": profile.fixed.rounds, "seconds": profile.fixed.seconds}}
    return parse_profile(doc, f"<{doc['name']}>")


def calibrate_paper_fit(base: BackendProfile) -> tuple[dict, dict]:
    """Fit the paper-fit profile on the paper's L = 12, T = 128 table only.

    Communication is linear in the bytes per element of each op, so the four rows give four
    linear equations. Unknowns: bytes per element of gelu_tanh, layernorm and matmul_plain, and
    the fixed bytes per run; every other op keeps its measured `base` cost. Latency: a least-squares
    line over the four rows, latency = fixed seconds + bytes / effective bandwidth.
    Returns (profile document, fitted network entry)."""
    unknowns = list(FITTED_OPS) + ["fixed"]
    zero = _with_ops(base, {op: 0.0 for op in FITTED_OPS}, fixed_bytes=0.0)
    variants = list(PAPER_T128)
    rows, rhs = [], []
    for variant in variants:
        cfg = paper_config(variant, 128)
        rest = model_cost(cfg, zero).comm_bytes
        row = []
        for op in unknowns:
            if op == "fixed":
                row.append(1.0)
            else:
                row.append(model_cost(cfg, _with_ops(zero, {op: 1.0})).comm_bytes - rest)
        rows.append(row)
        rhs.append(PAPER_T128[variant][0] * 1e9 - rest)
    solution = np.linalg.solve(np.array(rows), np.array(rhs))
    fitted = {op: float(x) for op, x in zip(unknowns, solution)}
    fit = _with_ops(base, {op: round(fitted[op], 1) for op in FITTED_OPS}, fixed_bytes=round(fitted["fixed"]),
                    name="paper-fit")
    comm = np.array([model_cost(paper_config(v, 128), fit).comm_bytes for v in variants])
    latency = np.array([PAPER_T128[v][1] * 60.0 for v in variants])
    slope, intercept = np.polyfit(comm, latency, 1)  # seconds per byte, seconds
    doc = {
        "kind": "private-inference",
        "name": "paper-fit",
        "description": "SPU-CHEETAH costs with GELU, LayerNorm, plaintext-weight matmul and the per-run bytes "
                       "fitted to the Entropy-Guided paper's GPT-2 L = 12, T = 128 table",
        "source": f"fitted by `make calibrate-pi` on {PAPER}, L = 12, T = 128 "
                  f"rows only; other ops from the measured {base.name} profile",
        "fitted": {op: round(fitted[op], 1) for op in unknowns} | {
            "latency_seconds_per_gb": round(float(slope) * 1e9, 3), "latency_fixed_seconds": round(float(intercept), 1)},
        "ops": {op: {"bytes_per_element": c.bytes_per_element, "rounds": c.rounds,
                     "seconds_per_element": 0.0} for op, c in fit.ops.items()},
        "fixed": {"bytes": fit.fixed.bytes, "rounds": fit.fixed.rounds, "seconds": round(float(intercept), 1)},
    }
    network = {"bandwidth_mbps": round(8.0 / float(slope) / 1e6, 1), "rtt_ms": 0.0}
    return doc, network


def write_paper_fit(path: Path = PAPER_FIT_PATH) -> None:
    """Calibrate on the shipped spu-cheetah profile and write the paper-fit profile YAML to `path`."""
    import yaml

    doc, network = calibrate_paper_fit(load_profile("spu-cheetah"))
    doc["fitted_network"] = network
    header = ("# Generated by `make calibrate-pi`; do not edit by hand.\n"
              "# Latency is fitted as fixed.seconds + bytes / fitted_network bandwidth (use --network-file with\n"
              "# the fitted_network, or the study, which does); the paper's stated 100 Mbps cannot carry its bytes.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))


def paper_network(profile: BackendProfile) -> Network:
    """The effective network fitted with the paper-fit profile (falls back to wan100)."""
    entry = profile.extra.get("fitted_network")
    if not entry:
        return load_network("wan100")
    return Network("paper-effective", float(entry["bandwidth_mbps"]) * 1e6, float(entry["rtt_ms"]) / 1e3)


if __name__ == "__main__":
    write_paper_fit()
    print(f"wrote {PAPER_FIT_PATH}")
