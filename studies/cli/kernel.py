"""`cascadesim kernel FILE`: a standalone Python module of Triton kernels that evaluates a cascade.

The kernels are generated from the cascade's fused form (`cascadesim fuse`), FlashAttention's
loop structure: a program per block of rows and (batch, head), tiles of the streamed rank in a
loop, running state in registers, one kernel per pass that fusion leaves. Exit status: 0 when
written (or printed), 3 when the generator refuses the cascade (one line: the Einsum and why),
2 on bad input. Generating needs neither torch nor triton; running the module needs both.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studies.cli.numbers import positive_int
from studies.cli.cascade_arg import load_cascade
from studies.errors import UsageError

EXIT_REFUSED = 3


def run(args: argparse.Namespace) -> int:
    from gpu_ref.codegen import KernelRefusal, generate
    from gpu_ref.codegen.generate import default_rank

    cascade = load_cascade(args.file)
    rank = args.rank or default_rank(cascade)
    if rank not in cascade.ranks:
        raise UsageError(f"--rank {rank}: not a rank of {args.file} (ranks: {', '.join(cascade.ranks)})")
    try:
        result = generate(cascade, rank=rank, block_m=args.block_m, block_n=args.block_n, dtype=args.dtype,
                          kv_heads=args.kv_heads)
    except KernelRefusal as refusal:
        print(f"refused: {refusal}")
        return EXIT_REFUSED
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not args.output:
        print(result.source, end="")
        return 0
    Path(args.output).write_text(result.source)
    kernels = "; ".join(f"{k.name}: {', '.join(k.einsums)}" for k in result.kernels)
    programs = ("one program per (batch, head) walking the chunks" if result.grid.startswith("(1,")
                else f"programs per {args.block_m} rows of {result.row} and (batch, head)")
    print(f"wrote {args.output}: {cascade.name} ({result.form}), {len(result.kernels)} kernel(s) over {rank} "
          f"in tiles of {args.block_n}, {programs}: {kernels}")
    return 0


def _tile(text: str) -> int:
    value = positive_int(text)
    if value < 16 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two >= 16 (tl.dot's smallest tile), got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kernel", help="generate Triton kernels (a standalone Python module) from a cascade")
    parser.add_argument("file", help="a .cascade file or a library cascade name")
    parser.add_argument("--rank", help="the streamed rank (default M, else the rank of the first reduction)")
    parser.add_argument("-o", "--output", help="write the module here (default: print it)")
    parser.add_argument("--block-m", type=_tile, default=64, help="rows per program (a power of two >= 16)")
    parser.add_argument("--block-n", type=_tile, default=64, help="keys per tile (a power of two >= 16)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp16",
                        help="the inputs' and outputs' type; products in it, sums in fp32 (default fp16)")
    parser.add_argument("--kv-heads", type=positive_int,
                        help="key/value heads the module expects (grouped-query attention: each shared by "
                             "heads / kv-heads query heads; default: as many as the inputs have)")
    parser.set_defaults(func=run)
