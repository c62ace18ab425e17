"""`cascadesim fuse FILE`: the fewest-pass equivalent of a cascade, certified.

Exit status: 0 when the passes were reduced (and the result certified) or the cascade already
needs at most one pass; 3 when no rule applies or the result could not be certified (the
reasons are printed, nothing is written); 2 on bad input.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from studies.cli.cascade_arg import load_cascade
from studies.checked import json_text
from studies.errors import UsageError
from studies.cli.sizes_arg import add_size_argument, parse_sizes

if TYPE_CHECKING:  # imported when the command runs, not to build the parser
    from einsum_cascade.fuse import FuseResult

# Sizes of the numeric overhead when --size gives none: the FuseMax paper's head dims at 4K
# tokens with 256-key tiles (as the taxonomy report).
DEFAULT_SIZES = {"E": 64, "F": 64, "M": 4096, "P": 4096, "N": 64, "W": 256, "D": 64}
EXIT_REFUSED = 3
DEFAULT_BLOCK = 64  # keys per tile when --block gives no number (einsum_cascade.fuse.DEFAULT_BLOCK_SIZE)


def _block(arg: str | None) -> tuple[str | None, int | None]:
    """--block: a tile-size name (`M0`), a number of keys (`256`) or both (`M0=256`)."""
    if arg is None:
        return None, None
    if "=" in arg:
        name, number = arg.split("=", 1)
    elif arg.isdigit():
        name, number = None, arg
    else:
        name, number = arg, ""
    value = None
    if number:
        if not number.isdigit() or int(number) < 1:
            raise UsageError(f"--block: expected a tile size name (M0), a positive number of keys "
                             f"(256) or NAME=N, got {arg!r}")
        value = int(number)
    if name is not None and not (name[:1].isupper() and name.replace("_", "").isalnum()):
        raise UsageError(f"--block: {name!r} is not a rank name (upper case, e.g. M0)")
    return name, value


def overhead_sizes(result: FuseResult, sizes: dict[str, float], block_value: int | None) -> dict[str, float]:
    """The sizes at which the overhead is counted: --size, else the defaults, with the tile."""
    out = dict(DEFAULT_SIZES)
    out[result.rank] = DEFAULT_SIZES["M"]  # the fused rank is the sequence
    out.update(sizes)
    tile = result.block
    if tile and tile not in out:
        out[tile] = block_value or result.block_size or DEFAULT_BLOCK
    for param in result.original.params:
        out.setdefault(param, 1)  # a param changes a count only inside a where clause
    names = set(result.original.size_names) | set(result.original.params) | {tile}
    return {k: v for k, v in out.items() if k in names}


def overhead_numbers(result: FuseResult, sizes: dict[str, float]) -> tuple[dict | None, str]:
    """The overhead at `sizes`, or None and what is missing or inconsistent."""
    from einsum_cascade.errors import CascadeError

    missing = _missing(result, sizes)
    if missing:
        return None, f"give --size {' '.join(f'{m}=N' for m in missing)} for the numbers"
    try:
        return result.overhead_at(sizes), ""
    except CascadeError as err:
        return None, f"no numbers at these sizes ({err.message})"


def _missing(result: FuseResult, sizes: dict[str, float]) -> list[str]:
    """Sizes the numeric overhead needs that neither --size nor the defaults give."""
    c = result.original
    needed = set()
    for r in c.ranks.values():
        if not r.parts and r.name not in sizes:
            needed.add(r.name)
        if r.parts and r.name not in sizes and not all(p in sizes for p in r.parts):
            needed.add(r.name)
    return sorted(needed)


def _ops(ops: dict) -> str:
    return ", ".join(f"{op} {'+' if not str(v).startswith('-') else ''}{v}" for op, v in ops.items()) or "none"


def format_result(result: FuseResult, sizes: dict[str, float], out_path: str | None) -> str:
    import sympy

    c = result.original
    lines = [f"cascade {c.name} ({c.file})",
             f"passes over {result.rank}: {result.passes_before} as written -> "
             f"{result.passes_after} after fusion ({result.status})"]
    if result.status == "minimal":
        lines.append(f"already minimal: {result.passes_before} pass(es) over {result.rank}; nothing to fuse")
        return "\n".join(lines)
    for name, rules in result.rewritten.items():
        lines.append(f"  {name}: {', '.join(rules)}")
    for chain in result.chains_broken:
        lines.append(f"  chain broken: {' -> '.join(chain)}")
    for note in result.identified:
        lines.append(f"  identified: {note}")
    if result.status == "reduced":
        lines.append("operation overhead (after minus before; negative = saved):")
        symbolic = {k: sympy.sstr(v) for k, v in result.overhead.items() if not v.has(sympy.Sum)}
        masked = [k for k, v in result.overhead.items() if v.has(sympy.Sum)]
        lines.append(f"  symbolic: {_ops(symbolic)}" + (f" ({', '.join(masked)}: sums over masked "
                     "points, see the numbers and --json)" if masked else ""))
        ops, note = overhead_numbers(result, sizes)
        lines.append(f"  at {', '.join(f'{k}={v:g}' for k, v in sizes.items())}: {_ops(ops)}"
                     if ops is not None else f"  at sizes: {note}")
        corrections = result.correction_ops()
        if corrections:
            lines.append("  correction terms: " + "; ".join(
                f"{name}: {_ops({k: sympy.sstr(v) for k, v in ops.items()})}" for name, ops in corrections.items()))
        if result.check_error is None:
            lines.append("numerical check: skipped (--no-check): the result is NOT certified")
        else:
            lines.append(f"numerical check: max relative error {result.check_error:.2e} (<= 1e-9) over "
                         f"{len(result.check_lines)} trials")
        if result.passes_after > 1:
            lines.append(f"stops at {result.passes_after} passes:")
            for k, chain in result.chains_left.items():
                if chain:
                    lines.append(f"  pass {k} is still forced by {' -> '.join(chain)}"
                                 + (f" (why: {result.why_left[k]})" if k in result.why_left else ""))
    for name, why in result.reasons.items():
        lines.append(f"  {'refused' if result.status == 'refused' else 'not fused'}: {name}: {why}")
    if out_path and result.status == "reduced":
        lines.append(f"wrote {out_path}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from einsum_cascade.fuse import fuse

    cascade = load_cascade(args.file)
    if args.rank not in cascade.ranks:
        raise UsageError(f"--rank {args.rank}: not a rank of {args.file} (ranks: {', '.join(cascade.ranks)})")
    name, value = _block(args.block)
    sizes = parse_sizes(args.size)
    result = fuse(cascade, args.rank, block=name, check=not args.no_check, block_size=value)
    at = overhead_sizes(result, sizes, value)
    if args.output and result.status in ("reduced", "minimal"):
        Path(args.output).write_text(result.text)
    if args.json:
        out = result.to_json()
        if result.status == "reduced":
            ops, note = overhead_numbers(result, at)
            out["overhead_at"] = {"sizes": at, "ops": ops} if ops is not None else {"note": note}
        if args.output and result.status in ("reduced", "minimal"):
            out["written"] = args.output
        print(json_text(out, "fuse", indent=2))
    else:
        print(format_result(result, at, args.output))
        if result.status == "reduced" and not args.output:
            print()
            print(result.text, end="")
    return 0 if result.status in ("reduced", "minimal") else EXIT_REFUSED


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fuse", help="rewrite a cascade into an equivalent one with fewer passes (certified)")
    parser.add_argument("file", help="a .cascade file or a library cascade name")
    parser.add_argument("--rank", default="M", help="the rank whose passes to reduce (default M)")
    parser.add_argument("--block", help="tile size of the rank: a name (M0), a number of keys for "
                        "the overhead counts (256) or NAME=N")
    parser.add_argument("-o", "--output", help="write the fused cascade here (only if certified)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the numerical certification (the result is marked unchecked)")
    add_size_argument(parser)
    parser.set_defaults(func=run)
