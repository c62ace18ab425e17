"""`cascadesim eval FILE`: evaluate a cascade on random inputs; optionally compare with another."""
from __future__ import annotations

import argparse
import hashlib

import numpy as np

import einsum_cascade as ec
from studies.cascade_arg import load_cascade
from studies.errors import UsageError
from studies.sizes_arg import add_size_argument, parse_sizes


def _known(cascade: ec.Cascade, sizes: dict[str, float]) -> dict[str, float]:
    names = set(cascade.size_names) | set(cascade.params)
    return {k: v for k, v in sizes.items() if k in names}


def random_inputs(cascades: list[ec.Cascade], sizes: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Standard-normal inputs for every input of every cascade (shared by name), in a fixed order."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for cascade in cascades:
        bound = cascade.bind_sizes({}, _known(cascade, sizes))
        for name in cascade.inputs:
            shape = cascade.tensor_shape(name, bound)
            if name in inputs:
                if inputs[name].shape != shape:
                    raise UsageError(f"input {name} has shape {shape} in {cascade.file} but "
                                     f"{inputs[name].shape} in the other cascade")
                continue
            inputs[name] = rng.standard_normal(shape)
    return inputs


def checksum(array: np.ndarray) -> str:
    """First 12 hex digits of the SHA-256 of the float64 bytes."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()[:12]


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.size)
    cascades = [load_cascade(args.file)]
    if args.check_against:
        cascades.append(load_cascade(args.check_against))
    used = set().union(*(set(c.size_names) | set(c.params) for c in cascades))
    unknown = sorted(set(sizes) - used)
    if unknown:
        raise UsageError(f"--size: {', '.join(unknown)} is not a size or param of the cascade(s)")
    inputs = random_inputs(cascades, sizes, args.seed)
    results = []
    for cascade in cascades:
        mine = {n: inputs[n] for n in cascade.inputs}
        results.append(cascade.evaluate(mine, _known(cascade, sizes)))
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
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--check-against", metavar="FILE2",
                        help="evaluate FILE2 (file or library name) on the same inputs and compare outputs")
    parser.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance (of max |FILE2|)")
    parser.add_argument("--atol", type=float, default=1e-12, help="absolute tolerance")
    parser.set_defaults(func=run)
