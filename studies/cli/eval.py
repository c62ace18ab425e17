"""`cascadesim eval FILE`: evaluate a cascade on random inputs; optionally compare with another."""
from __future__ import annotations

import argparse
import hashlib
import sys
from typing import TYPE_CHECKING

from studies.cli.cascade_arg import load_cascade
from studies.cli.numbers import nonnegative_float, nonnegative_int, positive_int
from studies.errors import UsageError
from studies.cli.sizes_arg import add_size_argument, parse_byte_count, parse_sizes

if TYPE_CHECKING:  # imported when the command runs, not to build the parser
    import numpy as np

    import einsum_cascade as ec


DEFAULT_MAX_MEMORY = 8 * 2**30  # bytes
DEFAULT_MAX_STEPS = 20_000  # recurrence steps run one by one (seconds: 100 us to 1 ms a step)


def checksum(array: np.ndarray) -> str:
    """First 12 hex digits of the SHA-256 of the float64 bytes."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()[:12]


def _bytes_text(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n / scale < 1e4 else f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_memory(cascades: list[ec.Cascade], sizes: dict[str, float], limit: int) -> None:
    """UsageError saying what evaluation at `sizes` would need when it is above `limit` bytes."""
    from einsum_cascade.checked_eval import memory_needed

    for cascade in cascades:
        need, largest, largest_bytes = memory_needed(cascade, sizes)
        if need > limit:
            shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise UsageError(
                f"eval of {cascade.name} at {shown} needs about {_bytes_text(need)} "
                f"({_bytes_text(largest_bytes)} for {largest}); the limit is {_bytes_text(limit)} "
                "(--max-memory); use `analyze` for counts at this size, or smaller sizes")


def check_steps(cascades: list[ec.Cascade], sizes: dict[str, float], limit: int) -> None:
    """UsageError up front when a recurrence would run more than `limit` steps (each a few tens
    of microseconds to milliseconds: millions of steps run for minutes with nothing to show)."""
    from einsum_cascade.checked_eval import recurrence_steps

    for cascade in cascades:
        steps = recurrence_steps(cascade, sizes)
        if steps > limit:
            raise UsageError(f"eval of {cascade.name}: its recurrence runs {steps} steps one by one, more than "
                             f"--max-steps {limit}; use `analyze` for counts at this size, smaller sizes, or a "
                             "larger --max-steps")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from einsum_cascade.checked_eval import NonFiniteOutput, evaluate_checked, known_sizes, random_inputs

    sizes = parse_sizes(args.size)
    cascades = [load_cascade(args.file)]
    if args.check_against:
        cascades.append(load_cascade(args.check_against, "--check-against"))
    used = set().union(*(set(c.size_names) | set(c.params) for c in cascades))
    unknown = sorted(set(sizes) - used)
    if unknown:
        raise UsageError(f"--size: {', '.join(unknown)} is not a size or param of the cascade(s)")
    check_memory(cascades, sizes, args.max_memory)
    check_steps(cascades, sizes, args.max_steps)
    inputs = random_inputs(cascades, sizes, args.seed)
    results = []
    try:
        for cascade in cascades:
            mine = {n: inputs[n] for n in cascade.inputs}
            results.append(evaluate_checked(cascade, mine, known_sizes(cascade, sizes)))
    except NonFiniteOutput as err:
        print(f"cascadesim: error: {err}", file=sys.stderr)
        return 1
    first = results[0]
    for name, value in first.items():
        print(f"{name}: shape {value.shape}  sum {value.sum():.10g}  "
              f"mean|x| {np.abs(value).mean():.10g}  sha256 {checksum(value)}")
    if len(results) == 1:
        return 0
    common = [n for n in first if n in results[1]]
    if not common:
        raise UsageError(f"{args.file} and {args.check_against} have no output in common")
    status = 0
    for name in common:
        a, b = first[name], results[1][name]
        if a.shape != b.shape:
            print(f"{name}: shapes differ {a.shape} vs {b.shape}")
            status = 1
            continue
        max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        max_rel = max_abs / scale if scale else max_abs
        ok = max_abs <= args.atol + args.rtol * scale
        print(f"{name}: max abs diff {max_abs:.3e}  max rel diff {max_rel:.3e}  "
              f"{'ok' if ok else 'ABOVE TOLERANCE'} (rtol {args.rtol:g}, atol {args.atol:g})")
        status = status or (0 if ok else 1)
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a cascade on random inputs")
    parser.add_argument("file", help="a .cascade file or a library cascade name")
    add_size_argument(parser)
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--max-memory", type=parse_byte_count, default=DEFAULT_MAX_MEMORY, metavar="BYTES",
                        help="refuse sizes whose tensors need more (e.g. 512M, 16G; default 8G)")
    parser.add_argument("--max-steps", type=positive_int, default=DEFAULT_MAX_STEPS, metavar="N",
                        help=f"refuse recurrences of more steps (default {DEFAULT_MAX_STEPS})")
    parser.add_argument("--check-against", metavar="FILE2",
                        help="evaluate FILE2 (file or library name) on the same inputs and compare outputs")
    parser.add_argument("--rtol", type=nonnegative_float, default=1e-9, help="relative tolerance (of max |FILE2|)")
    parser.add_argument("--atol", type=nonnegative_float, default=1e-12, help="absolute tolerance")
    parser.set_defaults(func=run)
