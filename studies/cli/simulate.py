"""`cascadesim simulate FILE --arch NAME|PATH [--mapping auto|NAME|PATH] ...`: one cascade on one target.

Targets: a spatial accelerator (archsim/configs/*.yaml or a path), the GPU model (`h200`), or a
private-inference profile (`spu-cheetah`, with `--network`). `--json` prints one object (the
fields of mappings.simulation.SimulationResult; null where a field does not apply to the target).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studies.cli.numbers import positive_int
from studies.checked import json_text, require_finite
from studies.errors import UsageError
from studies.cli.sizes_arg import add_size_argument, parse_sizes


def run_simulate(args: argparse.Namespace) -> int:
    from mappings.simulation import simulate
    from studies.cli.cascade_arg import load_cascade
    c = load_cascade(args.file)
    r = simulate(c, args.arch, parse_sizes(args.size), mapping=args.mapping, objective=args.objective,
                 batch=args.batch, heads=args.heads, mode=args.mode, network=args.network,
                 check=not args.no_check, kv_heads=args.kv_heads, kernel=args.kernel, dtype=args.dtype)
    if args.save_mapping:
        if r.target != "accelerator":
            raise UsageError(f"--save-mapping: the {r.target} target has no mapping spec to save")
        from mappings.spec import parse_spec
        spec = parse_spec(r.mapping, str(args.save_mapping))
        try:
            Path(args.save_mapping).write_text(spec.to_yaml())
        except OSError as err:
            raise UsageError(f"--save-mapping: {args.save_mapping}: cannot write: {err.strerror or err}") from None
    result = r.to_dict()
    require_finite(result, f"simulate {args.file} on {args.arch}")
    if args.json:
        print(json_text(result, "simulate", indent=1))
        return 0
    print(f"{r.cascade} on {r.arch} ({r.target}), sizes "
          + " ".join(f"{k}={v:g}" for k, v in r.sizes.items()) + f", batch {r.batch} x heads {r.heads}"
          + (f" ({r.kv_heads} KV heads)" if r.kv_heads and r.kv_heads != r.heads else ""))
    for k, how in r.sizes_defaulted.items():
        print(f"  size {k} {how}")
    print(f"  latency {r.latency_s:.6g} s" + (f" ({r.cycles:.6g} cycles)" if r.cycles is not None else ""))
    if r.energy_j is not None:
        print(f"  energy {r.energy_j:.6g} J: " + ", ".join(f"{k} {v:.3g}" for k, v in r.energy_by_component.items()))
    if r.dram_bytes is not None:  # the GPU target reports HBM bytes and its bound, no per-unit busy time
        busy = "; busy " + ", ".join(f"{u} {100 * x:.1f}%" for u, x in r.util.items()) if r.util else ""
        print(f"  DRAM {r.dram_bytes:.6g} B{busy}" + (f"; bound by {r.bounding_unit}" if r.bounding_unit else ""))
    if r.comm_bytes is not None:
        print(f"  {r.comm_bytes:.6g} B on the wire, {r.rounds} rounds ({r.network})")
    if r.passes is not None:
        print(f"  passes over M: {r.passes}")
    if r.kernel is not None:
        print(f"  kernel {r.kernel}; bound by {r.bound}")
    if r.mapping is not None:
        print(f"  mapping {r.mapping.get('name')} ({r.candidates_evaluated} candidate(s) evaluated"
              + (f", objective {r.objective})" if args.mapping == "auto" else ")"))
    for note in r.notes:
        print(f"  {note}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="simulate a cascade on an accelerator, the GPU model or a PI profile")
    p.add_argument("file", metavar="FILE", help="a .cascade file or a library cascade name")
    p.add_argument("--arch", required=True, help="architecture name or YAML path, h200, or a PI profile (spu-cheetah)")
    p.add_argument("--mapping", default="auto", help="auto (search), a spec name (mappings/specs/) or a YAML path")
    p.add_argument("--objective", default="latency", choices=("latency", "energy", "edp"),
                   help="what the auto mapping minimises")
    add_size_argument(p)
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    p.add_argument("--heads", type=positive_int, default=1, help="attention heads (default 1)")
    p.add_argument("--kv-heads", type=positive_int, default=None, help="K/V heads (GQA/MQA; default: --heads)")
    p.add_argument("--kernel", default=None, help="GPU: a kernel profile (archsim/configs/gpu-kernels/; default: "
                   "picked from the cascade's structure)")
    p.add_argument("--dtype", default=None, help="GPU: element type bf16 (default), fp16, fp8")
    p.add_argument("--mode", default="steady", choices=("steady", "exact"), help="archsim simulation mode")
    p.add_argument("--network", help="network of a private-inference profile (default lan)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-check", action="store_true",
                   help="skip the invariants checked on every result (mappings/certify.py): for debugging only")
    p.add_argument("--save-mapping", type=Path, metavar="PATH", help="write the mapping used as YAML")
    p.set_defaults(func=run_simulate)
