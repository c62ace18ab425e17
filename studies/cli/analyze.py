"""`cascadesim analyze FILE`: passes over each rank, live tensors, symbolic operation counts."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from studies.cli.cascade_arg import load_cascade
from studies.checked import json_text
from studies.errors import UsageError
from studies.cli.sizes_arg import add_size_argument, parse_sizes

if TYPE_CHECKING:  # the package is imported when a command runs, not to build the parser
    import einsum_cascade as ec
    from einsum_cascade.passes import PassReport


def _format_ops(ops: dict) -> str:
    return ", ".join(f"{op} {v}" for op, v in ops.items()) or "-"


def format_passes(report: PassReport) -> list[str]:
    if report.unbounded:
        return [f"passes over {report.rank}: {report.describe()}",
                f"  each step of the recurrence over {report.grows_with} needs a global result over "
                f"{report.rank} of its previous step: {' -> '.join(report.growth_chain)}"]
    lines = [f"passes over {report.rank}: {report.passes}"]
    by_pass: dict = {}
    for e in report.einsums:
        by_pass.setdefault(e.pass_, []).append(f"{e.name} ({e.kind})")
    for p in sorted(k for k in by_pass if k is not None):
        lines.append(f"  pass {p}: {', '.join(by_pass[p])}")
    if None in by_pass:
        lines.append(f"  in no pass: {', '.join(by_pass[None])}")
    lines.append(f"  live across passes: {', '.join(report.live_across_passes) or 'none'}")
    if report.restreamed_inputs:
        lines.append(f"  inputs streamed again in a later pass: {', '.join(report.restreamed_inputs)}")
    for k, chain in report.chains.items():
        if chain:
            lines.append(f"  pass {k} is forced by {' -> '.join(chain)}: "
                         f"{chain[-2]} is complete only at the end of pass {k - 1}")
    return lines


def format_analysis(cascade: ec.Cascade, ranks: list[str], sizes: dict[str, float]) -> str:
    import sympy

    import einsum_cascade as ec
    from einsum_cascade.analysis_json import analysis_notes

    lines = [f"cascade {cascade.name} ({cascade.file})"]
    for r in ranks:
        lines += format_passes(ec.passes(cascade, r))
    cost = ec.cost(cascade)
    at = cost.at(sizes) if sizes else None
    lines.append("operations (per Einsum; multiply+add per point of an implicit sum = one MAC):")
    width = max(len(n) for n in cost.per_einsum)
    for name, ops in cost.per_einsum.items():
        text = _format_ops(ops)
        if at is not None:
            text += f"   = {_format_ops(at.per_einsum[name])}"
        lines.append(f"  {name:<{width}}  {text}")
    lines.append(f"  {'total':<{width}}  {_format_ops(cost.total)}")
    if at is not None:
        lines.append(f"  {'':<{width}}  = {_format_ops(at.total)}  at {sizes}")
    lines.append("tensor sizes (elements):")
    for name, size in cost.tensor_sizes.items():
        extra = f" = {at.tensor_sizes[name]}" if at is not None else ""
        lines.append(f"  {name:<{width}}  {sympy.sstr(size)}{extra}")
    lines += [f"note: {n}" for n in analysis_notes(cascade)]
    return "\n".join(lines)


LARGE_CASCADE = 1000  # Einsums; above this, say on stderr that the analysis may take a while


def run(args: argparse.Namespace) -> int:
    cascade = load_cascade(args.file)
    if len(cascade.einsums) > LARGE_CASCADE:
        print(f"analysing {len(cascade.einsums)} Einsums over {len(cascade.ranks)} rank(s) "
              f"(about a second per thousand) ...", file=sys.stderr, flush=True)
    if args.rank is not None and args.rank not in cascade.ranks:
        raise UsageError(f"--rank {args.rank}: not a rank of {args.file} "
                         f"(ranks: {', '.join(cascade.ranks)})")
    ranks = [args.rank] if args.rank else list(cascade.ranks)
    sizes = parse_sizes(args.size)
    if sizes:
        cascade.bind_sizes({}, sizes)  # validates names and partitions (CascadeError)
    if args.json:
        from einsum_cascade.analysis_json import analysis_json

        print(json_text(analysis_json(cascade, ranks, sizes), "analyze", indent=2))
    else:
        print(format_analysis(cascade, ranks, sizes))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="passes over a rank, live tensors, operation counts")
    parser.add_argument("file", help="a .cascade file or a library cascade name")
    parser.add_argument("--rank", help="the rank to count passes over (default: every rank)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_size_argument(parser)
    parser.set_defaults(func=run)
