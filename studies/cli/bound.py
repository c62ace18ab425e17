"""`cascadesim bound FILE --size ... --buffer 1M,4M,16M`: the least DRAM traffic any mapping of the
cascade (and of its fused form) can reach with a buffer of each capacity (mappings/bound.py)."""
from __future__ import annotations

import argparse
import json
import re

from studies.cli.cascade_arg import load_cascade
from studies.cli.sizes_arg import add_size_argument, parse_byte_count, parse_sizes
from studies.errors import UsageError

DEFAULT_BUFFERS = "1M,4M,16M"


def parse_buffers(text: str) -> list[int]:
    """`1M,4M,16M` -> byte counts (K, M, G binary multiples), each positive, in the order given."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UsageError(f"--buffer: empty entry in {text!r} (e.g. --buffer 1M,4M,16M)")
        try:
            out.append(parse_byte_count(part))
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"--buffer: {err}") from None
    return out


def _format_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.0f} B"


def run(args: argparse.Namespace) -> int:
    from mappings.bound import bounds, plot_curve
    from mappings.size_completion import complete_sizes

    cascade = load_cascade(args.file)
    buffers = parse_buffers(args.buffer)
    if args.word_bytes < 1:
        raise UsageError(f"--word-bytes: must be a positive integer, got {args.word_bytes}")
    sizes, how = complete_sizes(cascade, parse_sizes(args.size))
    results = bounds(cascade, sizes, buffers, args.word_bytes, fuse=not args.no_fuse)
    if args.plot:
        if not re.search(r"\.png$", str(args.plot), re.IGNORECASE):
            raise UsageError(f"--plot {args.plot}: expected a .png path")
        plot_curve(results, args.plot)
    if args.json:
        print(json.dumps({"cascade": cascade.name, "sizes": sizes, "sizes_defaulted": how,
                          "bounds": [b.to_json() for b in results]}, indent=2))
        return 0
    print(f"{cascade.name}: DRAM traffic lower bound, {args.word_bytes}-byte words, sizes "
          + ", ".join(f"{k}={v}" for k, v in sorted(sizes.items())))
    print(f"  {'form':<11} {'buffer':>10} {'bound':>12} {'compulsory':>12} {'straddling':>12} {'GEMM reuse':>12}")
    for b in results:
        print(f"  {b.form:<11} {_format_bytes(b.buffer_bytes):>10} {_format_bytes(b.total_bytes):>12} "
              f"{_format_bytes(b.compulsory_bytes):>12} {_format_bytes(b.straddle_bytes):>12} "
              f"{_format_bytes(b.reuse_bytes):>12}")
    for b in results:
        for s in b.straddles:
            print(f"  {b.form}, {_format_bytes(b.buffer_bytes)}: {', '.join(s.tensors)} straddle {s.barrier} "
                  f"(passes over {s.rank}): {s.extra_words:.0f} words spilled or re-read at least")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bound", help="least DRAM traffic any mapping can reach, per buffer size")
    parser.add_argument("file", help="a .cascade file or a library cascade name")
    parser.add_argument("--buffer", default=DEFAULT_BUFFERS,
                        help=f"buffer capacities in bytes, comma-separated (default {DEFAULT_BUFFERS})")
    parser.add_argument("--word-bytes", type=int, default=2, help="bytes per word (default 2)")
    parser.add_argument("--no-fuse", action="store_true", help="skip the bound of the fused form")
    parser.add_argument("--plot", help="write the traffic-vs-capacity curve to this PNG")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_size_argument(parser)
    parser.set_defaults(func=run)
